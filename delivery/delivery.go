// Package delivery runs the delivery workers: for each sink, it leases
// due deliveries from the queue, sends them, and records the outcome:
// delivered, retry later (with backoff), or dead.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/sinks"
)

// Queue is the part of the queue deliveries need. queue.Store is the
// SQLite implementation.
type Queue interface {
	Lease(ctx context.Context, r queue.LeaseRequest) ([]queue.Delivery, error)
	Complete(ctx context.Context, d *queue.Delivery, o queue.Outcome) error
	NextDue(ctx context.Context, sink string, ordered bool) (time.Time, bool, error)
}

// Sink is a destination with its delivery settings.
type Sink struct {
	Name        string
	Sink        sinks.Sink
	Concurrency int
	// Timeout bounds one attempt.
	Timeout time.Duration
	Retry   Policy
	// Ordered attempts the deliveries of one subject one at a time, in
	// the order they were accepted; a delivery waiting to be retried
	// holds back only its own subject.
	Ordered bool
	// Rate limits how often attempts start; the zero Rate is no limit.
	Rate Rate
}

// Options configures a Dispatcher.
type Options struct {
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Idle is the longest a worker sleeps without checking the queue;
	// 1s when zero. Notify wakes it sooner; the poll finds deliveries
	// another process (the replay command) queued.
	Idle time.Duration
	// OnAttempt, when set, is told of every attempt whose outcome was
	// recorded: the hook for metrics.
	OnAttempt func(Attempt)
}

// Attempt is a recorded attempt, for metrics.
type Attempt struct {
	Sink string
	// State is the delivery's state after it: delivered, failed (will
	// retry) or dead.
	State string
	// Took is how long the attempt ran.
	Took time.Duration
	// Waited is from the delivery's acceptance (or last replay) to the
	// end of the attempt.
	Waited time.Duration
}

// Dispatcher delivers queued deliveries, one worker loop per sink.
type Dispatcher struct {
	q     Queue
	log   *slog.Logger
	now   func() time.Time
	idle  time.Duration
	sinks map[string]*worker
	// onAttempt is Options.OnAttempt.
	onAttempt func(Attempt)

	stop     chan struct{} // closed by Stop: lease no more
	attempts context.Context
	abort    context.CancelCauseFunc // cancels running attempts
	loops    sync.WaitGroup
	started  bool
	stopOnce sync.Once
	mu       sync.Mutex
}

type worker struct {
	Sink
	pace     pacer
	log      *slog.Logger
	wake     chan struct{}
	inflight sync.WaitGroup
	slots    chan struct{}
}

// ErrShutdown is the cause of attempts cancelled by a shutdown deadline.
var ErrShutdown = errors.New("switchyard is shutting down")

var errAttemptTimeout = errors.New("attempt timed out")

// New returns a dispatcher for sinks. Nothing runs until Start.
func New(q Queue, ss []Sink, opts Options) *Dispatcher {
	d := &Dispatcher{
		q:     q,
		log:   opts.Logger,
		now:   opts.Now,
		idle:  opts.Idle,
		sinks: map[string]*worker{},
		stop:  make(chan struct{}),

		onAttempt: opts.OnAttempt,
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.idle <= 0 {
		d.idle = time.Second
	}
	d.attempts, d.abort = context.WithCancelCause(context.Background())
	for _, s := range ss {
		if s.Concurrency < 1 {
			s.Concurrency = 1
		}
		d.sinks[s.Name] = &worker{
			Sink:  s,
			pace:  pacer{every: s.Rate.Interval()},
			log:   d.log.With("sink", s.Name),
			wake:  make(chan struct{}, 1),
			slots: make(chan struct{}, s.Concurrency),
		}
	}
	return d
}

// Start runs a worker loop per sink.
func (d *Dispatcher) Start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.stop:
		return // stopped before it started: nothing may start now
	default:
	}
	if d.started {
		return
	}
	d.started = true
	for _, w := range d.sinks {
		d.loops.Go(func() { d.run(w) })
	}
}

// Notify tells a sink's worker that deliveries may be due.
func (d *Dispatcher) Notify(sink string) {
	if w, ok := d.sinks[sink]; ok {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// Stop stops leasing and waits for running attempts. When ctx ends
// first, running attempts are cancelled; they stay pending and are
// retried at the next start. Stop may be called more than once.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.stopOnce.Do(func() {
		d.mu.Lock()
		close(d.stop)
		d.mu.Unlock()
	})
	done := make(chan struct{})
	go func() {
		d.loops.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	d.abort(ErrShutdown)
	// Cancelled attempts return promptly and record their outcome.
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return fmt.Errorf("delivery: attempts still running at the shutdown deadline were cancelled: %w", context.Cause(ctx))
}

func (d *Dispatcher) stopping() bool {
	select {
	case <-d.stop:
		return true
	default:
		return false
	}
}

// leaseMargin keeps a lease alive past the attempt's own timeout.
const leaseMargin = 30 * time.Second

// minWait keeps a worker that found nothing to lease from polling in a
// tight loop.
const minWait = 5 * time.Millisecond

