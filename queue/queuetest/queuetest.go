// Package queuetest is the conformance suite of queue.Store: every
// backend's tests call Run, so that one contract holds for all of them.
// A behaviour added to one backend is added here first.
package queuetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/queue"
)

// Harness is how the suite reaches a backend.
type Harness struct {
	// New makes fresh, empty storage for one test and returns a function
	// that opens a store on it with the clock now. Each call opens the
	// same storage again (a restart); the harness closes what it opened
	// when the test ends.
	New func(t *testing.T) (open func(now func() time.Time) queue.Store)
	// Fault, when set, makes the storage refuse writes (a lock held by
	// another process, say) until the returned function is called.
	Fault func(t *testing.T, s queue.Store) (heal func())
	// Replicas says that stores open at once on the same storage share
	// it as replicas do: dedup, leases, order per subject and a sink's
	// limits hold across them. The cases of several stores run only
	// then.
	Replicas bool
}

// Clock is a settable time source.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a clock at a fixed time.
func NewClock() *Clock {
	c := &Clock{}
	c.ns.Store(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

// Now is the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Advance moves the clock on.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f *fixture)
	}{
		{"AcceptAndLease", testAcceptAndLease},
		{"Dedup", testDedup},
		{"DedupConcurrent", testDedupConcurrent},
		{"DedupWindow", testDedupWindow},
		{"RetryAndDead", testRetryAndDead},
		{"LeaseFencing", testLeaseFencing},
		{"LateCompletionHonoured", testLateCompletionHonoured},
		{"Renew", testRenew},
		{"OrderedPerSubject", testOrdered},
		{"Concurrency", testConcurrency},
		{"Rate", testRate},
		{"Waiting", testWaiting},
		{"Replay", testReplay},
		{"ReplayInFlight", testReplayInFlight},
		{"Purge", testPurge},
		{"ListAndEvents", testListAndEvents},
		{"Attempts", testAttempts},
		{"Prune", testPrune},
		{"SurvivesReopen", testSurvivesReopen},
		{"OperatorsBeforeFirstLease", testOperatorsBeforeFirstLease},
		{"InvalidInput", testInvalidInput},
		// What the console reads (console.go).
		{"Request", testRequest},
		{"EventFilters", testEventFilters},
		{"EventPaging", testEventPaging},
		{"DeliveryFilters", testDeliveryFilters},
		{"RetryNowAndGiveUp", testRetryNowAndGiveUp},
		{"SessionAndBlocked", testSessionAndBlocked},
		{"SinkStats", testSinkStats},
		{"Audit", testAudit},
		{"OddBytes", testOddBytes},
		{"TextCase", testTextCase},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewClock()
			open := h.New(t)
			f := &fixture{t: t, clock: clock, open: open, ctx: context.Background()}
			f.s = open(clock.Now)
			tc.fn(t, f)
		})
	}
	if h.Replicas {
		for _, tc := range []struct {
			name string
			fn   func(t *testing.T, f *fixture, other queue.Store)
		}{
			{"DedupConcurrent", testReplicasDedup},
			{"LeaseFencing", testReplicasFencing},
			{"LateCompletionHonoured", testReplicasLateCompletion},
			{"OrderedPerSubject", testReplicasOrdered},
			{"Limits", testReplicasLimits},
			{"Replay", testReplicasReplay},
		} {
			t.Run("Replicas/"+tc.name, func(t *testing.T) {
				clock := NewClock()
				open := h.New(t)
				f := &fixture{t: t, clock: clock, open: open, ctx: context.Background()}
				f.s = open(clock.Now)
				tc.fn(t, f, open(clock.Now))
			})
		}
	}
	if h.Fault != nil {
		t.Run("OutcomeFaultKeepsLease", func(t *testing.T) {
			clock := NewClock()
			open := h.New(t)
			f := &fixture{t: t, clock: clock, open: open, ctx: context.Background()}
			f.s = open(clock.Now)
			testOutcomeFault(t, f, h.Fault)
		})
	}
}

type fixture struct {
	t     *testing.T
	clock *Clock
	open  func(now func() time.Time) queue.Store
	s     queue.Store
	ctx   context.Context
	n     int
}

// event makes an event of subject with a dedup key of its own.
func (f *fixture) event(subject string) *event.Event {
	f.n++
	now := f.clock.Now()
	return &event.Event{
		ID:         event.NewID("evt_", now),
		Source:     "darwin",
		EventType:  "session.forwarded.escalated",
		Subject:    subject,
		Timestamp:  now.Add(-time.Second),
		ReceivedAt: now,
		AgentID:    "agent-1",
		AgentName:  "Ana",
		ExternalID: fmt.Sprintf("platform-%d", f.n),
		Data:       json.RawMessage(`{"summary":"Sessão <reembolso> & co","n":` + fmt.Sprint(f.n) + `}`),
		DedupKey:   fmt.Sprintf("key-%d-%d", now.UnixNano(), f.n),
	}
}

func targets(sinks ...string) []queue.Target {
	out := make([]queue.Target, len(sinks))
	for i, s := range sinks {
		out[i] = queue.Target{Sink: s, Routes: []string{"r1", "r2"}}
	}
	return out
}

// accept stores an event of subject for sinks and moves the clock on a
// millisecond, so that events are received in order.
func (f *fixture) accept(subject string, sinks ...string) queue.Accepted {
	f.t.Helper()
	acc, err := f.s.Accept(f.ctx, queue.Incoming{Event: f.event(subject), Targets: targets(sinks...)})
	if err != nil {
		f.t.Fatal(err)
	}
	f.clock.Advance(time.Millisecond)
	return acc
}

func (f *fixture) lease(sink string, limit int, ordered bool) []queue.Delivery {
	f.t.Helper()
	ds, err := f.s.Lease(f.ctx, queue.LeaseRequest{Sink: sink, Limit: limit, For: time.Minute, Ordered: ordered})
	if err != nil {
		f.t.Fatal(err)
	}
	return ds
}

func (f *fixture) complete(d *queue.Delivery, o queue.Outcome) {
	f.t.Helper()
	if err := f.s.Complete(f.ctx, d, o); err != nil {
		f.t.Fatalf("complete %s: %v", d.ID, err)
	}
}

// delivery returns the stored state of one delivery.
func (f *fixture) delivery(id string) queue.DeliveryInfo {
	f.t.Helper()
	ds, err := f.s.List(f.ctx, queue.Filter{ID: id})
	if err != nil || len(ds) != 1 {
		f.t.Fatalf("delivery %s: %+v, %v", id, ds, err)
	}
	return ds[0]
}

func eventIDs(ds []queue.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.EventID
	}
	return out
}

var (
	delivered = queue.Outcome{State: queue.StateDelivered, Status: 200, Took: 12 * time.Millisecond}
	dead      = queue.Outcome{State: queue.StateDead, Error: "HTTP 400: bad request", Status: 400}
)

func (f *fixture) failed(in time.Duration) queue.Outcome {
	return queue.Outcome{State: queue.StateFailed, NextAt: f.clock.Now().Add(in), Error: "HTTP 503", Status: 503, Took: 30 * time.Millisecond}
}

