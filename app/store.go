package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/queue"
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
}

// OpenStore opens the queue storage.* configures. It takes no lock:
// serve locks a SQLite storage directory itself; the CLI's commands run
// beside a serving gateway.
func OpenStore(ctx context.Context, st config.Storage, opts StoreOptions) (queue.Store, error) {
	if st.Backend == config.BackendPostgres {
		return nil, fmt.Errorf("storage.backend postgres: not available in this build yet")
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
