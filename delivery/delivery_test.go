package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/queue/sqlite"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/logbuf"
	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/sinks"
)

// fakeSink answers with the errors of script, in order, then nil.
type fakeSink struct {
	mu       sync.Mutex
	script   []error
	calls    []sinks.Delivery
	block    bool // wait for the context instead
	inflight atomic.Int32
	maxSeen  atomic.Int32
	hold     time.Duration
}

func (f *fakeSink) Send(ctx context.Context, d *sinks.Delivery) error {
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	f.calls = append(f.calls, *d)
	var err error
	if len(f.script) > 0 {
		err, f.script = f.script[0], f.script[1:]
	}
	block, hold := f.block, f.hold
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return context.Cause(ctx)
	}
	if hold > 0 {
		select {
		case <-time.After(hold):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (f *fakeSink) Close() error { return nil }

func (f *fakeSink) Calls() []sinks.Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sinks.Delivery(nil), f.calls...)
}

var fast = Policy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, MaxAge: time.Hour}

func setup(t *testing.T, ss ...Sink) (*sqlite.Store, *Dispatcher) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := New(store, ss, Options{Idle: 50 * time.Millisecond})
	t.Cleanup(func() {
		// Short: a test's stuck attempts are cancelled, not waited for.
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		d.Stop(ctx)
		store.Close()
	})
	return store, d
}

func accept(t *testing.T, s *sqlite.Store, subject string, sinkNames ...string) string {
	t.Helper()
	now := time.Now()
	ev := &event.Event{ID: event.NewID("evt_", now), Source: "darwin", EventType: "session.opened", Subject: subject,
		Timestamp: now, ReceivedAt: now, Data: json.RawMessage(`{"sessionId":"` + subject + `"}`)}
	var ts []queue.Target
	for _, n := range sinkNames {
		ts = append(ts, queue.Target{Sink: n, Routes: []string{"r"}})
	}
	acc, err := s.Accept(context.Background(), queue.Incoming{Event: ev, Targets: ts})
	if err != nil {
		t.Fatal(err)
	}
	return acc.EventID
}

// eventually polls cond until it holds or 10 seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func state(t *testing.T, s *sqlite.Store, eventID string) queue.DeliveryInfo {
	t.Helper()
	ds, err := s.List(context.Background(), queue.Filter{EventID: eventID})
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries of %s: %+v, %v", eventID, ds, err)
	}
	return ds[0]
}

func TestRetriedUntilDelivered(t *testing.T) {
	t.Parallel()
	sink := &fakeSink{script: []error{
		errors.New("connection refused"),
		&sinks.HTTPError{Status: http.StatusServiceUnavailable},
		&sinks.HTTPError{Status: http.StatusTooManyRequests, After: 20 * time.Millisecond},
	}}
	store, d := setup(t, Sink{Name: "crm", Sink: sink, Concurrency: 1, Timeout: time.Second, Retry: fast})
	id := accept(t, store, "s1", "crm")
	d.Start()
	d.Notify("crm")
	eventually(t, "delivered", func() bool { return state(t, store, id).State == queue.StateDelivered })
	calls := sink.Calls()
	if len(calls) != 4 {
		t.Fatalf("%d attempts, want 4", len(calls))
	}
	for i, c := range calls {
		if c.Attempt != i+1 || c.ID != calls[0].ID || c.Event.ID != id {
			t.Fatalf("attempt %d = %+v", i, c)
		}
	}
	if info := state(t, store, id); info.Attempts != 4 {
		t.Fatalf("attempts recorded = %d", info.Attempts)
	}
}

func TestPermanentAndExhaustedGoDead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		script   []error
		policy   Policy
		attempts int
		errWith  string
	}{
		{"400 is permanent", []error{&sinks.HTTPError{Status: 400, Body: "bad field"}}, fast, 1, "permanent failure: HTTP 400 Bad Request: bad field"},
		{"sinks.Permanent", []error{sinks.Permanent(errors.New("template failed"))}, fast, 1, "permanent failure: template failed"},
		{"max attempts", []error{errors.New("e1"), errors.New("e2"), errors.New("e3"), errors.New("e4")},
			Policy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxAge: time.Hour}, 3, "gave up after 3 attempts: e3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sink := &fakeSink{script: tc.script}
			store, d := setup(t, Sink{Name: "x", Sink: sink, Concurrency: 1, Timeout: time.Second, Retry: tc.policy})
			id := accept(t, store, "s", "x")
			d.Start()
			eventually(t, "dead", func() bool { return state(t, store, id).State == queue.StateDead })
			info := state(t, store, id)
			if info.Attempts != tc.attempts || info.LastError != tc.errWith {
				t.Fatalf("dead delivery = %+v", info)
			}
			if len(sink.Calls()) != tc.attempts {
				t.Fatalf("%d calls, want %d", len(sink.Calls()), tc.attempts)
			}
		})
	}
}

func TestSlowSinkDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	stuck := &fakeSink{block: true}
	quick := &fakeSink{}
	store, d := setup(t,
		Sink{Name: "stuck", Sink: stuck, Concurrency: 1, Timeout: time.Hour, Retry: fast},
		Sink{Name: "quick", Sink: quick, Concurrency: 1, Timeout: time.Second, Retry: fast},
	)
	var ids []string
	for i := range 5 {
		ids = append(ids, accept(t, store, fmt.Sprint("s", i), "stuck", "quick"))
	}
	d.Start()
	eventually(t, "quick deliveries", func() bool { return len(quick.Calls()) == 5 })
	if n := len(stuck.Calls()); n != 1 {
		t.Fatalf("stuck sink got %d attempts at once, want 1 (concurrency 1)", n)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	sink := &fakeSink{hold: 20 * time.Millisecond}
	store, d := setup(t, Sink{Name: "x", Sink: sink, Concurrency: 3, Timeout: time.Second, Retry: fast})
	for i := range 12 {
		accept(t, store, fmt.Sprint("s", i), "x")
	}
	d.Start()
	eventually(t, "all delivered", func() bool { return len(sink.Calls()) == 12 && sink.inflight.Load() == 0 })
	if m := sink.maxSeen.Load(); m > 3 || m < 2 {
		t.Fatalf("max in flight = %d, want at most 3 (and some parallelism)", m)
	}
}

func TestTimeoutIsRetried(t *testing.T) {
	t.Parallel()
	sink := &fakeSink{block: true}
	store, d := setup(t, Sink{Name: "x", Sink: sink, Concurrency: 1, Timeout: 30 * time.Millisecond,
		Retry: Policy{InitialBackoff: time.Hour, MaxBackoff: time.Hour, MaxAge: time.Hour}})
	id := accept(t, store, "s", "x")
	d.Start()
	eventually(t, "failed", func() bool { return state(t, store, id).State == queue.StateFailed })
	if info := state(t, store, id); info.LastError != "attempt timed out" {
		t.Fatalf("last error = %q", info.LastError)
	}
}

