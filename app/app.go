// Package app wires Switchyard together: configuration → receiver →
// rules → queue → delivery → sinks. cmd/switchyard and the end-to-end
// tests use it.
package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/delivery"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/receiver"
	"github.com/switchyard/switchyard/rules"
	"github.com/switchyard/switchyard/sinks"
)

// Version is set at build time with -ldflags "-X .../app.Version=v1.2.3".
var Version = "dev"

// Options configures an App.
type Options struct {
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// App is a running gateway.
type App struct {
	plan       *Plan
	log        *slog.Logger
	now        func() time.Time
	store      *queue.Store
	lock       *dirLock
	server     *receiver.Server
	dispatcher *delivery.Dispatcher
	rules      *rules.Set

	bg       sync.WaitGroup // background jobs (pruning)
	quit     chan struct{}  // closed by Stop: background jobs end
	mu       sync.Mutex
	ln       net.Listener
	serveErr chan error
	started  bool
	stopped  bool
	stopErr  error
}

// New builds the configuration and opens the storage directory (taking
// its lock, so two gateways never share one queue) and the sinks.
// Nothing is served until Start.
func New(ctx context.Context, cfg *config.Config, opts Options) (*App, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	plan, err := Build(cfg, log)
	if err != nil {
		return nil, err
	}
	a := &App{plan: plan, log: log, now: now, rules: plan.Rules, quit: make(chan struct{})}
	if err := a.open(ctx); err != nil {
		a.closeAll()
		return nil, err
	}
	return a, nil
}

func (a *App) open(ctx context.Context) error {
	cfg := a.plan.Config
	lock, err := lockDir(cfg.Storage.Dir)
	if err != nil {
		return err
	}
	a.lock = lock
	a.store, err = queue.Open(ctx, cfg.Storage.Dir, queue.Options{Synchronous: cfg.Storage.Synchronous, Logger: a.log, Now: a.now})
	if err != nil {
		return err
	}
	// We hold the directory: leases left by a crashed process are stale.
	if n, err := a.store.ReleaseLeases(ctx); err != nil {
		return fmt.Errorf("release stale leases: %w", err)
	} else if n > 0 {
		a.log.Info("resuming deliveries interrupted by the last shutdown", "count", n)
	}
	for _, s := range a.plan.Sinks {
		if o, ok := s.Sink.(sinks.Opener); ok {
			if err := o.Open(ctx); err != nil {
				return fmt.Errorf("sink %s: %w", s.Name, err)
			}
		}
	}
	a.dispatcher = delivery.New(a.store, a.plan.Sinks, delivery.Options{Logger: a.log, Now: a.now})
	a.server = receiver.New(a.plan.Sources, a, receiver.Options{
		BodyLimit:    int(cfg.Server.BodyLimit),
		ReadTimeout:  cfg.Server.ReadTimeout.D(),
		WriteTimeout: cfg.Server.WriteTimeout.D(),
		IdleTimeout:  cfg.Server.IdleTimeout.D(),
		Logger:       a.log,
		Now:          a.now,
	})
	a.reportWaiting(ctx)
	return nil
}

// reportWaiting logs deliveries that no configured sink will send: held
// sinks, and sinks no longer in the configuration.
func (a *App) reportWaiting(ctx context.Context) {
	counts, err := a.store.Counts(ctx)
	if err != nil {
		a.log.Warn("count deliveries", "err", err)
		return
	}
	active := map[string]bool{}
	for _, s := range a.plan.Sinks {
		active[s.Name] = true
	}
	for _, name := range a.plan.Held {
		a.log.Warn("sink held: no destination configured; its deliveries wait until one is", "sink", name,
			"waiting", counts[name][queue.StatePending]+counts[name][queue.StateFailed])
	}
	held := map[string]bool{}
	for _, name := range a.plan.Held {
		held[name] = true
	}
	for sink, c := range counts {
		waiting := c[queue.StatePending] + c[queue.StateFailed]
		if waiting > 0 && !active[sink] && !held[sink] {
			a.log.Warn("deliveries wait for a sink that is not configured", "sink", sink, "waiting", waiting)
		}
	}
	if limit := int64(a.plan.Config.Storage.MaxPending); limit > 0 && a.store.Pending() >= limit*8/10 {
		a.log.Warn("deliveries waiting are near storage.max_pending: beyond it new events get 503",
			"waiting", a.store.Pending(), "max_pending", limit)
	}
}

// Start listens on the configured address and starts delivering.
func (a *App) Start() error {
	ln, err := net.Listen("tcp", a.plan.Config.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.plan.Config.Server.Listen, err)
	}
	return a.StartOn(ln)
}

// StartOn serves on ln (tests pass a listener on a free port) and starts
// delivering.
func (a *App) StartOn(ln net.Listener) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		ln.Close()
		return errors.New("app stopped")
	}
	if a.started {
		ln.Close()
		return errors.New("app already started")
	}
	a.started = true
	a.ln = ln
	a.serveErr = make(chan error, 1)
	go func() { a.serveErr <- a.server.Serve(ln) }()
	a.dispatcher.Start()
	a.bg.Go(a.pruneLoop)
	a.log.Info("switchyard serving", "addr", ln.Addr().String(), "sources", len(a.plan.Sources),
		"sinks", len(a.plan.Sinks), "held", len(a.plan.Held), "storage", a.store.Path(), "version", Version)
	return nil
}

