package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const composeFile = "../docker-compose.yml"

// deployDir is the folder of the real compose file, the project directory
// of every case below, so that its relative paths resolve as in real use.
func deployDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func problemsOf(t *testing.T, text string, scalable ...string) []string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "compose.yml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_, problems := check(context.Background(), file, deployDir(t), scalable, []string{"HOME=" + t.TempDir()})
	return problems
}

// mutated is the real compose file with one exact edit applied.
func mutated(t *testing.T, old, replacement string) string {
	t.Helper()
	data, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if strings.Count(text, old) != 1 {
		t.Fatalf("the mutation target %q must occur exactly once in %s", old, composeFile)
	}
	return strings.Replace(text, old, replacement, 1)
}

func TestTheRealComposeFileIsValid(t *testing.T) {
	data, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	if problems := problemsOf(t, string(data), "processor"); len(problems) > 0 {
		t.Fatalf("expected no problems, got:\n%s", strings.Join(problems, "\n"))
	}
}

func TestBrokenFilesAreRejected(t *testing.T) {
	cases := []struct {
		name, text, want string
		scalable         []string
	}{
		{"yaml syntax", mutated(t, "  kafka:\n    image:", "  kafka:\n   image:"), "yaml", nil},
		{"unknown service key (schema)", mutated(t, "    stop_grace_period: 40s", "    stop_grace_periods: 40s"),
			"stop_grace_periods", nil},
		{"wrong type (schema)", mutated(t, "      retries: 30", "      retries: many"), "retries", nil},
		{"bad duration", mutated(t, "    stop_grace_period: 30s", "    stop_grace_period: thirty"), "thirty", nil},
		{"depends_on an undefined service", mutated(t, "      scylla:\n        condition: service_healthy\n    restart: \"no\"",
			"      cassandra:\n        condition: service_healthy\n    restart: \"no\""), "cassandra", nil},
		{"unknown depends_on condition", mutated(t, "      migrate:\n        condition: service_completed_successfully",
			"      migrate:\n        condition: service_done"), "condition value must be one of", nil},
		{"undefined named volume", mutated(t, "      - scylla-data:/var/lib/scylla", "      - scyla-data:/var/lib/scylla"),
			"scyla-data", nil},
		{"required variable unset", mutated(t, "${WEBHOOK_PARTITIONS:-6}", "${WEBHOOK_PARTITIONS:?set it}"),
			"WEBHOOK_PARTITIONS", nil},
		{"unset variable defaults to blank", mutated(t, "${GRAFANA_ADMIN_PASSWORD:-admin}", "${GRAFANA_ADMIN_PASSWORD}"),
			"GRAFANA_ADMIN_PASSWORD", nil},
		{"missing bind-mount source", mutated(t, "./docker/create-topics.sh:", "./docker/create-topic.sh:"),
			"create-topic.sh does not exist", nil},
		{"missing build target", mutated(t, "  target: processor", "  target: processer"), "processer", nil},
		{"missing Dockerfile", mutated(t, "      dockerfile: deploy/docker/Dockerfile\n      target: ingress",
			"      dockerfile: deploy/docker/Dockerfile.nope\n      target: ingress"), "Dockerfile.nope", nil},
		{"healthy dependency without healthcheck", mutated(t,
			"      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:9090/-/ready\"]",
			"      disable: true"), "no healthcheck", nil},
		{"one-shot dependency that restarts forever", mutated(t,
			"        condition: service_healthy\n    restart: \"no\"", "        condition: service_healthy\n    restart: always"),
			"restart: always", nil},
		{"scalable service with a container name", mutated(t,
			"    command: [\"run\"]", "    command: [\"run\"]\n    container_name: processor"), "container_name", []string{"processor"}},
		{"scalable service with a fixed host port", mutated(t,
			"    command: [\"run\"]", "    command: [\"run\"]\n    ports: [\"9091:9091\"]"), "fixed host port", []string{"processor"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			problems := problemsOf(t, c.text, c.scalable...)
			if len(problems) == 0 {
				t.Fatalf("expected a problem mentioning %q, got none", c.want)
			}
			all := strings.Join(problems, "\n")
			if !strings.Contains(all, c.want) {
				t.Fatalf("expected a problem mentioning %q, got:\n%s", c.want, all)
			}
		})
	}
}

func TestRunExitsNonZeroOnAnInvalidFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "compose.yml")
	if err := os.WriteFile(file, []byte("services:\n  a:\n    image: x\n    depends_on: [b]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	if code := run(file, "", nil, false, &out, &errOut); code != 1 {
		t.Fatalf("exit status %d, want 1 (stderr: %s)", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "INVALID") {
		t.Fatalf("stderr does not say INVALID: %s", errOut.String())
	}
}

// withContext writes files into a fresh build context and returns a compose
// file building its Dockerfile's `app` target.
func withContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return "services:\n  app:\n    build:\n      context: " + dir + "\n      target: app\n"
}

func TestBrokenDockerfilesAreRejected(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"unknown instruction", map[string]string{"Dockerfile": "FROM debian AS app\nRUNN true\n"}, "RUNN"},
		{"unknown flag", map[string]string{"Dockerfile": "FROM debian AS app\nCOPY --chmodd=0755 a /a\n", "a": ""},
			"chmodd"},
		{"build check warning", map[string]string{"Dockerfile": "FROM debian as app\n"}, "FromAsCasing"},
		{"missing COPY source", map[string]string{"Dockerfile": "FROM debian AS app\nCOPY conf/app.toml /etc/\n"},
			"conf/app.toml does not exist"},
		{"COPY source excluded by .dockerignore", map[string]string{
			"Dockerfile":    "FROM debian AS app\nCOPY conf/app.toml /etc/\n",
			"conf/app.toml": "",
			".dockerignore": "conf/\n",
		}, "excluded by"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			problems := problemsOf(t, withContext(t, c.files))
			all := strings.Join(problems, "\n")
			if !strings.Contains(all, c.want) {
				t.Fatalf("expected a problem mentioning %q, got:\n%s", c.want, all)
			}
		})
	}
	good := map[string]string{
		"Dockerfile":    "FROM debian AS app\nCOPY conf/app.toml /etc/\n",
		"conf/app.toml": "",
		".dockerignore": "target/\n",
	}
	if problems := problemsOf(t, withContext(t, good)); len(problems) > 0 {
		t.Fatalf("a good Dockerfile was rejected:\n%s", strings.Join(problems, "\n"))
	}
}
