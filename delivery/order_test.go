package delivery

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/sinks"
)

// funcSink answers with fn and records each call and its start time.
type funcSink struct {
	fn    func(d *sinks.Delivery) error
	mu    sync.Mutex
	calls []call
}

type call struct {
	eventID, subject string
	at               time.Time
	err              error
}

func (f *funcSink) Send(_ context.Context, d *sinks.Delivery) error {
	err := f.fn(d)
	f.mu.Lock()
	f.calls = append(f.calls, call{d.Event.ID, d.Event.Subject, time.Now(), err})
	f.mu.Unlock()
	return err
}

func (f *funcSink) Close() error { return nil }

func (f *funcSink) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// delivered returns, per subject, the event ids delivered, in order.
func (f *funcSink) delivered() map[string][]string {
	out := map[string][]string{}
	for _, c := range f.Calls() {
		if c.err == nil {
			out[c.subject] = append(out[c.subject], c.eventID)
		}
	}
	return out
}

func TestOrderedPerSubject(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	failA := 3 // the first event of subject A fails three times
	sink := &funcSink{fn: func(d *sinks.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		if d.Event.Subject == "A" && failA > 0 {
			failA--
			return &sinks.HTTPError{Status: 503}
		}
		return nil
	}}
	store, d := setup(t, Sink{Name: "slack", Sink: sink, Concurrency: 4, Timeout: time.Second, Retry: fast, Ordered: true})
	var want = map[string][]string{}
	for i := range 12 {
		subject := []string{"A", "B", "C"}[i%3]
		want[subject] = append(want[subject], accept(t, store, subject, "slack"))
	}
	d.Start()
	eventually(t, "all delivered", func() bool { return len(sink.delivered()["A"]) == 4 && len(sink.delivered()["C"]) == 4 })
	got := sink.delivered()
	for subject, ids := range want {
		if !slices.Equal(got[subject], ids) {
			t.Errorf("subject %s delivered %v, want %v (in acceptance order)", subject, got[subject], ids)
		}
	}
	// While A's head was failing, B and C went on: they finished first.
	calls := sink.Calls()
	lastB := slices.IndexFunc(calls, func(c call) bool { return c.eventID == want["B"][3] })
	firstA2 := slices.IndexFunc(calls, func(c call) bool { return c.eventID == want["A"][1] })
	if lastB > firstA2 {
		t.Errorf("B finished at call %d, after A's second event (%d): A's retries held B back", lastB, firstA2)
	}
	// No A event was attempted before the one ahead of it was delivered.
	seen := map[string]bool{}
	for _, c := range calls {
		if c.subject != "A" {
			continue
		}
		i := slices.Index(want["A"], c.eventID)
		if i > 0 && !seen[want["A"][i-1]] {
			t.Fatalf("A event %d attempted before event %d was delivered", i, i-1)
		}
		if c.err == nil {
			seen[c.eventID] = true
		}
	}
}

func TestRateSpacesAttempts(t *testing.T) {
	t.Parallel()
	sink := &funcSink{fn: func(*sinks.Delivery) error { return nil }}
	store, d := setup(t, Sink{Name: "slack", Sink: sink, Concurrency: 4, Timeout: time.Second, Retry: fast,
		Rate: Rate{N: 20, Per: time.Second}})
	for range 6 {
		accept(t, store, "", "slack")
	}
	d.Start()
	eventually(t, "6 attempts", func() bool { return len(sink.Calls()) == 6 })
	calls := sink.Calls()
	for i := 1; i < len(calls); i++ {
		// 20/s: one start every 50ms; allow for timer granularity.
		if gap := calls[i].at.Sub(calls[i-1].at); gap < 45*time.Millisecond {
			t.Fatalf("attempts %d and %d started %v apart, want ≥ 50ms at 20/s", i-1, i, gap)
		}
	}
}

func TestPacer(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	var unlimited pacer
	if got := unlimited.allow(now, 7); got != 7 {
		t.Fatalf("unlimited allow = %d", got)
	}
	p := pacer{every: Rate{N: 1, Per: time.Second}.Interval()}
	if got := p.allow(now, 4); got != 1 {
		t.Fatalf("allow = %d, want 1: no burst", got)
	}
	p.took(now, 1)
	if got := p.allow(now.Add(999*time.Millisecond), 4); got != 0 {
		t.Fatalf("allow within the interval = %d", got)
	}
	if w := p.wait(now.Add(400 * time.Millisecond)); w != 600*time.Millisecond {
		t.Fatalf("wait = %v", w)
	}
	if got := p.allow(now.Add(time.Hour), 4); got != 1 {
		t.Fatalf("after a quiet hour allow = %d, want 1: no saved-up burst", got)
	}
}

// TestLimitsHoldAcrossDispatchers runs two dispatchers on one store, as
// two replicas share one database: the sink's concurrency and rate
// count both dispatchers' attempts, and neither polls in a tight loop
// while the other holds the sink's slots.
func TestLimitsHoldAcrossDispatchers(t *testing.T) {
	t.Parallel()
	t.Run("concurrency", func(t *testing.T) {
		t.Parallel()
		sink := &fakeSink{hold: 30 * time.Millisecond}
		s := Sink{Name: "x", Sink: sink, Concurrency: 2, Timeout: time.Second, Retry: fast}
		store, d1 := setup(t, s)
		d2 := New(store, []Sink{s}, Options{Idle: 50 * time.Millisecond})
		t.Cleanup(func() { d2.Stop(context.Background()) })
		for i := range 12 {
			accept(t, store, fmt.Sprint("s", i), "x")
		}
		d1.Start()
		d2.Start()
		eventually(t, "all delivered", func() bool { return len(sink.Calls()) == 12 && sink.inflight.Load() == 0 })
		if m := sink.maxSeen.Load(); m > 2 {
			t.Fatalf("max in flight across two dispatchers = %d, want at most the sink's concurrency, 2", m)
		}
	})
	t.Run("rate", func(t *testing.T) {
		t.Parallel()
		sink := &funcSink{fn: func(*sinks.Delivery) error { return nil }}
		s := Sink{Name: "slack", Sink: sink, Concurrency: 4, Timeout: time.Second, Retry: fast, Rate: Rate{N: 20, Per: time.Second}}
		store, d1 := setup(t, s)
		counted := &countingQueue{Queue: store}
		d2 := New(counted, []Sink{s}, Options{Idle: 50 * time.Millisecond})
		t.Cleanup(func() { d2.Stop(context.Background()) })
		for range 10 {
			accept(t, store, "", "slack")
		}
		d1.Start()
		d2.Start()
		eventually(t, "10 attempts", func() bool { return len(sink.Calls()) == 10 })
		// Over some 450 ms, polling every 5 ms would lease 90 times.
		if n := counted.leases.Load(); n > 20 {
			t.Errorf("the second dispatcher leased %d times in 10 paced attempts: it polls in a tight loop", n)
		}
		calls := sink.Calls()
		slices.SortFunc(calls, func(a, b call) int { return a.at.Compare(b.at) })
		for i := 1; i < len(calls); i++ {
			if gap := calls[i].at.Sub(calls[i-1].at); gap < 45*time.Millisecond {
				t.Fatalf("attempts %d and %d started %v apart across two dispatchers, want ≥ 50ms at 20/s", i-1, i, gap)
			}
		}
	})
}

// countingQueue counts a dispatcher's leases.
type countingQueue struct {
	Queue
	leases atomic.Int64
}

func (q *countingQueue) Lease(ctx context.Context, r queue.LeaseRequest) ([]queue.Delivery, error) {
	q.leases.Add(1)
	return q.Queue.Lease(ctx, r)
}
