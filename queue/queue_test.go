package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/event"
)

// clock is a settable time source.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func open(t *testing.T, dir string, c *clock) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newEvent(c *clock, dedup string) *event.Event {
	return &event.Event{
		ID:         event.NewID("evt_", c.Now()),
		Source:     "darwin",
		EventType:  "session.forwarded.escalated",
		Subject:    "sess-1",
		Timestamp:  c.Now(),
		ReceivedAt: c.Now(),
		Data:       json.RawMessage(`{"summary":"Sessão <reembolso> & co"}`),
		DedupKey:   dedup,
	}
}

func targets(names ...string) []Target {
	var out []Target
	for _, n := range names {
		out = append(out, Target{Sink: n, Routes: []string{"r1", "r2"}})
	}
	return out
}

func TestAcceptAndLease(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := open(t, t.TempDir(), c)
	ctx := context.Background()
	ev := newEvent(c, "k1")
	acc, err := s.Accept(ctx, Incoming{Event: ev, Targets: targets("slack", "archive")})
	if err != nil {
		t.Fatal(err)
	}
	if acc.EventID != ev.ID || acc.Duplicate || len(acc.Deliveries) != 2 {
		t.Fatalf("accepted = %+v", acc)
	}

	got, err := s.Lease(ctx, LeaseRequest{Sink: "slack", Limit: 10, For: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("leased %d deliveries, want 1", len(got))
	}
	d := got[0]
	if d.ID != acc.Deliveries[0] || d.EventID != ev.ID || d.Sink != "slack" || d.Attempt != 1 || fmt.Sprint(d.Routes) != "[r1 r2]" {
		t.Fatalf("delivery = %+v", d)
	}
	if d.Event.EventType != ev.EventType || string(d.Event.Data) != string(ev.Data) || !d.Event.ReceivedAt.Equal(ev.ReceivedAt) {
		t.Fatalf("event = %+v", d.Event)
	}
	// Leased: no one else gets it until the lease ends.
	if again, _ := s.Lease(ctx, LeaseRequest{Sink: "slack", Limit: 10, For: time.Minute}); len(again) != 0 {
		t.Fatalf("leased twice: %+v", again)
	}
	c.Advance(time.Minute + time.Millisecond)
	again, err := s.Lease(ctx, LeaseRequest{Sink: "slack", Limit: 10, For: time.Minute})
	// The expired attempt never completed, so it is not counted.
	if err != nil || len(again) != 1 || again[0].Attempt != 1 {
		t.Fatalf("after the lease expired: %+v, %v", again, err)
	}
	if err := s.Complete(ctx, &d, Outcome{State: StateDelivered, Status: 200}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	if more, _ := s.Lease(ctx, LeaseRequest{Sink: "slack", Limit: 10, For: time.Minute}); len(more) != 0 {
		t.Fatalf("a delivered delivery was leased again: %+v", more)
	}
	ds, err := s.Deliveries(ctx, ev.ID)
	if err != nil || len(ds) != 2 {
		t.Fatalf("deliveries = %+v, %v", ds, err)
	}
	states := map[string]string{ds[0].Sink: ds[0].State, ds[1].Sink: ds[1].State}
	if states["slack"] != StateDelivered || states["archive"] != StatePending {
		t.Fatalf("states = %v", states)
	}
}

func TestAcceptDuplicate(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := open(t, t.TempDir(), c)
	ctx := context.Background()
	first, err := s.Accept(ctx, Incoming{Event: newEvent(c, "same-body"), Targets: targets("slack")})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		dup, err := s.Accept(ctx, Incoming{Event: newEvent(c, "same-body"), Targets: targets("slack")})
		if err != nil {
			t.Fatal(err)
		}
		if !dup.Duplicate || dup.EventID != first.EventID || len(dup.Deliveries) != 0 {
			t.Fatalf("duplicate = %+v, want the original id %s and no deliveries", dup, first.EventID)
		}
	}
	other := newEvent(c, "same-body")
	other.Source = "other-source"
	if acc, err := s.Accept(ctx, Incoming{Event: other, Targets: targets("slack")}); err != nil || acc.Duplicate {
		t.Fatalf("same key from another source: %+v, %v", acc, err)
	}
	counts, _ := s.Counts(ctx)
	if counts["slack"][StatePending] != 2 {
		t.Fatalf("counts = %v, want 2 pending", counts)
	}
}

func TestRetryAndDead(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := open(t, t.TempDir(), c)
	ctx := context.Background()
	if _, err := s.Accept(ctx, Incoming{Event: newEvent(c, "k"), Targets: targets("crm")}); err != nil {
		t.Fatal(err)
	}
	d, _ := s.Lease(ctx, LeaseRequest{Sink: "crm", Limit: 1, For: time.Minute})
	next := c.Now().Add(10 * time.Second)
	if err := s.Complete(ctx, &d[0], Outcome{State: StateFailed, NextAt: next, Error: "HTTP 503", Status: 503}); err != nil {
		t.Fatal(err)
	}
	if due, ok, err := s.NextDue(ctx, "crm", false); err != nil || !ok || !due.Equal(next.Truncate(time.Millisecond)) {
		t.Fatalf("NextDue = %v %v %v, want %v", due, ok, err, next)
	}
	if got, _ := s.Lease(ctx, LeaseRequest{Sink: "crm", Limit: 1, For: time.Minute}); len(got) != 0 {
		t.Fatal("leased before its retry time")
	}
	c.Advance(10 * time.Second)
	got, _ := s.Lease(ctx, LeaseRequest{Sink: "crm", Limit: 1, For: time.Minute})
	if len(got) != 1 || got[0].Attempt != 2 {
		t.Fatalf("retry lease = %+v", got)
	}
	if err := s.Complete(ctx, &got[0], Outcome{State: StateDead, Error: "HTTP 400", Status: 400}); err != nil {
		t.Fatal(err)
	}
	ds, _ := s.Deliveries(ctx, got[0].EventID)
	if ds[0].State != StateDead || ds[0].Attempts != 2 || ds[0].LastError != "HTTP 400" || ds[0].LastStatus != 400 {
		t.Fatalf("dead delivery = %+v", ds[0])
	}
	if _, ok, _ := s.NextDue(ctx, "crm", false); ok {
		t.Fatal("a dead delivery is still due")
	}
	if err := s.Complete(ctx, &got[0], Outcome{State: "bogus"}); err == nil {
		t.Fatal("an invalid state was accepted")
	}
}

// TestSurvivesReopen proves a pending delivery, and one whose attempt was
// interrupted by a crash (still leased), survive closing and reopening.
func TestSurvivesReopen(t *testing.T) {
	t.Parallel()
	c := newClock()
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := s.Accept(ctx, Incoming{Event: newEvent(c, "k"), Targets: targets("slack", "archive")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lease(ctx, LeaseRequest{Sink: "slack", Limit: 1, For: time.Hour}); err != nil { // an attempt in flight when we "crash"
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Accept(ctx, Incoming{Event: newEvent(c, "k2"), Targets: nil}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Close = %v, want ErrClosed", err)
	}

	// The lease died with the process: the delivery is due at once.
	s2 := open(t, dir, c)
	for _, sink := range []string{"slack", "archive"} {
		got, err := s2.Lease(ctx, LeaseRequest{Sink: sink, Limit: 10, For: time.Minute})
		if err != nil || len(got) != 1 || got[0].EventID != acc.EventID {
			t.Fatalf("%s after reopen: %+v, %v", sink, got, err)
		}
	}
}

// TestGroupCommit accepts concurrently and checks every event is stored
// once, with its deliveries.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := open(t, t.TempDir(), c)
	ctx := context.Background()
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := s.Accept(ctx, Incoming{Event: newEvent(c, fmt.Sprintf("k%d", i%(n/2))), Targets: targets("a", "b")})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	counts, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts["a"][StatePending] != n/2 || counts["b"][StatePending] != n/2 {
		t.Fatalf("counts = %v, want %d each (half were duplicates)", counts, n/2)
	}
}

// TestFailedOpInBatchIsIsolated checks that one write failing inside a
// shared transaction does not undo the others.
func TestFailedOpInBatchIsIsolated(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := open(t, t.TempDir(), c)
	ctx := context.Background()
	boom := errors.New("boom")
	var wg sync.WaitGroup
	results := make([]error, 50)
	for i := range results {
		wg.Go(func() {
			if i%5 == 0 {
				results[i] = s.write(ctx, func(tx *sql.Tx) (int64, error) {
					if _, err := tx.ExecContext(ctx, `INSERT INTO events (id, source, dedup_key, event_type, received_at, event) VALUES (?, 'x', ?, 't', 0, '{}')`, fmt.Sprint("bad", i), fmt.Sprint(i)); err != nil {
						return 0, err
					}
					return 7, boom // a failed op's delta must not count
				})
				return
			}
			_, results[i] = s.Accept(ctx, Incoming{Event: newEvent(c, fmt.Sprint(i)), Targets: targets("a")})
		})
	}
	wg.Wait()
	for i, err := range results {
		if i%5 == 0 && !errors.Is(err, boom) {
			t.Fatalf("op %d: %v, want boom", i, err)
		}
		if i%5 != 0 && err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	var bad int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM events WHERE source = 'x'`).Scan(&bad); err != nil || bad != 0 {
		t.Fatalf("rows of failed ops: %d, %v", bad, err)
	}
	counts, _ := s.Counts(ctx)
	if counts["a"][StatePending] != 40 {
		t.Fatalf("counts = %v, want 40", counts)
	}
	if got := s.Pending(); got != 40 {
		t.Fatalf("Pending() = %d, want 40", got)
	}
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir, newClock())
	if err := s.write(context.Background(), func(tx *sql.Tx) (int64, error) {
		_, err := tx.Exec("PRAGMA user_version = 99")
		return 0, err
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(context.Background(), dir, Options{}); err == nil {
		t.Fatal("opened a schema from the future")
	}
}

// BenchmarkAccept measures accepting events from 32 concurrent
// requests per CPU at synchronous=full, and reports how many writes
// share a commit. Run it with -cpu 1,2 to see that group commit does
// not depend on a second CPU.
func BenchmarkAccept(b *testing.B) {
	for _, sync := range []string{"full", "normal"} {
		b.Run("synchronous="+sync, func(b *testing.B) { benchmarkAccept(b, sync) })
	}
}

func benchmarkAccept(b *testing.B, sync string) {
	c := newClock()
	s, err := Open(context.Background(), b.TempDir(), Options{Now: c.Now, Synchronous: sync})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var i atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Accept(ctx, Incoming{Event: newEvent(c, fmt.Sprint(i.Add(1))), Targets: targets("a")}); err != nil {
				b.Error(err)
			}
		}
	})
	b.ReportMetric(float64(s.committed.Load())/float64(max(s.commits.Load(), 1)), "writes/commit")
}

// TestAnswersAfterFsync: at synchronous=full an accepted event is
// answered only once the WAL holding it is on disk, and commits that
// wait for one fsync share it.
func TestAnswersAfterFsync(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, err := Open(context.Background(), t.TempDir(), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gate := make(chan struct{})
	s.beforeSync = func() { <-gate }
	ctx := context.Background()
	done := make(chan error, 8)
	for i := range 8 {
		go func() {
			_, err := s.Accept(ctx, Incoming{Event: newEvent(c, fmt.Sprint("k", i)), Targets: targets("a")})
			done <- err
		}()
	}
	select {
	case err := <-done:
		t.Fatalf("Accept returned (%v) before the WAL was synced", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(gate)
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := s.fsyncs.Load(); n < 1 || n > 3 {
		t.Fatalf("%d fsyncs for 8 concurrent accepts: want them to share one or two", n)
	}

	// At synchronous=normal there is no fsync per commit.
	n, err := Open(context.Background(), t.TempDir(), Options{Now: c.Now, Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.beforeSync = func() { t.Error("fsync at synchronous=normal") }
	if _, err := n.Accept(ctx, Incoming{Event: newEvent(c, "k"), Targets: targets("a")}); err != nil {
		t.Fatal(err)
	}
}