func testAcceptAndLease(t *testing.T, f *fixture) {
	ev := f.event("sess-1")
	acc, err := f.s.Accept(f.ctx, queue.Incoming{Event: ev, Targets: targets("slack", "archive")})
	if err != nil {
		t.Fatal(err)
	}
	if acc.EventID != ev.ID || acc.Duplicate || len(acc.Deliveries) != 2 {
		t.Fatalf("accepted = %+v", acc)
	}
	got := f.lease("slack", 10, false)
	if len(got) != 1 {
		t.Fatalf("leased %d deliveries, want 1", len(got))
	}
	d := got[0]
	if d.ID != acc.Deliveries[0] || d.EventID != ev.ID || d.Sink != "slack" || d.Attempt != 1 || d.Subject != "sess-1" ||
		!slices.Equal(d.Routes, []string{"r1", "r2"}) || d.LastError != "" {
		t.Fatalf("delivery = %+v", d)
	}
	if !d.CreatedAt.Equal(ev.ReceivedAt.Truncate(time.Millisecond)) || !d.Since.Equal(d.CreatedAt) {
		t.Fatalf("created %v, since %v; want both %v", d.CreatedAt, d.Since, ev.ReceivedAt)
	}
	e := d.Event
	if e == nil || e.ID != ev.ID || e.Source != ev.Source || e.EventType != ev.EventType || e.Subject != ev.Subject ||
		e.AgentID != ev.AgentID || e.AgentName != ev.AgentName || e.ExternalID != ev.ExternalID || string(e.Data) != string(ev.Data) ||
		!e.Timestamp.Equal(ev.Timestamp) || !e.ReceivedAt.Equal(ev.ReceivedAt) {
		t.Fatalf("leased event = %+v, want %+v", e, ev)
	}
	// Leased: no one else gets it until the lease ends.
	if again := f.lease("slack", 10, false); len(again) != 0 {
		t.Fatalf("leased twice: %+v", again)
	}
	f.clock.Advance(time.Minute + time.Millisecond)
	again := f.lease("slack", 10, false)
	// The expired attempt never completed: it is not counted.
	if len(again) != 1 || again[0].ID != d.ID || again[0].Attempt != 1 || again[0].Token == d.Token {
		t.Fatalf("after the lease expired: %+v (first lease's token %d)", again, d.Token)
	}
	f.complete(&again[0], delivered)
	f.clock.Advance(time.Hour)
	if more := f.lease("slack", 10, false); len(more) != 0 {
		t.Fatalf("a delivered delivery was leased again: %+v", more)
	}
	if info := f.delivery(d.ID); info.State != queue.StateDelivered || info.Attempts != 1 || info.LastStatus != 200 ||
		info.EventType != ev.EventType || info.Source != "darwin" || info.Sink != "slack" {
		t.Fatalf("delivered = %+v", info)
	}
	if info := f.delivery(acc.Deliveries[1]); info.State != queue.StatePending || info.Sink != "archive" {
		t.Fatalf("the other sink's delivery = %+v", info)
	}
}

func testDedup(t *testing.T, f *fixture) {
	ev := f.event("s")
	first, err := f.s.Accept(f.ctx, queue.Incoming{Event: ev, Targets: targets("slack")})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		again := *ev
		again.ID = event.NewID("evt_", f.clock.Now())
		dup, err := f.s.Accept(f.ctx, queue.Incoming{Event: &again, Targets: targets("slack", "crm")})
		if err != nil {
			t.Fatal(err)
		}
		if !dup.Duplicate || dup.EventID != first.EventID || len(dup.Deliveries) != 0 {
			t.Fatalf("duplicate = %+v, want the original id %s and no deliveries", dup, first.EventID)
		}
	}
	other := *ev
	other.ID = event.NewID("evt_", f.clock.Now())
	other.Source = "other-source"
	if acc, err := f.s.Accept(f.ctx, queue.Incoming{Event: &other, Targets: targets("slack")}); err != nil || acc.Duplicate {
		t.Fatalf("same key from another source: %+v, %v", acc, err)
	}
	counts, err := f.s.Counts(f.ctx)
	if err != nil || counts["slack"][queue.StatePending] != 2 || counts["crm"][queue.StatePending] != 0 {
		t.Fatalf("counts = %v, %v; want 2 pending for slack, none for crm", counts, err)
	}
	// No dedup key: the event's own id is the key.
	nokey := f.event("s")
	nokey.DedupKey = ""
	if acc, err := f.s.Accept(f.ctx, queue.Incoming{Event: nokey, Targets: targets("slack")}); err != nil || acc.Duplicate || acc.EventID != nokey.ID {
		t.Fatalf("event without a dedup key: %+v, %v", acc, err)
	}
}

// testDedupConcurrent posts the same event from many goroutines at
// once (as a sender retrying against several replicas would): it is
// stored once, and every answer carries its id.
func testDedupConcurrent(t *testing.T, f *fixture) {
	base := f.event("s")
	const n = 16
	var wg sync.WaitGroup
	res := make([]queue.Accepted, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ev := *base
			ev.ID = fmt.Sprintf("%s-%02d", base.ID, i)
			res[i], errs[i] = f.s.Accept(f.ctx, queue.Incoming{Event: &ev, Targets: targets("slack")})
		})
	}
	wg.Wait()
	stored := ""
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !res[i].Duplicate {
			if stored != "" {
				t.Fatalf("stored twice: %s and %s", stored, res[i].EventID)
			}
			stored = res[i].EventID
		}
	}
	for i := range n {
		if res[i].EventID != stored {
			t.Fatalf("answer %d carries %s, want the stored event's id %s", i, res[i].EventID, stored)
		}
	}
	if w := f.s.Waiting("slack"); w != 1 {
		t.Fatalf("Waiting = %d, want 1", w)
	}
}

func testDedupWindow(t *testing.T, f *fixture) {
	ev := f.event("s")
	in := func() queue.Incoming {
		e := *ev
		e.ID = event.NewID("evt_", f.clock.Now())
		e.ReceivedAt = f.clock.Now()
		return queue.Incoming{Event: &e, Targets: targets("crm"), DedupWindow: time.Hour}
	}
	first, err := f.s.Accept(f.ctx, in())
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(59 * time.Minute)
	if dup, err := f.s.Accept(f.ctx, in()); err != nil || !dup.Duplicate || dup.EventID != first.EventID {
		t.Fatalf("inside the window: %+v, %v; want a duplicate of %s", dup, err, first.EventID)
	}
	f.clock.Advance(2 * time.Minute)
	again, err := f.s.Accept(f.ctx, in())
	if err != nil || again.Duplicate || again.EventID == first.EventID {
		t.Fatalf("outside the window: %+v, %v; want a new event", again, err)
	}
	if dup, _ := f.s.Accept(f.ctx, in()); !dup.Duplicate || dup.EventID != again.EventID {
		t.Fatalf("the new event does not hold the key: %+v", dup)
	}
	// The first event stays stored (until pruned) with its delivery.
	if _, err := f.s.Event(f.ctx, first.EventID); err != nil {
		t.Fatalf("the first event: %v", err)
	}
	if w := f.s.Waiting("crm"); w != 2 {
		t.Fatalf("Waiting = %d, want 2", w)
	}
}

