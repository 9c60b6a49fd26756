// Package webhook is the http sink: it sends each event to a URL, as the
// normalized JSON or shaped by templates and expressions (lang), signed
// (Standard Webhooks or a plain HMAC) and as CloudEvents if asked.
package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/sinks"
)

// Headers set on every request. DeliveryHeader and IdempotencyHeader
// carry the delivery id, the same on every attempt and replay of a
// delivery, so receivers can drop repeats.
const (
	DeliveryHeader    = "X-Switchyard-Delivery"
	IdempotencyHeader = "Idempotency-Key"
	EventHeader       = "X-Switchyard-Event"
	AttemptHeader     = "X-Switchyard-Attempt"
)

// Formats of the request.
const (
	// FormatJSON sends the body as it is: the normalized event, or the
	// shaped body.
	FormatJSON = "json"
	// FormatCloudEvents sends a CloudEvents 1.0 structured JSON event
	// (application/cloudevents+json) whose data is the body.
	FormatCloudEvents = "cloudevents"
	// FormatCloudEventsBinary sends the body with the CloudEvents
	// attributes in ce-* headers.
	FormatCloudEventsBinary = "cloudevents-binary"
)

// Options configures a sink.
type Options struct {
	// URL receives the requests. It may hold {{ }} placeholders after
	// the host, in the path and the query: each value is escaped for
	// where it lands (a path segment, a query value), so an event can
	// never change the scheme, the host or the path the template wrote.
	URL string
	// Method is POST (when empty), PUT or PATCH.
	Method string
	// Headers are added to each request (for example Authorization).
	// Values are {{ }} templates.
	Headers map[string]string
	// Body shapes the request body. Without ContentType it is an
	// expression giving an object (or a list), sent as JSON; with
	// ContentType it is a {{ }} template sent with that type. Empty: the
	// normalized event (its data, for the CloudEvents formats).
	Body        string
	ContentType string
	// Format is FormatJSON (when empty), FormatCloudEvents or
	// FormatCloudEventsBinary.
	Format string
	// Sign adds a signature to each request; none when nil.
	Sign *Sign
	// Client sends the requests; sinks.NewHTTPClient() when nil.
	Client *http.Client
	// UserAgent identifies Switchyard to the receiver.
	UserAgent string
	// Now is the clock of signature timestamps; time.Now when nil.
	Now func() time.Time
}

// ConfigError is an option New cannot use. Field is its configuration
// key ("url", "headers.Authorization", "body", "sign.secret"); Err is a
// *lang.SyntaxError when the place inside the value is known.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Sink sends events to a URL.
type Sink struct {
	method string
	// url is the URL template cut at its query: placeholders in path are
	// path segments, those in query are query values.
	path, query *lang.Template
	hasQuery    bool
	static      string   // the URL, when it has no placeholders
	base        *url.URL // scheme and host: every rendered URL must keep them
	headers     []header
	body        *body
	format      string
	signer      signer
	client      *http.Client
	userAgent   string
	now         func() time.Time
	// needsEnv: some template or expression reads the event.
	needsEnv bool
	// secrets are redacted from errors: header values (their literal
	// text when templated), the URL's literal text, signing secrets.
	secrets []string
	longest int
}

type header struct {
	name string
	tmpl *lang.Template
}

var _ sinks.Sink = (*Sink)(nil)

