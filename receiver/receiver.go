// Package receiver is Switchyard's HTTP edge: it serves each source's
// webhook path, verifies and normalizes requests, and hands events to an
// Ingester, answering 2xx only once the event is durably stored.
package receiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/receiver/verify"
)

// Ingester stores an event and its deliveries. It returns an error only
// when the event could not be stored durably; the sender then gets 503
// and retries.
type Ingester interface {
	Ingest(ctx context.Context, ev *event.Event) (Result, error)
}

// Result is the outcome of a stored event.
type Result struct {
	// ID is the event's id; for a duplicate, the id of the original.
	ID        string
	Duplicate bool
}

// Errors a source returns, mapped to statuses by the error handler.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	// ErrChallengeRefused refuses a subscription check (Meta's GET
	// hub.challenge): wrong or missing verify token, or none configured.
	ErrChallengeRefused = errors.New("challenge refused")
)

// ErrOverloaded is returned (wrapped) by an Ingester that refuses new
// events because too many deliveries are waiting: the sender gets 503
// and retries later.
var ErrOverloaded = errors.New("overloaded")

// BadRequestError is a payload a source cannot map; Msg is shown to the
// sender, so it names the field and never echoes secrets. Field is the
// event field that failed, when one did (for logs and, later, metrics).
type BadRequestError struct {
	Msg   string
	Field string
}

func (e *BadRequestError) Error() string { return e.Msg }

// storeError marks an Ingester failure, for the event it was given.
type storeError struct {
	err       error
	eventID   string
	eventType string
}

