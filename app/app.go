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
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/console"
	"github.com/switchyard/switchyard/delivery"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/metrics"
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
	// Registerer receives the metrics; a registry of the App's own when
	// nil. Gatherer is what /metrics serves: Registerer itself when it is
	// a *prometheus.Registry and Gatherer is nil.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Load reads the configuration again, for Reload; config.Load of the
	// running configuration's file when nil.
	Load func() (*config.Config, error)
	// WatchEvery is how often the configuration file is checked for
	// changes, which are then reloaded; zero does not watch.
	WatchEvery time.Duration
	// SyncHook, when set, runs before each fsync of a SQLite queue's
	// WAL and an error it returns stands in for the fsync's (fault tests).
	SyncHook func() error
	// LeaseTTL, when set, is how long a delivery's lease lasts unless its
	// attempt renews it (delivery.Options.LeaseTTL); by default a lease
	// lasts the attempt's timeout and 30 s.
	LeaseTTL time.Duration
}

// App is a running gateway.
type App struct {
	log   *slog.Logger
	now   func() time.Time
	store queue.Store
	lock  *dirLock
	hook  func() error  // Options.SyncHook
	ttl   time.Duration // Options.LeaseTTL, else storage.lease_ttl (postgres)
	idle  time.Duration // storage.poll_interval (postgres)
	// replica is this gateway among those sharing the store; digest the
	// SHA-256 of its configuration file as last loaded.
	replica queue.Replica
	digest  atomic.Pointer[string]
	server  *receiver.Server
	metrics *metrics.Metrics
	gather  prometheus.Gatherer
	ops     *admin.Ops
	load    func() (*config.Config, error)
	watch   time.Duration

	// routing is what requests and workers use now; a reload replaces
	// it whole. An event is routed with the one Ingest loaded.
	routing atomic.Pointer[routing]
	// reloadMu serializes reloads with each other and with starting and
	// stopping delivery. Lock order: mu, then reloadMu.
	reloadMu sync.Mutex
	// fileHash is the SHA-256 of the configuration file as last loaded
	// (or tried): the watcher reloads when the file differs.
	fileHash atomic.Pointer[[sha256.Size]byte]

	admin   *http.Server
	adminLn net.Listener
	// console serves /ui/ on the admin listener; rates feed its
	// overview; lastReload is the last reload's outcome it shows.
	console    *console.Console
	rates      *console.Rates
	lastReload atomic.Pointer[console.ReloadStatus]

	bg       sync.WaitGroup // background jobs (pruning, watching)
	quit     chan struct{}  // closed by Stop: background jobs end
	mu       sync.Mutex
	ln       net.Listener
	serveErr chan error
	started  bool // under reloadMu
	stopped  bool
	stopErr  error
}

// routing is an immutable snapshot of what a configuration routes: its
// sources, rules and sinks.
type routing struct {
	plan *Plan
	// sinks are the sinks delivered to, by name: each with its own
	// dispatcher, so that a reload starts and stops them one by one.
	sinks map[string]*runningSink
}

type runningSink struct {
	cfg  config.Sink
	sink delivery.Sink
	disp *delivery.Dispatcher
}