func testRetryAndDead(t *testing.T, f *fixture) {
	acc := f.accept("s", "crm")
	d := f.lease("crm", 1, false)
	if len(d) != 1 {
		t.Fatalf("leased %v", d)
	}
	retry := f.failed(10 * time.Second)
	f.complete(&d[0], retry)
	if due, ok, err := f.s.NextDue(f.ctx, "crm", false); err != nil || !ok || !due.Equal(retry.NextAt.Truncate(time.Millisecond)) {
		t.Fatalf("NextDue = %v %v %v, want %v", due, ok, err, retry.NextAt)
	}
	if info := f.delivery(acc.Deliveries[0]); info.State != queue.StateFailed || info.Attempts != 1 || info.LastError != "HTTP 503" ||
		info.LastStatus != 503 || !info.NextAt.Equal(retry.NextAt.Truncate(time.Millisecond)) {
		t.Fatalf("failed = %+v", info)
	}
	if got := f.lease("crm", 1, false); len(got) != 0 {
		t.Fatal("leased before its retry time")
	}
	f.clock.Advance(10 * time.Second)
	got := f.lease("crm", 1, false)
	if len(got) != 1 || got[0].Attempt != 2 || got[0].LastError != "HTTP 503" {
		t.Fatalf("retry lease = %+v", got)
	}
	f.complete(&got[0], dead)
	info := f.delivery(acc.Deliveries[0])
	if info.State != queue.StateDead || info.Attempts != 2 || info.LastError != dead.Error || info.LastStatus != 400 {
		t.Fatalf("dead delivery = %+v", info)
	}
	if _, ok, _ := f.s.NextDue(f.ctx, "crm", false); ok {
		t.Fatal("a dead delivery is still due")
	}
	if w := f.s.Waiting("crm"); w != 0 {
		t.Fatalf("Waiting = %d after the delivery died", w)
	}
	// A long error is cut, on a rune boundary.
	acc = f.accept("s", "crm")
	got = f.lease("crm", 1, false)
	long := string(make([]byte, 0)) + fmt.Sprintf("%0*d", queue.MaxError+500, 0)
	f.complete(&got[0], queue.Outcome{State: queue.StateDead, Error: long})
	if info := f.delivery(acc.Deliveries[0]); len(info.LastError) > queue.MaxError+len("…") || !queue.SameError(info.LastError, long) {
		t.Fatalf("recorded error of %d bytes", len(info.LastError))
	}
	// An invalid outcome is refused.
	acc = f.accept("s", "crm")
	got = f.lease("crm", 1, false)
	if err := f.s.Complete(f.ctx, &got[0], queue.Outcome{State: "bogus"}); err == nil {
		t.Fatal("an invalid state was accepted")
	}
}

// testLeaseFencing: a late attempt whose lease expired and was taken
// over cannot complete, renew, or end the newer attempt's lease; a
// third attempt cannot start alongside.
func testLeaseFencing(t *testing.T, f *fixture) {
	acc := f.accept("s", "crm")
	first := f.lease("crm", 1, false)
	f.clock.Advance(time.Minute + time.Millisecond)
	second := f.lease("crm", 1, false)
	if len(first) != 1 || len(second) != 1 || first[0].ID != second[0].ID || first[0].Token == second[0].Token {
		t.Fatalf("leases = %+v, %+v; want the same delivery under two tokens", first, second)
	}
	if err := f.s.Complete(f.ctx, &first[0], delivered); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("late Complete = %v, want ErrLeaseLost", err)
	}
	if err := f.s.Renew(f.ctx, &first[0], time.Minute); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("late Renew = %v, want ErrLeaseLost", err)
	}
	if info := f.delivery(acc.Deliveries[0]); info.State != queue.StatePending || info.Attempts != 0 {
		t.Fatalf("a late completion changed the delivery: %+v", info)
	}
	// The newer lease still holds: no third attempt.
	if third := f.lease("crm", 1, false); len(third) != 0 {
		t.Fatalf("a third attempt started alongside the second: %+v", third)
	}
	f.complete(&second[0], f.failed(time.Second))
	// Completed: its token is spent.
	if err := f.s.Complete(f.ctx, &second[0], delivered); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("second Complete of one lease = %v, want ErrLeaseLost", err)
	}
	if info := f.delivery(acc.Deliveries[0]); info.State != queue.StateFailed || info.Attempts != 1 {
		t.Fatalf("after the newer attempt failed: %+v", info)
	}
	// A delivery never leased cannot be completed.
	other := f.accept("t", "crm")
	fake := queue.Delivery{ID: other.Deliveries[0], EventID: other.EventID, Sink: "crm", Attempt: 1, Token: second[0].Token + 1000}
	if err := f.s.Complete(f.ctx, &fake, delivered); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("Complete without a lease = %v, want ErrLeaseLost", err)
	}
}

// testLateCompletionHonoured: an expired lease that no one took over
// still records its outcome: the delivery is not sent again.
func testLateCompletionHonoured(t *testing.T, f *fixture) {
	acc := f.accept("s", "crm")
	d := f.lease("crm", 1, false)
	f.clock.Advance(2 * time.Minute)
	f.complete(&d[0], delivered)
	if info := f.delivery(acc.Deliveries[0]); info.State != queue.StateDelivered {
		t.Fatalf("late completion = %+v", info)
	}
	if again := f.lease("crm", 1, false); len(again) != 0 {
		t.Fatalf("leased again after a late success: %+v", again)
	}
}

func testRenew(t *testing.T, f *fixture) {
	f.accept("s", "crm")
	d := f.lease("crm", 1, false)
	f.clock.Advance(50 * time.Second)
	if err := f.s.Renew(f.ctx, &d[0], time.Minute); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(50 * time.Second) // past the first lease, inside the renewed one
	if again := f.lease("crm", 1, false); len(again) != 0 {
		t.Fatalf("a renewed lease was taken over: %+v", again)
	}
	f.clock.Advance(11 * time.Second)
	if again := f.lease("crm", 1, false); len(again) != 1 {
		t.Fatalf("the renewed lease did not expire: %+v", again)
	}
}

