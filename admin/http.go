package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/queue"
)

// Reloader reloads the gateway's configuration; app.App implements it.
// A configuration with problems returns a *config.Error and changes
// nothing; so does any other error (a file that cannot be read, a sink
// that cannot open), whose text is shown to the operator.
type Reloader interface {
	Reload(ctx context.Context) (config.Changes, error)
}

// Options configures the admin API.
type Options struct {
	Ops      *Ops
	Reloader Reloader
	// Token returns the bearer token requests must carry; it may change
	// with a reload. An empty token refuses every request.
	Token func() config.Secret
	// ViewerToken, when set, returns the read-only token: it may read
	// (GET) and nothing else.
	ViewerToken func() config.Secret
	// Metrics, when set, is served at config.MetricsPath, behind the
	// token like everything else.
	Metrics http.Handler
	// Replicas, when set, lists the live replicas sharing the store.
	Replicas func(ctx context.Context) ([]queue.Replica, error)
	Logger   *slog.Logger
}

// Default list sizes.
const (
	defaultEventLimit    = 50
	defaultDeliveryLimit = 100
)

// Handler serves the admin API: JSON, every request authenticated with
// "Authorization: Bearer <admin.token>".
//
//	GET  /events?source=&type=&subject=&state=&since=&until=&text=&where=&after=&limit=
//	                                              events with their deliveries, newest first; "next" continues
//	GET  /events/{id}                             one event, as stored, with its request and deliveries
//	GET  /deliveries?state=&sink=&subject=&status=&error=&since=&until=&event=&after=&limit=
//	GET  /sessions/{subject}                      a session's deliveries, sink by sink, in order
//	GET  /audit?limit=                            the audit log of bulk actions, newest first
//	POST /deliveries/{id}/replay                  queue one delivery again
//	POST /deliveries/{id}/retry-now               attempt a waiting delivery now
//	POST /deliveries/{id}/give-up                 make a waiting delivery dead
//	POST /replay {"event"|"sink", "state", "since"}
//	POST /purge {"sink", "state", "before", "dry_run"|"yes"}   delete a sink's deliveries
//	POST /reload                                  reload the configuration file
//	GET  /replicas                                the live replicas sharing the queue
//	GET  /metrics                                 Prometheus (when metrics.listener is admin)
//
// admin.viewer_token may GET, and is refused anything else (403).
func Handler(opts Options) http.Handler {
	h := &handler{Options: opts}
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", h.events)
	mux.HandleFunc("GET /events/{id}", h.event)
	mux.HandleFunc("GET /deliveries", h.deliveries)
	mux.HandleFunc("GET /sessions/{subject}", h.session)
	mux.HandleFunc("GET /audit", h.audit)
	mux.HandleFunc("POST /deliveries/{id}/replay", h.replayOne)
	mux.HandleFunc("POST /deliveries/{id}/retry-now", h.retryNow)
	mux.HandleFunc("POST /deliveries/{id}/give-up", h.giveUp)
	mux.HandleFunc("POST /replay", h.replay)
	mux.HandleFunc("POST /purge", h.purge)
	mux.HandleFunc("POST /reload", h.reload)
	mux.HandleFunc("GET /replicas", h.replicas)
	if opts.Metrics != nil {
		mux.Handle("GET "+config.MetricsPath, opts.Metrics)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowed(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method not allowed: use "+strings.Join(allow, " or "))
			return
		}
		writeError(w, http.StatusNotFound, "no such endpoint: see docs/operations.md, Admin API")
	})
	return h.auth(mux)
}

// allowed returns the methods mux serves r's path with, other than the
// catch-all: a wrong method on a known path is 405, not 404.
func allowed(mux *http.ServeMux, r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
			out = append(out, m)
		}
	}
	return out
}

type handler struct {
	Options
}

// Roles a token gives.
const (
	RoleAdmin  = "admin"  // admin.token: everything
	RoleViewer = "viewer" // admin.viewer_token: reads only
)

