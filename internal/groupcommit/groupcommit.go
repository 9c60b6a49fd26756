// Package groupcommit runs the single writer behind Switchyard's SQLite
// stores: it takes requests from a channel and hands them to a commit
// function in batches, so that concurrent requests share one
// transaction (and one fsync).
package groupcommit

import (
	"context"
	"runtime"
	"time"
)

// Loop is a writer. Run it in one goroutine.
type Loop[T any] struct {
	Ops <-chan T
	// Stop ends the loop; requests already in Ops are committed first.
	Stop <-chan struct{}
	// Max bounds a batch.
	Max int
	// Commit writes a batch and answers each of its requests.
	Commit func(batch []T)
	// Tick, when set, runs between batches every Every.
	Every time.Duration
	Tick  func()
}

// Run commits batches until Stop is closed and Ops is empty.
func (l Loop[T]) Run() {
	batch := make([]T, 0, l.Max)
	var tick <-chan time.Time
	if l.Tick != nil && l.Every > 0 {
		t := time.NewTicker(l.Every)
		defer t.Stop()
		tick = t.C
	}
	for {
		var first T
		select {
		case first = <-l.Ops:
		case <-tick:
			l.Tick()
			continue
		case <-l.Stop:
			select {
			case first = <-l.Ops:
			default:
				return
			}
		}
		batch = append(batch[:0], first)
		// Let requests that are about to be sent join this batch.
		// Without the yield, on one CPU the writer would usually find the
		// channel empty and commit one request per transaction.
		runtime.Gosched()
	drain:
		for len(batch) < l.Max {
			select {
			case o := <-l.Ops:
				batch = append(batch, o)
			default:
				break drain
			}
		}
		l.Commit(batch)
	}
}

// Submit hands op to the writer reading ops and waits for its answer on
// done. It returns closed when stop is closed before a writer takes op,
// and ctx's error when ctx ends first. An op taken is committed with its
// batch even when ctx ends while Submit waits: callers whose writes may
// then be retried need them to be harmless to write twice.
func Submit[T any](ctx context.Context, ops chan<- T, stop <-chan struct{}, op T, done <-chan error, closed error) error {
	if err := send(ctx, ops, op, stop, closed); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send hands op to the writers on ops: closed when stop is closed
// first, ctx's error when ctx ends first.
func send[T any](ctx context.Context, ops chan<- T, op T, stop <-chan struct{}, closed error) error {
	select {
	case ops <- op:
		return nil
	case <-stop:
		return closed
	case <-ctx.Done():
		return ctx.Err()
	}
}