func testOrdered(t *testing.T, f *fixture) {
	a1 := f.accept("A", "slack").EventID
	a2 := f.accept("A", "slack").EventID
	b1 := f.accept("B", "slack").EventID
	b2 := f.accept("B", "slack").EventID
	n1 := f.accept("", "slack").EventID // no subject: never held back
	n2 := f.accept("", "slack").EventID

	heads := f.lease("slack", 10, true)
	if got, want := eventIDs(heads), []string{a1, b1, n1, n2}; !slices.Equal(got, want) {
		t.Fatalf("first ordered lease = %v, want the heads %v", got, want)
	}
	if due, ok, _ := f.s.NextDue(f.ctx, "slack", true); ok {
		t.Fatalf("NextDue with every head leased = %v, want nothing: the followers wait for their heads", due)
	}
	byEvent := map[string]*queue.Delivery{}
	for i := range heads {
		byEvent[heads[i].EventID] = &heads[i]
	}
	// A1 fails and waits a minute: only A waits; B moves on.
	f.complete(byEvent[a1], f.failed(time.Minute))
	f.complete(byEvent[b1], delivered)
	f.complete(byEvent[n1], delivered)
	f.complete(byEvent[n2], delivered)
	next := f.lease("slack", 10, true)
	if got := eventIDs(next); !slices.Equal(got, []string{b2}) {
		t.Fatalf("lease after A1 failed, B1 delivered = %v, want [B2]", got)
	}
	f.complete(&next[0], delivered)
	f.clock.Advance(time.Minute)
	retry := f.lease("slack", 10, true)
	if got := eventIDs(retry); !slices.Equal(got, []string{a1}) {
		t.Fatalf("lease when A1 is due again = %v, want [A1] before A2", got)
	}
	// A1 dead: it no longer holds A2 back.
	f.complete(&retry[0], dead)
	if got := eventIDs(f.lease("slack", 10, true)); !slices.Equal(got, []string{a2}) {
		t.Fatalf("lease after A1 died = %v, want [A2]", got)
	}
	// Unordered, the same subject's deliveries are leased at once.
	x1 := f.accept("X", "crm").EventID
	x2 := f.accept("X", "crm").EventID
	if got := eventIDs(f.lease("crm", 10, false)); !slices.Equal(got, []string{x1, x2}) {
		t.Fatalf("unordered lease = %v, want [%s %s]", got, x1, x2)
	}
}