// TokenRole returns the role of a presented token: RoleAdmin,
// RoleViewer, or "" for none. It compares SHA-256 digests in constant
// time, always against both tokens: neither the tokens' lengths nor
// their content, nor which one matched first, leak through timing. An
// empty configured token matches nothing.
func TokenRole(got string, admin, viewer config.Secret) string {
	g := sha256.Sum256([]byte(got))
	a, v := sha256.Sum256([]byte(admin.Reveal())), sha256.Sum256([]byte(viewer.Reveal()))
	isAdmin := subtle.ConstantTimeCompare(g[:], a[:]) & boolInt(admin != "")
	isViewer := subtle.ConstantTimeCompare(g[:], v[:]) & boolInt(viewer != "")
	switch {
	case isAdmin == 1:
		return RoleAdmin
	case isViewer == 1:
		return RoleViewer
	}
	return ""
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// role is the role of the request's bearer token under the running
// tokens.
func (h *handler) role(got string) string {
	var viewer config.Secret
	if h.ViewerToken != nil {
		viewer = h.ViewerToken()
	}
	return TokenRole(got, h.Token(), viewer)
}

// auth lets through requests bearing a token: the admin token for
// anything, the viewer token for reads.
func (h *handler) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || len(r.Header.Values("Authorization")) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard-admin"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <admin.token>")
			return
		}
		role := h.role(strings.TrimSpace(got))
		if role == "" {
			h.Logger.Warn("admin request refused: wrong token", "remote_addr", r.RemoteAddr, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard-admin", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid token")
			return
		}
		if role != RoleAdmin && r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusForbidden, "the viewer token only reads: use admin.token to change anything")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := limitParam(q.Get("limit"), defaultEventLimit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	page, err := h.Ops.EventPage(r.Context(), EventQuery{Source: q.Get("source"), Type: q.Get("type"), Subject: q.Get("subject"),
		State: q.Get("state"), Since: q.Get("since"), Until: q.Get("until"), Text: q.Get("text"), Where: q.Get("where"),
		After: q.Get("after"), Limit: limit})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": page.Events, "more": page.Next != "", "next": page.Next,
		"scanned": page.Scanned, "partial": page.Partial})
}

func (h *handler) event(w http.ResponseWriter, r *http.Request) {
	ev, err := h.Ops.Event(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ev)
}

