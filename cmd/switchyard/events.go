package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/event"
)

const eventsUsage = "Usage: switchyard events list [--config FILE | --dir DIR | --dsn DSN] [--source NAME] [--type PATTERN] [--subject S] [--state STATE]\n" +
	"           [--since DUR] [--until DUR] [--text TEXT] [--where COND] [--limit N] [--json]\n" +
	"       switchyard events get [--config FILE | --dir DIR | --dsn DSN] ID"

// events lists stored events with their deliveries, or shows one: the
// admin API's GET /events, from the command line.
func events(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "get") {
		fmt.Fprintln(stderr, eventsUsage)
		return &exitError{code: 2}
	}
	if args[0] == "get" {
		return eventGet(ctx, args[1:], stdout, stderr)
	}
	fs := flags("events list", "events list [flags]", stderr)
	sf := addStoreFlags(fs)
	source := fs.String("source", "", "only events from this `source`")
	typ := fs.String("type", "", "only events of this `type`, or matching this pattern as routes' match: does (session.forwarded.*)")
	subject := fs.String("subject", "", "only events of this `subject` (session)")
	state := fs.String("state", "", "only events with a delivery in this `state` (comma-separated for several)")
	until := fs.String("until", "", "only events received before this `duration` ago (or a time)")
	text := fs.String("text", "", "only events whose title or summary contains this `text`")
	where := fs.String("where", "", "only events meeting this `condition`, in the rules' language (data.leadScore > 80)")
	since := fs.String("since", "", "only events received within this `duration` (e.g. 1h, 7d)")
	limit := fs.Int("limit", 20, "show at most `n`, newest first (0: all)")
	asJSON := fs.Bool("json", false, "print JSON lines (each event with its deliveries) instead of a table")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	ops, closeStore, err := sf.ops(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	// The store matches type patterns as routes do (session.*).
	if err := event.ValidPattern(*typ); *typ != "" && err != nil {
		return &exitError{code: 2, msg: "--type: " + err.Error()}
	}
	evs, more, err := ops.Events(ctx, admin.EventQuery{Source: *source, Type: *typ, Subject: *subject, State: *state,
		Since: *since, Until: *until, Text: *text, Where: *where, Limit: *limit})
	if err != nil {
		return inputError(err)
	}
	if *asJSON {
		return writeJSONLines(stdout, evs)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tSOURCE\tPLATFORM ID\tTYPE\tSUBJECT\tRECEIVED\tDELIVERIES")
	for _, ev := range evs {
		ds := ""
		for i, d := range ev.Deliveries {
			if i > 0 {
				ds += " "
			}
			ds += d.Sink + ":" + d.State
		}
		if ds == "" {
			ds = "-"
		}
		external := ev.ExternalID
		if external == "" {
			external = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.ID, ev.Source, oneLine(external, 40), ev.EventType, oneLine(ev.Subject, 40),
			ev.ReceivedAt.Format(time.RFC3339), ds)
	}
	tw.Flush()
	switch {
	case more:
		fmt.Fprintf(stdout, "(the newest %d; --limit 0 for all)\n", *limit)
	case len(evs) == 0:
		fmt.Fprintln(stdout, "(no events)")
	}
	return nil
}

func eventGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("events get", "events get [--config FILE | --dir DIR | --dsn DSN] ID", stderr)
	sf := addStoreFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return &exitError{code: 2, msg: "events get needs one event id"}
	}
	ops, closeStore, err := sf.ops(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	ev, err := ops.Event(ctx, fs.Arg(0))
	if errors.Is(err, admin.ErrNotFound) {
		return &exitError{code: 1, msg: err.Error() + " (unknown, or pruned after its dedup window)"}
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(ev)
}
