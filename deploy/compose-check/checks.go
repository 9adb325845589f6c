package main

// Checks that compose-go does not make, because `docker compose` only fails
// on them at `up` time (or, worse, does something silently wrong):
//
//   - a bind-mount source that does not exist (Docker creates an empty
//     directory in its place, so a missing config file becomes a folder);
//   - a build context, Dockerfile or build target stage that does not exist,
//     or a Dockerfile that BuildKit refuses or warns about (dockerfile.go);
//   - `condition: service_healthy` on a service without a healthcheck in
//     the compose file;
//   - `condition: service_completed_successfully` on a service that restarts
//     forever;
//   - a service meant for `--scale` with a container_name or a fixed host port.

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

func checkProject(p *types.Project, scalable []string) []string {
	var problems []string
	names := serviceNames(p)
	for _, name := range names {
		s := p.Services[name]
		problems = append(problems, checkMounts(name, s)...)
		problems = append(problems, checkBuild(name, s)...)
		problems = append(problems, checkDependencies(p, name, s)...)
	}
	for _, name := range scalable {
		s, ok := p.Services[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("service %q (-scalable) is not defined", name))
			continue
		}
		problems = append(problems, checkScalable(name, s)...)
	}
	return problems
}

func checkMounts(name string, s types.ServiceConfig) []string {
	var problems []string
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if _, err := os.Stat(v.Source); err != nil {
			problems = append(problems, fmt.Sprintf(
				"service %q: bind mount source %s does not exist (Docker would create an empty directory there)",
				name, v.Source))
		}
	}
	return problems
}

func checkBuild(name string, s types.ServiceConfig) []string {
	b := s.Build
	if b == nil || strings.Contains(b.Context, "://") {
		return nil
	}
	if info, err := os.Stat(b.Context); err != nil || !info.IsDir() {
		return []string{fmt.Sprintf("service %q: build context %s is not a directory", name, b.Context)}
	}
	if b.DockerfileInline != "" {
		return nil
	}
	dockerfile := b.Dockerfile
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(b.Context, dockerfile)
	}
	return checkDockerfile(name, b.Context, dockerfile, b.Target)
}

func checkDependencies(p *types.Project, name string, s types.ServiceConfig) []string {
	var problems []string
	for _, dep := range sortedKeys(s.DependsOn) {
		d, ok := p.Services[dep]
		if !ok {
			continue // compose-go's consistency check reports it
		}
		switch s.DependsOn[dep].Condition {
		case types.ServiceConditionHealthy:
			if d.HealthCheck == nil || d.HealthCheck.Disable || len(d.HealthCheck.Test) == 0 {
				problems = append(problems, fmt.Sprintf(
					"service %q waits for %q to be healthy, but %q has no healthcheck", name, dep, dep))
			}
		case types.ServiceConditionCompletedSuccessfully:
			if d.Restart == types.RestartPolicyAlways || d.Restart == types.RestartPolicyUnlessStopped {
				problems = append(problems, fmt.Sprintf(
					"service %q waits for %q to complete, but %q has restart: %s", name, dep, dep, d.Restart))
			}
		}
	}
	return problems
}

func checkScalable(name string, s types.ServiceConfig) []string {
	var problems []string
	if s.ContainerName != "" {
		problems = append(problems, fmt.Sprintf(
			"service %q must stay scalable but sets container_name %q", name, s.ContainerName))
	}
	for _, port := range s.Ports {
		if port.Published != "" && !strings.Contains(port.Published, "-") {
			problems = append(problems, fmt.Sprintf(
				"service %q must stay scalable but publishes fixed host port %s", name, port.Published))
		}
	}
	return problems
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
