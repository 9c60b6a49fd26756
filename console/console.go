// Package console is the operators' web console, served by the gateway
// at /ui/ on the admin listener: what came in, what was delivered and
// what failed, why an event went where it went, sessions in order, a
// rules playground, the configuration. Pages are rendered on the
// server from admin.Ops (so they work on every storage backend), with
// htmx for partial updates and server-sent events for live views; the
// assets are embedded, nothing is loaded from another origin.
//
// Security is at the edge, once: a login page exchanges a token for an
// HttpOnly, SameSite=Strict session cookie; every POST carries a CSRF
// token; every answer carries a Content-Security-Policy without inline
// scripts or remote origins; templates escape every value (event data
// is untrusted input). The viewer token sees everything and its POSTs,
// but logging out, are refused.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/dryrun"
)

//go:embed static templates
var files embed.FS

// Prefix is where the console is served.
const Prefix = "/ui/"

// ReloadStatus is the outcome of the last configuration reload.
type ReloadStatus struct {
	At      time.Time
	OK      bool
	Changes config.Changes
	// Problems are the configuration's problems, placed in the file, or
	// why it could not be applied.
	Problems []string
}

// Preview builds a dry run of a configuration, as `switchyard test`
// does: nothing is sent or stored. close releases what it built.
type Preview func(cfg *config.Config) (r *dryrun.Runner, close func(), err error)

// Options configures the console.
type Options struct {
	Ops      *admin.Ops
	Reloader admin.Reloader
	// Tokens returns admin.token and admin.viewer_token as they run now.
	Tokens func() (adminToken, viewerToken config.Secret)
	// Config returns the running configuration.
	Config func() *config.Config
	// Preview builds the dry-run engine for a configuration.
	Preview Preview
	// LastReload returns the last reload's outcome; ok is false before
	// any.
	LastReload func() (ReloadStatus, bool)
	// Rates are the last hour's counts, fed by the gateway.
	Rates  *Rates
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// LiveEvery is how often live views refresh; 2s when zero.
	LiveEvery time.Duration
}

// Console serves the pages.
type Console struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	sessions sessions
	pages    map[string]*page
	mux      *http.ServeMux
	jobs     jobs

	preview struct {
		sync.Mutex
		cfg    *config.Config
		runner *dryrun.Runner
		close  func()
	}

	quit     chan struct{}
	quitOnce sync.Once
	wg       sync.WaitGroup
	// ctx ends when the console closes: bulk jobs run on it.
	ctx    context.Context
	cancel context.CancelFunc
}

// New builds the console.
func New(opts Options) (*Console, error) {
	c := &Console{opts: opts, log: opts.Logger, now: opts.Now, quit: make(chan struct{})}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.opts.LiveEvery <= 0 {
		c.opts.LiveEvery = 2 * time.Second
	}
	c.sessions.m = map[string]*session{}
	c.jobs.m = map[string]*job{}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(files, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", staticHandler(static)))
	mux.HandleFunc("GET /ui/login", c.loginPage)
	mux.HandleFunc("POST /ui/login", c.login)
	mux.HandleFunc("POST /ui/logout", c.authed(c.logout, false))
	mux.HandleFunc("GET /ui/{$}", c.authed(c.overview, false))
	mux.HandleFunc("GET /ui/live/overview", c.authed(c.liveOverview, false))
	mux.HandleFunc("GET /ui/events", c.authed(c.events, false))
	mux.HandleFunc("GET /ui/live/events", c.authed(c.liveEvents, false))
	mux.HandleFunc("GET /ui/events/{id}", c.authed(c.event, false))
	mux.HandleFunc("POST /ui/events/{id}/replay", c.authed(c.replayEvent, true))
	mux.HandleFunc("GET /ui/deliveries", c.authed(c.deliveries, false))
	mux.HandleFunc("POST /ui/deliveries/plan", c.authed(c.planBulk, true))
	mux.HandleFunc("POST /ui/deliveries/bulk", c.authed(c.runBulk, true))
	mux.HandleFunc("GET /ui/jobs/{id}", c.authed(c.jobPage, false))
	mux.HandleFunc("POST /ui/deliveries/{id}/replay", c.authed(c.replayDelivery, true))
	mux.HandleFunc("POST /ui/deliveries/{id}/retry-now", c.authed(c.retryNow, true))
	mux.HandleFunc("POST /ui/deliveries/{id}/give-up", c.authed(c.giveUp, true))
	mux.HandleFunc("GET /ui/sessions/{subject}", c.authed(c.session, false))
	mux.HandleFunc("GET /ui/playground", c.authed(c.playground, false))
	mux.HandleFunc("GET /ui/config", c.authed(c.configPage, false))
	mux.HandleFunc("POST /ui/config/reload", c.authed(c.reload, true))
	mux.HandleFunc("/ui/", c.authed(func(w http.ResponseWriter, r *http.Request, v *base) {
		c.fail(w, r, v, http.StatusNotFound, "No such page.")
	}, false))
	c.mux = mux
	return c, nil
}

// Handler serves the console under Prefix, with its security headers.
func (c *Console) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if r.URL.Path == "/ui" {
			http.Redirect(w, r, Prefix, http.StatusFound)
			return
		}
		c.mux.ServeHTTP(w, r)
	})
}