// names returns the sinks configured: delivered to or held.
func (r *routing) names() []string {
	out := slices.Collect(maps.Keys(r.sinks))
	return append(out, r.plan.Held...)
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
	a := &App{log: log, now: now, load: opts.Load, watch: opts.WatchEvery, hook: opts.SyncHook, ttl: opts.LeaseTTL, quit: make(chan struct{}),
		rates: console.NewRates(now)}
	if a.load == nil {
		a.load = func() (*config.Config, error) { return config.Load(cfg.File()) }
	}
	reg, gather := opts.Registerer, opts.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, gather = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok && gather == nil {
		gather = g
	}
	a.gather = gather
	if a.metrics, err = metrics.New(reg, Version); err != nil {
		plan.Close()
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if err := a.open(ctx, plan); err != nil {
		a.closeAll(plan.Sinks)
		return nil, err
	}
	return a, nil
}

func (a *App) open(ctx context.Context, plan *Plan) error {
	cfg := plan.Config
	a.replica = a.newReplica(cfg)
	if cfg.Storage.Backend == config.BackendPostgres {
		// Replicas share the database: no lock, and leases expire
		// unless renewed, so that a replica that stops loses its work
		// to the others.
		if a.ttl == 0 {
			a.ttl = cfg.Storage.LeaseTTL.D()
		}
		a.idle = cfg.Storage.PollInterval.D()
	} else {
		lock, err := lockDir(cfg.Storage.Dir)
		if err != nil {
			return err
		}
		a.lock = lock
	}
	var err error
	a.store, err = OpenStore(ctx, cfg.Storage, StoreOptions{Logger: a.log, Now: a.now, SyncHook: a.hook,
		Replica: a.replica.Name, OnNotify: a.wake})
	if err != nil {
		return err
	}
	r := &routing{plan: plan, sinks: map[string]*runningSink{}}
	for _, s := range plan.Sinks {
		rs, err := a.openSink(ctx, cfg, s)
		if err != nil {
			return err
		}
		r.sinks[s.Name] = rs
	}
	a.routing.Store(r)
	if err := a.metrics.WatchQueue(a.store, func() []string { return a.routing.Load().names() }, a.now); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	ropts := receiver.Options{
		BodyLimit:    int(cfg.Server.BodyLimit),
		ReadTimeout:  cfg.Server.ReadTimeout.D(),
		WriteTimeout: cfg.Server.WriteTimeout.D(),
		IdleTimeout:  cfg.Server.IdleTimeout.D(),
		Logger:       a.log,
		Now:          a.now,
		OnMapError: func(source, field string) {
			a.metrics.MapError(source, field)
			a.rates.Rejected(source, "mapping")
		},
		OnRequest: a.metrics.Request,
		OnVerifyFailure: func(source, reason string) {
			a.metrics.VerifyFailure(source, reason)
			a.rates.Rejected(source, reason)
		},
		Health: a.health,
	}
	if cfg.Metrics.Listener == config.MetricsOnMain {
		ropts.Metrics, ropts.MetricsPath = a.metricsHandler(), config.MetricsPath
	}
	a.server = receiver.New(plan.Sources, a, ropts)
	a.ops = admin.NewOps(wakingStore{a.store, a.wakeAll}, func() []string { return a.routing.Load().names() })
	a.ops.SetSinkInfo(a.sinkInfo)
	if cfg.Admin.Enabled() {
		aopts := admin.Options{
			Ops:         a.ops,
			Reloader:    a,
			Replicas:    a.Replicas,
			Token:       func() config.Secret { return a.routing.Load().plan.Config.Admin.Token },
			ViewerToken: func() config.Secret { return a.routing.Load().plan.Config.Admin.ViewerToken },
			Logger:      a.log.With("component", "admin"),
		}
		if cfg.Metrics.Listener == config.MetricsOnAdmin {
			aopts.Metrics = a.metricsHandler()
		}
		handler, err := a.adminHandler(aopts)
		if err != nil {
			return fmt.Errorf("console: %w", err)
		}
		a.admin = &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       cfg.Server.ReadTimeout.D(),
			IdleTimeout:       cfg.Server.IdleTimeout.D(),
			ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		}
	}
	if a.watch > 0 {
		a.fileHash.Store(hashFile(cfg.File()))
	}
	a.reportWaiting(ctx, r)
	return nil
}

func (a *App) metricsHandler() http.Handler {
	return promhttp.HandlerFor(a.gather, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)})
}

// openSink opens a built sink and gives it a dispatcher, not started.
func (a *App) openSink(ctx context.Context, cfg *config.Config, s delivery.Sink) (*runningSink, error) {
	if o, ok := s.Sink.(sinks.Opener); ok {
		if err := o.Open(ctx); err != nil {
			return nil, fmt.Errorf("sink %s: %w", s.Name, err)
		}
	}
	rs := &runningSink{sink: s}
	for _, sc := range cfg.Sinks {
		if sc.Name == s.Name {
			rs.cfg = sc
		}
	}
	rs.disp = delivery.New(a.store, []delivery.Sink{s}, delivery.Options{
		Logger:   a.log,
		Now:      a.now,
		LeaseTTL: a.ttl,
		Idle:     a.idle,
		OnAttempt: func(at delivery.Attempt) {
			a.metrics.Attempt(at.Sink, at.State, at.Took, at.Waited)
			a.rates.Attempt(at.Sink, at.State)
		},
	})
	return rs, nil
}