func (e *storeError) Error() string { return "store: " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// Options configures the server.
type Options struct {
	BodyLimit    int
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// IngestTimeout bounds how long a request waits for the store before
	// answering 503.
	IngestTimeout time.Duration
	Logger        *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// OnMapError, when set, is called for every payload a source cannot
	// map (a 400), with the source and the event field that failed ("" for
	// a body that is not JSON). It is the hook for a metric.
	OnMapError func(source, field string)
	// OnRequest, when set, is called once per request to a source's
	// path, and once per request refused before reaching one (a path no
	// source serves, a body over BodyLimit: source NoSource unless the
	// path is a source's), with the status answered and its reason (see
	// Reasons).
	OnRequest func(source string, status int, reason string)
	// OnVerifyFailure, when set, is called for every request a source
	// refuses as unauthentic or not allowed, with a short reason (see
	// VerifyReason).
	OnVerifyFailure func(source, reason string)
	// Metrics, when set, is served at GET MetricsPath.
	Metrics     http.Handler
	MetricsPath string
	// Health, when set, is asked by GET /healthz: an error answers 503
	// with its text (the store cannot write, say).
	Health func() error
}

// Server serves the webhook endpoints.
type Server struct {
	app             *fiber.App
	ingest          Ingester
	log             *slog.Logger
	now             func() time.Time
	ingestTimeout   time.Duration
	onMapError      func(source, field string)
	onRequest       func(source string, status int, reason string)
	onVerifyFailure func(source, reason string)
	// routes are the sources served, by path: replaced whole by
	// SetSources, so a request sees one set from start to end.
	routes atomic.Pointer[map[string]*endpoint]
	// own are the server's own paths (/healthz, the metrics), by
	// routeKey: GET only.
	own map[string]bool
	// rejected limits the log lines about rejected requests.
	rejected *logLimiter
}

// endpoint is a source's handlers.
type endpoint struct {
	name      string
	hook      fiber.Handler
	challenge fiber.Handler // nil: GET is not allowed
	allow     string        // the Allow header of a 405
}

// Locals of a fiber.Ctx: the source a request was for (NoSource for a
// path no source serves) and why it was answered as it was.
const (
	sourceKey = "switchyard.source"
	reasonKey = "switchyard.reason"
)

// NoSource is the source label of a request refused before it reached
// a source: a path no source serves, or a request the HTTP layer
// refused. No source can be named so.
const NoSource = "(none)"

// Reasons a request was answered as it was: the reason label of
// switchyard_receiver_requests_total and of the log line of a
// rejection. 401 and 403 carry the verification reasons of
// VerifyReason instead.
const (
	ReasonAccepted       = "accepted"           // 200: stored
	ReasonDuplicate      = "duplicate"          // 200: a duplicate of a stored event
	ReasonHandshake      = "handshake"          // a platform's setup request or GET challenge, answered
	ReasonBadPayload     = "bad_payload"        // 400: verified, but the payload cannot be mapped
	ReasonBadRequest     = "bad_request"        // 400: not a well-formed HTTP request
	ReasonNoSource       = "no_source"          // 404: no source serves the path
	ReasonMethod         = "method_not_allowed" // 405: see the Allow header
	ReasonTimeout        = "timeout"            // 408: the request was not read within read_timeout
	ReasonTooLarge       = "body_too_large"     // 413: body over server.body_limit
	ReasonEncoding       = "content_encoding"   // 415: a compressed body
	ReasonHeaderTooLarge = "header_too_large"   // 431
	ReasonInternal       = "internal"           // 500: a bug, logged with its stack
	ReasonReadFailed     = "read_failed"        // the connection failed while the request was read
	ReasonStoreFailed    = "store_failed"       // 503: the event could not be stored
	ReasonOverloaded     = "overloaded"         // 503: too many deliveries waiting (max_pending)
)

// Reasons lists every reason a request is counted with, verification
// reasons included.
func Reasons() []string {
	return []string{ReasonAccepted, ReasonDuplicate, ReasonHandshake, ReasonBadPayload, ReasonBadRequest,
		"missing", "malformed", "mismatch", "duplicate_header", "stale", "ip_not_allowed", "challenge_refused", "other",
		ReasonNoSource, ReasonMethod, ReasonTimeout, ReasonTooLarge, ReasonEncoding, ReasonHeaderTooLarge,
		ReasonInternal, ReasonReadFailed, ReasonStoreFailed, ReasonOverloaded}
}

// New builds a server for sources. Nothing listens until Serve.
func New(sources []Source, ingest Ingester, opts Options) *Server {
	s := &Server{
		ingest:          ingest,
		log:             opts.Logger,
		now:             opts.Now,
		ingestTimeout:   opts.IngestTimeout,
		onMapError:      opts.OnMapError,
		onRequest:       opts.OnRequest,
		onVerifyFailure: opts.OnVerifyFailure,
		own:             map[string]bool{routeKey("/healthz"): true},
		rejected:        newLogLimiter(time.Second, time.Now),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ingestTimeout <= 0 {
		s.ingestTimeout = 5 * time.Second
	}
	s.app = fiber.New(fiber.Config{
		BodyLimit:             opts.BodyLimit,
		ReadTimeout:           opts.ReadTimeout,
		WriteTimeout:          opts.WriteTimeout,
		IdleTimeout:           opts.IdleTimeout,
		ErrorHandler:          s.handleError,
		DisableStartupMessage: true,
		// Answers are short JSON; no need to advertise the server.
		ServerHeader: "",
	})
	s.app.Use(s.observe, s.recover)
	s.app.Get("/healthz", func(c *fiber.Ctx) error {
		if opts.Health != nil {
			if err := opts.Health(); err != nil {
				return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "failing", "error": err.Error()})
			}
		}
		return c.JSON(fiber.Map{"status": "ok"})
	})
	if opts.Metrics != nil && opts.MetricsPath != "" {
		s.app.Get(opts.MetricsPath, adaptor.HTTPHandler(opts.Metrics))
		s.own[routeKey(opts.MetricsPath)] = true
	}
	s.SetSources(sources)
	s.app.Use(s.dispatch)
	return s
}

// SetSources replaces the sources served. Requests already past
// routing finish with the source they started with.
func (s *Server) SetSources(sources []Source) {
	routes := make(map[string]*endpoint, len(sources))
	for i := range sources {
		src := sources[i]
		ep := &endpoint{name: src.Name, hook: s.hook(&src), allow: fiber.MethodPost}
		if src.Challenge != nil {
			ep.challenge = s.challenge(&src)
			ep.allow = fiber.MethodGet + ", " + fiber.MethodPost
		}
		routes[routeKey(src.Path)] = ep
	}
	s.routes.Store(&routes)
}

// routeKey matches paths as Fiber's router does by default: without
// regard to case or trailing slashes. config.PathKey is the same rule,
// with which a configuration refuses two sources this cannot tell
// apart.
func routeKey(path string) string {
	path = strings.TrimRight(strings.ToLower(path), "/")
	if path == "" {
		return "/"
	}
	return path
}

// Answers to a method a path does not serve.
var (
	errHookMethod = fiber.NewError(fiber.StatusMethodNotAllowed, "method not allowed: webhooks are POSTed (see the Allow header)")
	errOwnMethod  = fiber.NewError(fiber.StatusMethodNotAllowed, "method not allowed: GET only")
)

