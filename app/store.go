package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/queue/postgres"
	"github.com/switchyard/switchyard/queue/sqlite"
)

// StoreOptions are what OpenStore needs beyond the configuration.
type StoreOptions struct {
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// BusyTimeout, when set, replaces storage.busy_timeout (the CLI
	// waits longer than a serving gateway).
	BusyTimeout time.Duration
	// SyncHook is sqlite.Options.SyncHook: the fault tests' fsync.
	SyncHook func() error
	// Replica names this gateway in a PostgreSQL queue's lease records.
	Replica string
	// OnNotify is told when another replica announces work for a sink
	// ("": every sink); PostgreSQL only.
	OnNotify func(sink string)
	// Client opens the store for a command: a PostgreSQL schema must
	// exist already, and nothing runs in the background.
	Client bool
}

// OpenStore opens the queue storage.* configures: SQLite in
// storage.dir, or PostgreSQL at storage.dsn. It takes no lock: serve
// locks a SQLite storage directory itself; the CLI's commands run beside
// a serving gateway.
func OpenStore(ctx context.Context, st config.Storage, opts StoreOptions) (queue.Store, error) {
	if st.Backend == config.BackendPostgres {
		s, err := postgres.Open(ctx, st.DSN.Reveal(), postgres.Options{
			PoolSize: st.PoolSize, StatementTimeout: st.StatementTimeout.D(), Logger: opts.Logger, Now: opts.Now,
			Replica: opts.Replica, OnNotify: opts.OnNotify, Client: opts.Client,
		})
		if err != nil {
			return nil, fmt.Errorf("open storage: %w", err)
		}
		return s, nil
	}
	busy := st.BusyTimeout.D()
	if opts.BusyTimeout > 0 {
		busy = opts.BusyTimeout
	}
	s, err := sqlite.Open(ctx, st.Dir, sqlite.Options{
		Synchronous: st.Synchronous, BusyTimeout: busy, Logger: opts.Logger, Now: opts.Now, SyncHook: opts.SyncHook,
	})
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	return s, nil
}

// ErrDirInUse is a SQLite storage directory that a running gateway
// holds.
var ErrDirInUse = errors.New("in use by another switchyard serve")

// LockStorageDir takes a SQLite storage directory's lock, as serve
// does, for a command that must not run beside a gateway (storage
// copy); ErrDirInUse (wrapped) when a gateway holds it.
func LockStorageDir(dir string) (release func() error, err error) {
	l, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	return l.Release, nil
}
