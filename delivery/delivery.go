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

// Queue is the part of queue.Store deliveries need.
type Queue interface {
	Lease(ctx context.Context, r queue.LeaseRequest) ([]queue.Delivery, error)
	Renew(ctx context.Context, d *queue.Delivery, extend time.Duration) error
	Complete(ctx context.Context, d *queue.Delivery, o queue.Outcome) error
	NextDue(ctx context.Context, sink string, ordered bool) (time.Time, bool, error)
	Health() error
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
	// LeaseTTL, when set, is how long a lease lasts without renewal: a
	// running attempt renews its lease every third of it. When zero, a
	// lease lasts the attempt's timeout plus 30 s and is not renewed
	// (one process owns the store).
	LeaseTTL time.Duration
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
	ttl   time.Duration
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
	health   faultLog // the store's health, as the worker last saw it
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
		ttl:   opts.LeaseTTL,
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

// heldBackWait is how often a worker looks again at deliveries that are
// due but held back by other replicas' attempts.
const heldBackWait = 50 * time.Millisecond

// Backoff while the store fails: leasing more would only send
// deliveries whose outcomes cannot be recorded.
const (
	faultBackoffMin = 100 * time.Millisecond
	faultBackoffMax = 5 * time.Second
)

// leaseFor is how long a lease lasts: the attempt's timeout and a
// margin, or the store's lease TTL (renewed while the attempt runs).
func (d *Dispatcher) leaseFor(w *worker) time.Duration {
	if d.ttl > 0 {
		return d.ttl
	}
	return w.Timeout + leaseMargin
}

func (d *Dispatcher) run(w *worker) {
	defer w.inflight.Wait()
	ctx := context.Background()
	// A lease reads past every delivery in flight, so while attempts
	// run, an unpaced worker leases in rounds of at least a quarter of
	// its slots rather than one slot at a time.
	round := max(1, cap(w.slots)/4)
	backoff := faultBackoffMin
	for !d.stopping() {
		// While the store cannot write, lease nothing: an attempt whose
		// outcome cannot be recorded would be sent again. Attempts in
		// flight keep their outcomes and write them once it can.
		if err := d.q.Health(); err != nil {
			w.health.note(w.log, "store failing; delivery paused until it writes again", err)
			d.sleep(w, backoff)
			backoff = min(backoff*2, faultBackoffMax)
			continue
		}
		free := cap(w.slots) - len(w.slots)
		busy := free < cap(w.slots)
		if busy && free < round && w.pace.every == 0 {
			d.sleep(w, d.idle) // a finishing attempt wakes us
			continue
		}
		allowed := w.pace.allow(d.now(), free)
		short := false // the store gave fewer deliveries than asked
		if allowed > 0 {
			// The sink's concurrency and rate go to the store too, which
			// counts the attempts of every replica sharing it.
			batch, err := d.q.Lease(ctx, queue.LeaseRequest{
				Sink: w.Name, Limit: allowed, For: d.leaseFor(w), Ordered: w.Ordered,
				Concurrency: w.Concurrency, Every: w.pace.every,
			})
			if err != nil {
				w.health.note(w.log, "lease deliveries", err)
				d.sleep(w, backoff)
				backoff = min(backoff*2, faultBackoffMax)
				continue
			}
			w.health.note(w.log, "", nil)
			backoff = faultBackoffMin
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
			short = len(batch) < allowed
		}
		// Fewer than asked: nothing more is due yet, or other replicas'
		// attempts hold the rest back (the sink's concurrency or rate,
		// counted across the cluster), and their end wakes no one here.
		// (While attempts run here, their end wakes the worker.)
		var dueIn time.Duration
		due, heldBack := false, false
		if short && (!busy || w.pace.every > 0) {
			if next, ok, err := d.q.NextDue(ctx, w.Name, w.Ordered); err == nil && ok {
				dueIn = next.Sub(d.now())
				due, heldBack = dueIn > 0, dueIn <= 0
			}
		}
		wait := d.idle
		switch {
		case free == 0:
			// All slots busy: a finishing attempt wakes us.
		case heldBack:
			wait = min(d.idle, max(w.pace.every, heldBackWait))
		case allowed < free:
			wait = max(w.pace.wait(d.now()), minWait) // paced: no start before then
		case busy:
			// Attempts in flight wake us when they end; a retry due
			// before then waits for that, or for the idle poll.
		case due:
			wait = min(wait, max(dueIn, minWait))
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
	stopRenew := d.renewWhile(w, qd)
	start := d.now()
	err := w.Sink.Sink.Send(ctx, &sinks.Delivery{ID: qd.ID, Attempt: qd.Attempt, Event: qd.Event})
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(err, cause) {
		// Say why the context ended (timeout or shutdown), not just that it did.
		err = fmt.Errorf("%w: %w", cause, err)
	}
	cancel()
	end := d.now()
	took := end.Sub(start)
	o := d.outcome(w, qd, err)
	o.Took = took
	recorded := d.record(w, qd, o, log)
	stopRenew()
	if !recorded {
		return
	}
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

// renewWhile renews qd's lease every third of the lease TTL until the
// returned function is called; without a TTL it does nothing.
func (d *Dispatcher) renewWhile(w *worker, qd *queue.Delivery) (stop func()) {
	if d.ttl <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(d.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), d.ttl/3)
			err := d.q.Renew(ctx, qd, d.ttl)
			cancel()
			if errors.Is(err, queue.ErrLeaseLost) {
				return // the outcome will be refused; nothing to keep alive
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// recordTimeout bounds one try at writing an outcome.
const recordTimeout = 10 * time.Second

// record writes an attempt's outcome. When the store cannot write it,
// the worker keeps the outcome and its lease (renewing it) and writes
// it again with backoff: the delivery is not sent again meanwhile. It
// gives up when the lease is lost (another attempt owns the outcome) or
// at the shutdown deadline (the delivery is then sent again after the
// restart: at least once). It reports whether the outcome was written.
func (d *Dispatcher) record(w *worker, qd *queue.Delivery, o queue.Outcome, log attemptLog) bool {
	backoff := faultBackoffMin
	var failing faultLog
	for {
		ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
		err := d.q.Complete(ctx, qd, o)
		cancel()
		switch {
		case err == nil:
			if failing.last != "" {
				log.Info("delivery outcome recorded after the store recovered", "state", o.State)
			}
			return true
		case errors.Is(err, queue.ErrLeaseLost):
			log.Warn("delivery outcome not recorded: the lease expired and another attempt took the delivery over", "state", o.State)
			return false
		}
		if failing.changed(err) {
			log.Warn("cannot record delivery outcome; holding the delivery and trying again", "state", o.State, "err", err)
		}
		rctx, rcancel := context.WithTimeout(context.Background(), recordTimeout)
		rerr := d.q.Renew(rctx, qd, d.leaseFor(w))
		rcancel()
		if errors.Is(rerr, queue.ErrLeaseLost) {
			log.Warn("delivery outcome not recorded: the lease expired while the store failed; the delivery will be sent again", "state", o.State)
			return false
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-d.attempts.Done():
			t.Stop()
			log.Warn("delivery outcome not recorded before the shutdown deadline; the delivery will be sent again", "state", o.State, "err", err)
			return false
		}
		backoff = min(backoff*2, faultBackoffMax)
	}
}

// faultLog remembers the last error logged, so that a fault is logged
// once per change of error rather than once per try.
type faultLog struct{ last string }

// changed records err and reports whether it differs from the last.
func (f *faultLog) changed(err error) bool {
	text := ""
	if err != nil {
		text = err.Error()
	}
	if text == f.last {
		return false
	}
	f.last = text
	return true
}

// note logs err at warn when it changes, and the recovery at info.
func (f *faultLog) note(log *slog.Logger, msg string, err error) {
	was := f.last
	if !f.changed(err) {
		return
	}
	if err != nil {
		log.Warn(msg, "err", err)
	} else if was != "" {
		log.Info("store writes again; delivery resumed")
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
func (l attemptLog) Info(msg string, args ...any)  { l.log.Info(msg, l.with(args)...) }
func (l attemptLog) Warn(msg string, args ...any)  { l.log.Warn(msg, l.with(args)...) }
func (l attemptLog) Error(msg string, args ...any) { l.log.Error(msg, l.with(args)...) }