func testWaiting(t *testing.T, f *fixture) {
	for range 3 {
		f.accept("A", "a", "b")
	}
	if a, b := f.s.Waiting("a"), f.s.Waiting("b"); a != 3 || b != 3 {
		t.Fatalf("Waiting after 3 events × 2 sinks = %d, %d; want 3, 3", a, b)
	}
	ds := f.lease("a", 3, false)
	f.complete(&ds[0], delivered)
	f.complete(&ds[1], f.failed(0))
	f.complete(&ds[2], dead)
	if a := f.s.Waiting("a"); a != 1 {
		t.Fatalf("Waiting after one delivered, one failed, one dead = %d, want 1", a)
	}
	if n, err := f.s.Replay(f.ctx, queue.Filter{Sink: "a", States: []string{queue.StateDead, queue.StateDelivered}}); err != nil || n != 2 {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	if a := f.s.Waiting("a"); a != 3 {
		t.Fatalf("Waiting after replaying two = %d, want 3", a)
	}
	if n, err := f.s.Purge(f.ctx, queue.Filter{Sink: "b"}, false); err != nil || n != 3 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	if b := f.s.Waiting("b"); b != 0 {
		t.Fatalf("Waiting after purging = %d, want 0", b)
	}
	waiting, err := f.s.WaitingBySink(f.ctx)
	if err != nil || waiting["a"] != 3 || waiting["b"] != 0 {
		t.Fatalf("WaitingBySink = %v, %v", waiting, err)
	}
	oldest, ok, err := f.s.OldestPending(f.ctx)
	if err != nil || !ok || oldest.After(f.clock.Now()) {
		t.Fatalf("OldestPending = %v %v %v", oldest, ok, err)
	}
	// A new store on the same storage counts the same.
	f.s.Close()
	s := f.open(f.clock.Now)
	if a, b := s.Waiting("a"), s.Waiting("b"); a != 3 || b != 0 {
		t.Fatalf("Waiting after reopening = %d, %d; want 3, 0", a, b)
	}
}

func testReplay(t *testing.T, f *fixture) {
	id := f.accept("A", "crm", "archive").EventID
	other := f.accept("B", "crm").EventID
	for _, sink := range []string{"crm", "archive"} {
		for _, d := range f.lease(sink, 10, false) {
			o := dead
			if sink == "archive" {
				o = delivered
			}
			f.complete(&d, o)
		}
	}
	if _, err := f.s.Replay(f.ctx, queue.Filter{}); !errors.Is(err, queue.ErrNoFilter) {
		t.Fatalf("a replay of everything = %v, want ErrNoFilter", err)
	}
	if _, err := f.s.Replay(f.ctx, queue.Filter{Sink: "crm", States: []string{"bogus"}}); err == nil {
		t.Fatal("an unknown state was accepted")
	}
	deadList, err := f.s.List(f.ctx, queue.Filter{States: []string{queue.StateDead}})
	if err != nil || len(deadList) != 2 || deadList[0].LastStatus != 400 || deadList[0].Attempts != 1 || deadList[0].EventType == "" {
		t.Fatalf("dead letters = %+v, %v", deadList, err)
	}
	f.clock.Advance(time.Hour)
	// Only those that changed in the last minute: none.
	if n, _ := f.s.Replay(f.ctx, queue.Filter{Sink: "crm", States: []string{queue.StateDead}, Since: f.clock.Now().Add(-time.Minute)}); n != 0 {
		t.Fatalf("replayed %d deliveries older than since", n)
	}
	if n, err := f.s.Replay(f.ctx, queue.Filter{EventID: id}); err != nil || n != 2 {
		t.Fatalf("replay of an event = %d, %v; want its 2 deliveries", n, err)
	}
	got := f.lease("crm", 10, false)
	if len(got) != 1 || got[0].EventID != id || got[0].Attempt != 1 || got[0].Replays != 1 ||
		!got[0].Since.Equal(f.clock.Now().Truncate(time.Millisecond)) {
		t.Fatalf("lease after replay = %+v, want event %s, attempt 1, since now", got, id)
	}
	infos, _ := f.s.List(f.ctx, queue.Filter{EventID: id, Sink: "crm"})
	if len(infos) != 1 || infos[0].Replays != 1 || infos[0].State != queue.StatePending || infos[0].Attempts != 0 {
		t.Fatalf("after replay: %+v", infos)
	}
	if n, _ := f.s.Replay(f.ctx, queue.Filter{Sink: "crm", States: []string{queue.StateDead}}); n != 1 {
		t.Fatalf("replay of crm's dead = %d, want 1 (event %s)", n, other)
	}
}

// testReplayInFlight: a replay of a delivery whose attempt is in flight
// takes effect after that attempt, whatever its outcome.
func testReplayInFlight(t *testing.T, f *fixture) {
	acc := f.accept("s", "crm")
	d := f.lease("crm", 1, false)
	if n, err := f.s.Replay(f.ctx, queue.Filter{ID: acc.Deliveries[0]}); err != nil || n != 1 {
		t.Fatalf("replay in flight = %d, %v; want 1", n, err)
	}
	// Not handed out again while the attempt runs.
	if again := f.lease("crm", 1, false); len(again) != 0 {
		t.Fatalf("leased while its attempt runs: %+v", again)
	}
	f.complete(&d[0], delivered)
	info := f.delivery(acc.Deliveries[0])
	if info.State != queue.StatePending || info.Replays != 1 {
		t.Fatalf("after the attempt: %+v, want pending for the replay", info)
	}
	again := f.lease("crm", 1, false)
	if len(again) != 1 || again[0].Attempt != 1 || again[0].Replays != 1 {
		t.Fatalf("the replay = %+v", again)
	}
	f.complete(&again[0], delivered)
	if info := f.delivery(acc.Deliveries[0]); info.State != queue.StateDelivered {
		t.Fatalf("after the replay: %+v", info)
	}
	hist, err := f.s.Attempts(f.ctx, acc.Deliveries[0])
	if err != nil || len(hist) != 2 || hist[0].Replays != 0 || hist[1].Replays != 1 || hist[0].State != queue.StateDelivered {
		t.Fatalf("history = %+v, %v; want the attempt before the replay and the replay's", hist, err)
	}
	if w := f.s.Waiting("crm"); w != 0 {
		t.Fatalf("Waiting = %d, want 0", w)
	}
}

func testPurge(t *testing.T, f *fixture) {
	old := f.accept("s", "gone", "kept")
	f.clock.Advance(2 * time.Hour)
	f.accept("s", "gone")
	f.accept("s", "gone")
	inFlight := f.lease("gone", 1, false)
	if len(inFlight) != 1 || inFlight[0].EventID != old.EventID {
		t.Fatalf("leased %+v", inFlight)
	}
	if _, err := f.s.Purge(f.ctx, queue.Filter{}, true); !errors.Is(err, queue.ErrNoFilter) {
		t.Fatalf("purge without a sink = %v, want ErrNoFilter", err)
	}
	// A dry run counts and deletes nothing; the attempt in flight is
	// left alone.
	if n, err := f.s.Purge(f.ctx, queue.Filter{Sink: "gone"}, true); err != nil || n != 2 {
		t.Fatalf("dry run = %d, %v; want 2", n, err)
	}
	if w := f.s.Waiting("gone"); w != 3 {
		t.Fatalf("a dry run changed Waiting: %d", w)
	}
	// Before: only what last changed before then.
	if n, err := f.s.Purge(f.ctx, queue.Filter{Sink: "gone", Before: f.clock.Now().Add(-time.Hour)}, true); err != nil || n != 0 {
		t.Fatalf("dry run before an hour ago = %d, %v; want 0 (the old one is in flight)", n, err)
	}
	if n, err := f.s.Purge(f.ctx, queue.Filter{Sink: "gone", States: []string{queue.StatePending}}, false); err != nil || n != 2 {
		t.Fatalf("purge = %d, %v; want 2", n, err)
	}
	if w := f.s.Waiting("gone"); w != 1 {
		t.Fatalf("Waiting after the purge = %d, want 1 (in flight)", w)
	}
	if w := f.s.Waiting("kept"); w != 1 {
		t.Fatalf("another sink's backlog changed: %d", w)
	}
	// The attempt in flight completes normally.
	f.complete(&inFlight[0], dead)
	if n, err := f.s.Purge(f.ctx, queue.Filter{Sink: "gone", States: []string{queue.StateDead}}, false); err != nil || n != 1 {
		t.Fatalf("purge of the dead = %d, %v; want 1", n, err)
	}
	if ds, _ := f.s.List(f.ctx, queue.Filter{Sink: "gone"}); len(ds) != 0 {
		t.Fatalf("left after purging: %+v", ds)
	}
}

func testListAndEvents(t *testing.T, f *fixture) {
	var ids []string
	for i := range 5 {
		ids = append(ids, f.accept(fmt.Sprint("s", i%2), "crm", "slack").EventID)
	}
	ds := f.lease("crm", 2, false)
	f.complete(&ds[0], dead)
	f.complete(&ds[1], f.failed(time.Minute))
	all, err := f.s.List(f.ctx, queue.Filter{})
	if err != nil || len(all) != 10 {
		t.Fatalf("List = %d deliveries, %v; want 10", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].UpdatedAt.After(all[i-1].UpdatedAt) {
			t.Fatalf("List is not most recently changed first: %v after %v", all[i].UpdatedAt, all[i-1].UpdatedAt)
		}
	}
	if all[0].ID != ds[1].ID {
		t.Fatalf("the most recently changed delivery is %s, want %s", all[0].ID, ds[1].ID)
	}
	limited, _ := f.s.List(f.ctx, queue.Filter{Limit: 3})
	if len(limited) != 3 || limited[0].ID != all[0].ID {
		t.Fatalf("List with a limit = %+v", limited)
	}
	for _, tc := range []struct {
		f    queue.Filter
		want int
	}{
		{queue.Filter{Sink: "crm"}, 5},
		{queue.Filter{States: []string{queue.StateDead}}, 1},
		{queue.Filter{States: []string{queue.StateDead, queue.StateFailed}}, 2},
		{queue.Filter{Sink: "slack", States: []string{queue.StatePending}}, 5},
		{queue.Filter{EventID: ids[0]}, 2},
		{queue.Filter{ID: ds[0].ID}, 1},
		{queue.Filter{Since: f.clock.Now()}, 2},
		{queue.Filter{Before: f.clock.Now()}, 8},
	} {
		got, err := f.s.List(f.ctx, tc.f)
		if err != nil || len(got) != tc.want {
			t.Errorf("List(%+v) = %d, %v; want %d", tc.f, len(got), err, tc.want)
		}
	}
	counts, err := f.s.Counts(f.ctx)
	if err != nil || counts["crm"][queue.StateDead] != 1 || counts["crm"][queue.StateFailed] != 1 ||
		counts["crm"][queue.StatePending] != 3 || counts["slack"][queue.StatePending] != 5 {
		t.Fatalf("Counts = %v, %v", counts, err)
	}

	evs, err := f.s.Events(f.ctx, queue.EventFilter{})
	if err != nil || len(evs) != 5 || evs[0].ID != ids[4] || evs[4].ID != ids[0] {
		t.Fatalf("Events = %+v, %v; want 5, newest first", evs, err)
	}
	if evs, _ := f.s.Events(f.ctx, queue.EventFilter{Limit: 2}); len(evs) != 2 || evs[0].ID != ids[4] {
		t.Fatalf("Events with a limit = %+v", evs)
	}
	if evs, _ := f.s.Events(f.ctx, queue.EventFilter{Source: "nope"}); len(evs) != 0 {
		t.Fatalf("Events of an unknown source = %+v", evs)
	}
	if evs, _ := f.s.Events(f.ctx, queue.EventFilter{EventType: "session.forwarded.escalated", Source: "darwin"}); len(evs) != 5 {
		t.Fatalf("Events by type = %d", len(evs))
	}
	if evs, _ := f.s.Events(f.ctx, queue.EventFilter{Since: f.clock.Now().Add(-2 * time.Millisecond)}); len(evs) != 2 {
		t.Fatalf("Events since = %d, want 2", len(evs))
	}
	one, err := f.s.Event(f.ctx, ids[2])
	if err != nil || one.ID != ids[2] || one.Subject != "s0" || one.Source != "darwin" || one.ExternalID == "" {
		t.Fatalf("Event = %+v, %v", one, err)
	}
	var body map[string]any
	if err := json.Unmarshal(one.JSON, &body); err != nil || body["id"] != ids[2] || body["data"].(map[string]any)["summary"] != "Sessão <reembolso> & co" {
		t.Fatalf("Event JSON = %s, %v", one.JSON, err)
	}
	if _, err := f.s.Event(f.ctx, "evt_nope"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("unknown event: %v, want ErrNotFound", err)
	}
}

func testAttempts(t *testing.T, f *fixture) {
	acc := f.accept("s", "crm")
	d := f.lease("crm", 1, false)
	f.complete(&d[0], f.failed(time.Second))
	f.clock.Advance(time.Second)
	d = f.lease("crm", 1, false)
	f.complete(&d[0], f.failed(time.Second))
	f.clock.Advance(time.Second)
	d = f.lease("crm", 1, false)
	f.complete(&d[0], delivered)
	hist, err := f.s.Attempts(f.ctx, acc.Deliveries[0])
	if err != nil || len(hist) != 3 {
		t.Fatalf("history = %+v, %v; want 3 attempts", hist, err)
	}
	for i, a := range hist {
		want := queue.StateFailed
		if i == 2 {
			want = queue.StateDelivered
		}
		if a.Attempt != i+1 || a.State != want || a.At.IsZero() {
			t.Fatalf("attempt %d = %+v", i+1, a)
		}
	}
	if hist[0].Status != 503 || hist[0].Error != "HTTP 503" || hist[0].Took != 30*time.Millisecond || hist[2].Status != 200 {
		t.Fatalf("history = %+v", hist)
	}
	// A first attempt that delivered.
	acc = f.accept("s", "crm")
	d = f.lease("crm", 1, false)
	f.complete(&d[0], delivered)
	hist, err = f.s.Attempts(f.ctx, acc.Deliveries[0])
	if err != nil || len(hist) != 1 || hist[0].State != queue.StateDelivered || hist[0].Took != delivered.Took || hist[0].Status != 200 {
		t.Fatalf("history of a first-time delivery = %+v, %v", hist, err)
	}
	// Not attempted yet: no history.
	acc = f.accept("s", "crm")
	if hist, err := f.s.Attempts(f.ctx, acc.Deliveries[0]); err != nil || len(hist) != 0 {
		t.Fatalf("history of a pending delivery = %+v, %v", hist, err)
	}
	if _, err := f.s.Attempts(f.ctx, "dlv_nope"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("history of an unknown delivery: %v, want ErrNotFound", err)
	}
}

func testPrune(t *testing.T, f *fixture) {
	window := func(string) time.Duration { return time.Hour }
	waiting := f.accept("s", "crm")
	done := f.accept("s", "archive")
	f.clock.Advance(2 * time.Hour)
	recent := f.accept("s", "archive")
	for _, d := range f.lease("archive", 10, false) {
		f.complete(&d, delivered)
	}
	n, err := f.s.Prune(f.ctx, window)
	if err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want only the old, delivered event", n, err)
	}
	if _, err := f.s.Event(f.ctx, done.EventID); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("the pruned event: %v", err)
	}
	if ds, _ := f.s.List(f.ctx, queue.Filter{EventID: done.EventID}); len(ds) != 0 {
		t.Fatalf("the pruned event's deliveries remain: %+v", ds)
	}
	for _, id := range []string{waiting.EventID, recent.EventID} {
		if _, err := f.s.Event(f.ctx, id); err != nil {
			t.Fatalf("event %s: %v", id, err)
		}
	}
	// A source without a window keeps everything.
	if n, _ := f.s.Prune(f.ctx, func(string) time.Duration { return 0 }); n != 0 {
		t.Fatalf("pruned %d with no window", n)
	}
}