// dispatch hands a request to its source's handler.
func (s *Server) dispatch(c *fiber.Ctx) error {
	key := routeKey(c.Path())
	ep, ok := (*s.routes.Load())[key]
	if !ok {
		c.Locals(sourceKey, NoSource)
		if s.own[key] { // GET and HEAD were routed before
			c.Set(fiber.HeaderAllow, "GET, HEAD")
			return errOwnMethod
		}
		return fiber.ErrNotFound
	}
	c.Locals(sourceKey, ep.name)
	switch {
	case c.Method() == fiber.MethodPost:
		return ep.hook(c)
	case c.Method() == fiber.MethodGet && ep.challenge != nil:
		return ep.challenge(c)
	}
	c.Set(fiber.HeaderAllow, ep.allow)
	return errHookMethod
}

// observe answers errors itself (rather than leaving them to Fiber) so
// that it sees the status and the reason of every request dispatched:
// it counts each, and logs each rejection (rate-limited).
func (s *Server) observe(c *fiber.Ctx) error {
	err := c.Next()
	status, reason := c.Response().StatusCode(), ""
	if err != nil {
		var msg string
		status, msg, reason = classify(err)
		if herr := s.answer(c, err, status, msg); herr != nil {
			return herr
		}
	} else if r, ok := c.Locals(reasonKey).(string); ok {
		reason = r
	}
	src, ok := c.Locals(sourceKey).(string)
	if !ok {
		return nil // GET /healthz, /metrics
	}
	if reason == "" {
		reason = ReasonAccepted
		if status >= 300 {
			reason = strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
		}
	}
	s.record(c, src, status, reason, err)
	return nil
}

