package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/queue"
)

// storeFlags are the flags that locate the storage directory.
type storeFlags struct {
	config *string
	dir    *string
}

func addStoreFlags(fs *flag.FlagSet) storeFlags {
	return storeFlags{
		config: fs.String("config", "config.yaml", "configuration `file` whose storage.dir to use"),
		dir:    fs.String("dir", "", "storage `directory` (instead of --config)"),
	}
}

// open opens the queue of an existing storage directory. It takes no
// lock: the commands that use it run beside a serving gateway, and
// SQLite arbitrates their writes. cfg is nil with --dir.
func (f storeFlags) open(ctx context.Context) (*queue.Store, *config.Config, error) {
	dir := *f.dir
	var cfg *config.Config
	if dir == "" {
		c, err := config.Load(*f.config)
		if err != nil {
			var cerr *config.Error
			if errors.As(err, &cerr) {
				return nil, nil, fmt.Errorf("%w\n(run switchyard check --config %s, or name the storage directory with --dir)", err, *f.config)
			}
			return nil, nil, err
		}
		cfg, dir = c, c.Storage.Dir
	}
	if _, err := os.Stat(filepath.Join(dir, queue.FileName)); err != nil {
		return nil, nil, fmt.Errorf("no queue in %s: %w", dir, err)
	}
	s, err := queue.Open(ctx, dir, queue.Options{BusyTimeout: 10 * time.Second})
	return s, cfg, err
}

func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since: %w", err)
	}
	return time.Now().Add(-d.D()), nil
}

func parseStates(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	states := strings.Split(s, ",")
	for i, st := range states {
		states[i] = strings.TrimSpace(st)
		if !slices.Contains(queue.States, states[i]) {
			return nil, fmt.Errorf("--state %q: one of %s (or several, comma-separated)", st, strings.Join(queue.States, ", "))
		}
	}
	return states, nil
}

func deliveries(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "list" {
		fmt.Fprintln(stderr, "Usage: switchyard deliveries list [--config FILE | --dir DIR] [--state STATE] [--sink NAME] [--since DUR] [--event ID] [--limit N] [--json]")
		return &exitError{code: 2}
	}
	fs := flags("deliveries list", "deliveries list [flags]", stderr)
	sf := addStoreFlags(fs)
	state := fs.String("state", "", "only deliveries in this `state`: pending, failed, delivered or dead (comma-separated for several)")
	sink := fs.String("sink", "", "only deliveries to this `sink`")
	since := fs.String("since", "", "only deliveries whose state changed within this `duration` (e.g. 1h, 7d)")
	eventID := fs.String("event", "", "only the deliveries of this event `id`")
	limit := fs.Int("limit", 100, "show at most `n`, newest first (0: all)")
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	states, err := parseStates(*state)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	from, err := parseSince(*since)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	store, _, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	f := queue.Filter{EventID: *eventID, Sink: *sink, States: states, Since: from, Limit: *limit}
	if *limit > 0 {
		f.Limit = *limit + 1 // one more tells whether there are more
	}
	ds, err := store.List(ctx, f)
	if err != nil {
		return err
	}
	more := *limit > 0 && len(ds) > *limit
	if more {
		ds = ds[:*limit]
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		for _, d := range ds {
			if err := enc.Encode(deliveryJSON(d)); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DELIVERY\tEVENT\tTYPE\tSINK\tSTATE\tATTEMPTS\tSTATUS\tUPDATED\tLAST ERROR")
	for _, d := range ds {
		status := "-"
		if d.LastStatus != 0 {
			status = fmt.Sprint(d.LastStatus)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.EventID, d.EventType, d.Sink, d.State, d.Attempts,
			status, d.UpdatedAt.UTC().Format(time.RFC3339), oneLine(d.LastError, 80))
	}
	tw.Flush()
	switch {
	case more:
		fmt.Fprintf(stdout, "(the newest %d; --limit 0 for all)\n", *limit)
	case len(ds) == 0:
		fmt.Fprintln(stdout, "(no deliveries)")
	}
	return nil
}

func deliveryJSON(d queue.DeliveryInfo) map[string]any {
	return map[string]any{
		"id": d.ID, "event_id": d.EventID, "event_type": d.EventType, "source": d.Source, "sink": d.Sink,
		"subject": d.Subject, "routes": d.Routes, "state": d.State, "attempts": d.Attempts, "replays": d.Replays,
		"last_error": d.LastError, "last_status": d.LastStatus,
		"created_at": d.CreatedAt.UTC(), "updated_at": d.UpdatedAt.UTC(), "next_at": d.NextAt.UTC(),
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func replay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("replay", "replay --event ID | --sink NAME [--state dead] [--since DUR]", stderr)
	sf := addStoreFlags(fs)
	eventID := fs.String("event", "", "re-queue the deliveries of this event `id`")
	sink := fs.String("sink", "", "re-queue deliveries to this `sink`")
	state := fs.String("state", "", "re-queue deliveries in this `state` (default with --sink alone: dead; with --event: any)")
	since := fs.String("since", "", "only deliveries whose state changed within this `duration`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *eventID == "" && *sink == "" {
		fs.Usage()
		return &exitError{code: 2, msg: "name what to replay: --event ID, or --sink NAME (with --state, default dead)"}
	}
	states, err := parseStates(*state)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	if states == nil && *eventID == "" {
		states = []string{queue.StateDead}
	}
	from, err := parseSince(*since)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	store, cfg, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	if cfg != nil && *sink != "" && !hasSink(cfg, *sink) {
		fmt.Fprintf(stderr, "warning: sink %q is not in %s: its deliveries wait until it is\n", *sink, cfg.File())
	}
	n, err := store.Replay(ctx, queue.Filter{EventID: *eventID, Sink: *sink, States: states, Since: from})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "re-queued %d deliveries\n", n)
	if n == 0 && *eventID != "" {
		if ds, _ := store.Deliveries(ctx, *eventID); len(ds) == 0 {
			return &exitError{code: 1, msg: fmt.Sprintf("no deliveries of event %s (unknown, routed nowhere, or pruned)", *eventID)}
		}
	}
	return nil
}

func hasSink(cfg *config.Config, name string) bool {
	for _, s := range cfg.Sinks {
		if s.Name == name {
			return true
		}
	}
	return false
}
