package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/queue"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/sqlitedb"
)

func TestEventCacheEvictsOldestFirst(t *testing.T) {
	t.Parallel()
	c := newEventCache(300)
	for i := range 5 {
		c.put(&event.Event{ID: fmt.Sprint(i), DedupKey: "k"}, 100)
	}
	for i, want := range []bool{false, false, true, true, true} {
		got := c.get(fmt.Sprint(i))
		if (got != nil) != want {
			t.Fatalf("event %d cached = %v, want %v", i, got != nil, want)
		}
		if got != nil && got.DedupKey != "" {
			t.Fatalf("cached event keeps its dedup key %q; stored events do not", got.DedupKey)
		}
	}
	if c.size != 300 || len(c.byID) != 3 {
		t.Fatalf("size %d bytes in %d events, want 300 in 3", c.size, len(c.byID))
	}
	c.put(&event.Event{ID: "big"}, 301)
	if c.get("big") != nil {
		t.Fatal("cached an event larger than the cache")
	}
}

// TestLeaseReadsEvictedEvents: a delivery whose event left the cache
// gets the same event, read from the table.
func TestLeaseReadsEvictedEvents(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := open(t, t.TempDir(), c)
	s.events = newEventCache(1) // nothing fits: every lease reads the table
	ctx := context.Background()
	ev := newEvent(c, "k1")
	if _, err := s.Accept(ctx, queue.Incoming{Event: ev, Targets: targets("a", "b")}); err != nil {
		t.Fatal(err)
	}
	for _, sink := range []string{"a", "b"} {
		ds, err := s.Lease(ctx, queue.LeaseRequest{Sink: sink, Limit: 1, For: time.Minute})
		if err != nil || len(ds) != 1 {
			t.Fatalf("lease %s: %v, %v", sink, ds, err)
		}
		got := ds[0].Event
		if got.ID != ev.ID || got.EventType != ev.EventType || string(got.Data) != string(ev.Data) || !got.ReceivedAt.Equal(ev.ReceivedAt) {
			t.Fatalf("event read back = %+v, want %+v", got, ev)
		}
		got.EventType = "changed by a sink"
	}
	// Each delivery has its own copy: a sink changing it changes no other.
	s.events = newEventCache(1 << 20)
	ev2 := newEvent(c, "k2")
	s.Accept(ctx, queue.Incoming{Event: ev2, Targets: targets("a", "b")})
	da, _ := s.Lease(ctx, queue.LeaseRequest{Sink: "a", Limit: 1, For: time.Minute})
	da[0].Event.EventType = "changed by a sink"
	db, _ := s.Lease(ctx, queue.LeaseRequest{Sink: "b", Limit: 1, For: time.Minute})
	if db[0].Event.EventType != ev2.EventType {
		t.Fatalf("sink b sees %q: a change by sink a leaked through the cache", db[0].Event.EventType)
	}
}

// TestEventRoundTrip: an event read back from the table (not the
// cache) is the event accepted, field for field.
func TestEventRoundTrip(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := open(t, t.TempDir(), c)
	s.events = newEventCache(0)
	ctx := context.Background()
	zone := time.FixedZone("-03", -3*3600)
	for i, ev := range []*event.Event{
		{ID: event.NewID("evt_", c.Now()), Source: "darwin", EventType: "session.analyzed", Subject: "s1",
			Timestamp: time.Date(2026, 11, 21, 9, 0, 0, 123456789, zone), ReceivedAt: c.Now().Add(987 * time.Nanosecond),
			AgentID: "ag_1", AgentName: "Ana", Data: []byte(`{"summary":"Sessão \u003cok\u003e","n":1.50}`)},
		{ID: event.NewID("evt_", c.Now()), Source: "chat", EventType: "newMessage", ReceivedAt: c.Now()},
	} {
		ev.DedupKey = fmt.Sprint("k", i)
		if _, err := s.Accept(ctx, queue.Incoming{Event: ev, Targets: targets("a")}); err != nil {
			t.Fatal(err)
		}
		ds, err := s.Lease(ctx, queue.LeaseRequest{Sink: "a", Limit: 1, For: time.Minute})
		if err != nil || len(ds) != 1 {
			t.Fatalf("lease: %v, %v", ds, err)
		}
		got, want := *ds[0].Event, *ev
		want.DedupKey = ""
		if len(want.Data) == 0 {
			want.Data = []byte("null")
		}
		gj, _ := got.JSON()
		wj, _ := want.JSON()
		if string(gj) != string(wj) || !got.Timestamp.Equal(want.Timestamp) || !got.ReceivedAt.Equal(want.ReceivedAt) {
			t.Fatalf("read back\n%s\nwant\n%s", gj, wj)
		}
		// The admin view shows the same event.
		info, err := s.Event(ctx, ev.ID)
		if err != nil || string(info.JSON) != string(wj) || !info.ReceivedAt.Equal(want.ReceivedAt) {
			t.Fatalf("Event(%s) = %s, %v; want %s", ev.ID, info.JSON, err, wj)
		}
		s.Complete(ctx, &ds[0], queue.Outcome{State: queue.StateDelivered})
	}
}

// TestLeasesEventsStoredBySchemaV2: events stored before schema v3, as
// one JSON document, still load after the upgrade.
func TestLeasesEventsStoredBySchemaV2(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, filepath.Join(dir, FileName), sqlitedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitedb.Migrate(ctx, db, migrations[:2]); err != nil {
		t.Fatal(err)
	}
	const body = `{"id":"evt_OLD","source":"darwin","eventType":"session.forwarded","timestamp":"2026-11-20T10:00:00-03:00","subject":"s1","receivedAt":"2026-11-20T13:00:01.5Z","data":{"x":1}}`
	for _, q := range []string{
		`INSERT INTO events (id, source, dedup_key, event_type, subject, received_at, event) VALUES ('evt_OLD', 'darwin', 'k', 'session.forwarded', 's1', 1, '` + body + `')`,
		`INSERT INTO deliveries (id, event_id, sink, routes, subject, state, created_at, next_at, updated_at) VALUES ('dlv_OLD', 'evt_OLD', 'a', 'r', 's1', 'pending', 1, 1, 1)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := open(t, dir, newClock())
	ds, err := s.Lease(ctx, queue.LeaseRequest{Sink: "a", Limit: 1, For: time.Minute})
	if err != nil || len(ds) != 1 {
		t.Fatalf("lease: %v, %v", ds, err)
	}
	ev := ds[0].Event
	if ev.ID != "evt_OLD" || ev.EventType != "session.forwarded" || string(ev.Data) != `{"x":1}` || !ev.ReceivedAt.Equal(time.Date(2026, 11, 20, 13, 0, 1, 5e8, time.UTC)) {
		t.Fatalf("v2 event read back as %+v", ev)
	}
}
