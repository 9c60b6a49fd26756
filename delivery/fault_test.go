package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/logbuf"
	"github.com/switchyard/switchyard/internal/sqlitedb"
	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/queue/sqlite"
)

// lockStore takes the store's write lock from another connection, as
// another process (a backup, the replay command) would; the returned
// function releases it.
func lockStore(t *testing.T, s *sqlite.Store) func() {
	t.Helper()
	db, err := sqlitedb.Open(context.Background(), s.Path(), sqlitedb.Options{})
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
	released := false
	release := func() {
		if !released {
			released = true
			conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
			db.Close()
		}
	}
	t.Cleanup(release)
	return release
}

// TestNoResendWhenOutcomeCannotBeWritten: the sink answers, but the
// outcome cannot be recorded (another process holds the write lock
// past the busy timeout). The delivery is not sent again while its
// worker holds the outcome and the lease, no new delivery is leased
// while the store fails, the failure is logged once, and the outcome
// lands once the lock is released.
func TestNoResendWhenOutcomeCannotBeWritten(t *testing.T) {
	t.Parallel()
	logs := &logbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	store, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{BusyTimeout: 20 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sink := &fakeSink{}
	d := New(store, []Sink{{Name: "crm", Sink: sink, Concurrency: 4, Timeout: time.Second, Retry: fast}},
		Options{Idle: 20 * time.Millisecond, Logger: log})
	first := accept(t, store, "s1", "crm")
	second := accept(t, store, "s2", "crm")
	release := lockStore(t, store)
	d.Start()
	defer d.Stop(context.Background())

	eventually(t, "both sent", func() bool { return len(sink.Calls()) >= 2 })
	time.Sleep(1500 * time.Millisecond) // many lease periods of the old, storming code
	if n := len(sink.Calls()); n != 2 {
		t.Fatalf("%d sends of 2 deliveries while their outcomes could not be written: want 2", n)
	}
	// The store's failure pauses leasing: an event accepted now (the
	// ingest path would get 503; here it is written beside the lock
	// once released) is not sent until the store writes.
	if err := store.Health(); err == nil {
		t.Fatal("Health is nil while writes fail")
	}
	if n := strings.Count(logs.String(), "cannot record delivery outcome"); n != 2 {
		t.Fatalf("%d warnings about unrecorded outcomes, want one per delivery:\n%s", n, logs)
	}
	release()
	eventually(t, "outcomes recorded", func() bool {
		return state(t, store, first).State == queue.StateDelivered && state(t, store, second).State == queue.StateDelivered
	})
	third := accept(t, store, "s3", "crm")
	eventually(t, "delivery resumed", func() bool { return state(t, store, third).State == queue.StateDelivered })
	if n := len(sink.Calls()); n != 3 {
		t.Fatalf("%d sends for 3 deliveries", n)
	}
	for _, id := range []string{first, second} {
		if info := state(t, store, id); info.Attempts != 1 {
			t.Fatalf("%s: %d attempts recorded, want 1", id, info.Attempts)
		}
	}
}

// TestLeasesNothingWhileTheStoreFails: while writes fail, due
// deliveries wait rather than go out with outcomes that cannot be
// recorded.
func TestLeasesNothingWhileTheStoreFails(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{BusyTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var ids []string
	for i := range 3 {
		ids = append(ids, accept(t, store, fmt.Sprint("s", i), "crm"))
	}
	release := lockStore(t, store)
	// A write fails: the store now knows it cannot write.
	now := time.Now()
	ev := &event.Event{ID: event.NewID("evt_", now), Source: "darwin", EventType: "session.opened", Timestamp: now, ReceivedAt: now}
	if _, err := store.Accept(context.Background(), queue.Incoming{Event: ev, Targets: []queue.Target{{Sink: "crm"}}}); err == nil {
		t.Fatal("wrote beside the lock")
	}
	sink := &fakeSink{}
	d := New(store, []Sink{{Name: "crm", Sink: sink, Concurrency: 4, Timeout: time.Second, Retry: fast}}, Options{Idle: 20 * time.Millisecond})
	d.Start()
	defer d.Stop(context.Background())
	time.Sleep(500 * time.Millisecond)
	if n := len(sink.Calls()); n != 0 {
		t.Fatalf("%d sends while the store could not write", n)
	}
	release()
	eventually(t, "delivered after the store recovered", func() bool {
		for _, id := range ids {
			if state(t, store, id).State != queue.StateDelivered {
				return false
			}
		}
		return true
	})
}
