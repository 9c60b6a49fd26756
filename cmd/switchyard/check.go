package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/app"
	"github.com/switchyard/switchyard/config"
)

func check(args []string, stdout, stderr io.Writer) error {
	fs := flags("check", "check --config FILE", stderr)
	path := fs.String("config", "config.yaml", "configuration `file`")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, loadErr := config.LoadAll(*path)
	if cfg == nil {
		return report(stdout, loadErr)
	}
	// Compile what could be decoded even when the file has problems, so
	// that a broken expression is reported with an unknown key, not after
	// it is fixed.
	plan, err := app.Build(cfg, nil)
	if err == nil {
		plan.Close()
	}
	warnings := append(cfg.Warnings, app.SourceWarnings(cfg)...)
	if loadErr == nil {
		warnings = append(warnings, app.DataFieldWarnings(cfg)...)
	}
	for _, w := range warnings {
		fmt.Fprintln(stdout, w.String())
	}
	if loadErr == nil && err == nil {
		fmt.Fprintln(stdout, "OK")
		return nil
	}
	return report(stdout, mergeProblems(loadErr, err))
}

// mergeProblems joins the configuration's problems and those compiling it
// found, in the order of the file; a compile problem at a setting the
// configuration already reported (an unknown provider, a missing secret)
// is left out.
func mergeProblems(load, build error) error {
	var all []config.Problem
	var cerr *config.Error
	if errors.As(load, &cerr) {
		all = append(all, cerr.Problems...)
	} else if load != nil {
		return load
	}
	reported := len(all)
	if errors.As(build, &cerr) {
		for _, p := range cerr.Problems {
			if !coveredBy(p, all[:reported]) {
				all = append(all, p)
			}
		}
	} else if build != nil {
		return build
	}
	slices.SortStableFunc(all, func(a, b config.Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return &config.Error{Problems: all}
}

// coveredBy reports whether a problem at p's setting, or at one that
// contains it, was reported already.
func coveredBy(p config.Problem, reported []config.Problem) bool {
	for _, r := range reported {
		if r.Path == "" {
			continue
		}
		if p.Path == r.Path || strings.HasPrefix(p.Path, r.Path+".") || strings.HasPrefix(p.Path, r.Path+"[") ||
			strings.HasPrefix(r.Path, p.Path+".") {
			return true
		}
	}
	return false
}

// report prints a configuration's problems, one per line, and fails.
func report(w io.Writer, err error) error {
	var cerr *config.Error
	if !errors.As(err, &cerr) {
		return err
	}
	for _, p := range cerr.Problems {
		fmt.Fprintln(w, p.String())
	}
	return &exitError{code: 1, msg: fmt.Sprintf("%d problem(s) in the configuration", len(cerr.Problems))}
}
