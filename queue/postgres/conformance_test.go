package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/queue/queuetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testTimeout keeps the fault case short: a write meeting the held lock
// fails after it.
const testTimeout = 500 * time.Millisecond

// TestConformance runs the suite every backend runs, against a real
// PostgreSQL: a fresh database per case, and several stores on one
// database for the replica cases.
func TestConformance(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, queuetest.Harness{
		New: func(t *testing.T) func(now func() time.Time) queue.Store {
			dsn := pgtest.Shared(t).DSN(t)
			return func(now func() time.Time) queue.Store {
				return open(t, dsn, Options{Now: now})
			}
		},
		Fault:    lockTables,
		Replicas: true,
	})
}

// open opens a store for a test, closed when the test ends.
func open(t testing.TB, dsn string, opts Options) *Store {
	t.Helper()
	if opts.StatementTimeout == 0 {
		opts.StatementTimeout = testTimeout
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = 8
	}
	s, err := Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// lockTables takes the queue's tables from another connection, as a
// long migration or a backup tool would, until heal.
func lockTables(t *testing.T, st queue.Store) (heal func()) {
	t.Helper()
	s := st.(*Store)
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, s.cfg.ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err == nil {
		_, err = tx.Exec(ctx, `SET LOCAL idle_in_transaction_session_timeout = 0; LOCK TABLE queue_events, queue_deliveries, queue_attempts IN ACCESS EXCLUSIVE MODE`)
	}
	if err != nil {
		conn.Close(ctx)
		t.Fatal(err)
	}
	return func() {
		tx.Rollback(ctx)
		conn.Close(ctx)
	}
}
