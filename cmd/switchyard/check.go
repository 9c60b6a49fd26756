package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/switchyard/switchyard/app"
	"github.com/switchyard/switchyard/config"
)

func check(args []string, stdout, stderr io.Writer) error {
	fs := flags("check", "check --config FILE", stderr)
	path := fs.String("config", "config.yaml", "configuration `file`")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return report(stdout, err)
	}
	plan, err := app.Build(cfg, nil)
	warnings := append(cfg.Warnings, app.SourceWarnings(cfg)...)
	for _, w := range append(warnings, app.DataFieldWarnings(cfg)...) {
		fmt.Fprintln(stdout, w.String())
	}
	if err != nil {
		return report(stdout, err)
	}
	plan.Close()
	fmt.Fprintln(stdout, "OK")
	return nil
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
