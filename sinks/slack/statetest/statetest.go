// Package statetest is the contract of the Slack sinks' State (package
// slack): one suite, run against each implementation (in memory, SQLite,
// PostgreSQL). With Replicas, its handles stand for gateway replicas
// sharing one storage, and every rule must hold across them.
package statetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/sinks/slack"
)

// Backend opens States.
type Backend struct {
	// New makes a fresh storage and returns a function opening a handle
	// on it. The suite closes the handles.
	New func(t *testing.T) func(t *testing.T) slack.State
	// Replicas is true when handles on one storage are replicas: what
	// one holds or books, the others see. Otherwise the suite uses one
	// handle from many goroutines.
	Replicas bool
	// Durable is true when a new handle sees what a closed one recorded.
	Durable bool
}

// Run runs the suite.
func Run(t *testing.T, b Backend) {
	t.Run("Threads", func(t *testing.T) { t.Parallel(); testThreads(t, b) })
	t.Run("FirstMessagesRace", func(t *testing.T) { t.Parallel(); testFirstMessagesRace(t, b) })
	t.Run("Groups", func(t *testing.T) { t.Parallel(); testGroups(t, b) })
	t.Run("GroupsOneAtATime", func(t *testing.T) { t.Parallel(); testGroupsOneAtATime(t, b) })
	t.Run("Pace", func(t *testing.T) { t.Parallel(); testPace(t, b) })
	t.Run("PauseAndRelease", func(t *testing.T) { t.Parallel(); testPauseAndRelease(t, b) })
}

// handles opens n handles on one fresh storage: n replicas, or one
// handle n times.
func handles(t *testing.T, b Backend, n int) []slack.State {
	t.Helper()
	open := b.New(t)
	out := make([]slack.State, n)
	for i := range out {
		if i > 0 && !b.Replicas {
			out[i] = out[0]
			continue
		}
		out[i] = open(t)
		st := out[i]
		t.Cleanup(func() { st.Close() })
	}
	return out
}

var ctx = context.Background()

func testThreads(t *testing.T, b Backend) {
	open := b.New(t)
	s := open(t)
	k := slack.ThreadKey{Sink: "ops", Channel: "#ops", Subject: "s1"}
	if _, ok, err := s.Thread(ctx, k); ok || err != nil {
		t.Fatalf("Thread before any = %v, %v", ok, err)
	}
	// A failed first post records nothing.
	boom := errors.New("slack said no")
	if _, started, err := s.StartThread(ctx, k, func(context.Context) (slack.Thread, error) { return slack.Thread{}, boom }); !errors.Is(err, boom) || started {
		t.Fatalf("StartThread with a failing post = %v, %v", started, err)
	}
	if _, ok, _ := s.Thread(ctx, k); ok {
		t.Fatal("a failed post left a thread")
	}
	first := slack.Thread{ChannelID: "C1", TS: "1.000001"}
	calls := 0
	start := func(ts string) func(context.Context) (slack.Thread, error) {
		return func(context.Context) (slack.Thread, error) {
			calls++
			return slack.Thread{ChannelID: "C1", TS: ts}, nil
		}
	}
	if got, started, err := s.StartThread(ctx, k, start(first.TS)); err != nil || !started || got != first {
		t.Fatalf("StartThread = %v, %v, %v", got, started, err)
	}
	if got, started, err := s.StartThread(ctx, k, start("2.0")); err != nil || started || got != first || calls != 1 {
		t.Fatalf("StartThread of a started thread = %v, %v, %v (%d posts); want the first, not posted", got, started, err, calls)
	}
	// Other sinks, channels and subjects have threads of their own.
	for _, other := range []slack.ThreadKey{{Sink: "x", Channel: "#ops", Subject: "s1"}, {Sink: "ops", Channel: "#x", Subject: "s1"}, {Sink: "ops", Channel: "#ops", Subject: "x"}} {
		if _, ok, _ := s.Thread(ctx, other); ok {
			t.Errorf("%+v has the thread of %+v", other, k)
		}
	}
	// Forgetting another thread of the subject keeps this one.
	if err := s.ForgetThread(ctx, k, slack.Thread{ChannelID: "C1", TS: "0.5"}); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := s.Thread(ctx, k); !ok || got != first {
		t.Errorf("after forgetting another thread: %v, %v", got, ok)
	}
	if b.Durable {
		s.Close()
		s = open(t)
		defer s.Close()
		if got, ok, err := s.Thread(ctx, k); !ok || got != first || err != nil {
			t.Errorf("after reopening: %v, %v, %v", got, ok, err)
		}
	} else {
		defer s.Close()
	}
	if err := s.ForgetThread(ctx, k, first); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Thread(ctx, k); ok {
		t.Error("ForgetThread kept the thread")
	}
}