// Addr is the address served, once started.
func (a *App) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Server is the HTTP edge, for tests that call it without a network.
func (a *App) Server() *receiver.Server { return a.server }

// Store is the queue, for tests and tools.
func (a *App) Store() *queue.Store { return a.store }

// Ingest implements receiver.Ingester: route the event, then store it
// with its deliveries, then wake the sinks' workers.
func (a *App) Ingest(ctx context.Context, ev *event.Event) (receiver.Result, error) {
	if limit := int64(a.plan.Config.Storage.MaxPending); limit > 0 {
		if n := a.store.Pending(); n >= limit {
			return receiver.Result{}, fmt.Errorf("%w: %d deliveries waiting (storage.max_pending is %d)", receiver.ErrOverloaded, n, limit)
		}
	}
	dedup := a.plan.Dedup[ev.Source]
	if dedup.Key != nil {
		a.setDedupKey(ev, dedup.Key)
	}
	targets, errs := a.rules.Match(ev)
	for _, err := range errs {
		var re *rules.RouteError
		if errors.As(err, &re) {
			a.log.Warn("route condition failed; route skipped", "source", ev.Source, "event_id", ev.ID, "route", re.Route, "err", re.Err)
		}
	}
	qt := make([]queue.Target, len(targets))
	for i, t := range targets {
		qt[i] = queue.Target{Sink: t.Sink, Routes: t.Routes}
	}
	acc, err := a.store.Accept(ctx, queue.Incoming{Event: ev, Targets: qt, DedupWindow: dedup.Window})
	if err != nil {
		return receiver.Result{}, err
	}
	if acc.Duplicate {
		a.log.Info("duplicate event ignored", "source", ev.Source, "event_id", acc.EventID, "event_type", ev.EventType)
		return receiver.Result{ID: acc.EventID, Duplicate: true}, nil
	}
	a.log.Debug("event accepted", "source", ev.Source, "event_id", ev.ID, "event_type", ev.EventType, "deliveries", len(qt))
	for _, t := range targets {
		a.dispatcher.Notify(t.Sink)
	}
	return receiver.Result{ID: acc.EventID}, nil
}

// Stop shuts down in order: stop accepting requests and finish those in
// flight; stop leasing and wait for running attempts until ctx ends
// (what is cut short stays pending for the next start); close the sinks
// and the store. It is safe to call more than once.
func (a *App) Stop(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return a.stopErr
	}
	a.stopped = true
	close(a.quit)
	var errs []error
	if a.started {
		if err := a.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop http: %w", err))
		}
		// Shutdown misses a listener the serving goroutine has not
		// registered yet (a Stop right after Start): closing it ends Serve.
		a.ln.Close()
		if err := <-a.serveErr; err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("serve: %w", err))
		}
	}
	if a.dispatcher != nil {
		if err := a.dispatcher.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	a.bg.Wait()
	errs = append(errs, a.closeAll())
	a.stopErr = errors.Join(errs...)
	return a.stopErr
}

func (a *App) closeAll() error {
	var errs []error
	errs = append(errs, a.plan.Close())
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	if a.lock != nil {
		errs = append(errs, a.lock.Release())
	}
	return errors.Join(errs...)
}

// setDedupKey replaces the event's dedup key with the source's
// dedup_key expression. A key that cannot be computed keeps the
// default: a duplicate may then get through, but no event is dropped.
func (a *App) setDedupKey(ev *event.Event, key *lang.Expression) {
	var v any
	env, err := ev.Env()
	if err == nil {
		v, err = key.Eval(env)
	}
	text := ""
	if err == nil && v != nil {
		text = lang.Text(v)
	}
	if text == "" {
		if err == nil {
			err = errors.New("empty key")
		}
		a.log.Warn("dedup_key failed; deduplicating by the default key", "source", ev.Source, "event_id", ev.ID, "err", err)
		return
	}
	sum := sha256.Sum256([]byte(text))
	ev.DedupKey = "key:" + hex.EncodeToString(sum[:])
}

// pruneEvery is how often delivered events older than their source's
// dedup window are deleted.
const pruneEvery = 10 * time.Minute

func (a *App) pruneLoop() {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		window := func(source string) time.Duration {
			if d, ok := a.plan.Dedup[source]; ok {
				return d.Window
			}
			return config.DefaultDedupWindow.D() // a source no longer configured
		}
		n, err := a.store.Prune(context.Background(), window)
		switch {
		case err != nil && !errors.Is(err, queue.ErrClosed):
			a.log.Warn("prune delivered events", "err", err)
		case n > 0:
			a.log.Info("pruned delivered events past their dedup window", "events", n)
		}
		select {
		case <-a.quit:
			return
		case <-t.C:
		}
	}
}