func (h *handler) deliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := limitParam(q.Get("limit"), defaultDeliveryLimit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	page, err := h.Ops.DeliveryPage(r.Context(), DeliveryQuery{
		Event: q.Get("event"), Sink: q.Get("sink"), Subject: q.Get("subject"), State: q.Get("state"), Status: q.Get("status"),
		Error: q.Get("error"), Since: q.Get("since"), Until: q.Get("until"), After: q.Get("after"), Limit: limit,
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": page.Deliveries, "more": page.Next != "", "next": page.Next})
}

func (h *handler) session(w http.ResponseWriter, r *http.Request) {
	s, err := h.Ops.Session(r.Context(), r.PathValue("subject"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (h *handler) audit(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r.URL.Query().Get("limit"), defaultDeliveryLimit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	as, err := h.Ops.Audits(r.Context(), limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"audit": as})
}

func (h *handler) retryNow(w http.ResponseWriter, r *http.Request) {
	if err := h.Ops.RetryNow(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"retrying": r.PathValue("id")})
}

func (h *handler) giveUp(w http.ResponseWriter, r *http.Request) {
	if err := h.Ops.GiveUp(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	h.Logger.Info("delivery given up through the admin API", "delivery_id", r.PathValue("id"))
	writeJSON(w, http.StatusOK, map[string]any{"dead": r.PathValue("id")})
}

func (h *handler) replayOne(w http.ResponseWriter, r *http.Request) {
	h.doReplay(w, r, DeliveryQuery{Delivery: r.PathValue("id")})
}

// replayRequest is the body of POST /replay.
type replayRequest struct {
	Event string `json:"event"`
	Sink  string `json:"sink"`
	State string `json:"state"`
	Since string `json:"since"`
}

func (h *handler) replay(w http.ResponseWriter, r *http.Request) {
	var req replayRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		h.fail(w, r, &InputError{"body", "want a JSON object with event, or sink (and state, since): " + err.Error()})
		return
	}
	h.doReplay(w, r, DeliveryQuery{Event: req.Event, Sink: req.Sink, State: req.State, Since: req.Since})
}

func (h *handler) doReplay(w http.ResponseWriter, r *http.Request, q DeliveryQuery) {
	res, err := h.Ops.Replay(r.Context(), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.Logger.Info("replay requested through the admin API", "delivery_id", q.Delivery, "event_id", q.Event,
		"sink", q.Sink, "state", q.State, "requeued", res.Requeued)
	if q.Sink != "" && q.Delivery == "" && q.Event == "" { // a bulk replay: audited
		if err := h.Ops.Audit(r.Context(), RoleAdmin+" (API)", ActionReplay, q.QueryString(), res.Requeued, res.Requeued); err != nil {
			h.Logger.Warn("audit a replay", "err", err)
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// purgeRequest is the body of POST /purge: dry_run counts, yes deletes.
type purgeRequest struct {
	Sink   string `json:"sink"`
	State  string `json:"state"`
	Before string `json:"before"`
	DryRun bool   `json:"dry_run"`
	Yes    bool   `json:"yes"`
}

func (h *handler) purge(w http.ResponseWriter, r *http.Request) {
	var req purgeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		h.fail(w, r, &InputError{"body", "want a JSON object with sink (and state, before) and dry_run or yes: " + err.Error()})
		return
	}
	if !req.DryRun && !req.Yes {
		h.fail(w, r, &InputError{"body", `a purge deletes deliveries for good: send "dry_run": true to count them first, then "yes": true to delete them`})
		return
	}
	res, err := h.Ops.Purge(r.Context(), PurgeQuery{Sink: req.Sink, State: req.State, Before: req.Before, DryRun: req.DryRun})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !res.DryRun {
		h.Logger.Warn("deliveries purged through the admin API", "sink", req.Sink, "state", req.State, "before", req.Before, "purged", res.Purged)
		filter := DeliveryQuery{Sink: req.Sink, State: req.State}.QueryString()
		if req.Before != "" {
			filter += "&before=" + req.Before
		}
		if err := h.Ops.Audit(r.Context(), RoleAdmin+" (API)", ActionPurge, filter, res.Purged, res.Purged); err != nil {
			h.Logger.Warn("audit a purge", "err", err)
		}
	}
	writeJSON(w, http.StatusOK, res)
}

func (h *handler) reload(w http.ResponseWriter, r *http.Request) {
	changes, err := h.Reloader.Reload(r.Context())
	var cerr *config.Error
	if errors.As(err, &cerr) {
		problems := make([]string, len(cerr.Problems))
		for i, p := range cerr.Problems {
			problems[i] = p.String()
		}
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"error":    "the configuration has problems; the running configuration is kept",
			"problems": problems,
		})
		return
	}
	if err != nil {
		// Not a problem placed in the file, but the reload failed all
		// the same: the file cannot be read, or a sink cannot open (an
		// archive path not writable). The operator fixes it; the
		// gateway has logged it.
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"error":    "the configuration could not be applied; the running configuration is kept",
			"problems": []string{err.Error()},
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"changes": changes})
}

func limitParam(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, &InputError{"limit", "want a whole number, 0 for no limit"}
	}
	return n, nil
}

// fail answers an error: 400 for a bad query, 404 for an unknown event
// or delivery, 500 (logged, not shown) otherwise.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case IsInput(err):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	default:
		h.Logger.Error("admin request failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error; see the gateway's log")
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