// New compiles opts into a sink. Its error joins a *ConfigError per
// option that cannot be used.
func New(opts Options) (*Sink, error) {
	s := &Sink{
		method:    strings.ToUpper(opts.Method),
		format:    opts.Format,
		client:    opts.Client,
		userAgent: opts.UserAgent,
		now:       opts.Now,
	}
	if s.method == "" {
		s.method = http.MethodPost
	}
	if s.format == "" {
		s.format = FormatJSON
	}
	if s.client == nil {
		s.client = sinks.NewHTTPClient()
	}
	if s.now == nil {
		s.now = time.Now
	}
	var errs []error
	fail := func(field string, err error) { errs = append(errs, &ConfigError{Field: field, Err: err}) }

	switch s.method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		fail("method", fmt.Errorf("unsupported method %q: POST, PUT or PATCH", opts.Method))
	}
	switch s.format {
	case FormatJSON, FormatCloudEvents, FormatCloudEventsBinary:
	default:
		fail("format", fmt.Errorf("unknown format %q: json, cloudevents or cloudevents-binary", opts.Format))
	}
	if err := s.parseURL(opts.URL); err != nil {
		fail("url", err)
	}
	for _, name := range slices.Sorted(maps.Keys(opts.Headers)) {
		t, err := lang.ParseTemplate(opts.Headers[name])
		if err != nil {
			fail("headers."+name, err)
			continue
		}
		s.headers = append(s.headers, header{name: http.CanonicalHeaderKey(name), tmpl: t})
		s.needsEnv = s.needsEnv || !t.Static()
		s.addSecrets(t)
	}
	if opts.Body != "" || opts.ContentType != "" {
		b, err := parseBody(opts.Body, opts.ContentType)
		switch {
		case err != nil && opts.Body == "":
			fail("content_type", err)
		case err != nil:
			fail("body", err)
		default:
			s.body = b
			s.needsEnv = true
		}
	}
	if opts.Sign != nil {
		sg, err := newSigner(opts.Sign)
		if err != nil {
			errs = append(errs, err)
		}
		s.signer = sg
		s.secrets = append(s.secrets, opts.Sign.Secrets...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, secret := range s.secrets {
		s.longest = max(s.longest, len(secret))
	}
	return s, nil
}

// parseURL compiles the URL template and checks that its scheme and host
// are literal text.
func (s *Sink) parseURL(raw string) error {
	t, err := lang.ParseTemplate(raw)
	if err != nil {
		return err
	}
	s.path, s.query, s.hasQuery = t.Cut("?")
	scheme, rest, ok := s.path.Cut("://")
	host, _, _ := rest.Cut("/")
	if !ok || !scheme.Static() || !host.Static() {
		return errors.New("the scheme and host must be written out: {{ }} may only follow the host, in the path or the query")
	}
	base, err := url.Parse(scheme.String() + "://" + host.String())
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return errors.New("must be an absolute http:// or https:// URL")
	}
	s.base = base
	if pw, ok := base.User.Password(); ok && pw != "" {
		// Sent as basic auth: the password, and the header Go builds.
		basic := base64.StdEncoding.EncodeToString([]byte(base.User.Username() + ":" + pw))
		s.secrets = append(s.secrets, pw, basic)
	}
	if t.Static() {
		s.static = raw
		if hasCredentials(raw) {
			s.secrets = append(s.secrets, raw)
			s.addSecrets(s.query)
		}
		return nil
	}
	s.needsEnv = true
	s.addSecrets(s.query) // a token in the query
	return nil
}

// addSecrets redacts t's literal text (configuration, which may hold a
// credential; text from events is not secret): each literal part, and
// each of its words of minSecret bytes or more, so a receiver echoing
// only the token of "Bearer <token>" or of "?api_key=<token>" is caught.
func (s *Sink) addSecrets(t *lang.Template) {
	for _, lit := range t.Literals() {
		if lit = strings.TrimSpace(lit); lit != "" {
			s.secrets = append(s.secrets, lit)
		}
		for _, w := range strings.FieldsFunc(lit, isSeparator) {
			if len(w) >= minSecret && w != lit {
				s.secrets = append(s.secrets, w)
			}
		}
	}
}

// minSecret is the shortest word of a header or query that is redacted
// on its own: shorter ones are words ("Bearer", "json"), not keys.
const minSecret = 8

func isSeparator(r rune) bool {
	return r == ' ' || r == '\t' || strings.ContainsRune("&=,;:?", r)
}

// Request is a delivery's request, as the sink sends it.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
	// signatures are the signer's output, redacted from the response
	// kept for the delivery record.
	signatures []string
}

// Render builds the request for d without sending it, as golden tests
// and a dry run (switchyard test) show it. Its errors are permanent: the
// same event renders the same way on every attempt.
func (s *Sink) Render(d *sinks.Delivery) (*Request, error) {
	var env *event.Env
	if s.needsEnv {
		var err error
		if env, err = d.Event.Env(); err != nil {
			return nil, err
		}
	}
	u, err := s.renderURL(env)
	if err != nil {
		return nil, err
	}
	r := &Request{Method: s.method, URL: u, Header: make(http.Header, 8+len(s.headers))}
	payload, contentType, err := s.renderBody(d.Event, env)
	if err != nil {
		return nil, err
	}
	r.Body = payload
	switch s.format {
	case FormatCloudEvents:
		if r.Body, err = structured(d.Event, payload, contentType); err != nil {
			return nil, err
		}
		contentType = cloudEventsType
	case FormatCloudEventsBinary:
		binary(r.Header, d.Event)
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	if s.userAgent != "" {
		r.Header.Set("User-Agent", s.userAgent)
	}
	for _, h := range s.headers {
		v, err := h.tmpl.Render(env, headerValue)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", h.name, err)
		}
		r.Header.Set(h.name, v)
	}
	r.Header.Set(DeliveryHeader, d.ID)
	r.Header.Set(IdempotencyHeader, d.ID)
	r.Header.Set(EventHeader, d.Event.ID)
	r.Header.Set(AttemptHeader, fmt.Sprint(d.Attempt))
	if s.signer != nil {
		r.signatures = s.signer.sign(r.Header, d.ID, s.now(), r.Body)
	}
	return r, nil
}

