package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/app"
	"github.com/switchyard/switchyard/queue"
)

// replicaLister is a store that records the replicas serving from it
// (PostgreSQL).
type replicaLister interface {
	Replicas(ctx context.Context, live time.Duration) ([]queue.Replica, error)
}

// replicas lists the live replicas sharing a PostgreSQL queue.
func replicas(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("replicas", "replicas [--config FILE | --dsn DSN] [--json]", stderr)
	sf := addStoreFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	store, cfg, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	rl, ok := store.(replicaLister)
	if !ok {
		dir := *sf.dir
		if cfg != nil {
			dir = cfg.Storage.Dir
		}
		state := "no gateway is running on it"
		if release, err := app.LockStorageDir(dir); err == nil {
			release()
		} else if errors.Is(err, app.ErrDirInUse) {
			state = "a gateway is running on it"
		}
		fmt.Fprintf(stdout, "storage.backend is sqlite: one gateway serves storage dir %s (%s); replicas share a PostgreSQL queue (docs/replicas.md)\n", dir, state)
		return nil
	}
	rs, err := rl.Replicas(ctx, app.ReplicaLive)
	if err != nil {
		return err
	}
	list := admin.Replicas(rs)
	if *asJSON {
		return writeJSONLines(stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "(no replica has sent a heartbeat within %s)\n", app.ReplicaLive)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tVERSION\tCONFIG\tSTARTED\tLAST HEARTBEAT")
	differ := 0
	for _, r := range list {
		digest := r.ConfigDigest[:min(12, len(r.ConfigDigest))]
		if !r.SameConfig {
			digest += " (differs)"
			differ++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s ago\n", r.Name, r.Version, digest, r.StartedAt.Format(time.RFC3339),
			time.Since(r.HeartbeatAt).Round(time.Second))
	}
	tw.Flush()
	if differ > 0 {
		fmt.Fprintf(stdout, "%d replica(s) load a configuration that differs from the others': deploy the same file to each\n", differ)
	}
	return nil
}
