package queue

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/sqlitedb"
)

func acceptSubject(t *testing.T, s *Store, c *clock, subject string, sinks ...string) string {
	t.Helper()
	ev := newEvent(c, fmt.Sprint(subject, c.Now().UnixNano()))
	ev.Subject = subject
	acc, err := s.Accept(context.Background(), Incoming{Event: ev, Targets: targets(sinks...)})
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Millisecond)
	return acc.EventID
}

func leaseIDs(t *testing.T, s *Store, r LeaseRequest) []string {
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

func TestOrderedLeaseHoldsBackOnlyTheSubject(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := open(t, t.TempDir(), c)
	ctx := context.Background()
	a1 := acceptSubject(t, s, c, "A", "slack")
	a2 := acceptSubject(t, s, c, "A", "slack")
	b1 := acceptSubject(t, s, c, "B", "slack")
	b2 := acceptSubject(t, s, c, "B", "slack")
	n1 := acceptSubject(t, s, c, "", "slack") // no subject: never held back
	n2 := acceptSubject(t, s, c, "", "slack")

	ordered := LeaseRequest{Sink: "slack", Limit: 10, For: 24 * time.Hour, Ordered: true}
	got := leaseIDs(t, s, ordered)
	if want := []string{a1, b1, n1, n2}; !slices.Equal(got, want) {
		t.Fatalf("first ordered lease = %v, want the heads %v", got, want)
	}
	if due, ok, _ := s.NextDue(ctx, "slack", true); ok {
		t.Fatalf("NextDue with every head leased = %v, want nothing: the followers wait for their heads", due)
	}
	// A1 fails and waits a minute: only A waits; B moves on.
	ds, _ := s.Deliveries(ctx, a1)
	if err := s.Complete(ctx, &Delivery{ID: ds[0].ID, Sink: ds[0].Sink}, Outcome{State: StateFailed, NextAt: c.Now().Add(time.Minute), Error: "503"}); err != nil {
		t.Fatal(err)
	}
	ds, _ = s.Deliveries(ctx, b1)
	if err := s.Complete(ctx, &Delivery{ID: ds[0].ID, Sink: ds[0].Sink}, Outcome{State: StateDelivered}); err != nil {
		t.Fatal(err)
	}
	if got := leaseIDs(t, s, ordered); !slices.Equal(got, []string{b2}) {
		t.Fatalf("lease after A1 failed, B1 delivered = %v, want [B2]", got)
	}
	c.Advance(time.Minute)
	if got := leaseIDs(t, s, ordered); !slices.Equal(got, []string{a1}) {
		t.Fatalf("lease when A1 is due again = %v, want [A1] before A2", got)
	}
	// A1 dead: it no longer holds A2 back.
	ds, _ = s.Deliveries(ctx, a1)
	if err := s.Complete(ctx, &Delivery{ID: ds[0].ID, Sink: ds[0].Sink}, Outcome{State: StateDead, Error: "400"}); err != nil {
		t.Fatal(err)
	}
	if got := leaseIDs(t, s, ordered); !slices.Equal(got, []string{a2}) {
		t.Fatalf("lease after A1 died = %v, want [A2]", got)
	}

	// Unordered, the same sink state leases everything due at once.
	u := open(t, t.TempDir(), c)
	x1 := acceptSubject(t, u, c, "A", "crm")
	x2 := acceptSubject(t, u, c, "A", "crm")
	if got := leaseIDs(t, u, LeaseRequest{Sink: "crm", Limit: 10, For: time.Minute}); !slices.Equal(got, []string{x1, x2}) {
		t.Fatalf("unordered lease = %v", got)
	}
}

func TestPendingCount(t *testing.T) {
	t.Parallel()
	c := newClock()
	dir := t.TempDir()
	s := open(t, dir, c)
	ctx := context.Background()
	for range 3 {
		acceptSubject(t, s, c, "A", "a", "b")
	}
	if got := s.Pending(); got != 6 {
		t.Fatalf("Pending after 3 events × 2 sinks = %d, want 6", got)
	}
	ds, _ := s.Lease(ctx, LeaseRequest{Sink: "a", Limit: 3, For: time.Minute})
	s.Complete(ctx, &ds[0], Outcome{State: StateDelivered})
	s.Complete(ctx, &ds[1], Outcome{State: StateFailed, NextAt: c.Now()})
	s.Complete(ctx, &ds[2], Outcome{State: StateDead})
	if got := s.Pending(); got != 4 {
		t.Fatalf("Pending after one delivered, one failed, one dead = %d, want 4", got)
	}
	// Completing twice must not count twice.
	s.Complete(ctx, &ds[0], Outcome{State: StateDelivered})
	if got := s.Pending(); got != 4 {
		t.Fatalf("Pending after a repeated completion = %d, want 4", got)
	}
	if n, err := s.Replay(ctx, Filter{Sink: "a", States: []string{StateDead, StateDelivered}}); err != nil || n != 2 {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	if got := s.Pending(); got != 6 {
		t.Fatalf("Pending after replaying two = %d, want 6", got)
	}
	s.Close()
	if got := open(t, dir, c).Pending(); got != 6 {
		t.Fatalf("Pending after reopening = %d, want 6", got)
	}
}

func TestReplay(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := open(t, t.TempDir(), c)
	ctx := context.Background()
	id := acceptSubject(t, s, c, "A", "crm", "archive")
	other := acceptSubject(t, s, c, "B", "crm")

	for _, sink := range []string{"crm", "archive"} {
		for _, d := range must(s.Lease(ctx, LeaseRequest{Sink: sink, Limit: 10, For: time.Minute})) {
			state := StateDead
			if sink == "archive" {
				state = StateDelivered
			}
			if err := s.Complete(ctx, &d, Outcome{State: state, Error: "HTTP 400", Status: 400}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.Replay(ctx, Filter{}); err == nil {
		t.Fatal("a replay of everything was accepted")
	}
	if _, err := s.Replay(ctx, Filter{Sink: "crm", States: []string{"bogus"}}); err == nil {
		t.Fatal("an unknown state was accepted")
	}
	dead, err := s.List(ctx, Filter{States: []string{StateDead}})
	if err != nil || len(dead) != 2 || dead[0].LastStatus != 400 || dead[0].Attempts != 1 || dead[0].EventType == "" {
		t.Fatalf("dead letters = %+v, %v", dead, err)
	}

	c.Advance(time.Hour)
	// Only those that changed in the last minute: none.
	if n, _ := s.Replay(ctx, Filter{Sink: "crm", States: []string{StateDead}, Since: c.Now().Add(-time.Minute)}); n != 0 {
		t.Fatalf("replayed %d deliveries older than --since", n)
	}
	if n, err := s.Replay(ctx, Filter{EventID: id}); err != nil || n != 2 {
		t.Fatalf("replay --event = %d, %v; want its 2 deliveries", n, err)
	}
	got, _ := s.Lease(ctx, LeaseRequest{Sink: "crm", Limit: 10, For: time.Minute})
	if len(got) != 1 || got[0].EventID != id || got[0].Attempt != 1 || !got[0].Since.Equal(c.Now().Truncate(time.Millisecond)) {
		t.Fatalf("lease after replay = %+v, want event %s, attempt 1, since now", got, id)
	}
	// In flight: a second replay leaves it alone.
	if n, _ := s.Replay(ctx, Filter{EventID: id, Sink: "crm"}); n != 0 {
		t.Fatalf("replayed a delivery under lease")
	}
	infos, _ := s.Deliveries(ctx, id)
	if infos[1].Replays != 1 || infos[1].State != StatePending {
		t.Fatalf("after replay: %+v", infos[1])
	}
	if n, _ := s.Replay(ctx, Filter{Sink: "crm", States: []string{StateDead}}); n != 1 {
		t.Fatalf("replay --sink crm --state dead = %d, want 1 (event %s)", n, other)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestDedupWindowAndPrune(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := open(t, t.TempDir(), c)
	ctx := context.Background()
	in := func(key string) Incoming {
		return Incoming{Event: newEvent(c, key), Targets: targets("crm"), DedupWindow: time.Hour}
	}
	first, _ := s.Accept(ctx, in("body-1"))
	c.Advance(59 * time.Minute)
	if dup, _ := s.Accept(ctx, in("body-1")); !dup.Duplicate || dup.EventID != first.EventID {
		t.Fatalf("inside the window: %+v, want a duplicate of %s", dup, first.EventID)
	}
	c.Advance(2 * time.Minute)
	again, err := s.Accept(ctx, in("body-1"))
	if err != nil || again.Duplicate {
		t.Fatalf("outside the window: %+v, %v; want a new event", again, err)
	}
	if dup, _ := s.Accept(ctx, in("body-1")); dup.EventID != again.EventID {
		t.Fatalf("the new event does not hold the key: %+v", dup)
	}

	// Prune: the first event is old but its delivery waits: kept.
	window := func(string) time.Duration { return time.Hour }
	if n, err := s.Prune(ctx, window); err != nil || n != 0 {
		t.Fatalf("pruned %d (%v) while a delivery waits", n, err)
	}
	for _, d := range must(s.Lease(ctx, LeaseRequest{Sink: "crm", Limit: 10, For: time.Minute})) {
		s.Complete(ctx, &d, Outcome{State: StateDelivered})
	}
	if n, err := s.Prune(ctx, window); err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want the first, delivered, old event", n, err)
	}
	if ds, _ := s.Deliveries(ctx, first.EventID); len(ds) != 0 {
		t.Fatalf("the pruned event's deliveries remain: %+v", ds)
	}
	if ds, _ := s.Deliveries(ctx, again.EventID); len(ds) != 1 {
		t.Fatalf("the recent event was pruned")
	}
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
	got, err := s.Lease(ctx, LeaseRequest{Sink: "crm", Limit: 1, For: time.Minute, Ordered: true})
	if err != nil || len(got) != 1 || got[0].ID != "dlv_1" || got[0].Since.UnixMilli() != 1 {
		t.Fatalf("lease after migration = %+v, %v", got, err)
	}
}
