package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/queue"

	"github.com/switchyard/switchyard/internal/sqlitedb"
)

func acceptSubject(t *testing.T, s *Store, c *clock, subject string, sinks ...string) string {
	t.Helper()
	ev := newEvent(c, fmt.Sprint(subject, c.Now().UnixNano()))
	ev.Subject = subject
	acc, err := s.Accept(context.Background(), queue.Incoming{Event: ev, Targets: targets(sinks...)})
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Millisecond)
	return acc.EventID
}

func leaseIDs(t *testing.T, s *Store, r queue.LeaseRequest) []string {
	t.Helper()
	ds, err := s.Lease(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.EventID)
	}
	return ids
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestMigrateFromV1 opens a queue written by the first schema: its
// waiting delivery survives the migration and is leased.
func TestMigrateFromV1(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, filepath.Join(dir, FileName), sqlitedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitedb.Migrate(ctx, db, migrations[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO events (id, source, dedup_key, event_type, subject, received_at, event)
		VALUES ('evt_1', 'darwin', 'k', 'session.opened', 's', 1, '{"id":"evt_1","eventType":"session.opened","data":{}}');
		INSERT INTO deliveries (id, event_id, sink, routes, subject, state, created_at, next_at, updated_at)
		VALUES ('dlv_1', 'evt_1', 'crm', 'r', 's', 'failed', 1, 1, 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s := open(t, dir, newClock())
	if s.Pending() != 1 {
		t.Fatalf("Pending = %d after migrating", s.Pending())
	}
	got, err := s.Lease(ctx, queue.LeaseRequest{Sink: "crm", Limit: 1, For: time.Minute, Ordered: true})
	if err != nil || len(got) != 1 || got[0].ID != "dlv_1" || got[0].Since.UnixMilli() != 1 {
		t.Fatalf("lease after migration = %+v, %v", got, err)
	}
}