// csp allows scripts, styles and connections from the console itself
// only: no inline script or style, no other origin, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Close ends live views and bulk jobs (those stop after their current
// batch) and waits for them. The gateway calls it before shutting the
// admin listener down.
func (c *Console) Close() {
	c.quitOnce.Do(func() {
		close(c.quit)
		c.cancel()
	})
	c.wg.Wait()
	c.preview.Lock()
	if c.preview.close != nil {
		c.preview.close()
		c.preview.close, c.preview.runner, c.preview.cfg = nil, nil, nil
	}
	c.preview.Unlock()
}

// handler is a page handler: v is the page's base view, with the
// session's role and CSRF token.
type handler func(w http.ResponseWriter, r *http.Request, v *base)

// authed lets through requests with a session: others go to the login
// page (GET) or are refused (POST, fragments). A POST must carry the
// session's CSRF token, not come from another site, and, when admin is
// set, come from the admin token's session.
func (c *Console) authed(next handler, adminOnly bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := c.current(r)
		if sess == nil {
			if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" && !strings.HasPrefix(r.URL.Path, "/ui/live/") {
				http.Redirect(w, r, "/ui/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "log in first: "+Prefix+"login", http.StatusUnauthorized)
			return
		}
		v := &base{Role: sess.role, CSRF: sess.csrf, Path: r.URL.Path}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if crossSite(r) || !csrfOK(r, sess.csrf) {
				c.log.Warn("console request refused: CSRF token missing or wrong", "path", r.URL.Path, "remote_addr", r.RemoteAddr)
				c.fail(w, r, v, http.StatusForbidden, "This form expired or did not come from the console: reload the page and try again.")
				return
			}
			if adminOnly && sess.role != admin.RoleAdmin {
				c.fail(w, r, v, http.StatusForbidden, "The viewer token only reads: log in with admin.token to change anything.")
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		next(w, r, v)
	}
}

// fail answers with an error page (or, for htmx, a fragment).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, v *base, status int, msg string) {
	v.Title = "Error"
	c.render(w, r, status, "error", &errorView{base: v, Status: status, Message: msg})
}

// failErr answers an operation's error: 400 for a bad query, 404 for an
// unknown event or delivery, 500 otherwise (logged, not shown).
func (c *Console) failErr(w http.ResponseWriter, r *http.Request, v *base, err error) {
	switch {
	case admin.IsInput(err):
		c.fail(w, r, v, http.StatusBadRequest, err.Error())
	case errors.Is(err, admin.ErrNotFound):
		c.fail(w, r, v, http.StatusNotFound, err.Error())
	default:
		c.log.Error("console request failed", "path", r.URL.Path, "err", err)
		c.fail(w, r, v, http.StatusInternalServerError, "Something failed; see the gateway's log.")
	}
}

type errorView struct {
	*base
	Status  int
	Message string
}

// withRunner runs fn with the dry-run engine of the running
// configuration, built once per configuration; one run at a time (a
// Runner numbers the events it runs).
func (c *Console) withRunner(fn func(r *dryrun.Runner)) error {
	if c.opts.Config == nil || c.opts.Preview == nil {
		return errors.New("no configuration to run")
	}
	cfg := c.opts.Config()
	c.preview.Lock()
	defer c.preview.Unlock()
	if c.preview.cfg != cfg || c.preview.runner == nil {
		r, closeFn, err := c.opts.Preview(cfg)
		if err != nil {
			return fmt.Errorf("preview the running configuration: %w", err)
		}
		if c.preview.close != nil {
			c.preview.close()
		}
		c.preview.cfg, c.preview.runner, c.preview.close = cfg, r, closeFn
	}
	fn(c.preview.runner)
	return nil
}
