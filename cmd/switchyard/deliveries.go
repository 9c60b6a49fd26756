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

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/app"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/queue/sqlite"
)

// storeFlags are the flags that locate the queue: a configuration's
// storage (SQLite's storage.dir, or PostgreSQL's storage.dsn), or a
// directory or connection string named on the command line.
type storeFlags struct {
	config *string
	dir    *string
	dsn    *string
}

func addStoreFlags(fs *flag.FlagSet) storeFlags {
	return storeFlags{
		config: fs.String("config", "config.yaml", "configuration `file` whose storage (storage.dir, or storage.dsn with backend postgres) to use"),
		dir:    fs.String("dir", "", "SQLite storage `directory` (instead of --config)"),
		dsn:    fs.String("dsn", "", "PostgreSQL connection string, or env:VAR to read it from the variable VAR (instead of --config; a password on the command line is visible to other users: prefer env:)"),
	}
}

// ops opens the queue (see open) and returns the admin operations on it,
// with a function that closes it.
func (f storeFlags) ops(ctx context.Context) (*admin.Ops, func(), error) {
	ops, _, closeStore, err := f.opsConfig(ctx)
	return ops, closeStore, err
}

// opsConfig is ops, with the configuration (nil with --dir).
func (f storeFlags) opsConfig(ctx context.Context) (*admin.Ops, *config.Config, func(), error) {
	store, cfg, err := f.open(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	var sinks func() []string
	if cfg != nil {
		sinks = func() []string {
			names := make([]string, len(cfg.Sinks))
			for i, s := range cfg.Sinks {
				names[i] = s.Name
			}
			return names
		}
	}
	return admin.NewOps(store, sinks), cfg, func() { store.Close() }, nil
}

// open opens an existing queue: a SQLite storage directory or a
// PostgreSQL database. It takes no lock: the commands that use it run
// beside serving gateways (SQLite arbitrates their writes; PostgreSQL
// is shared anyway). cfg is nil with --dir or --dsn.
func (f storeFlags) open(ctx context.Context) (queue.Store, *config.Config, error) {
	if *f.dsn != "" {
		dsn, err := readDSN("--dsn", *f.dsn)
		if err != nil {
			return nil, nil, err
		}
		st := config.Storage{Backend: config.BackendPostgres, DSN: config.Secret(dsn),
			PoolSize: 2, StatementTimeout: config.DefaultStatementTimeout}
		s, err := app.OpenStore(ctx, st, app.StoreOptions{Client: true})
		return s, nil, err
	}
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
		if c.Storage.Backend == config.BackendPostgres {
			// A command's few queries need no pool of a gateway's size.
			st := c.Storage
			st.PoolSize = 2
			s, err := app.OpenStore(ctx, st, app.StoreOptions{Client: true})
			return s, cfg, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); err != nil {
		return nil, nil, fmt.Errorf("no queue in %s: %w", dir, err)
	}
	st := config.Storage{Dir: dir}
	if cfg != nil {
		st = cfg.Storage
	}
	s, err := app.OpenStore(ctx, st, app.StoreOptions{BusyTimeout: 10 * time.Second})
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

// inputError turns an operator's mistake in a query into exit status 2,
// named as the flag.
func inputError(err error) error {
	if admin.IsInput(err) {
		return &exitError{code: 2, msg: "--" + err.Error()}
	}
	return err
}

const deliveriesUsage = `Usage: switchyard deliveries list [--config FILE | --dir DIR | --dsn DSN] [--state STATE] [--sink NAME] [--subject S] [--status N] [--error TEXT] [--since DUR] [--until DUR] [--event ID] [--limit N] [--json]
       switchyard deliveries purge [--config FILE | --dir DIR | --dsn DSN] --sink NAME [--state STATE] [--before DUR] --dry-run | --yes`

func deliveries(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "purge" {
		return purge(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "list" {
		fmt.Fprintln(stderr, deliveriesUsage)
		return &exitError{code: 2}
	}
	fs := flags("deliveries list", "deliveries list [flags]", stderr)
	sf := addStoreFlags(fs)
	state := fs.String("state", "", "only deliveries in this `state`: pending, failed, held, delivered or dead (comma-separated for several)")
	sink := fs.String("sink", "", "only deliveries to this `sink`")
	since := fs.String("since", "", "only deliveries whose state changed within this `duration` (e.g. 1h, 7d)")
	eventID := fs.String("event", "", "only the deliveries of this event `id`")
	subject := fs.String("subject", "", "only the deliveries of this `subject` (session)")
	status := fs.String("status", "", "only deliveries whose last attempt got this HTTP `status`")
	errText := fs.String("error", "", "only deliveries whose last error contains this `text`")
	until := fs.String("until", "", "only deliveries whose state changed before this `duration` ago (or a time)")
	limit := fs.Int("limit", 100, "show at most `n`, newest first (0: all)")
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	q := admin.DeliveryQuery{Event: *eventID, Sink: *sink, Subject: *subject, State: *state, Status: *status, Error: *errText,
		Since: *since, Until: *until, Limit: *limit}
	// held is not a state of the queue: a pending or failed delivery to a
	// sink without a destination, or no longer configured. The
	// configuration says which.
	states, wantHeld := withoutHeld(*state)
	q.State = strings.Join(states, ",")
	if wantHeld {
		if *sf.dir != "" || *sf.dsn != "" {
			return &exitError{code: 2, msg: "--state held needs --config: which sinks are held is in the configuration"}
		}
		q.State = strings.Join(append(states, "pending", "failed"), ",")
		q.Limit = 0 // filtered here
	}
	if _, err := admin.ParseStates(q.State); err != nil {
		return inputError(err) // before opening anything
	}
	ops, cfg, closeStore, err := sf.opsConfig(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	ds, more, err := ops.Deliveries(ctx, q)
	if err != nil {
		return inputError(err)
	}
	ds = markHeld(ds, cfg)
	if wantHeld {
		kept := ds[:0]
		for _, d := range ds {
			if d.State == "held" || slices.Contains(states, d.State) {
				kept = append(kept, d)
			}
		}
		ds, more = kept, false
		if *limit > 0 && len(ds) > *limit {
			ds, more = ds[:*limit], true
		}
	}
	if *asJSON {
		return writeJSONLines(stdout, ds)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DELIVERY\tEVENT\tTYPE\tSINK\tSTATE\tATTEMPTS\tSTATUS\tUPDATED\tLAST ERROR")
	for _, d := range ds {
		status := "-"
		if d.LastStatus != 0 {
			status = fmt.Sprint(d.LastStatus)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.EventID, d.EventType, d.Sink, d.State, d.Attempts,
			status, d.UpdatedAt.Format(time.RFC3339), oneLine(d.LastError, 80))
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

// withoutHeld splits "held" from a comma-separated list of states.
func withoutHeld(list string) (states []string, held bool) {
	if list == "" {
		return nil, false
	}
	for _, st := range strings.Split(list, ",") {
		if strings.TrimSpace(st) == "held" {
			held = true
			continue
		}
		states = append(states, strings.TrimSpace(st))
	}
	return states, held
}

// markHeld shows waiting deliveries to a held sink (no destination) or
// to a sink no longer configured as held, with the reason as their last
// error: they wait for the configuration, not for a retry. Without the
// configuration (--dir) nothing is marked.
func markHeld(ds []admin.Delivery, cfg *config.Config) []admin.Delivery {
	if cfg == nil {
		return ds
	}
	for i, d := range ds {
		if d.State != "pending" && d.State != "failed" {
			continue
		}
		idx := slices.IndexFunc(cfg.Sinks, func(s config.Sink) bool { return s.Name == d.Sink })
		switch {
		case idx < 0:
			ds[i].State, ds[i].LastError = "held", "held: sink "+d.Sink+" is not in the configuration; it is delivered if the sink comes back (or replay it to another)"
		case cfg.Sinks[idx].Held():
			ds[i].State, ds[i].LastError = "held", "held: sink "+d.Sink+" has no destination (webhook_url, token or url); set one and reload"
		}
	}
	return ds
}

func writeJSONLines[T any](w io.Writer, items []T) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return err
		}
	}
	return nil
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func replay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("replay", "replay --delivery ID | --event ID | --sink NAME [--state dead] [--since DUR]", stderr)
	sf := addStoreFlags(fs)
	deliveryID := fs.String("delivery", "", "re-queue this delivery `id`")
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
	if *deliveryID == "" && *eventID == "" && *sink == "" {
		fs.Usage()
		return &exitError{code: 2, msg: "name what to replay: --delivery ID, --event ID, or --sink NAME (with --state, default dead)"}
	}
	q := admin.DeliveryQuery{Delivery: *deliveryID, Event: *eventID, Sink: *sink, State: *state, Since: *since}
	if _, err := admin.ParseStates(q.State); err != nil {
		return inputError(err)
	}
	ops, closeStore, err := sf.ops(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	res, err := ops.Replay(ctx, q)
	if res.Warning != "" {
		fmt.Fprintf(stderr, "warning: %s (in %s)\n", res.Warning, *sf.config)
	}
	switch {
	case errors.Is(err, admin.ErrNotFound):
		fmt.Fprintln(stdout, "re-queued 0 deliveries")
		return &exitError{code: 1, msg: err.Error()}
	case err != nil:
		return inputError(err)
	}
	fmt.Fprintf(stdout, "re-queued %d deliveries\n", res.Requeued)
	return nil
}

// purge deletes a sink's deliveries: the backlog of a sink removed
// from the configuration, which would otherwise wait for ever.
func purge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("deliveries purge", "deliveries purge --sink NAME [--state STATE] [--before DUR] --dry-run | --yes", stderr)
	sf := addStoreFlags(fs)
	sink := fs.String("sink", "", "purge the deliveries of this `sink`")
	state := fs.String("state", "", "only deliveries in this `state` (comma-separated for several; default: pending,failed,dead)")
	before := fs.String("before", "", "only deliveries whose state last changed longer ago than this `duration` (e.g. 7d)")
	dryRun := fs.Bool("dry-run", false, "count the deliveries a purge would delete, and delete nothing")
	yes := fs.Bool("yes", false, "delete them (a purge cannot be undone)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *sink == "" {
		fs.Usage()
		return &exitError{code: 2, msg: "name the sink whose deliveries to purge: --sink NAME"}
	}
	if *dryRun == *yes {
		return &exitError{code: 2, msg: "a purge deletes deliveries for good: run it with --dry-run to count them, then with --yes to delete them"}
	}
	q := admin.PurgeQuery{Sink: *sink, State: *state, Before: *before, DryRun: *dryRun}
	if _, err := admin.ParseStates(q.State); err != nil {
		return inputError(err)
	}
	ops, closeStore, err := sf.ops(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	res, err := ops.Purge(ctx, q)
	if err != nil {
		return inputError(err)
	}
	if res.Warning != "" {
		fmt.Fprintf(stderr, "warning: %s (in %s)\n", res.Warning, *sf.config)
	}
	if res.DryRun {
		fmt.Fprintf(stdout, "would purge %d deliveries of sink %s (dry run: nothing deleted; run again with --yes to delete them)\n", res.Purged, *sink)
		return nil
	}
	fmt.Fprintf(stdout, "purged %d deliveries of sink %s\n", res.Purged, *sink)
	return nil
}

// readDSN reads a connection string given as a flag's value: the value
// itself, or with env:VAR the variable VAR.
func readDSN(flag, v string) (string, error) {
	name, ok := strings.CutPrefix(v, "env:")
	if !ok {
		return v, nil
	}
	dsn := os.Getenv(name)
	if dsn == "" {
		return "", &exitError{code: 2, msg: fmt.Sprintf("%s env:%s: the variable %s is not set", flag, name, name)}
	}
	return dsn, nil
}
