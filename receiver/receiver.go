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

// errStore marks an Ingester failure.
type storeError struct{ err error }

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
	// path with the source and the status answered.
	OnRequest func(source string, status int)
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
	onRequest       func(source string, status int)
	onVerifyFailure func(source, reason string)
	// routes are the sources served, by path: replaced whole by
	// SetSources, so a request sees one set from start to end.
	routes atomic.Pointer[map[string]*endpoint]
}

// endpoint is a source's handlers.
type endpoint struct {
	name      string
	hook      fiber.Handler
	challenge fiber.Handler // nil: GET is not allowed
}

// sourceKey is the fiber.Ctx local holding the name of the source a
// request was for.
const sourceKey = "switchyard.source"

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
		ep := &endpoint{name: src.Name, hook: s.hook(&src)}
		if src.Challenge != nil {
			ep.challenge = s.challenge(&src)
		}
		routes[routeKey(src.Path)] = ep
	}
	s.routes.Store(&routes)
}

// routeKey matches paths as Fiber's router does by default: without
// regard to case or a trailing slash.
func routeKey(path string) string {
	path = strings.ToLower(path)
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	return path
}

// dispatch hands a request to its source's handler.
func (s *Server) dispatch(c *fiber.Ctx) error {
	ep, ok := (*s.routes.Load())[routeKey(c.Path())]
	if !ok {
		return fiber.ErrNotFound
	}
	c.Locals(sourceKey, ep.name)
	switch {
	case c.Method() == fiber.MethodPost:
		return ep.hook(c)
	case c.Method() == fiber.MethodGet && ep.challenge != nil:
		return ep.challenge(c)
	}
	return fiber.ErrNotFound // a method the source does not serve
}

// observe answers errors itself (rather than leaving them to Fiber) so
// that it sees the status of every request to a source.
func (s *Server) observe(c *fiber.Ctx) error {
	if err := c.Next(); err != nil {
		if herr := s.handleError(c, err); herr != nil {
			return herr
		}
	}
	if src, ok := c.Locals(sourceKey).(string); ok && s.onRequest != nil {
		s.onRequest(src, c.Response().StatusCode())
	}
	return nil
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
		if enc := c.Get(fiber.HeaderContentEncoding); enc != "" && !strings.EqualFold(enc, "identity") {
			return fiber.NewError(fiber.StatusUnsupportedMediaType, "compressed bodies are not accepted: send the body as signed, without Content-Encoding")
		}
		req := request(c, s.now().UTC())
		if err := src.Verify(req); err != nil {
			log.Warn("webhook rejected", "reason", err, "remote_ip", c.IP(), "size", len(req.Body))
			s.verifyFailed(src.Name, err)
			return err
		}
		if src.Handshake != nil {
			reply, err := src.Handshake(req)
			if err != nil {
				log.Warn("handshake rejected", "reason", err, "remote_ip", c.IP(), "size", len(req.Body))
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
			log.Warn("webhook rejected", "reason", err, "remote_ip", c.IP(), "size", len(req.Body))
			return err
		}
		ev.Source = src.Name
		ev.ID = event.NewID("evt_", req.ReceivedAt)
		ev.Request = &event.Request{Body: req.Body, Header: storedHeader(req.Header, src.SecretHeaders)}

		ctx, cancel := context.WithTimeout(context.Background(), s.ingestTimeout)
		defer cancel()
		res, err := s.ingest.Ingest(ctx, ev)
		if err != nil {
			if errors.Is(err, ErrOverloaded) {
				log.Warn("event refused", "event_id", ev.ID, "event_type", ev.EventType, "err", err)
			} else {
				log.Error("event not stored", "event_id", ev.ID, "event_type", ev.EventType, "err", err)
			}
			return &storeError{err}
		}
		body := fiber.Map{"id": res.ID}
		if res.Duplicate {
			body["duplicate"] = true
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
			log.Warn("subscription challenge refused", "reason", err, "remote_ip", c.IP())
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

// handleError maps errors to a status and a fixed JSON message; internal
// error text never reaches the sender.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	status, msg := http.StatusInternalServerError, "internal error"
	var (
		bad   *BadRequestError
		store *storeError
		ferr  *fiber.Error
	)
	switch {
	case errors.Is(err, ErrUnauthorized):
		status, msg = http.StatusUnauthorized, "invalid or missing signature"
	case errors.Is(err, ErrForbidden):
		status, msg = http.StatusForbidden, "source address not allowed"
	case errors.Is(err, ErrChallengeRefused):
		status, msg = http.StatusForbidden, "subscription check refused: verify token missing or wrong"
	case errors.As(err, &bad):
		status, msg = http.StatusBadRequest, bad.Msg
	case errors.As(err, &store):
		status, msg = http.StatusServiceUnavailable, "event not stored; retry later"
		retry := "5"
		if errors.Is(err, ErrOverloaded) {
			msg, retry = "too many deliveries waiting; retry later", "30"
		}
		c.Set(fiber.HeaderRetryAfter, retry)
	case errors.As(err, &ferr):
		status = ferr.Code
		switch status {
		case http.StatusNotFound:
			msg = "no webhook here: check the source's path"
		case http.StatusRequestEntityTooLarge:
			msg = "body larger than the configured body_limit"
		case http.StatusMethodNotAllowed:
			msg = "method not allowed: webhooks are POSTed"
		case http.StatusUnsupportedMediaType:
			msg = ferr.Message
		default:
			msg = strings.ToLower(http.StatusText(status))
		}
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
