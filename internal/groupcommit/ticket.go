package groupcommit

import (
	"context"
	"sync/atomic"
)

// Ticket is a write's place in a group commit: queued until a writer
// takes it into a batch, or until its caller gives up waiting first.
// Exactly one of the two happens, so that a caller told "not written"
// was never written, and a caller whose write was taken gets its
// outcome.
type Ticket struct{ state atomic.Int32 }

const (
	queued int32 = iota
	taken
	abandoned
)

// Claim is the writer's: it takes the write into the batch being built
// and reports true, or, when the write's caller has given up (ctx ended,
// or Await returned), reports false; a write whose ctx ended is answered
// on done with ctx's error, unless its caller has already gone.
func (t *Ticket) Claim(ctx context.Context, done chan<- error) bool {
	if ctx.Err() != nil && t.state.CompareAndSwap(queued, abandoned) {
		done <- ctx.Err()
		return false
	}
	return t.state.CompareAndSwap(queued, taken)
}

// Await hands op to the writers on ops and waits for its outcome on
// done. Until a writer takes it (t), the caller may give up: when ctx
// ends first, Await returns ctx's error and the write is never made.
// stop is closed when the store closes; writersDone once its writers
// have returned (having drained what was queued).
func Await[T any](ctx context.Context, ops chan<- T, op T, t *Ticket, done <-chan error, stop, writersDone <-chan struct{}, closed error) error {
	if err := send(ctx, ops, op, stop, closed); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-writersDone:
		// Close raced the send; the writers may have drained op already.
		select {
		case err := <-done:
			return err
		default:
			return closed
		}
	case <-ctx.Done():
		if t.state.CompareAndSwap(queued, abandoned) {
			return ctx.Err()
		}
		return <-done // taken: its outcome comes with its batch's
	}
}
