package app

import (
	"errors"
	"net/http"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/console"
)

// sinkInfo describes the configured sinks for the operations' session
// view and overview.
func (a *App) sinkInfo() []admin.SinkInfo {
	cfg := a.routing.Load().plan.Config
	out := make([]admin.SinkInfo, 0, len(cfg.Sinks))
	for _, s := range cfg.Sinks {
		si := admin.SinkInfo{Name: s.Name, Type: s.Type, Ordered: s.Ordered != nil && *s.Ordered}
		if s.Held() {
			si.Held = "no destination configured (an empty webhook_url, token or url): its deliveries wait until one is"
		}
		out = append(out, si)
	}
	return out
}

// adminHandler serves the admin API, and the console at /ui/.
func (a *App) adminHandler(aopts admin.Options) (http.Handler, error) {
	c, err := console.New(console.Options{
		Ops:      a.ops,
		Reloader: a,
		Tokens: func() (config.Secret, config.Secret) {
			ad := a.routing.Load().plan.Config.Admin
			return ad.Token, ad.ViewerToken
		},
		Config:  func() *config.Config { return a.routing.Load().plan.Config },
		Preview: PreviewRunner,
		LastReload: func() (console.ReloadStatus, bool) {
			if st := a.lastReload.Load(); st != nil {
				return *st, true
			}
			return console.ReloadStatus{}, false
		},
		Rates:  a.rates,
		Logger: a.log.With("component", "console"),
		Now:    a.now,
	})
	if err != nil {
		return nil, err
	}
	a.console = c
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, c.Handler())
	mux.Handle("/ui", c.Handler())
	mux.Handle("/", admin.Handler(aopts))
	return mux, nil
}

// recordReload keeps a reload's outcome for the console.
func (a *App) recordReload(ch config.Changes, err error) {
	st := &console.ReloadStatus{At: a.now(), OK: err == nil, Changes: ch}
	var cerr *config.Error
	switch {
	case errors.As(err, &cerr):
		for _, p := range cerr.Problems {
			st.Problems = append(st.Problems, p.String())
		}
	case err != nil:
		st.Problems = []string{err.Error()}
	}
	a.lastReload.Store(st)
}

// countEvent counts an ingested event for the metrics and the console.
func (a *App) countEvent(source, outcome string) {
	a.metrics.Event(source, outcome)
	a.rates.Event(source, outcome)
}