// Sends of a subject's first message race (ordered: false, or a lease
// taken over while the old holder still posts): one posts, the others
// wait and reply in its thread.
func testFirstMessagesRace(t *testing.T, b Backend) {
	states := handles(t, b, 4)
	k := slack.ThreadKey{Sink: "ops", Channel: "#ops", Subject: "race"}
	var posts atomic.Int32
	var wg sync.WaitGroup
	type result struct {
		t       slack.Thread
		started bool
		err     error
	}
	results := make(chan result, 8)
	for i := range 8 {
		st := states[i%len(states)]
		wg.Go(func() {
			t, started, err := st.StartThread(ctx, k, func(context.Context) (slack.Thread, error) {
				n := posts.Add(1)
				time.Sleep(50 * time.Millisecond) // Slack answering
				return slack.Thread{ChannelID: "C1", TS: fmt.Sprintf("1.%06d", n)}, nil
			})
			results <- result{t, started, err}
		})
	}
	wg.Wait()
	close(results)
	var started int
	var threads []slack.Thread
	for r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.started {
			started++
		}
		threads = append(threads, r.t)
	}
	if posts.Load() != 1 || started != 1 {
		t.Errorf("%d first messages posted, %d started; want 1", posts.Load(), started)
	}
	for _, th := range threads {
		if th != threads[0] {
			t.Errorf("threads %v: want one", threads)
			break
		}
	}
}