func TestStopAtDeadlineKeepsDeliveryPending(t *testing.T) {
	t.Parallel()
	sink := &fakeSink{block: true}
	store, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	d := New(store, []Sink{{Name: "x", Sink: sink, Concurrency: 1, Timeout: time.Hour, Retry: fast}}, Options{})
	id := accept(t, store, "s", "x")
	d.Start()
	eventually(t, "attempt started", func() bool { return sink.inflight.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := d.Stop(ctx); err == nil {
		t.Fatal("Stop = nil, want the deadline error")
	}
	info := state(t, store, id)
	if info.State != queue.StateFailed || info.LastError == "" {
		t.Fatalf("after a cut-short attempt: %+v, want failed (retried at next start)", info)
	}
	if due, ok, _ := store.NextDue(context.Background(), "x", false); !ok || time.Until(due) > time.Second {
		t.Fatalf("next due %v, %v: want now", due, ok)
	}
	// Stop again and Start after Stop are harmless.
	if err := d.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	d.Start()
}

func TestOutcome(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	d := New(nil, nil, Options{Now: func() time.Time { return now }})
	w := &worker{Sink: Sink{Retry: Policy{MaxAttempts: 5, InitialBackoff: time.Second, MaxBackoff: time.Minute, MaxAge: time.Hour}}}
	qd := func(attempt int, age time.Duration) *queue.Delivery {
		return &queue.Delivery{Attempt: attempt, CreatedAt: now.Add(-age), Since: now.Add(-age)}
	}
	replayed := &queue.Delivery{Attempt: 1, CreatedAt: now.Add(-48 * time.Hour), Since: now.Add(-time.Minute)}
	for _, tc := range []struct {
		name    string
		d       *queue.Delivery
		err     error
		state   string
		minWait time.Duration
		maxWait time.Duration
		status  int
	}{
		{"ok", qd(1, 0), nil, queue.StateDelivered, 0, 0, 0},
		{"5xx retried", qd(1, 0), &sinks.HTTPError{Status: 502}, queue.StateFailed, minBackoff, time.Second, 502},
		{"backoff grows", qd(4, 0), &sinks.HTTPError{Status: 500}, queue.StateFailed, minBackoff, 8 * time.Second, 500},
		{"429 honours Retry-After", qd(1, 0), &sinks.HTTPError{Status: 429, After: 42 * time.Second}, queue.StateFailed, 42 * time.Second, 42 * time.Second, 429},
		{"408 retried", qd(1, 0), &sinks.HTTPError{Status: 408}, queue.StateFailed, minBackoff, time.Second, 408},
		{"network error retried", qd(1, 0), errors.New("dial tcp: connection refused"), queue.StateFailed, minBackoff, time.Second, 0},
		{"404 dead", qd(1, 0), &sinks.HTTPError{Status: 404}, queue.StateDead, 0, 0, 404},
		{"attempts exhausted", qd(5, 0), &sinks.HTTPError{Status: 503}, queue.StateDead, 0, 0, 503},
		{"too old", qd(2, time.Hour), &sinks.HTTPError{Status: 503}, queue.StateDead, 0, 0, 503},
		{"max_age counts from a replay", replayed, &sinks.HTTPError{Status: 503}, queue.StateFailed, minBackoff, time.Second, 503},
		{"shutdown retries now", qd(3, 0), fmt.Errorf("%w: x", ErrShutdown), queue.StateFailed, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := d.outcome(w, tc.d, tc.err)
			if o.State != tc.state || o.Status != tc.status {
				t.Fatalf("outcome = %+v, want %s status %d", o, tc.state, tc.status)
			}
			if o.State == queue.StateFailed {
				if wait := o.NextAt.Sub(now); wait < tc.minWait || wait > tc.maxWait {
					t.Fatalf("wait %v, want within [%v, %v]", wait, tc.minWait, tc.maxWait)
				}
			}
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	p := Policy{InitialBackoff: time.Second, MaxBackoff: 30 * time.Second}
	for attempt := 1; attempt <= 40; attempt++ {
		ceiling := min(time.Second<<min(attempt-1, 30), 30*time.Second)
		var lo, hi time.Duration = time.Hour, 0
		for range 200 {
			b := p.Backoff(attempt)
			lo, hi = min(lo, b), max(hi, b)
			if b < minBackoff || b > ceiling {
				t.Fatalf("attempt %d: backoff %v outside [%v, %v]", attempt, b, minBackoff, ceiling)
			}
		}
		if attempt >= 3 && hi-lo < ceiling/4 {
			t.Fatalf("attempt %d: backoffs span only [%v, %v]: not jittered", attempt, lo, hi)
		}
	}
}

// TestRetryWarnsWhenTheErrorChanges: a run of identical failures is
// one warning, not one per retry; a new error warns again.
func TestRetryWarnsWhenTheErrorChanges(t *testing.T) {
	t.Parallel()
	down := &sinks.HTTPError{Status: http.StatusServiceUnavailable}
	sink := &fakeSink{script: []error{down, down, down, errors.New("connection refused")}}
	store, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var logs logbuf.Buffer
	d := New(store, []Sink{{Name: "crm", Sink: sink, Concurrency: 1, Timeout: time.Second, Retry: fast}},
		Options{Idle: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	id := accept(t, store, "s1", "crm")
	d.Start()
	defer d.Stop(context.Background())
	eventually(t, "delivered", func() bool { return state(t, store, id).State == queue.StateDelivered })
	var warns, debugs int
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "delivery failed; will retry") {
			if strings.Contains(line, "level=WARN") {
				warns++
			} else {
				debugs++
			}
		}
	}
	if warns != 2 || debugs != 2 {
		t.Fatalf("%d warnings and %d debug lines for 3 identical failures then another; want 2 and 2:\n%s", warns, debugs, logs.String())
	}
}