// testSurvivesReopen: a pending delivery, and one whose attempt was cut
// short (still leased when the store closed), are due after a restart.
func testSurvivesReopen(t *testing.T, f *fixture) {
	acc := f.accept("s", "slack", "archive")
	if d := f.lease("slack", 1, false); len(d) != 1 {
		t.Fatal("not leased")
	}
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := f.s.Accept(f.ctx, queue.Incoming{Event: f.event("s"), Targets: targets("slack")}); !errors.Is(err, queue.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want ErrClosed", err)
	}
	// The lease died with the process; a restart takes at most the
	// lease's time to hand the delivery out again.
	f.clock.Advance(time.Minute + time.Millisecond)
	f.s = f.open(f.clock.Now)
	for _, sink := range []string{"slack", "archive"} {
		got := f.lease(sink, 10, false)
		if len(got) != 1 || got[0].EventID != acc.EventID || got[0].Attempt != 1 {
			t.Fatalf("%s after reopen: %+v", sink, got)
		}
	}
}

func testInvalidInput(t *testing.T, f *fixture) {
	if _, err := f.s.List(f.ctx, queue.Filter{States: []string{"nope"}}); err == nil {
		t.Fatal("List with an unknown state")
	}
	if _, err := f.s.Purge(f.ctx, queue.Filter{Sink: "x", States: []string{"nope"}}, true); err == nil {
		t.Fatal("Purge with an unknown state")
	}
	// Hostile text is data, not SQL.
	acc := f.accept("'; DROP TABLE deliveries; --", "crm'")
	if ds, err := f.s.List(f.ctx, queue.Filter{Sink: "crm'"}); err != nil || len(ds) != 1 || ds[0].EventID != acc.EventID {
		t.Fatalf("List of a quoted sink = %+v, %v", ds, err)
	}
	if f.s.Health() != nil {
		t.Fatalf("Health = %v", f.s.Health())
	}
	if f.s.Describe() == "" {
		t.Fatal("Describe is empty")
	}
}

// testOutcomeFault: while the storage refuses writes, an outcome that
// cannot be written keeps the lease with its holder (no other attempt
// starts), Health reports it, and the outcome lands once the fault
// clears.
func testOutcomeFault(t *testing.T, f *fixture, fault func(*testing.T, queue.Store) func()) {
	acc := f.accept("s", "crm")
	d := f.lease("crm", 1, false)
	heal := fault(t, f.s)
	ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
	err := f.s.Complete(ctx, &d[0], delivered)
	cancel()
	if err == nil {
		heal()
		t.Fatal("Complete succeeded while the storage refused writes")
	}
	if errors.Is(err, queue.ErrLeaseLost) {
		heal()
		t.Fatalf("Complete = %v: a storage fault must not end the lease", err)
	}
	if f.s.Health() == nil {
		heal()
		t.Fatal("Health is nil while writes fail")
	}
	// A backend whose leases live in memory still leases and renews; one
	// whose leases live in the failing storage cannot, and must then
	// fail without handing the delivery out or calling the lease lost.
	again, _ := f.s.Lease(f.ctx, queue.LeaseRequest{Sink: "crm", Limit: 1, For: time.Minute})
	if len(again) != 0 {
		heal()
		t.Fatalf("leased again while its outcome waits to be written: %+v", again)
	}
	if err := f.s.Renew(f.ctx, &d[0], time.Minute); errors.Is(err, queue.ErrLeaseLost) {
		heal()
		t.Fatalf("Renew of the held lease: %v", err)
	}
	heal()
	if err := f.s.Renew(f.ctx, &d[0], time.Minute); err != nil {
		t.Fatalf("Renew of the held lease once the fault cleared: %v", err)
	}
	f.complete(&d[0], delivered)
	if f.s.Health() != nil {
		t.Fatalf("Health after the fault cleared = %v", f.s.Health())
	}
	if info := f.delivery(acc.Deliveries[0]); info.State != queue.StateDelivered || info.Attempts != 1 {
		t.Fatalf("after the fault: %+v", info)
	}
}

