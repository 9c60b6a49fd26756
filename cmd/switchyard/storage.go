package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/switchyard/switchyard/app"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/queue/postgres"
	"github.com/switchyard/switchyard/queue/sqlite"
)

const storageUsage = `Usage: switchyard storage copy --from-dir DIR --to-dsn DSN`

func storage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "copy" {
		fmt.Fprintln(stderr, storageUsage)
		return &exitError{code: 2}
	}
	return storageCopy(ctx, args[1:], stdout, stderr)
}

// copyChunk is how many events one transaction of a copy stores.
const copyChunk = 200

// storageCopy copies a stopped SQLite queue into PostgreSQL: every
// event (so that a sender's retry is still a duplicate) and every
// delivery not yet delivered, with its history. What the database holds
// already is left alone, so a second run copies nothing twice.
func storageCopy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("storage copy", "storage copy --from-dir DIR --to-dsn DSN", stderr)
	from := fs.String("from-dir", "", "the SQLite storage `directory` to copy (storage.dir of the stopped gateway)")
	to := fs.String("to-dsn", "", "the PostgreSQL connection string to copy into, or env:VAR to read it from the variable VAR")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *from == "" || *to == "" {
		fs.Usage()
		return &exitError{code: 2, msg: "name the SQLite storage directory (--from-dir) and the PostgreSQL database (--to-dsn)"}
	}
	dsn, err := readDSN("--to-dsn", *to)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(*from, sqlite.FileName)); err != nil {
		return fmt.Errorf("no queue in %s: %w", *from, err)
	}
	// Held for the copy: no gateway starts on the directory meanwhile.
	release, err := app.LockStorageDir(*from)
	if errors.Is(err, app.ErrDirInUse) {
		return fmt.Errorf("storage dir %s is in use by a running switchyard serve: stop it first, so that nothing it accepts or delivers during the copy is left behind", *from)
	}
	if err != nil {
		return err
	}
	defer release()
	src, err := sqlite.Open(ctx, *from, sqlite.Options{})
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, dsn, postgres.Options{PoolSize: 2, StatementTimeout: 4 * config.DefaultStatementTimeout.D()})
	if err != nil {
		return err
	}
	defer dst.Close()

	var seen, events, deliveries, waiting int64
	var chunk []queue.Record
	flush := func() error {
		e, d, err := dst.Import(ctx, chunk)
		if err != nil {
			return err
		}
		events, deliveries = events+e, deliveries+d
		chunk = chunk[:0]
		return nil
	}
	err = src.Export(ctx, func(r queue.Record) error {
		seen++
		for _, d := range r.Deliveries {
			if d.State == queue.StatePending || d.State == queue.StateFailed {
				waiting++
			}
		}
		chunk = append(chunk, r)
		if len(chunk) == copyChunk {
			return flush()
		}
		return nil
	})
	if err == nil && len(chunk) > 0 {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w (what was copied stays; run the copy again to finish it)", *from, dst.Describe(), err)
	}
	fmt.Fprintf(stdout, "copied %d events and %d deliveries from %s to %s (%d events read, %d deliveries waiting among them; what the database held already was left as it was)\n",
		events, deliveries, *from, dst.Describe(), seen, waiting)
	return nil
}