// record counts a request and logs it if it was rejected: at most one
// line per second per source and reason, counting the lines left out.
// A panic is not logged again (recover logged it, with its stack).
func (s *Server) record(c *fiber.Ctx, source string, status int, reason string, err error) {
	if s.onRequest != nil {
		s.onRequest(source, status, reason)
	}
	if status < 400 || errors.Is(err, errPanic) {
		return
	}
	ok, suppressed := s.rejected.allow(source, reason)
	if !ok {
		return
	}
	attrs := []any{"source", source, "status", status, "reason", reason, "remote_ip", c.IP()}
	if n := c.Request().Header.ContentLength(); n > 0 {
		attrs = append(attrs, "size", n)
	}
	if source == NoSource || status == fiber.StatusMethodNotAllowed {
		attrs = append(attrs, "method", c.Method(), "path", truncate(c.Path(), 128))
	}
	var store *storeError
	if errors.As(err, &store) {
		attrs = append(attrs, "event_id", store.eventID, "event_type", store.eventType)
	}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	switch reason {
	case ReasonStoreFailed:
		s.log.Error("event not stored", attrs...)
	case ReasonOverloaded:
		s.log.Warn("event refused", attrs...)
	default:
		s.log.Warn("webhook rejected", attrs...)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// VerifyReason names why a request failed verification, for metrics:
// missing, malformed, mismatch, duplicate_header, stale, ip_not_allowed,
// challenge_refused or other.
func VerifyReason(err error) string {
	switch {
	case errors.Is(err, ErrForbidden) || errors.Is(err, verify.ErrForbidden):
		return "ip_not_allowed"
	case errors.Is(err, ErrChallengeRefused):
		return "challenge_refused"
	case errors.Is(err, verify.ErrMissing):
		return "missing"
	case errors.Is(err, verify.ErrMalformed):
		return "malformed"
	case errors.Is(err, verify.ErrMismatch):
		return "mismatch"
	case errors.Is(err, verify.ErrDuplicate):
		return "duplicate_header"
	case errors.Is(err, verify.ErrStale):
		return "stale"
	}
	return "other"
}

func (s *Server) verifyFailed(source string, err error) {
	if s.onVerifyFailure != nil {
		s.onVerifyFailure(source, VerifyReason(err))
	}
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.app.ShutdownWithContext(ctx) }

// Test runs req through the server without a network, for tests. A
// request the server rejects while reading it (a body over BodyLimit)
// returns fasthttp's error rather than the 413 a sender would get; test
// those through Serve.
func (s *Server) Test(req *http.Request) (*http.Response, error) { return s.app.Test(req, -1) }

func (s *Server) hook(src *Source) fiber.Handler {
	log := s.log.With("source", src.Name)
	return func(c *fiber.Ctx) error {
		// Rejections are logged, and counted, by observe.
		if enc := c.Get(fiber.HeaderContentEncoding); enc != "" && !strings.EqualFold(enc, "identity") {
			return fiber.NewError(fiber.StatusUnsupportedMediaType, "compressed bodies are not accepted: send the body as signed, without Content-Encoding")
		}
		req := request(c, s.now().UTC())
		if err := src.Verify(req); err != nil {
			s.verifyFailed(src.Name, err)
			return err
		}
		if src.Handshake != nil {
			reply, err := src.Handshake(req)
			if err != nil {
				return err
			}
			if reply != nil {
				log.Info("handshake answered", "remote_ip", c.IP(), "status", reply.Status)
				return send(c, reply)
			}
		}
		ev, err := src.Normalize(req)
		if err != nil {
			var bad *BadRequestError
			if errors.As(err, &bad) && s.onMapError != nil {
				s.onMapError(src.Name, bad.Field)
			}
			return err
		}
		ev.Source = src.Name
		ev.ID = event.NewID("evt_", req.ReceivedAt)
		ev.Request = &event.Request{Body: req.Body, Header: storedHeader(req.Header, src.SecretHeaders)}

		ctx, cancel := context.WithTimeout(context.Background(), s.ingestTimeout)
		defer cancel()
		res, err := s.ingest.Ingest(ctx, ev)
		if err != nil {
			return &storeError{err: err, eventID: ev.ID, eventType: ev.EventType}
		}
		body := fiber.Map{"id": res.ID}
		c.Locals(reasonKey, ReasonAccepted)
		if res.Duplicate {
			body["duplicate"] = true
			c.Locals(reasonKey, ReasonDuplicate)
		}
		return c.Status(fiber.StatusOK).JSON(body)
	}
}

// challenge answers GET requests on a source's path: a platform's
// subscription check. Nothing is stored.
func (s *Server) challenge(src *Source) fiber.Handler {
	log := s.log.With("source", src.Name)
	return func(c *fiber.Ctx) error {
		reply, err := src.Challenge(request(c, s.now().UTC()))
		if err != nil {
			var bad *BadRequestError
			if !errors.As(err, &bad) {
				s.verifyFailed(src.Name, err)
			}
			return err
		}
		log.Info("subscription challenge answered", "remote_ip", c.IP())
		return send(c, reply)
	}
}

// send writes a source's own reply.
func send(c *fiber.Ctx, r *Reply) error {
	c.Locals(reasonKey, ReasonHandshake)
	c.Status(r.Status)
	if r.ContentType != "" {
		c.Set(fiber.HeaderContentType, r.ContentType)
	}
	if len(r.Body) == 0 {
		return nil
	}
	return c.Send(r.Body)
}

// recover turns a panic into a 500 and logs it with its stack. No input
// should get here; this keeps one bad request from killing the gateway.
func (s *Server) recover(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic serving request", "path", c.Path(), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = errPanic
		}
	}()
	return c.Next()
}

var errPanic = errors.New("panic")

// handleError is Fiber's error handler. Errors of dispatched requests
// are answered by observe; what reaches here was refused by the HTTP
// layer before any handler ran (a body over BodyLimit, a malformed or
// slow request), and is counted and logged here, as observe would.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	status, msg, reason := classify(err)
	if herr := s.answer(c, err, status, msg); herr != nil {
		return herr
	}
	if _, dispatched := c.Locals(sourceKey).(string); dispatched {
		return nil // observe failed to answer: already counted
	}
	source := NoSource
	if status == http.StatusRequestEntityTooLarge {
		// The head was read whole: the path is the one asked for.
		if ep, ok := (*s.routes.Load())[routeKey(c.Path())]; ok {
			source = ep.name
		}
	}
	s.record(c, source, status, reason, err)
	return nil
}

