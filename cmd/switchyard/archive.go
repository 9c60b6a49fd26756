package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/switchyard/switchyard/config"
	sinkarchive "github.com/switchyard/switchyard/sinks/archive"
	"github.com/switchyard/switchyard/sinks/postgres"
	"github.com/switchyard/switchyard/sinks/sqlite"
)

const archiveUsage = `Usage:
  switchyard archive search [--config FILE] [--sink NAME | --db PATH] [--limit N] QUERY
  switchyard archive export [--config FILE] [--sink NAME | --db PATH] --format csv|jsonl
                            [--table sessions|events] [--since DUR] [--where EXPR]

Both open the archive read-only and work while the gateway runs. The
archive is a sink of type sqlite or postgres in the configuration (the
only one, or --sink NAME), or a SQLite file (--db).
`

// archiveFlags locate the archive: a sqlite or postgres sink of the
// configuration (the only one, or --sink), or a SQLite file (--db).
type archiveFlags struct {
	config, sink, db *string
}

func addArchiveFlags(fs *flag.FlagSet) archiveFlags {
	return archiveFlags{
		config: fs.String("config", "config.yaml", "configuration `file` whose archive sink (sqlite or postgres) to read"),
		sink:   fs.String("sink", "", "the archive sink's `name`, when the configuration has several"),
		db:     fs.String("db", "", "SQLite archive file `path` (instead of --config)"),
	}
}

func (f archiveFlags) open(ctx context.Context) (sinkarchive.Reader, error) {
	if *f.db != "" {
		return sqlite.OpenReader(ctx, *f.db)
	}
	cfg, err := config.Load(*f.config)
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			return nil, fmt.Errorf("%w\n(run switchyard check --config %s, or name a SQLite archive with --db)", err, *f.config)
		}
		return nil, err
	}
	var names []string
	var chosen *config.Sink
	for i, s := range cfg.Sinks {
		if s.SQLite == nil && s.Postgres == nil {
			continue
		}
		names = append(names, s.Name)
		if s.Name == *f.sink || (*f.sink == "" && chosen == nil) {
			chosen = &cfg.Sinks[i]
		}
	}
	switch {
	case len(names) == 0:
		return nil, &exitError{code: 2, msg: fmt.Sprintf("%s has no archive sink (type sqlite or postgres; or name a SQLite archive with --db)", *f.config)}
	case *f.sink == "" && len(names) > 1:
		return nil, &exitError{code: 2, msg: fmt.Sprintf("%s has several archive sinks: choose one with --sink (%s)", *f.config, strings.Join(names, ", "))}
	case chosen == nil || (*f.sink != "" && chosen.Name != *f.sink):
		return nil, &exitError{code: 2, msg: fmt.Sprintf("no archive sink %q in %s (archive sinks: %s)", *f.sink, *f.config, strings.Join(names, ", "))}
	case chosen.Postgres != nil:
		return postgres.OpenReader(ctx, chosen.Postgres.DSN.Reveal())
	}
	return sqlite.OpenReader(ctx, chosen.SQLite.Path)
}

// parseInterspersed parses flags before and after positional arguments
// (archive search "a OR b" --limit 5) and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func archive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, archiveUsage)
		return &exitError{code: 2}
	}
	switch args[0] {
	case "search":
		return archiveSearch(ctx, args[1:], stdout, stderr)
	case "export":
		return archiveExport(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, archiveUsage)
		return nil
	}
	fmt.Fprint(stderr, archiveUsage)
	return &exitError{code: 2, msg: fmt.Sprintf("unknown archive command %q", args[0])}
}

func archiveSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("archive search", `archive search [flags] QUERY

QUERY searches session titles and summaries: words (case, accents and
punctuation do not matter), "a phrase", prefix*, OR, NOT, parentheses,
title:word or summary:word. Example: "reembolso OR refund"`, stderr)
	af := addArchiveFlags(fs)
	limit := fs.Int("limit", 20, "show at most `n` sessions, newest first")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return &exitError{code: 2, msg: "missing QUERY"}
	}
	r, err := af.open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	hits, err := r.Search(ctx, strings.Join(pos, " "), *limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAST EVENT\tCHANNEL\tFORWARD\tSESSION\tTITLE\tMATCH")
	for _, h := range hits {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.LastEventAt, orDash(h.Channel), orDash(h.ForwardType),
			h.SessionID, oneLine(h.Title, 40), oneLine(h.Snippet, 100))
	}
	tw.Flush()
	if len(hits) == 0 {
		fmt.Fprintln(stdout, "(no sessions match)")
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func archiveExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("archive export", `archive export [flags] > FILE

Writes a table to stdout: CSV with a header, or JSON lines.
--where is an expression over the row's columns, for example
  --where 'forward_type == "escalated" && lead_score >= 80'
A row where it fails (a NULL compared with a number) is left out.`, stderr)
	af := addArchiveFlags(fs)
	format := fs.String("format", "", "`csv` or jsonl (required)")
	table := fs.String("table", "sessions", "`table` to export: sessions or events")
	since := fs.String("since", "", "only events (sessions: whose last event is) within this `duration`, e.g. 7d")
	where := fs.String("where", "", "only rows for which this `expression` is true")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *format != "csv" && *format != "jsonl" {
		fs.Usage()
		return &exitError{code: 2, msg: fmt.Sprintf("--format %q: csv or jsonl", *format)}
	}
	if *table != "sessions" && *table != "events" {
		return &exitError{code: 2, msg: fmt.Sprintf("--table %q: sessions or events", *table)}
	}
	from, err := parseSince(*since)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	r, err := af.open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	o := sinkarchive.ExportOptions{Format: *format, Table: *table, Since: from}
	if *where != "" {
		cols, err := r.Columns(ctx, *table)
		if err != nil {
			return err
		}
		w, err := sinkarchive.CompileWhere(*where, cols)
		if err != nil {
			return &exitError{code: 2, msg: fmt.Sprintf("%v\n(columns of %s: %s)", err, *table, strings.Join(cols, ", "))}
		}
		o.Where = w
	}
	n, err := r.Export(ctx, stdout, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "exported %d rows\n", n)
	return nil
}
