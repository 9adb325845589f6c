// compose-check validates a Docker Compose file without a Docker engine.
//
// It loads the file with compose-go, the library behind `docker compose`
// itself: YAML parsing, `${VAR}` interpolation (from the environment and
// the project's .env), the compose-spec JSON schema, normalisation and the
// consistency checks (every depends_on, network, volume and secret must
// exist). On top of that it checks what compose only finds out at `up` or
// build time (checks.go, dockerfile.go), and it treats every loader
// warning, such as an unset variable, as an error.
//
//	go run . [-print] [-project-directory DIR] [-scalable svc,...] FILE
//
// Exit status: 0 valid, 1 invalid, 2 usage error.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"
)

func main() {
	flags := flag.NewFlagSet("compose-check", flag.ContinueOnError)
	print := flags.Bool("print", false, "print the normalised configuration (as `docker compose config` would)")
	projectDir := flags.String("project-directory", "", "resolve relative paths from DIR (default: the file's folder)")
	scalable := flags.String("scalable", "", "comma-separated services that must stay scalable with `--scale`")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: compose-check [-print] [-project-directory DIR] [-scalable svc,...] FILE")
		flags.PrintDefaults()
	}
	if err := flags.Parse(os.Args[1:]); err != nil || flags.NArg() != 1 {
		flags.Usage()
		os.Exit(2)
	}
	os.Exit(run(flags.Arg(0), *projectDir, splitList(*scalable), *print, os.Stdout, os.Stderr))
}

// run validates file and reports to out/errOut; it returns the exit status.
func run(file, projectDir string, scalable []string, print bool, out, errOut io.Writer) int {
	project, problems := check(context.Background(), file, projectDir, scalable, os.Environ())
	if len(problems) > 0 {
		fmt.Fprintf(errOut, "compose-check: %s is INVALID:\n", file)
		for _, p := range problems {
			fmt.Fprintf(errOut, "  - %s\n", p)
		}
		return 1
	}
	if print {
		text, err := project.MarshalYAML()
		if err != nil {
			fmt.Fprintf(errOut, "compose-check: rendering the configuration: %v\n", err)
			return 1
		}
		out.Write(text)
	}
	fmt.Fprintf(out, "compose-check: %s is valid (project %q; services: %s)\n",
		file, project.Name, strings.Join(serviceNames(project), ", "))
	return 0
}

// check loads file as `docker compose` would and returns the project and
// every problem found: the loader's error and warnings, then our own checks.
func check(ctx context.Context, file, projectDir string, scalable, env []string) (*types.Project, []string) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, []string{err.Error()}
	}
	if projectDir == "" {
		projectDir = filepath.Dir(abs)
	}
	warnings := captureWarnings()
	defer warnings.release()

	options, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(projectDir),
		cli.WithEnv(env),
		cli.WithDotEnv,
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, []string{err.Error()}
	}
	project, err := options.LoadProject(ctx)
	problems := warnings.messages()
	if err != nil {
		return nil, append(problems, err.Error())
	}
	problems = append(problems, checkProject(project, scalable)...)
	return project, problems
}

// warningHook records the loader's warnings (logrus), which `docker compose`
// only prints: an unset variable silently becomes an empty string.
type warningHook struct {
	mu       sync.Mutex
	seen     []string
	previous io.Writer
}

func captureWarnings() *warningHook {
	h := &warningHook{previous: logrus.StandardLogger().Out}
	logrus.SetOutput(io.Discard)
	logrus.AddHook(h)
	return h
}

func (h *warningHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (h *warningHook) Fire(e *logrus.Entry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, "compose warning: "+e.Message)
	return nil
}

func (h *warningHook) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.seen...)
}

func (h *warningHook) release() {
	logrus.StandardLogger().ReplaceHooks(make(logrus.LevelHooks))
	logrus.SetOutput(h.previous)
}

func serviceNames(p *types.Project) []string {
	names := make([]string, 0, len(p.Services))
	for name := range p.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
