package main

// Dockerfile checks, with BuildKit's own parser and build-check linter (what
// `docker build --check` runs): the file parses, every instruction and flag
// is valid, no build check warns, the build target is a stage, and every
// file that COPY takes from the build context exists and is not excluded by
// the context's .dockerignore.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// checkDockerfile returns the problems of building target (may be empty)
// from dockerfile with the given context directory.
func checkDockerfile(service, contextDir, dockerfile, target string) []string {
	var problems []string
	report := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf("service %q: %s: ", service, dockerfile)+fmt.Sprintf(format, args...))
	}
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		report("cannot be read: %v", err)
		return problems
	}
	ast, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		report("%v", err)
		return problems
	}
	for _, w := range ast.Warnings {
		report("parser warning: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, description, _, message string, location []parser.Range) {
		line := 0
		if len(location) > 0 {
			line = location[0].Start.Line
		}
		report("line %d: build check %s: %s", line, rule, message)
	}})
	stages, _, err := instructions.Parse(ast.AST, lint)
	if err != nil {
		report("%v", err)
		return problems
	}
	names := map[string]bool{}
	for _, s := range stages {
		names[strings.ToLower(s.Name)] = true
	}
	if target != "" && !names[strings.ToLower(target)] {
		report("build target %q is not a stage (stages: %s)", target, strings.Join(sortedKeys(names), ", "))
	}
	ignored, err := dockerignore(contextDir)
	if err != nil {
		report("%v", err)
		return problems
	}
	for _, s := range stages {
		for _, cmd := range s.Commands {
			c, ok := cmd.(*instructions.CopyCommand)
			if !ok || c.From != "" {
				continue
			}
			for _, src := range c.SourcePaths {
				problems = append(problems, checkCopySource(service, contextDir, src, ignored)...)
			}
		}
	}
	return problems
}

func checkCopySource(service, contextDir, src string, ignored *patternmatcher.PatternMatcher) []string {
	if strings.ContainsAny(src, "*?[$") {
		return nil // a pattern or a variable: resolved at build time
	}
	rel := filepath.Clean(strings.TrimPrefix(src, "/"))
	if _, err := os.Stat(filepath.Join(contextDir, rel)); err != nil {
		return []string{fmt.Sprintf("service %q: COPY source %s does not exist in the build context %s", service, src, contextDir)}
	}
	if rel != "." && ignored != nil {
		if excluded, _ := ignored.MatchesOrParentMatches(filepath.ToSlash(rel)); excluded {
			return []string{fmt.Sprintf("service %q: COPY source %s is excluded by %s", service, src,
				filepath.Join(contextDir, ".dockerignore"))}
		}
	}
	return nil
}

// dockerignore reads the context's .dockerignore (nil when there is none).
func dockerignore(contextDir string) (*patternmatcher.PatternMatcher, error) {
	f, err := os.Open(filepath.Join(contextDir, ".dockerignore"))
	if os.IsNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading .dockerignore: %v", err)
	}
	return patternmatcher.New(patterns)
}
