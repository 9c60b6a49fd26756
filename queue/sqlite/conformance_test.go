package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/sqlitedb"
	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/queue/queuetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, queuetest.Harness{
		New: func(t *testing.T) func(now func() time.Time) queue.Store {
			dir := t.TempDir()
			return func(now func() time.Time) queue.Store {
				s, err := Open(context.Background(), dir, Options{Now: now, BusyTimeout: 50 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
		},
		Fault: holdWriteLock,
	})
}

// holdWriteLock takes the database's write lock from another connection,
// as another process (a backup, the replay command) would, until heal.
func holdWriteLock(t *testing.T, st queue.Store) (heal func()) {
	t.Helper()
	db, err := sqlitedb.Open(context.Background(), st.(*Store).Path(), sqlitedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
		db.Close()
	}
}
