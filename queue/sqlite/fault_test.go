package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"log/slog"

	"github.com/switchyard/switchyard/internal/logbuf"
	"github.com/switchyard/switchyard/queue"
)

// TestFsyncFailureLatches: a failed fsync of the WAL fails the writes
// waiting on it, and every write after it, until a restart: the retry
// of an event whose commit was visible but maybe not on disk is not
// answered as a duplicate. Health says why.
func TestFsyncFailureLatches(t *testing.T) {
	t.Parallel()
	c := newClock()
	dir := t.TempDir()
	var fail atomic.Bool
	s, err := Open(context.Background(), dir, Options{Now: c.Now, SyncHook: func() error {
		if fail.Load() {
			return syscall.EIO
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	before, err := s.Accept(ctx, queue.Incoming{Event: newEvent(c, "before"), Targets: targets("a")})
	if err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	ev := newEvent(c, "during")
	if _, err := s.Accept(ctx, queue.Incoming{Event: ev, Targets: targets("a")}); !errors.Is(err, syscall.EIO) || !errors.Is(err, queue.ErrFailed) {
		t.Fatalf("Accept over a failed fsync = %v, want EIO and ErrFailed", err)
	}
	fail.Store(false) // the disk "recovers": the store must not believe it
	retry := *ev
	retry.ID = ev.ID + "-retry"
	if acc, err := s.Accept(ctx, queue.Incoming{Event: &retry, Targets: targets("a")}); !errors.Is(err, queue.ErrFailed) {
		t.Fatalf("the sender's retry = %+v, %v; want ErrFailed, not a duplicate answer", acc, err)
	}
	if err := s.Health(); !errors.Is(err, queue.ErrFailed) || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("Health = %v, want ErrFailed saying to restart", err)
	}
	d, err := s.Lease(ctx, queue.LeaseRequest{Sink: "a", Limit: 10, For: time.Minute})
	if err != nil || len(d) == 0 {
		t.Fatalf("lease (a read) = %v, %v", d, err)
	}
	if err := s.Complete(ctx, &d[0], queue.Outcome{State: queue.StateDelivered}); !errors.Is(err, queue.ErrFailed) {
		t.Fatalf("Complete after the failure = %v, want ErrFailed", err)
	}
	s.Close()

	// A restart recovers from what reached the disk.
	s2 := open(t, dir, c)
	if err := s2.Health(); err != nil {
		t.Fatalf("Health after restart = %v", err)
	}
	if _, err := s2.Event(ctx, before.EventID); err != nil {
		t.Fatalf("the event answered before the failure: %v", err)
	}
	if _, err := s2.Accept(ctx, queue.Incoming{Event: &retry, Targets: targets("a")}); err != nil {
		t.Fatalf("Accept after restart: %v", err)
	}
}

// TestWriteWaitsOnceTaken: a write the writer has taken into a batch is
// waited for even when its caller's context ends: Complete never
// reports a failure (and releases its lease) for an outcome that is
// then committed.
func TestWriteWaitsOnceTaken(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, err := Open(context.Background(), t.TempDir(), Options{Now: c.Now, BusyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	s.Accept(ctx, queue.Incoming{Event: newEvent(c, "k"), Targets: targets("a")})
	d, _ := s.Lease(ctx, queue.LeaseRequest{Sink: "a", Limit: 1, For: time.Minute})
	// Another process holds the write lock: the writer takes the
	// outcome into a batch and waits for the lock.
	heal := holdWriteLock(t, s)
	defer heal()
	done := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		done <- s.Complete(cctx, &d[0], queue.Outcome{State: queue.StateDelivered})
	}()
	select {
	case err := <-done:
		t.Fatalf("Complete returned %v while its batch waited for the lock", err)
	case <-time.After(300 * time.Millisecond):
	}
	c.Advance(2 * time.Minute) // the lease is long expired: it must still hold
	if again, _ := s.Lease(ctx, queue.LeaseRequest{Sink: "a", Limit: 1, For: time.Minute}); len(again) != 0 {
		t.Fatalf("leased again while its outcome was being written: %+v", again)
	}
	heal()
	if err := <-done; err != nil {
		t.Fatalf("Complete = %v", err)
	}
	if ds, _ := s.List(ctx, queue.Filter{ID: d[0].ID}); ds[0].State != queue.StateDelivered {
		t.Fatalf("state = %s", ds[0].State)
	}
}

// TestOutcomesDoNotWaitForTheDisk: an attempt's outcome is answered once
// committed, without an fsync of its own (a lost outcome only sends the
// delivery again); an accepted event still waits for one.
func TestOutcomesDoNotWaitForTheDisk(t *testing.T) {
	t.Parallel()
	c := newClock()
	var fsyncs atomic.Int64
	s, err := Open(context.Background(), t.TempDir(), Options{Now: c.Now, SyncHook: func() error { fsyncs.Add(1); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 5 {
		s.Accept(ctx, queue.Incoming{Event: newEvent(c, fmt.Sprint(i)), Targets: targets("a")})
	}
	if n := fsyncs.Load(); n < 1 {
		t.Fatalf("%d fsyncs for 5 accepted events", n)
	}
	ds, _ := s.Lease(ctx, queue.LeaseRequest{Sink: "a", Limit: 5, For: time.Minute})
	before := fsyncs.Load()
	for i := range ds {
		if err := s.Complete(ctx, &ds[i], queue.Outcome{State: queue.StateDelivered}); err != nil {
			t.Fatal(err)
		}
	}
	if n := fsyncs.Load() - before; n != 0 {
		t.Fatalf("%d fsyncs for 5 outcomes, want none", n)
	}
}

// TestExpiredWritesLeftOutOfTheBatch: under overload, writes whose
// callers gave up are answered with their context's error and left out;
// the others still share a transaction instead of being replayed one
// per transaction.
func TestExpiredWritesLeftOutOfTheBatch(t *testing.T) {
	t.Parallel()
	c := newClock()
	s, err := Open(context.Background(), t.TempDir(), Options{Now: c.Now, BusyTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	heal := holdWriteLock(t, s)
	// The first write occupies the writer (waiting for the lock); the
	// rest queue behind it.
	var wg sync.WaitGroup
	wg.Go(func() { s.Accept(ctx, queue.Incoming{Event: newEvent(c, "first"), Targets: targets("a")}) })
	time.Sleep(50 * time.Millisecond)
	expired := make([]error, 40)
	live := make([]error, 40)
	for i := range 40 {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			_, expired[i] = s.Accept(cctx, queue.Incoming{Event: newEvent(c, fmt.Sprint("expired", i)), Targets: targets("a")})
		})
		wg.Go(func() {
			_, live[i] = s.Accept(ctx, queue.Incoming{Event: newEvent(c, fmt.Sprint("live", i)), Targets: targets("a")})
		})
	}
	time.Sleep(300 * time.Millisecond) // every short deadline has passed
	commits := s.commits.Load()
	heal()
	wg.Wait()
	for i := range 40 {
		if !errors.Is(expired[i], context.DeadlineExceeded) {
			t.Fatalf("an expired write = %v, want its deadline", expired[i])
		}
		if live[i] != nil {
			t.Fatalf("a live write = %v", live[i])
		}
	}
	if got := s.commits.Load() - commits; got > 3 {
		t.Fatalf("%d commits for 41 live writes: expired writes broke up the batch", got)
	}
	if n := s.Waiting("a"); n != 41 {
		t.Fatalf("Waiting = %d, want 41 (only the live writes)", n)
	}
}

// TestStorageFaultHealth: a write that fails for the storage's sake (a
// lock held by another process past the busy timeout) shows in Health
// with one warning, and Health clears by itself once writes work
// again, even with nothing else writing.
func TestStorageFaultHealth(t *testing.T) {
	t.Parallel()
	c := newClock()
	logs := &logbuf.Buffer{}
	s, err := Open(context.Background(), t.TempDir(), Options{Now: c.Now, BusyTimeout: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	heal := holdWriteLock(t, s)
	for i := range 5 {
		if _, err := s.Accept(ctx, queue.Incoming{Event: newEvent(c, fmt.Sprint(i)), Targets: targets("a")}); err == nil {
			t.Fatal("accepted while another process held the write lock")
		}
	}
	if err := s.Health(); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("Health = %v, want the lock", err)
	}
	if n := strings.Count(logs.String(), "queue storage cannot write"); n != 1 {
		t.Fatalf("%d warnings for one fault:\n%s", n, logs)
	}
	heal()
	deadline := time.Now().Add(5 * time.Second)
	for s.Health() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Health still %v after the lock was released", s.Health())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "queue storage writes again") {
		t.Fatalf("no recovery logged:\n%s", logs)
	}
}

// TestWALShrinksWhenIdle: after a burst, an idle queue truncates its
// WAL instead of keeping its largest size for ever.
func TestWALShrinksWhenIdle(t *testing.T) {
	t.Parallel()
	c := newClock()
	dir := t.TempDir()
	s, err := Open(context.Background(), dir, Options{Now: c.Now, idleTruncate: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 400 {
		wg.Go(func() {
			s.Accept(ctx, queue.Incoming{Event: newEvent(c, fmt.Sprint("burst", i)), Targets: targets("a", "b")})
		})
	}
	wg.Wait()
	wal := s.Path() + "-wal"
	if fi, err := os.Stat(wal); err != nil || fi.Size() < 64<<10 {
		t.Fatalf("WAL after a burst: %v, %v", fi, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fi, err := os.Stat(wal)
		if err == nil && fi.Size() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("WAL still %d bytes after the queue went idle", fi.Size())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWALBoundedUnderLoad: under a load that never lets up, the WAL
// still starts over now and then instead of growing with every event
// (it grew by about 16 KB per event before).
func TestWALBoundedUnderLoad(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := open(t, t.TempDir(), c)
	ctx := context.Background()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range next {
				s.Accept(ctx, queue.Incoming{Event: newEvent(c, fmt.Sprint("steady", i)), Targets: targets("a", "b")})
			}
		})
	}
	for i := range 8000 {
		next <- i
	}
	close(next)
	wg.Wait()
	fi, err := os.Stat(s.Path() + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if limit := int64(walAutoCheckpoint*4096) * 3; fi.Size() > limit {
		t.Fatalf("WAL of %d MiB after 8000 events under steady load: want it bounded (< %d MiB)", fi.Size()>>20, limit>>20)
	}
}

// TestOutcomesRideAlong: at a light load, an outcome waits briefly and
// commits with the next accepted event instead of alone.
func TestOutcomesRideAlong(t *testing.T) {
	t.Parallel()
	c := newClock()
	// A long linger, so that a slow machine still gets the event in.
	s, err := Open(context.Background(), t.TempDir(), Options{Now: c.Now, lazyLinger: time.Second, lingerAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	s.Accept(ctx, queue.Incoming{Event: newEvent(c, "first"), Targets: targets("a")})
	ds, _ := s.Lease(ctx, queue.LeaseRequest{Sink: "a", Limit: 1, For: time.Minute})
	before := s.commits.Load()
	done := make(chan error, 1)
	lingers := s.lingers.Load()
	go func() { done <- s.Complete(ctx, &ds[0], queue.Outcome{State: queue.StateDelivered}) }()
	for s.lingers.Load() == lingers { // the outcome waits for company
		time.Sleep(100 * time.Microsecond)
	}
	if _, err := s.Accept(ctx, queue.Incoming{Event: newEvent(c, "second"), Targets: targets("a")}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := s.commits.Load() - before; n != 1 {
		t.Fatalf("%d commits for an outcome and an event that came while it waited: want one", n)
	}
}

// TestOutcomesAloneDoNotWait: an outcome waits for company only when
// company is likely soon. Not while an accepted event waits for its
// fsync (the requests that would join are blocked behind it), nor once
// no event has been accepted for a while (a backlog draining): each
// wait would hold the delivery's slot for nothing.
func TestOutcomesAloneDoNotWait(t *testing.T) {
	t.Parallel()
	const linger = 5 * time.Second
	open := func(t *testing.T, o Options) *Store {
		o.lazyLinger = linger
		s, err := Open(context.Background(), t.TempDir(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	complete := func(t *testing.T, s *Store, d *queue.Delivery) {
		t.Helper()
		start := time.Now()
		if err := s.Complete(context.Background(), d, queue.Outcome{State: queue.StateDelivered}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took >= linger {
			t.Fatalf("the outcome waited %v for company", took.Round(time.Millisecond))
		}
	}
	t.Run("draining", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := open(t, Options{Now: c.Now, lingerAfter: 50 * time.Millisecond})
		ctx := context.Background()
		s.Accept(ctx, queue.Incoming{Event: newEvent(c, "first"), Targets: targets("a")})
		ds, _ := s.Lease(ctx, queue.LeaseRequest{Sink: "a", Limit: 1, For: time.Minute})
		time.Sleep(100 * time.Millisecond)
		complete(t, s, &ds[0])
	})
	t.Run("an event waits for its fsync", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		gate := make(chan struct{})
		var once sync.Once
		release := func() { once.Do(func() { close(gate) }) }
		var hold atomic.Bool
		s := open(t, Options{Now: c.Now, lingerAfter: time.Minute, SyncHook: func() error {
			if hold.Load() {
				<-gate
			}
			return nil
		}})
		t.Cleanup(release) // before the store closes: its syncer waits here
		if s.syncs == nil {
			t.Skip("one CPU: the writer fsyncs inside the commit, nothing waits beside it")
		}
		ctx := context.Background()
		s.Accept(ctx, queue.Incoming{Event: newEvent(c, "first"), Targets: targets("a")})
		ds, _ := s.Lease(ctx, queue.LeaseRequest{Sink: "a", Limit: 1, For: time.Minute})
		hold.Store(true)
		accepted := make(chan error, 1)
		go func() {
			_, err := s.Accept(ctx, queue.Incoming{Event: newEvent(c, "second"), Targets: targets("a")})
			accepted <- err
		}()
		for s.syncing.Load() == 0 {
			time.Sleep(100 * time.Microsecond)
		}
		complete(t, s, &ds[0])
		release()
		if err := <-accepted; err != nil {
			t.Fatal(err)
		}
	})
}