// renderURL renders the URL, each value escaped for its place, and
// checks that the scheme and host are still the configured ones.
func (s *Sink) renderURL(env *event.Env) (string, error) {
	if s.static != "" {
		return s.static, nil
	}
	path, err := s.path.Render(env, escapePathSegment)
	if err != nil {
		return "", fmt.Errorf("url: %w", err)
	}
	u := path
	if s.hasQuery {
		query, err := s.query.Render(env, url.QueryEscape)
		if err != nil {
			return "", fmt.Errorf("url: %w", err)
		}
		u += "?" + query
	}
	// The escaping makes this impossible; check anyway, as the last
	// line between event data and where its delivery goes.
	if p, err := url.Parse(u); err != nil || p.Scheme != s.base.Scheme || p.Host != s.base.Host {
		return "", errors.New("url: the rendered URL does not keep the configured scheme and host")
	}
	return u, nil
}

// escapePathSegment writes a value as one path segment: "/", "?", "#"
// and "%" are escaped, and so are the segments "." and "..", so an event
// cannot climb out of the path the template wrote.
func escapePathSegment(v string) string {
	if v == "." || v == ".." {
		return strings.Repeat("%2E", len(v))
	}
	return url.PathEscape(v)
}

// headerValue keeps a value on its header line: control characters
// (CR, LF) become spaces.
func headerValue(v string) string {
	if strings.IndexFunc(v, isCTL) < 0 {
		return v
	}
	return strings.Map(func(r rune) rune {
		if isCTL(r) {
			return ' '
		}
		return r
	}, v)
}

func isCTL(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f }

// Preview returns the body Send would send for ev, for switchyard test:
// JSON as JSON (the normalized event, a shaped object, a CloudEvent),
// other content as a string. Render shows the whole request.
func (s *Sink) Preview(ev *event.Event) (any, error) {
	r, err := s.Render(&sinks.Delivery{ID: "dlv_preview", Attempt: 1, Event: ev})
	if err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); isJSON(mt) && json.Valid(r.Body) {
		return json.RawMessage(r.Body), nil
	}
	return string(r.Body), nil
}

// maxErrorBody is how much of an error response is kept for the
// delivery record.
const maxErrorBody = 512

// Send sends the event. 2xx is delivered; see sinks.HTTPError for how
// other statuses are classified.
func (s *Sink) Send(ctx context.Context, d *sinks.Delivery) error {
	r, err := s.Render(d)
	if err != nil {
		return sinks.Permanent(sinks.Redact(fmt.Errorf("render request: %w", err), s.secrets...))
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return sinks.Permanent(sinks.Redact(fmt.Errorf("build request: %w", err), s.secretsWith(r.URL)...))
	}
	req.Header = r.Header
	resp, err := s.client.Do(req)
	if err != nil {
		return sinks.Redact(fmt.Errorf("%s to %s: %w", strings.ToLower(r.Method), sinks.SafeURL(r.URL), err), s.secretsWith(r.URL)...)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection reusable
		return nil
	}
	herr := &sinks.HTTPError{
		Status: resp.StatusCode,
		After:  sinks.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Body:   s.snippet(resp.Body, r),
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection reusable
	return herr
}

// snippet reads the start of an error response for the delivery record,
// with the request's secrets redacted.
func (s *Sink) snippet(body io.Reader, r *Request) string {
	// The rendered URL and the signatures too, when the receiver echoes
	// them.
	secrets := slices.Concat(s.secretsWith(r.URL), r.signatures) // a copy: s.secrets is shared
	longest := max(s.longest, len(r.URL))
	for _, sig := range r.signatures {
		longest = max(longest, len(sig))
	}
	// Read past the cut by the longest secret, so a secret the receiver
	// echoes across the cut is still whole when it is redacted.
	b, _ := io.ReadAll(io.LimitReader(body, int64(maxErrorBody+longest)))
	// Control characters become spaces: the record reaches terminals
	// (deliveries list), where ESC sequences from a receiver would act.
	text := strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, string(bytes.ToValidUTF8(b, []byte("?")))))
	for _, secret := range secrets {
		if secret != "" {
			text = strings.ReplaceAll(text, secret, "<redacted>")
		}
	}
	return truncate(text, maxErrorBody)
}

// secretsWith returns the sink's secrets and u, the rendered URL (its
// query may carry a token).
func (s *Sink) secretsWith(u string) []string {
	if u == s.static || !hasCredentials(u) {
		return s.secrets
	}
	return append(s.secrets[:len(s.secrets):len(s.secrets)], u)
}

// hasCredentials reports whether a URL may carry a credential: a query
// (?token=) or user information (user:password@).
func hasCredentials(u string) bool { return strings.ContainsAny(u, "?@") }

// Close releases idle connections.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
