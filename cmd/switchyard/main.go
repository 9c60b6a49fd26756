// Command switchyard is a receiver-side webhook gateway: it verifies,
// normalizes, stores, routes and delivers webhook events.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

const usage = `switchyard: a receiver-side webhook gateway

Usage:
  switchyard serve   --config FILE            run the gateway (SIGHUP or a changed file: reload)
  switchyard check   --config FILE            validate a configuration; print OK or every problem
  switchyard test    --config FILE [--source NAME] [--json] EVENT.json...
                                              dry run: the routes each event matches (and why not), and what each sink would send
  switchyard test    --config FILE --cases CASES.yaml
                                              run rule test cases; exit 1 on a mismatch
  switchyard send    --config FILE --source NAME [--url URL] EVENT.json
                                              sign EVENT.json as the source would and POST it
  switchyard deliveries list --config FILE [--state dead] [--sink NAME] [--since DUR]
                                              list deliveries (dead letters, retries, …)
  switchyard deliveries purge --config FILE --sink NAME [--state S] [--before DUR] --dry-run|--yes
                                              delete a (removed) sink's deliveries
  switchyard events list|get --config FILE   list stored events with their deliveries, or show one
  switchyard replay  --config FILE --delivery ID | --event ID | --sink NAME [--state dead] [--since DUR]
                                              queue deliveries again (also while serving)
  switchyard archive search|export --config FILE [--sink NAME]
                                              search or export the sqlite archive (also while serving)
  switchyard replicas --config FILE [--json]   list the live replicas sharing a PostgreSQL queue
  switchyard storage copy --from-dir DIR --to-dsn DSN
                                              copy a stopped SQLite queue into PostgreSQL (again: copies nothing twice)
  switchyard version                          print the version

The queue commands (deliveries, events, replay, replicas) take --dsn DSN
instead of --config to reach a PostgreSQL queue from any machine.

Run "switchyard COMMAND -h" for a command's flags.
`

// exitError carries an exit status; its message, if any, is printed.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(os.Stderr, "switchyard:", msg)
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stdout, stderr)
	case "check":
		return check(rest, stdout, stderr)
	case "test":
		return test(rest, stdout, stderr)
	case "send":
		return send(ctx, rest, stdout, stderr)
	case "deliveries":
		return deliveries(ctx, rest, stdout, stderr)
	case "events":
		return events(ctx, rest, stdout, stderr)
	case "replay":
		return replay(ctx, rest, stdout, stderr)
	case "archive":
		return archive(ctx, rest, stdout, stderr)
	case "replicas":
		return replicas(ctx, rest, stdout, stderr)
	case "storage":
		return storage(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return &exitError{code: 2, msg: fmt.Sprintf("unknown command %q", cmd)}
}

// flags returns a flag set that prints its usage to stderr and reports
// errors as exit status 2.
func flags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: switchyard %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitError{code: 0}
		}
		return &exitError{code: 2}
	}
	return nil
}

// newLogger returns a logger writing text or JSON to w.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