func (d *Dispatcher) run(w *worker) {
	defer w.inflight.Wait()
	ctx := context.Background()
	// A lease reads past every delivery in flight, so while attempts
	// run, an unpaced worker leases in rounds of at least a quarter of
	// its slots rather than one slot at a time.
	round := max(1, cap(w.slots)/4)
	for !d.stopping() {
		free := cap(w.slots) - len(w.slots)
		busy := free < cap(w.slots)
		if busy && free < round && w.pace.every == 0 {
			d.sleep(w, d.idle) // a finishing attempt wakes us
			continue
		}
		allowed := w.pace.allow(d.now(), free)
		if allowed > 0 {
			batch, err := d.q.Lease(ctx, queue.LeaseRequest{
				Sink: w.Name, Limit: allowed, For: w.Timeout + leaseMargin, Ordered: w.Ordered,
			})
			if err != nil {
				w.log.Error("lease deliveries", "err", err)
				d.sleep(w, time.Second)
				continue
			}
			w.pace.took(d.now(), len(batch))
			for i := range batch {
				w.slots <- struct{}{}
				w.inflight.Add(1)
				go func() {
					defer func() {
						<-w.slots
						w.inflight.Done()
						select {
						case w.wake <- struct{}{}:
						default:
						}
					}()
					d.attempt(w, &batch[i])
				}()
			}
			if len(batch) == allowed && allowed == free {
				continue // more may be due
			}
		}
		wait := d.idle
		switch {
		case free == 0:
			// All slots busy: a finishing attempt wakes us.
		case allowed < free:
			wait = max(w.pace.wait(d.now()), minWait) // paced: no start before then
		case busy:
			// Attempts in flight wake us when they end; a retry due
			// before then waits for that, or for the idle poll.
		default:
			if next, ok, err := d.q.NextDue(ctx, w.Name, w.Ordered); err == nil && ok {
				wait = min(wait, max(next.Sub(d.now()), minWait))
			}
		}
		d.sleep(w, wait)
	}
}

func (d *Dispatcher) sleep(w *worker, wait time.Duration) {
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-w.wake:
	case <-t.C:
	case <-d.stop:
	}
}

func (d *Dispatcher) attempt(w *worker, qd *queue.Delivery) {
	// Attributes, not log.With: With pre-formats them for the handler
	// on every attempt, and most attempts log nothing.
	log := attemptLog{w.log, []any{"delivery_id", qd.ID, "event_id", qd.EventID, "attempt", qd.Attempt}}
	ctx, cancel := context.WithTimeoutCause(d.attempts, w.Timeout, errAttemptTimeout)
	start := d.now()
	err := w.Sink.Sink.Send(ctx, &sinks.Delivery{ID: qd.ID, Attempt: qd.Attempt, Event: qd.Event})
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(err, cause) {
		// Say why the context ended (timeout or shutdown), not just that it did.
		err = fmt.Errorf("%w: %w", cause, err)
	}
	cancel()
	o := d.outcome(w, qd, err)

	// The outcome is recorded even while shutting down: a short, separate
	// deadline, since the attempt's context may be cancelled.
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if cerr := d.q.Complete(cctx, qd, o); cerr != nil {
		// The lease ends and the delivery is attempted again.
		log.Error("record delivery outcome", "state", o.State, "err", cerr)
		return
	}
	end := d.now()
	took := end.Sub(start)
	if d.onAttempt != nil {
		d.onAttempt(Attempt{Sink: w.Name, State: o.State, Took: took, Waited: end.Sub(qd.Since)})
	}
	switch o.State {
	case queue.StateDelivered:
		log.Debug("delivered", "took", took)
	case queue.StateFailed:
		// At warn when the error is new for this delivery: an outage
		// logs once per delivery, not once per retry.
		warn := log.Warn
		if queue.SameError(qd.LastError, o.Error) {
			warn = log.Debug
		}
		warn("delivery failed; will retry", "err", err, "status", o.Status, "retry_in", o.NextAt.Sub(d.now()).Round(time.Millisecond))
	case queue.StateDead:
		log.Error("delivery dead", "err", o.Error, "status", o.Status)
	}
}

// outcome classifies an attempt's error under the sink's policy.
func (d *Dispatcher) outcome(w *worker, qd *queue.Delivery, err error) queue.Outcome {
	if err == nil {
		return queue.Outcome{State: queue.StateDelivered}
	}
	o := queue.Outcome{Error: err.Error(), Status: status(err)}
	now := d.now()
	p := w.Retry
	switch {
	case errors.Is(err, ErrShutdown):
		// Not the sink's fault: try again as soon as we are back.
		o.State, o.NextAt = queue.StateFailed, now
	case !retryable(err):
		o.State = queue.StateDead
		o.Error = "permanent failure: " + o.Error
	case p.MaxAttempts > 0 && qd.Attempt >= p.MaxAttempts:
		o.State = queue.StateDead
		o.Error = fmt.Sprintf("gave up after %d attempts: %s", qd.Attempt, o.Error)
	case p.MaxAge > 0 && now.Sub(qd.Since) >= p.MaxAge:
		o.State = queue.StateDead
		o.Error = fmt.Sprintf("gave up after %s (max_age): %s", p.MaxAge, o.Error)
	default:
		o.State = queue.StateFailed
		o.NextAt = now.Add(max(p.Backoff(qd.Attempt), retryAfter(err)))
	}
	return o
}

// attemptLog logs with an attempt's attributes.
type attemptLog struct {
	log   *slog.Logger
	attrs []any
}

func (l attemptLog) with(args []any) []any {
	return append(l.attrs[:len(l.attrs):len(l.attrs)], args...)
}

func (l attemptLog) Debug(msg string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(msg, l.with(args)...)
	}
}
func (l attemptLog) Warn(msg string, args ...any)  { l.log.Warn(msg, l.with(args)...) }
func (l attemptLog) Error(msg string, args ...any) { l.log.Error(msg, l.with(args)...) }
