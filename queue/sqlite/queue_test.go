package sqlite

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

	"github.com/switchyard/switchyard/queue"

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

func targets(names ...string) []queue.Target {
	var out []queue.Target
	for _, n := range names {
		out = append(out, queue.Target{Sink: n, Routes: []string{"r1", "r2"}})
	}
	return out
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
			_, err := s.Accept(ctx, queue.Incoming{Event: newEvent(c, fmt.Sprintf("k%d", i%(n/2))), Targets: targets("a", "b")})
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
	if counts["a"][queue.StatePending] != n/2 || counts["b"][queue.StatePending] != n/2 {
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
				results[i] = s.write(ctx, func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error) {
					if _, err := tx.ExecContext(ctx, `INSERT INTO events (id, source, dedup_key, event_type, received_at, event) VALUES (?, 'x', ?, 't', 0, '{}')`, fmt.Sprint("bad", i), fmt.Sprint(i)); err != nil {
						return nil, err
					}
					return []sinkDelta{{"a", 7}}, boom // a failed op's delta must not count
				})
				return
			}
			_, results[i] = s.Accept(ctx, queue.Incoming{Event: newEvent(c, fmt.Sprint(i)), Targets: targets("a")})
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
	if counts["a"][queue.StatePending] != 40 {
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
	if err := s.write(context.Background(), func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error) {
		_, err := tx.Exec("PRAGMA user_version = 99")
		return nil, err
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
			if _, err := s.Accept(ctx, queue.Incoming{Event: newEvent(c, fmt.Sprint(i.Add(1))), Targets: targets("a")}); err != nil {
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
	if s.syncs == nil {
		t.Skip("one CPU: SQLite fsyncs inside each commit")
	}
	gate := make(chan struct{})
	s.syncHook = func() error { <-gate; return nil }
	ctx := context.Background()
	done := make(chan error, 8)
	for i := range 8 {
		go func() {
			_, err := s.Accept(ctx, queue.Incoming{Event: newEvent(c, fmt.Sprint("k", i)), Targets: targets("a")})
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
	n.syncHook = func() error { t.Error("fsync at synchronous=normal"); return nil }
	if _, err := n.Accept(ctx, queue.Incoming{Event: newEvent(c, "k"), Targets: targets("a")}); err != nil {
		t.Fatal(err)
	}
}