// reportWaiting logs deliveries that no configured sink will send: held
// sinks, and sinks no longer in the configuration.
func (a *App) reportWaiting(ctx context.Context, r *routing) {
	counts, err := a.store.Counts(ctx)
	if err != nil {
		a.log.Warn("count deliveries", "err", err)
		return
	}
	for _, name := range r.plan.Held {
		a.log.Warn("sink held: no destination configured; its deliveries wait until one is", "sink", name,
			"waiting", counts[name][queue.StatePending]+counts[name][queue.StateFailed])
	}
	for sink, c := range counts {
		waiting := c[queue.StatePending] + c[queue.StateFailed]
		if waiting > 0 && !slices.Contains(r.names(), sink) {
			a.log.Warn("deliveries wait for a sink that is not configured", "sink", sink, "waiting", waiting)
		}
	}
	if limit := int64(r.plan.Config.Storage.MaxPending); limit > 0 && a.waiting(r) >= limit*8/10 {
		a.log.Warn("deliveries waiting are near storage.max_pending: beyond it new events get 503",
			"waiting", a.waiting(r), "max_pending", limit)
	}
}

// waiting counts the deliveries waiting for the sinks r delivers to.
// Held and removed sinks never drain, so their backlog does not count
// toward storage.max_pending (purge it with switchyard deliveries
// purge).
func (a *App) waiting(r *routing) int64 {
	var n int64
	for name := range r.sinks {
		n += a.store.Waiting(name)
	}
	return n
}

// health is /healthz: the store's health.
func (a *App) health() error {
	if err := a.store.Health(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}

// Start listens on the configured addresses and starts delivering.
func (a *App) Start() error {
	cfg := a.routing.Load().plan.Config
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Server.Listen, err)
	}
	return a.StartOn(ln)
}

// StartOn serves webhooks on ln (tests pass a listener on a free port),
// the admin API on admin.listen when configured, and starts delivering.
func (a *App) StartOn(ln net.Listener) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		ln.Close()
		return errors.New("app stopped")
	}
	if a.ln != nil {
		ln.Close()
		return errors.New("app already started")
	}
	r := a.routing.Load()
	cfg := r.plan.Config
	if a.admin != nil {
		aln, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin: listen on %s: %w", cfg.Admin.Listen, err)
		}
		a.adminLn = aln
		a.bg.Go(func() {
			if err := a.admin.Serve(aln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("admin API stopped", "err", err)
			}
		})
	}
	a.ln = ln
	a.serveErr = make(chan error, 1)
	go func() { a.serveErr <- a.server.Serve(ln) }()
	a.reloadMu.Lock()
	a.started = true
	for _, rs := range r.sinks {
		rs.disp.Start()
	}
	a.reloadMu.Unlock()
	a.bg.Go(a.pruneLoop)
	if rs, ok := a.store.(replicaStore); ok {
		a.bg.Go(func() { a.heartbeatLoop(rs) })
	}
	if a.watch > 0 {
		a.bg.Go(a.watchLoop)
	}
	a.log.Info("switchyard serving", "addr", ln.Addr().String(), "sources", len(r.plan.Sources),
		"sinks", len(r.sinks), "held", len(r.plan.Held), "storage", a.store.Describe(), "version", Version)
	switch {
	case a.admin != nil:
		a.log.Info("admin API serving", "addr", a.adminLn.Addr().String(), "metrics", cfg.Metrics.Listener == config.MetricsOnAdmin)
	case cfg.Metrics.Listener == config.MetricsOnAdmin:
		a.log.Info("metrics not served: metrics.listener is admin, and the admin API is off (set admin.listen and admin.token)")
	}
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

// AdminAddr is the admin API's address, once started with one.
func (a *App) AdminAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.adminLn == nil {
		return ""
	}
	return a.adminLn.Addr().String()
}

// Server is the HTTP edge, for tests that call it without a network.
func (a *App) Server() *receiver.Server { return a.server }

// Store is the queue, for tests and tools.
func (a *App) Store() queue.Store { return a.store }

// Ops are the admin operations on the queue.
func (a *App) Ops() *admin.Ops { return a.ops }