func testGroups(t *testing.T, b Backend) {
	open := b.New(t)
	s := open(t)
	k := slack.GroupKey{Sink: "ops", Channel: "#ops", Key: "Carla"}
	at := time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC)
	g1 := &slack.GroupState{ChannelID: "C1", TS: "1.1", StartedAt: at, Items: []slack.GroupItem{{ID: "e1", Type: "session.forwarded.escalated", Line: "*Ana*"}}}
	err := s.WithGroup(ctx, k, func(_ context.Context, g *slack.GroupState) (*slack.GroupState, error) {
		if g != nil {
			t.Errorf("a new key's group = %+v", g)
		}
		return g1, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(s slack.State, want *slack.GroupState) {
		t.Helper()
		err := s.WithGroup(ctx, k, func(_ context.Context, g *slack.GroupState) (*slack.GroupState, error) {
			if g == nil || g.ChannelID != want.ChannelID || g.TS != want.TS || !g.StartedAt.Equal(want.StartedAt) || !slices.Equal(g.Items, want.Items) {
				t.Errorf("group = %+v, want %+v", g, want)
			}
			return nil, nil // nothing to record
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check(s, g1)
	// A failing fn records nothing.
	boom := errors.New("edit failed")
	if err := s.WithGroup(ctx, k, func(_ context.Context, g *slack.GroupState) (*slack.GroupState, error) {
		return &slack.GroupState{ChannelID: "C9"}, boom
	}); !errors.Is(err, boom) {
		t.Errorf("WithGroup = %v, want fn's error", err)
	}
	check(s, g1)
	if b.Durable {
		s.Close()
		s = open(t)
		check(s, g1)
	}
	s.Close()
}

// Events of one group from many sends (different subjects, on several
// replicas): each sees the group as the previous one left it; none runs
// beside another; every event is listed once.
func testGroupsOneAtATime(t *testing.T, b Backend) {
	states := handles(t, b, 3)
	k := slack.GroupKey{Sink: "ops", Channel: "#ops", Key: "burst"}
	var active, most atomic.Int32
	var wg sync.WaitGroup
	const sends = 12
	for i := range sends {
		st := states[i%len(states)]
		wg.Go(func() {
			err := st.WithGroup(ctx, k, func(_ context.Context, g *slack.GroupState) (*slack.GroupState, error) {
				n := active.Add(1)
				defer active.Add(-1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(5 * time.Millisecond)
				item := slack.GroupItem{ID: fmt.Sprint("e", i), Type: "x"}
				if g == nil {
					return &slack.GroupState{ChannelID: "C1", TS: "1.1", StartedAt: time.Now().UTC().Truncate(time.Millisecond), Items: []slack.GroupItem{item}}, nil
				}
				g.Items = append(g.Items, item)
				return g, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	// Another key is not held back by this one's sends.
	done := make(chan error, 1)
	go func() {
		done <- states[len(states)-1].WithGroup(ctx, slack.GroupKey{Sink: "ops", Channel: "#ops", Key: "other"},
			func(context.Context, *slack.GroupState) (*slack.GroupState, error) { return nil, nil })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(sends * 5 * time.Millisecond):
		t.Error("another group waited for this one's sends")
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Errorf("%d sends held the group at once; want 1", most.Load())
	}
	states[0].WithGroup(ctx, k, func(_ context.Context, g *slack.GroupState) (*slack.GroupState, error) {
		if g == nil || len(g.Items) != sends {
			t.Errorf("group lists %v; want the %d events", g, sends)
		}
		return nil, nil
	})
}

// start is when a booked post may start, on this machine's clock, give
// or take err: the time the booking took (a round trip to the database
// for replicas), plus a little for the goroutines' scheduling.
type start struct {
	at  time.Time
	err time.Duration
}

// starts books n posts to one channel from pacers at once and returns
// when each may start, in order.
func starts(t *testing.T, pacers []slack.Pacer, channel string, n int) []start {
	t.Helper()
	var mu sync.Mutex
	var out []start
	var wg sync.WaitGroup
	for i := range n {
		p := pacers[i%len(pacers)]
		wg.Go(func() {
			t0 := time.Now()
			s, err := p.Reserve(ctx, channel)
			t1 := time.Now()
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			out = append(out, start{at: t1.Add(s.Wait), err: t1.Sub(t0) + 5*time.Millisecond})
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b start) int { return a.at.Compare(b.at) })
	return out
}

// The pace holds across handles: at most n posts to a channel in any
// period; channels and sinks are paced apart.
func testPace(t *testing.T, b Backend) {
	states := handles(t, b, 3)
	const per = 100 * time.Millisecond
	var pacers, burst []slack.Pacer
	for _, s := range states {
		pacers = append(pacers, s.Pacer("ops", 1, per))
		burst = append(burst, s.Pacer("bursty", 3, 3*per))
	}
	times := starts(t, pacers, "#busy", 8)
	for i := 1; i < len(times); i++ {
		if gap := times[i].at.Sub(times[i-1].at); gap < per-times[i].err-times[i-1].err {
			t.Errorf("posts %d and %d start %v apart (±%v); want %v", i-1, i, gap, times[i].err+times[i-1].err, per)
		}
	}
	if total := times[len(times)-1].at.Sub(times[0].at); total > 7*per+100*time.Millisecond {
		t.Errorf("8 posts span %v; want about %v", total, 7*per)
	}
	// Another channel, and another sink's same channel, start at once.
	for _, p := range []slack.Pacer{pacers[0], states[0].Pacer("other-sink", 1, per)} {
		ch := "#quiet"
		if p != pacers[0] {
			ch = "#busy"
		}
		if s, err := p.Reserve(ctx, ch); err != nil || s.Wait > 0 {
			t.Errorf("a quiet channel waits %v, %v", s.Wait, err)
		}
	}
	// A burst of 3 at once, then one per period on average.
	times = starts(t, burst, "#ops", 6)
	if d := times[2].at.Sub(times[0].at); d > times[2].err+times[0].err {
		t.Errorf("the first 3 posts of a 3/%v pace start %v apart; want together", 3*per, d)
	}
	for i := 3; i < len(times); i++ {
		if gap := times[i].at.Sub(times[i-3].at); gap < 3*per-times[i].err-times[i-3].err {
			t.Errorf("posts %d and %d start %v apart: more than 3 in %v", i-3, i, gap, 3*per)
		}
	}
}

// Slack's pause (a 429) holds every handle back; a slot given back is
// used by the next post.
func testPauseAndRelease(t *testing.T, b Backend) {
	states := handles(t, b, 2)
	a, c := states[0].Pacer("ops", 1, 100*time.Millisecond), states[1].Pacer("ops", 1, 100*time.Millisecond)
	// Each bound allows for the time the calls themselves take (a busy
	// machine, a database round trip): since tells how much of the pause
	// has passed.
	start := time.Now()
	since := func() time.Duration { return time.Since(start) }
	const slack = 60 * time.Millisecond
	if err := a.Block(ctx, "#ops", 400*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	s, err := c.Reserve(ctx, "#ops")
	if err != nil || s.Wait < 400*time.Millisecond-since()-slack {
		t.Errorf("a post after a 400ms pause waits %v (%v after the pause began), %v", s.Wait, since(), err)
	}
	// Give it back: the next post takes the paused slot, not one after.
	if err := c.Release(ctx, "#ops", s); err != nil {
		t.Fatal(err)
	}
	before := since()
	s2, err := a.Reserve(ctx, "#ops")
	after := since()
	if err != nil || s2.Wait > 400*time.Millisecond-before+slack || s2.Wait < 400*time.Millisecond-after-slack {
		t.Errorf("after a slot was given back, the next waits %v (%v–%v after the pause began), %v; want the pause only", s2.Wait, before, after, err)
	}
	// A shorter pause does not shorten a longer one: the next slot is
	// still after the pause and the slot s2 took.
	if err := c.Block(ctx, "#ops", 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	s3, err := c.Reserve(ctx, "#ops")
	if err != nil || s3.Wait < 500*time.Millisecond-since()-slack {
		t.Errorf("after a shorter pause, the next waits %v (%v after the pause began), %v", s3.Wait, since(), err)
	}
}
