package groupcommit

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
)

func TestLoopBatchesAndDrainsOnStop(t *testing.T) {
	t.Parallel()
	ops := make(chan int, 100)
	stop := make(chan struct{})
	var batches [][]int
	for i := range 10 {
		ops <- i
	}
	close(stop) // queued before Stop: still committed
	Loop[int]{Ops: ops, Stop: stop, Max: 4, Commit: func(b []int) { batches = append(batches, slices.Clone(b)) }}.Run()
	var all []int
	for _, b := range batches {
		if len(b) > 4 {
			t.Fatalf("batch of %d, max 4", len(b))
		}
		all = append(all, b...)
	}
	if !slices.Equal(all, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) || len(batches) != 3 {
		t.Fatalf("batches = %v, want 10 requests in order in 3 batches", batches)
	}
}

func TestLoopGroupsConcurrentRequests(t *testing.T) {
	t.Parallel()
	ops := make(chan chan struct{})
	stop := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		Loop[chan struct{}]{Ops: ops, Stop: stop, Max: 64, Commit: func(b []chan struct{}) {
			mu.Lock()
			sizes = append(sizes, len(b))
			mu.Unlock()
			for _, c := range b {
				close(c)
			}
		}}.Run()
	}()
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			c := make(chan struct{})
			ops <- c
			<-c
		})
	}
	wg.Wait()
	close(stop)
	<-done
	if len(sizes) >= 200 {
		t.Fatalf("%d commits for 200 concurrent requests: nothing was grouped", len(sizes))
	}
}

// TestSubmit: the writer's answer comes back; before a writer takes the
// request, a closed stop answers closed and an ended ctx its error; once
// taken, an ended ctx returns at once while the writer goes on.
func TestSubmit(t *testing.T) {
	t.Parallel()
	errClosed := errors.New("closed")
	errWrite := errors.New("write failed")
	type req struct{ done chan error }
	t.Run("answered", func(t *testing.T) {
		t.Parallel()
		ops := make(chan req)
		go func() {
			r := <-ops
			r.done <- errWrite
		}()
		r := req{make(chan error, 1)}
		if err := Submit(context.Background(), ops, nil, r, r.done, errClosed); err != errWrite {
			t.Fatalf("Submit = %v, want the writer's answer", err)
		}
	})
	t.Run("stopped before taken", func(t *testing.T) {
		t.Parallel()
		stop := make(chan struct{})
		close(stop)
		r := req{make(chan error, 1)}
		if err := Submit(context.Background(), make(chan req), stop, r, r.done, errClosed); err != errClosed {
			t.Fatalf("Submit = %v, want %v", err, errClosed)
		}
	})
	t.Run("ctx ends before taken", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := req{make(chan error, 1)}
		if err := Submit(ctx, make(chan req), make(chan struct{}), r, r.done, errClosed); err != context.Canceled {
			t.Fatalf("Submit = %v, want %v", err, context.Canceled)
		}
	})
	t.Run("ctx ends once taken", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		ops := make(chan req)
		taken := make(chan req)
		go func() {
			r := <-ops
			cancel()
			taken <- r
		}()
		r := req{make(chan error, 1)}
		if err := Submit(ctx, ops, make(chan struct{}), r, r.done, errClosed); err != context.Canceled {
			t.Fatalf("Submit = %v, want %v", err, context.Canceled)
		}
		(<-taken).done <- nil // the writer answers later: done is buffered
	})
}

// TestAwaitAbandonedBeforeTaken: a caller that gives up before a writer
// takes its write gets its context's error, and the writer then leaves
// the write out; once taken, the caller waits for the outcome.
func TestAwaitAbandonedBeforeTaken(t *testing.T) {
	t.Parallel()
	ops := make(chan *Ticket, 1)
	stop, writersDone := make(chan struct{}), make(chan struct{})
	closed := errors.New("closed")

	ctx, cancel := context.WithCancel(context.Background())
	var gone Ticket
	done := make(chan error, 1)
	go func() { <-ops; cancel() }()
	if err := Await(ctx, ops, &gone, &gone, done, stop, writersDone, closed); !errors.Is(err, context.Canceled) {
		t.Fatalf("Await = %v, want the context's error", err)
	}
	if gone.Claim(context.Background(), done) {
		t.Fatal("the writer took a write its caller had given up")
	}

	var kept Ticket
	done = make(chan error, 1)
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		<-ops
		if !kept.Claim(context.Background(), done) {
			t.Error("the writer could not take a waiting write")
		}
		cancel() // too late: taken
		done <- nil
	}()
	if err := Await(ctx, ops, &kept, &kept, done, stop, writersDone, closed); err != nil {
		t.Fatalf("Await of a taken write = %v, want its outcome", err)
	}
}
