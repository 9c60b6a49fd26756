package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"reflect"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/delivery"
)

// ErrStopped is returned by a Reload after Stop.
var ErrStopped = errors.New("switchyard is stopping")

// Reload loads the configuration file again and, if it is valid, applies
// it: sources, routes and sinks added, removed or changed; storage.max_pending,
// admin.token, admin.viewer_token and log.events. Settings only a restart applies
// (server.*, storage.* but max_pending, admin.listen,
// metrics.listener) keep their running values and are listed in
// Changes.NeedsRestart.
//
// A configuration with problems changes nothing: its error is a
// *config.Error, each problem logged with its position. Events accepted
// before the swap keep the routing they were accepted with; a request
// in flight is routed by the old or the new rules, never refused.
//
// A removed sink's dispatcher stops (its running attempts finish, or
// are cut at server.shutdown_timeout and retried); its deliveries wait
// in the queue, like a held sink's. A changed sink's dispatcher is
// replaced the same way.
func (a *App) Reload(ctx context.Context) (config.Changes, error) {
	// A reload runs to its end whatever happens to its caller: a client
	// that disconnects from POST /reload must not cut short the attempts
	// of the sinks it replaces (they would be sent again).
	ctx = context.WithoutCancel(ctx)
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	select {
	case <-a.quit:
		return config.Changes{}, ErrStopped
	default:
	}
	cur := a.routing.Load()
	file := cur.plan.Config.File()
	a.fileHash.Store(hashFile(file))
	next, err := a.load()
	if err == nil {
		var ch config.Changes
		if ch, err = a.apply(ctx, cur, next); err == nil {
			a.setDigest(file)
			a.metrics.Reload(true)
			a.recordReload(ch, nil)
			a.logChanges(ch)
			return ch, nil
		}
	}
	a.metrics.Reload(false)
	a.recordReload(config.Changes{}, err)
	var cerr *config.Error
	if errors.As(err, &cerr) {
		for _, p := range cerr.Problems {
			a.log.Error("reload: "+p.String(), "file", file)
		}
		a.log.Error("configuration not reloaded: it has problems; the running configuration is kept", "file", file, "problems", len(cerr.Problems))
	} else {
		a.log.Error("configuration not reloaded; the running configuration is kept", "file", file, "err", err)
	}
	return config.Changes{}, err
}

// apply builds next and swaps it in for cur. Nothing changes unless the
// whole configuration builds and every new sink opens.
func (a *App) apply(ctx context.Context, cur *routing, next *config.Config) (config.Changes, error) {
	ch := config.Diff(cur.plan.Config, next)
	next.KeepRunning(cur.plan.Config)
	plan, err := Build(next, a.log)
	if err != nil {
		return ch, err
	}
	for _, w := range next.Warnings {
		a.log.Warn("reload: " + w.String())
	}
	r := &routing{plan: plan, sinks: map[string]*runningSink{}}
	var fresh []*runningSink
	var spare []delivery.Sink // built, but a running one is kept
	for _, s := range plan.Sinks {
		sc := sinkConfig(next, s.Name)
		if old, ok := cur.sinks[s.Name]; ok && reflect.DeepEqual(old.cfg, sc) {
			r.sinks[s.Name] = old
			spare = append(spare, s)
			continue
		}
		rs, err := a.openSink(ctx, next, s)
		if err != nil {
			plan.Close()
			return ch, err
		}
		r.sinks[s.Name] = rs
		fresh = append(fresh, rs)
	}
	for _, s := range spare {
		s.Sink.Close() // never opened: releases idle connections only
	}
	plan.Sinks = nil // the running sinks are r.sinks; Plan.Close must not close them

	a.routing.Store(r)
	a.server.SetSources(plan.Sources)

	var gone []*runningSink
	for name, old := range cur.sinks {
		if r.sinks[name] != old {
			gone = append(gone, old)
		}
	}
	if len(gone) > 0 {
		// Running attempts finish; at the deadline they are cut short
		// and retried by the new worker.
		sctx, cancel := context.WithTimeout(ctx, cur.plan.Config.Server.ShutdownTimeout.D())
		if err := stopSinks(sctx, gone); err != nil {
			a.log.Warn("reload: attempts of a replaced sink were cut short; they will be retried", "err", err)
		}
		cancel()
		for _, old := range gone {
			if err := old.sink.Sink.Close(); err != nil {
				a.log.Warn("reload: close replaced sink", "sink", old.sink.Name, "err", err)
			}
		}
	}
	if a.started {
		for _, rs := range fresh {
			rs.disp.Start()
		}
	}
	a.reportWaiting(ctx, r)
	return ch, nil
}

func sinkConfig(cfg *config.Config, name string) config.Sink {
	for _, sc := range cfg.Sinks {
		if sc.Name == name {
			return sc
		}
	}
	return config.Sink{}
}

func (a *App) logChanges(ch config.Changes) {
	if ch.Empty() {
		a.log.Info("configuration reloaded: no changes")
		return
	}
	attrs := []any{}
	for _, d := range []struct {
		key   string
		delta config.Delta
	}{{"sources", ch.Sources}, {"sinks", ch.Sinks}, {"routes", ch.Routes}} {
		if !d.delta.Empty() {
			attrs = append(attrs, d.key, d.delta.String())
		}
	}
	if len(ch.Settings) > 0 {
		attrs = append(attrs, "settings", ch.Settings)
	}
	a.log.Info("configuration reloaded", attrs...)
	if len(ch.NeedsRestart) > 0 {
		a.log.Warn("configuration changes that need a restart: they keep their running values until then", "needs_restart", ch.NeedsRestart)
	}
}

// watchLoop reloads the configuration when its file changes: every
// WatchEvery it compares the file's modification time and size, and
// when either changed, its SHA-256 with the one last loaded. A file
// that fails to load is reported once, not at every check.
func (a *App) watchLoop() {
	file := a.routing.Load().plan.Config.File()
	t := time.NewTicker(a.watch)
	defer t.Stop()
	var last os.FileInfo
	for {
		select {
		case <-a.quit:
			return
		case <-t.C:
		}
		fi, err := os.Stat(file)
		if err != nil {
			continue // being replaced (rename), or gone: keep running
		}
		if last != nil && fi.ModTime().Equal(last.ModTime()) && fi.Size() == last.Size() {
			continue
		}
		last = fi
		sum := hashFile(file)
		if sum == nil || a.fileHash.Load() != nil && *sum == *a.fileHash.Load() {
			continue
		}
		a.log.Info("configuration file changed; reloading", "file", file)
		a.Reload(context.Background()) // logs its outcome; bounded by shutdown_timeout
	}
}

func hashFile(path string) *[sha256.Size]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(b)
	return &sum
}