// Ingest implements receiver.Ingester: route the event, then store it
// with its deliveries, then wake the sinks' workers.
func (a *App) Ingest(ctx context.Context, ev *event.Event) (receiver.Result, error) {
	r := a.routing.Load()
	cfg := r.plan.Config
	if limit := int64(cfg.Storage.MaxPending); limit > 0 {
		if n := a.waiting(r); n >= limit {
			a.countEvent(ev.Source, metrics.Refused)
			return receiver.Result{}, fmt.Errorf("%w: %d deliveries waiting (storage.max_pending is %d)", receiver.ErrOverloaded, n, limit)
		}
	}
	dedup := r.plan.Dedup[ev.Source]
	if dedup.Key != nil {
		a.setDedupKey(ev, dedup.Key)
	}
	targets, errs := r.plan.Rules.Match(ev)
	for _, err := range errs {
		var re *rules.RouteError
		if errors.As(err, &re) {
			a.metrics.RouteError(re.Route)
			a.log.Warn("route condition failed; route skipped", "source", ev.Source, "event_id", ev.ID, "route", re.Route, "err", re.Err)
		}
	}
	qt := make([]queue.Target, len(targets))
	var routes []string
	for i, t := range targets {
		// A held sink counts as ordered: it delivers nothing, and its
		// deliveries wait in the queue, not in the store's memory.
		ordered := true
		if rs, ok := r.sinks[t.Sink]; ok {
			ordered = rs.sink.Ordered
		}
		qt[i] = queue.Target{Sink: t.Sink, Routes: t.Routes, Ordered: ordered}
		for _, name := range t.Routes {
			if !slices.Contains(routes, name) {
				routes = append(routes, name)
			}
		}
	}
	acc, err := a.store.Accept(ctx, queue.Incoming{Event: ev, Targets: qt, DedupWindow: dedup.Window})
	if err != nil {
		a.countEvent(ev.Source, metrics.Failed)
		return receiver.Result{}, err
	}
	if acc.Duplicate {
		a.countEvent(ev.Source, metrics.Duplicate)
		a.log.Info("duplicate event ignored", "source", ev.Source, "event_id", acc.EventID, "event_type", ev.EventType)
		return receiver.Result{ID: acc.EventID, Duplicate: true}, nil
	}
	a.countEvent(ev.Source, metrics.Accepted)
	a.metrics.Routed(ev.Source, routes)
	level := slog.LevelDebug
	if cfg.Log.Events {
		level = slog.LevelInfo
	}
	a.log.Log(ctx, level, "event accepted", "source", ev.Source, "event_id", ev.ID, "event_type", ev.EventType,
		"routes", routes, "deliveries", len(qt))
	// Wake the workers running now: a reload may have replaced them.
	now := a.routing.Load()
	for _, t := range targets {
		if rs, ok := now.sinks[t.Sink]; ok {
			rs.disp.Notify(t.Sink)
		}
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
	if a.ln != nil {
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
	if a.adminLn != nil {
		a.console.Close() // live views end, bulk jobs stop after their batch
		if err := a.admin.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop admin API: %w", err))
		}
	}
	// No reload runs from here on: it sees quit closed.
	a.reloadMu.Lock()
	r := a.routing.Load()
	a.reloadMu.Unlock()
	var running []*runningSink
	if r != nil {
		running = slices.Collect(maps.Values(r.sinks))
	}
	errs = append(errs, stopSinks(ctx, running))
	a.bg.Wait()
	if a.ln != nil {
		a.leave()
	}
	var built []delivery.Sink
	for _, rs := range running {
		built = append(built, rs.sink)
	}
	errs = append(errs, a.closeAll(built))
	a.stopErr = errors.Join(errs...)
	return a.stopErr
}

// stopSinks stops the sinks' dispatchers together: each stops leasing
// and waits for its running attempts until ctx ends.
func stopSinks(ctx context.Context, rs []*runningSink) error {
	var wg sync.WaitGroup
	errs := make([]error, len(rs))
	for i, s := range rs {
		wg.Go(func() { errs[i] = s.disp.Stop(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (a *App) closeAll(built []delivery.Sink) error {
	var errs []error
	for _, s := range built {
		errs = append(errs, s.Sink.Close())
	}
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
		dedup := a.routing.Load().plan.Dedup
		window := func(source string) time.Duration {
			if d, ok := dedup[source]; ok {
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

// wakingStore is the store as the admin operations (API, console) see
// it: what they make due again wakes the sinks' workers at once, rather
// than at their next poll.
type wakingStore struct {
	queue.Store
	wake func()
}

func (w wakingStore) Replay(ctx context.Context, f queue.Filter) (int64, error) {
	n, err := w.Store.Replay(ctx, f)
	if n > 0 {
		w.wake()
	}
	return n, err
}

func (w wakingStore) RetryNow(ctx context.Context, f queue.Filter) (int64, error) {
	n, err := w.Store.RetryNow(ctx, f)
	if n > 0 {
		w.wake()
	}
	return n, err
}

// wakeAll tells every running sink's worker that deliveries may be due.
func (a *App) wakeAll() {
	for name, rs := range a.routing.Load().sinks {
		rs.disp.Notify(name)
	}
}