func (f *fixture) leaseWith(s queue.Store, r queue.LeaseRequest) []queue.Delivery {
	f.t.Helper()
	if r.For == 0 {
		r.For = time.Minute
	}
	ds, err := s.Lease(f.ctx, r)
	if err != nil {
		f.t.Fatal(err)
	}
	return ds
}

// testConcurrency: a sink's concurrency bounds its leases at once,
// whatever Limit asks; completed and expired leases free their place.
func testConcurrency(t *testing.T, f *fixture) {
	for range 5 {
		f.accept("s", "crm")
	}
	f.accept("s", "other")
	req := queue.LeaseRequest{Sink: "crm", Limit: 10, Concurrency: 2}
	first := f.leaseWith(f.s, req)
	if len(first) != 2 {
		t.Fatalf("leased %d with concurrency 2", len(first))
	}
	if more := f.leaseWith(f.s, req); len(more) != 0 {
		t.Fatalf("leased %d more while 2 are held", len(more))
	}
	if other := f.leaseWith(f.s, queue.LeaseRequest{Sink: "other", Limit: 10, Concurrency: 2}); len(other) != 1 {
		t.Fatalf("another sink's lease = %d, want 1: limits are per sink", len(other))
	}
	f.complete(&first[0], delivered)
	if more := f.leaseWith(f.s, req); len(more) != 1 {
		t.Fatalf("after one completed: leased %d, want 1", len(more))
	}
	f.clock.Advance(time.Minute + time.Millisecond)
	if more := f.leaseWith(f.s, req); len(more) != 2 {
		t.Fatalf("after the leases expired: leased %d, want 2", len(more))
	}
}

// testRate: a sink's rate spaces the starts of its attempts, with no
// burst after a quiet spell.
func testRate(t *testing.T, f *fixture) {
	for range 4 {
		f.accept("", "slack")
	}
	req := queue.LeaseRequest{Sink: "slack", Limit: 10, Every: time.Second}
	if got := f.leaseWith(f.s, req); len(got) != 1 {
		t.Fatalf("first paced lease = %d, want 1", len(got))
	}
	if got := f.leaseWith(f.s, req); len(got) != 0 {
		t.Fatalf("leased %d at once after the first", len(got))
	}
	f.clock.Advance(999 * time.Millisecond)
	if got := f.leaseWith(f.s, req); len(got) != 0 {
		t.Fatalf("leased %d before the interval passed", len(got))
	}
	f.clock.Advance(time.Millisecond)
	if got := f.leaseWith(f.s, req); len(got) != 1 {
		t.Fatalf("leased %d once the interval passed, want 1", len(got))
	}
	f.clock.Advance(time.Minute)
	if got := f.leaseWith(f.s, req); len(got) != 1 {
		t.Fatalf("leased %d after a quiet minute, want 1 (no burst)", len(got))
	}
	if got := f.leaseWith(f.s, req); len(got) != 0 {
		t.Fatalf("leased %d at once after the quiet minute's first", len(got))
	}
}

// testReplicasDedup: the same sender event posted to two replicas at
// once is stored once, and every answer carries its id.
func testReplicasDedup(t *testing.T, f *fixture, other queue.Store) {
	base := f.event("s")
	const n = 16
	var wg sync.WaitGroup
	res := make([]queue.Accepted, n)
	errs := make([]error, n)
	for i := range n {
		s := f.s
		if i%2 == 1 {
			s = other
		}
		wg.Go(func() {
			ev := *base
			ev.ID = fmt.Sprintf("%s-%02d", base.ID, i)
			res[i], errs[i] = s.Accept(f.ctx, queue.Incoming{Event: &ev, Targets: targets("slack")})
		})
	}
	wg.Wait()
	stored := ""
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !res[i].Duplicate {
			if stored != "" {
				t.Fatalf("stored twice: %s and %s", stored, res[i].EventID)
			}
			stored = res[i].EventID
		}
	}
	for i := range n {
		if res[i].EventID != stored {
			t.Fatalf("answer %d carries %s, want the stored event's id %s", i, res[i].EventID, stored)
		}
	}
	if evs, err := other.Events(f.ctx, queue.EventFilter{}); err != nil || len(evs) != 1 {
		t.Fatalf("events = %d, %v; want 1", len(evs), err)
	}
}

// testReplicasFencing: a replica whose lease expired and was taken over
// by another cannot complete or renew it.
func testReplicasFencing(t *testing.T, f *fixture, other queue.Store) {
	acc := f.accept("s", "crm")
	first := f.leaseWith(f.s, queue.LeaseRequest{Sink: "crm", Limit: 1})
	if again := f.leaseWith(other, queue.LeaseRequest{Sink: "crm", Limit: 1}); len(again) != 0 {
		t.Fatalf("another replica leased a held delivery: %+v", again)
	}
	f.clock.Advance(time.Minute + time.Millisecond)
	second := f.leaseWith(other, queue.LeaseRequest{Sink: "crm", Limit: 1})
	if len(first) != 1 || len(second) != 1 || first[0].ID != second[0].ID || first[0].Token == second[0].Token {
		t.Fatalf("leases = %+v, %+v; want the same delivery under two tokens", first, second)
	}
	if err := f.s.Complete(f.ctx, &first[0], delivered); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("Complete by the replica that lost the lease = %v, want ErrLeaseLost", err)
	}
	if err := f.s.Renew(f.ctx, &first[0], time.Minute); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("Renew by the replica that lost the lease = %v, want ErrLeaseLost", err)
	}
	if err := other.Complete(f.ctx, &second[0], delivered); err != nil {
		t.Fatal(err)
	}
	if info := f.delivery(acc.Deliveries[0]); info.State != queue.StateDelivered || info.Attempts != 1 {
		t.Fatalf("after the second replica delivered: %+v", info)
	}
}

// testReplicasLateCompletion: an expired lease no replica took over
// still records its outcome, and no replica leases the delivery again.
func testReplicasLateCompletion(t *testing.T, f *fixture, other queue.Store) {
	acc := f.accept("s", "crm")
	d := f.leaseWith(f.s, queue.LeaseRequest{Sink: "crm", Limit: 1})
	f.clock.Advance(2 * time.Minute)
	f.complete(&d[0], delivered)
	if again := f.leaseWith(other, queue.LeaseRequest{Sink: "crm", Limit: 1}); len(again) != 0 {
		t.Fatalf("another replica leased it after a late success: %+v", again)
	}
	if info := f.delivery(acc.Deliveries[0]); info.State != queue.StateDelivered {
		t.Fatalf("late completion = %+v", info)
	}
}