// classify maps an error to a status, a fixed message for the sender
// and a reason for metrics and logs; internal error text never reaches
// the sender.
func classify(err error) (status int, msg, reason string) {
	var (
		bad   *BadRequestError
		store *storeError
		ferr  *fiber.Error
	)
	switch {
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, "invalid or missing signature", VerifyReason(err)
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, "source address not allowed", VerifyReason(err)
	case errors.Is(err, ErrChallengeRefused):
		return http.StatusForbidden, "subscription check refused: verify token missing or wrong", VerifyReason(err)
	case errors.As(err, &bad):
		return http.StatusBadRequest, bad.Msg, ReasonBadPayload
	case errors.As(err, &store):
		if errors.Is(err, ErrOverloaded) {
			return http.StatusServiceUnavailable, "too many deliveries waiting; retry later", ReasonOverloaded
		}
		return http.StatusServiceUnavailable, "event not stored; retry later", ReasonStoreFailed
	case errors.As(err, &ferr):
		switch ferr.Code {
		case http.StatusNotFound:
			return ferr.Code, "no webhook here: check the source's path", ReasonNoSource
		case http.StatusRequestEntityTooLarge:
			return ferr.Code, "body larger than the configured body_limit", ReasonTooLarge
		case http.StatusMethodNotAllowed:
			msg := ferr.Message
			if ferr != errHookMethod && ferr != errOwnMethod {
				msg = "method not allowed"
			}
			return ferr.Code, msg, ReasonMethod
		case http.StatusUnsupportedMediaType:
			return ferr.Code, ferr.Message, ReasonEncoding
		case http.StatusRequestTimeout:
			return ferr.Code, "request timeout", ReasonTimeout
		case http.StatusRequestHeaderFieldsTooLarge:
			return ferr.Code, "request header fields too large", ReasonHeaderTooLarge
		case http.StatusBadGateway: // Fiber's name for a connection that failed mid-read
			return ferr.Code, "bad gateway", ReasonReadFailed
		case http.StatusBadRequest:
			return ferr.Code, "bad request", ReasonBadRequest
		}
		return ferr.Code, strings.ToLower(http.StatusText(ferr.Code)), strings.ToLower(strings.ReplaceAll(http.StatusText(ferr.Code), " ", "_"))
	}
	return http.StatusInternalServerError, "internal error", ReasonInternal
}

// answer writes the JSON error answer.
func (s *Server) answer(c *fiber.Ctx, err error, status int, msg string) error {
	if status == http.StatusServiceUnavailable {
		retry := "5"
		if errors.Is(err, ErrOverloaded) {
			retry = "30"
		}
		c.Set(fiber.HeaderRetryAfter, retry)
	}
	return c.Status(status).JSON(fiber.Map{"error": msg})
}

// request copies what a source may keep out of Fiber's context: Fiber
// reuses its buffers (body, header and URL bytes) once the handler
// returns.
func request(c *fiber.Ctx, now time.Time) *Request {
	fr := c.Request()
	header := make(http.Header, fr.Header.Len())
	fr.Header.VisitAll(func(k, v []byte) {
		key := textproto.CanonicalMIMEHeaderKey(string(k))
		header[key] = append(header[key], string(v))
	})
	u := &url.URL{Scheme: "http", Host: string(fr.Host())}
	if c.Context().IsTLS() {
		u.Scheme = "https"
	}
	if parsed, err := url.ParseRequestURI(string(fr.RequestURI())); err == nil {
		u.Path, u.RawPath, u.RawQuery = parsed.Path, parsed.RawPath, parsed.RawQuery
	}
	var ip netip.Addr
	if addr, ok := c.Context().RemoteAddr().(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(addr.IP)
	} else if ap, err := netip.ParseAddrPort(c.Context().RemoteAddr().String()); err == nil {
		ip = ap.Addr()
	}
	return &Request{
		Body:       bytes.Clone(c.BodyRaw()),
		Header:     header,
		Method:     string(fr.Header.Method()),
		URL:        u,
		RemoteIP:   ip.Unmap(),
		ReceivedAt: now,
	}
}

// logLimiter lets one log line through per key and interval, and
// counts the lines it holds back. Keys are a source and a reason, both
// from short lists (the configuration, the reasons): the map stays
// small.
type logLimiter struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	seen map[[2]string]*limited
}

type limited struct {
	last       time.Time
	suppressed int
}

func newLogLimiter(every time.Duration, now func() time.Time) *logLimiter {
	return &logLimiter{every: every, now: now, seen: map[[2]string]*limited{}}
}

// allow reports whether a line about source and reason may be logged
// now and, if so, how many were held back since the last one.
func (l *logLimiter) allow(source, reason string) (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := [2]string{source, reason}
	st := l.seen[k]
	if st == nil {
		l.seen[k] = &limited{last: now}
		return true, 0
	}
	if now.Sub(st.last) < l.every {
		st.suppressed++
		return false, 0
	}
	suppressed, st.last, st.suppressed = st.suppressed, now, 0
	return true, suppressed
}
