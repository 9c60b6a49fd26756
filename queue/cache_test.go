package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/event"
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
	if _, err := s.Accept(ctx, Incoming{Event: ev, Targets: targets("a", "b")}); err != nil {
		t.Fatal(err)
	}
	for _, sink := range []string{"a", "b"} {
		ds, err := s.Lease(ctx, LeaseRequest{Sink: sink, Limit: 1, For: time.Minute})
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
	s.Accept(ctx, Incoming{Event: ev2, Targets: targets("a", "b")})
	da, _ := s.Lease(ctx, LeaseRequest{Sink: "a", Limit: 1, For: time.Minute})
	da[0].Event.EventType = "changed by a sink"
	db, _ := s.Lease(ctx, LeaseRequest{Sink: "b", Limit: 1, For: time.Minute})
	if db[0].Event.EventType != ev2.EventType {
		t.Fatalf("sink b sees %q: a change by sink a leaked through the cache", db[0].Event.EventType)
	}
}