// testReplicasOrdered: an ordered sink has at most one delivery of a
// subject in flight across replicas, and a backoff holds back only its
// own subject.
func testReplicasOrdered(t *testing.T, f *fixture, other queue.Store) {
	ordered := queue.LeaseRequest{Sink: "slack", Limit: 10, Ordered: true}
	a1 := f.accept("A", "slack").EventID
	a2 := f.accept("A", "slack").EventID
	b1 := f.accept("B", "slack").EventID
	b2 := f.accept("B", "slack").EventID
	first := f.leaseWith(f.s, ordered)
	if got := eventIDs(first); !slices.Equal(got, []string{a1, b1}) {
		t.Fatalf("first replica's lease = %v, want the heads [%s %s]", got, a1, b1)
	}
	if got := f.leaseWith(other, ordered); len(got) != 0 {
		t.Fatalf("the other replica leased %v while both heads are in flight", eventIDs(got))
	}
	// A1 fails and waits a minute on one replica: B moves on on the
	// other, A waits.
	f.complete(&first[0], f.failed(time.Minute))
	if got := eventIDs(f.leaseWith(other, ordered)); len(got) != 0 {
		t.Fatalf("other replica's lease = %v with B1 in flight and A1 backing off", got)
	}
	f.complete(&first[1], delivered)
	next := f.leaseWith(other, ordered)
	if got := eventIDs(next); !slices.Equal(got, []string{b2}) {
		t.Fatalf("other replica's lease after B1 delivered = %v, want [%s]", got, b2)
	}
	// A replay of B1 while B2 is in flight waits for B2's attempt: one
	// delivery of B in flight at a time.
	if n, err := other.Replay(f.ctx, queue.Filter{EventID: b1}); err != nil || n != 1 {
		t.Fatalf("replay of B1 = %d, %v", n, err)
	}
	if got := eventIDs(f.leaseWith(f.s, ordered)); len(got) != 0 {
		t.Fatalf("leased %v while B2 is in flight", got)
	}
	if err := other.Complete(f.ctx, &next[0], delivered); err != nil {
		t.Fatal(err)
	}
	replayed := f.leaseWith(f.s, ordered)
	if got := eventIDs(replayed); !slices.Equal(got, []string{b1}) {
		t.Fatalf("lease after B2 = %v, want the replayed [%s]", got, b1)
	}
	f.complete(&replayed[0], delivered)
	f.clock.Advance(time.Minute)
	if got := eventIDs(f.leaseWith(other, ordered)); !slices.Equal(got, []string{a1}) {
		t.Fatalf("lease when A1 is due again = %v, want [%s] before %s", got, a1, a2)
	}
}

// testReplicasLimits: a sink's concurrency and rate count the leases of
// every replica.
func testReplicasLimits(t *testing.T, f *fixture, other queue.Store) {
	for range 6 {
		f.accept("", "crm")
	}
	conc := queue.LeaseRequest{Sink: "crm", Limit: 10, Concurrency: 3}
	mine := f.leaseWith(f.s, queue.LeaseRequest{Sink: "crm", Limit: 2, Concurrency: 3})
	theirs := f.leaseWith(other, conc)
	if len(mine) != 2 || len(theirs) != 1 {
		t.Fatalf("leased %d and %d with a concurrency of 3 between them", len(mine), len(theirs))
	}
	if more := f.leaseWith(f.s, conc); len(more) != 0 {
		t.Fatalf("leased %d more with 3 in flight on two replicas", len(more))
	}
	if err := other.Complete(f.ctx, &theirs[0], delivered); err != nil {
		t.Fatal(err)
	}
	if more := f.leaseWith(f.s, conc); len(more) != 1 {
		t.Fatalf("after the other replica's attempt ended: leased %d, want 1", len(more))
	}

	for range 3 {
		f.accept("", "slack")
	}
	paced := queue.LeaseRequest{Sink: "slack", Limit: 10, Every: time.Second}
	if got := f.leaseWith(f.s, paced); len(got) != 1 {
		t.Fatalf("first paced lease = %d", len(got))
	}
	if got := f.leaseWith(other, paced); len(got) != 0 {
		t.Fatalf("the other replica started an attempt %d within the interval", len(got))
	}
	f.clock.Advance(time.Second)
	if got := f.leaseWith(other, paced); len(got) != 1 {
		t.Fatalf("the other replica's lease once the interval passed = %d, want 1", len(got))
	}
	if got := f.leaseWith(f.s, paced); len(got) != 0 {
		t.Fatalf("leased %d within the other replica's interval", len(got))
	}
}

// testReplicasReplay: a replay issued on one replica (or by the CLI) is
// carried out by another.
func testReplicasReplay(t *testing.T, f *fixture, other queue.Store) {
	acc := f.accept("s", "crm")
	d := f.leaseWith(f.s, queue.LeaseRequest{Sink: "crm", Limit: 1})
	f.complete(&d[0], dead)
	if n, err := f.s.Replay(f.ctx, queue.Filter{Sink: "crm", States: []string{queue.StateDead}}); err != nil || n != 1 {
		t.Fatalf("replay = %d, %v", n, err)
	}
	got := f.leaseWith(other, queue.LeaseRequest{Sink: "crm", Limit: 1})
	if len(got) != 1 || got[0].ID != acc.Deliveries[0] || got[0].Replays != 1 || got[0].Attempt != 1 {
		t.Fatalf("the other replica's lease = %+v", got)
	}
	if err := other.Complete(f.ctx, &got[0], delivered); err != nil {
		t.Fatal(err)
	}
	hist, err := f.s.Attempts(f.ctx, acc.Deliveries[0])
	if err != nil || len(hist) != 2 || hist[0].State != queue.StateDead || hist[1].State != queue.StateDelivered {
		t.Fatalf("history = %+v, %v", hist, err)
	}
}

// testOperatorsBeforeFirstLease: a replay, a purge or a give-up of a
// delivery accepted a moment ago, before any lease, is what the next
// lease sees (a backend keeping fresh deliveries aside must not hand
// out the version from before the operator's change).
func testOperatorsBeforeFirstLease(t *testing.T, f *fixture) {
	replayed := f.accept("s", "crm")
	if n, err := f.s.Replay(f.ctx, queue.Filter{ID: replayed.Deliveries[0]}); err != nil || n != 1 {
		t.Fatalf("replay = %d, %v", n, err)
	}
	got := f.lease("crm", 10, false)
	if len(got) != 1 || got[0].Replays != 1 {
		t.Fatalf("lease after a replay = %+v, want the delivery in its replayed run", got)
	}
	f.complete(&got[0], delivered)
	if info := f.delivery(replayed.Deliveries[0]); info.State != queue.StateDelivered {
		t.Fatalf("after its attempt: %+v, want delivered", info)
	}

	purged := f.accept("s", "crm")
	if n, err := f.s.Purge(f.ctx, queue.Filter{Sink: "crm", States: []string{queue.StatePending}}, false); err != nil || n != 1 {
		t.Fatalf("purge = %d, %v", n, err)
	}
	if got := f.lease("crm", 10, false); len(got) != 0 {
		t.Fatalf("leased a purged delivery: %+v (event %s)", got, purged.EventID)
	}

	dead := f.accept("s", "crm")
	if n, err := f.s.GiveUp(f.ctx, queue.Filter{ID: dead.Deliveries[0]}); err != nil || n != 1 {
		t.Fatalf("give up = %d, %v", n, err)
	}
	if got := f.lease("crm", 10, false); len(got) != 0 {
		t.Fatalf("leased a delivery given up: %+v", got)
	}
}
