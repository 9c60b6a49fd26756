package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/receiver/darwin"
	"github.com/switchyard/switchyard/sinks"
)

var received = time.Date(2026, 11, 21, 14, 32, 9, 250_000_000, time.UTC)

// escalated returns the escalated-forward fixture normalized into an
// event, and the fixture's data object exactly as it is in the file.
func escalated(t testing.TB) (*event.Event, json.RawMessage) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "testdata", "darwin", "session_forwarded_escalated.json"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := darwin.Normalize(body, received)
	if err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	ev.ID = "evt_01JDARWIN0000000000000001"
	ev.Source = "darwin-prod"
	var raw struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Data) == 0 {
		t.Fatal("fixture has no data object")
	}
	return ev, raw.Data
}

// mustNew is New for options that must compile; the sink is closed when
// the test ends.
func mustNew(t testing.TB, opts Options) *Sink {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// retryable classifies err as the delivery loop does.
func retryable(err error) bool {
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	return true
}

type request struct {
	method string
	path   string
	header http.Header
	body   []byte
}

// recorder is a receiving service that keeps what it was sent.
type recorder struct {
	mu   sync.Mutex
	reqs []request
}

func (rec *recorder) record(r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = append(rec.reqs, request{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body})
}

func (rec *recorder) requests() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]request(nil), rec.reqs...)
}

func TestSendDelivered(t *testing.T) {
	t.Parallel()
	ev, fixtureData := escalated(t)
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()

	s := mustNew(t, Options{
		URL: srv.URL + "/hooks/darwin",
		Headers: map[string]string{
			"Authorization": "Bearer tok-delivered-123",
			"x-tenant":      "acme",
		},
		UserAgent: "Switchyard/1.2.3 (+https://example.com)",
	})
	defer s.Close()

	ctx := context.Background()
	for attempt := 1; attempt <= 2; attempt++ {
		d := &sinks.Delivery{ID: "dlv_01JDELIVERY00000000000042", Attempt: attempt, Event: ev}
		if err := s.Send(ctx, d); err != nil {
			t.Fatalf("attempt %d: Send = %v, want nil", attempt, err)
		}
	}

	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("server got %d requests, want 2", len(reqs))
	}
	for i, r := range reqs {
		t.Run(fmt.Sprintf("attempt %d", i+1), func(t *testing.T) {
			if r.method != http.MethodPost {
				t.Errorf("method = %s, want POST", r.method)
			}
			if r.path != "/hooks/darwin" {
				t.Errorf("path = %q, want /hooks/darwin", r.path)
			}
			for name, want := range map[string]string{
				"Content-Type":    "application/json",
				"Authorization":   "Bearer tok-delivered-123",
				"X-Tenant":        "acme",
				DeliveryHeader:    "dlv_01JDELIVERY00000000000042",
				IdempotencyHeader: "dlv_01JDELIVERY00000000000042",
				EventHeader:       ev.ID,
				AttemptHeader:     fmt.Sprint(i + 1),
				"User-Agent":      "Switchyard/1.2.3 (+https://example.com)",
			} {
				if got := r.header.Values(name); len(got) != 1 || got[0] != want {
					t.Errorf("header %s = %q, want exactly [%q]", name, got, want)
				}
			}

			var got map[string]json.RawMessage
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
			}
			if string(got["eventType"]) != `"session.forwarded.escalated"` {
				t.Errorf("eventType = %s", got["eventType"])
			}
			if string(got["id"]) != `"`+ev.ID+`"` || string(got["source"]) != `"darwin-prod"` {
				t.Errorf("id, source = %s, %s", got["id"], got["source"])
			}
			if string(got["subject"]) != `"6651a0e7c4b2f81d9a3e5c11"` {
				t.Errorf("subject = %s", got["subject"])
			}
			if !bytes.Equal(got["data"], fixtureData) {
				t.Errorf("data is not byte for byte the fixture's:\n got %s\nwant %s", got["data"], fixtureData)
			}
			// Non-ASCII and HTML-significant characters travel as written.
			for _, want := range []string{"<urgente> & falar com a gerência", "cobrança", "Imobiliária"} {
				if !bytes.Contains(r.body, []byte(want)) {
					t.Errorf("body does not contain %q as written", want)
				}
			}
			for _, esc := range []string{`\u003c`, `\u003e`, `\u0026`, `\u00e7`} {
				if bytes.Contains(r.body, []byte(esc)) {
					t.Errorf("body contains the escape %s", esc)
				}
			}
		})
	}
	if a, b := reqs[0].header.Get(DeliveryHeader), reqs[1].header.Get(DeliveryHeader); a == "" || a != b {
		t.Errorf("delivery header differs across attempts: %q, %q", a, b)
	}
}

func TestSendOther2xxDelivered(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusCreated, http.StatusAccepted, http.StatusNoContent, 299} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			ev, _ := escalated(t)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(status)
			}))
			defer srv.Close()
			s := mustNew(t, Options{URL: srv.URL})
			defer s.Close()
			if err := s.Send(context.Background(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev}); err != nil {
				t.Errorf("Send = %v, want nil for %d", err, status)
			}
		})
	}
}

func TestSendDefaultUserAgentWhenUnset(t *testing.T) {
	t.Parallel()
	ev, _ := escalated(t)
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rec.record(r) }))
	defer srv.Close()
	s := mustNew(t, Options{URL: srv.URL})
	defer s.Close()
	if err := s.Send(context.Background(), &sinks.Delivery{ID: "d1", Attempt: 3, Event: ev}); err != nil {
		t.Fatal(err)
	}
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	if got := reqs[0].header.Get(AttemptHeader); got != "3" {
		t.Errorf("attempt header = %q, want 3", got)
	}
	if got := reqs[0].header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
}

func TestSendHTTPErrors(t *testing.T) {
	t.Parallel()
	const auth = "Bearer AUTH-ECHO-SECRET-456"
	httpDate := func() string { return time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat) }

	for _, tc := range []struct {
		name       string
		status     int
		header     map[string]func() string
		body       func(r *http.Request) string
		retryable  bool
		after      func(t *testing.T, d time.Duration)
		wantBody   string // exact HTTPError.Body, when not ""
		mustNotSee []string
	}{
		{
			name: "500", status: 500, retryable: true,
			body:     func(*http.Request) string { return "internal error\n" },
			wantBody: "internal error",
			after:    exactly(0),
		},
		{
			name: "502", status: 502, retryable: true,
			after: exactly(0),
		},
		{
			name: "503 with Retry-After seconds", status: 503, retryable: true,
			header: map[string]func() string{"Retry-After": func() string { return "7" }},
			after:  exactly(7 * time.Second),
		},
		{
			name: "429 with Retry-After date", status: 429, retryable: true,
			header: map[string]func() string{"Retry-After": httpDate},
			after: func(t *testing.T, d time.Duration) {
				// An HTTP date has whole seconds; allow for the rounding
				// and a slow test machine.
				if d <= 100*time.Second || d > 2*time.Minute {
					t.Errorf("RetryAfter() = %v, want about 2m", d)
				}
			},
		},
		{
			name: "408", status: 408, retryable: true, after: exactly(0),
		},
		{
			name: "400 keeps the response snippet", status: 400, retryable: false,
			body:     func(*http.Request) string { return `{"error":"invalid payload: field \"data\" is required"}` },
			wantBody: `{"error":"invalid payload: field \"data\" is required"}`,
			after:    exactly(0),
		},
		{
			name: "400 with Retry-After is still permanent", status: 400, retryable: false,
			header: map[string]func() string{"Retry-After": func() string { return "30" }},
			after:  exactly(30 * time.Second),
		},
		{
			name: "404", status: 404, retryable: false, after: exactly(0),
		},
		{
			name: "422", status: 422, retryable: false, after: exactly(0),
		},
		{
			name: "401 echoing Authorization is redacted", status: 401, retryable: false,
			body: func(r *http.Request) string {
				return "invalid credentials: Authorization: " + r.Header.Get("Authorization") + " (token " + r.Header.Get("Authorization") + ")"
			},
			wantBody:   "invalid credentials: Authorization: <redacted> (token <redacted>)",
			mustNotSee: []string{auth, "AUTH-ECHO-SECRET-456"},
			after:      exactly(0),
		},
		{
			name: "non-UTF-8 body is made valid", status: 500, retryable: true,
			body:     func(*http.Request) string { return "bad \xff\xfe bytes" },
			wantBody: "bad ? bytes",
			after:    exactly(0),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, _ := escalated(t)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v())
				}
				w.WriteHeader(tc.status)
				if tc.body != nil {
					io.WriteString(w, tc.body(r))
				}
			}))
			defer srv.Close()
			s := mustNew(t, Options{URL: srv.URL + "/in", Headers: map[string]string{"Authorization": auth}})
			defer s.Close()

			err := s.Send(context.Background(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev})
			var he *sinks.HTTPError
			if !errors.As(err, &he) {
				t.Fatalf("Send = %v (%T), want a *sinks.HTTPError", err, err)
			}
			if he.Status != tc.status {
				t.Errorf("Status = %d, want %d", he.Status, tc.status)
			}
			if got := retryable(err); got != tc.retryable {
				t.Errorf("retryable = %v, want %v", got, tc.retryable)
			}
			tc.after(t, he.RetryAfter())
			if tc.wantBody != "" && he.Body != tc.wantBody {
				t.Errorf("Body = %q, want %q", he.Body, tc.wantBody)
			}
			for _, secret := range tc.mustNotSee {
				if strings.Contains(err.Error(), secret) || strings.Contains(he.Body, secret) {
					t.Errorf("error shows the secret %q: %q", secret, err.Error())
				}
			}
		})
	}
}

func exactly(want time.Duration) func(*testing.T, time.Duration) {
	return func(t *testing.T, got time.Duration) {
		t.Helper()
		if got != want {
			t.Errorf("RetryAfter() = %v, want %v", got, want)
		}
	}
}

func TestSendLongErrorBodyIsTruncated(t *testing.T) {
	t.Parallel()
	ev, _ := escalated(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, strings.Repeat("e", 10_000))
	}))
	defer srv.Close()
	s := mustNew(t, Options{URL: srv.URL})
	defer s.Close()
	err := s.Send(context.Background(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev})
	var he *sinks.HTTPError
	if !errors.As(err, &he) {
		t.Fatalf("Send = %v, want *sinks.HTTPError", err)
	}
	if len(he.Body) != maxErrorBody {
		t.Errorf("len(Body) = %d, want %d", len(he.Body), maxErrorBody)
	}
}

// The response body kept on the delivery record is shown by
// `switchyard deliveries list` and written to logs: a receiver must not
// reach the operator's terminal with escape sequences through it.
func TestSendErrorBodyHasNoControlCharacters(t *testing.T) {
	t.Parallel()
	ev, _ := escalated(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "bad\x1b[2J\x1b]0;owned\x07 request\r\nline two\x00\u009b1m")
	}))
	defer srv.Close()
	s := mustNew(t, Options{URL: srv.URL})
	defer s.Close()
	err := s.Send(context.Background(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev})
	var he *sinks.HTTPError
	if !errors.As(err, &he) {
		t.Fatalf("Send = %v, want *sinks.HTTPError", err)
	}
	if i := strings.IndexFunc(he.Body, unicode.IsControl); i >= 0 {
		t.Errorf("Body has the control character %q: %q", he.Body[i:i+1], he.Body)
	}
	if !strings.HasPrefix(he.Body, "bad") || !strings.Contains(he.Body, "line two") {
		t.Errorf("Body = %q, want the text kept", he.Body)
	}
}

// A secret the receiver echoes across the snippet's cut must not leak in
// part: redaction has to see the whole secret before the body is cut.
func TestSendRedactsSecretCutByTruncation(t *testing.T) {
	t.Parallel()
	const token = "tok-0123456789abcdefghijklmnop"
	const auth = "Bearer " + token
	ev, _ := escalated(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		// The first 512 bytes end 14 characters into the token.
		pad := strings.Repeat("x", maxErrorBody-len("Bearer ")-14)
		io.WriteString(w, pad+r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	s := mustNew(t, Options{URL: srv.URL, Headers: map[string]string{"Authorization": auth}})
	defer s.Close()
	err := s.Send(context.Background(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev})
	if err == nil {
		t.Fatal("Send = nil, want an error")
	}
	if leaked := token[:14]; strings.Contains(err.Error(), leaked) {
		t.Errorf("error shows %d of the token's %d characters (%q): %q", len(leaked), len(token), leaked, err.Error())
	}
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			ev, _ := escalated(t)
			var targetHits atomic.Int32
			target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				targetHits.Add(1)
			}))
			defer target.Close()
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				http.Redirect(w, r, target.URL+"/elsewhere", status)
			}))
			defer srv.Close()
			s := mustNew(t, Options{URL: srv.URL + "/in", Headers: map[string]string{"Authorization": "Bearer redirect-secret"}})
			defer s.Close()

			err := s.Send(context.Background(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev})
			if err == nil {
				t.Fatal("Send = nil after a redirect, want an error")
			}
			if n := targetHits.Load(); n != 0 {
				t.Errorf("redirect target was hit %d times", n)
			}
			if n := hits.Load(); n != 1 {
				t.Errorf("origin was hit %d times, want 1", n)
			}
			var he *sinks.HTTPError
			if !errors.As(err, &he) || he.Status != status {
				t.Errorf("Send = %v, want *sinks.HTTPError with status %d", err, status)
			}
			if retryable(err) {
				t.Errorf("a %d is retryable", status)
			}
		})
	}
}

func TestSendTransportErrors(t *testing.T) {
	t.Parallel()
	const (
		token = "SECRET123"
		auth  = "Bearer AUTH-SECRET-456"
	)
	for _, tc := range []struct {
		name    string
		url     func(t *testing.T) string // the sink's URL, with the token in its query
		timeout time.Duration
		check   func(t *testing.T, err error)
	}{
		{
			name:    "handler slower than the deadline",
			timeout: 50 * time.Millisecond,
			url: func(t *testing.T) string {
				// Answers only after the client gave up (or far too
				// late): a loaded machine that fires the deadline late
				// must not see a 200 first.
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body) // then the server notices the client leave
					select {
					case <-time.After(time.Minute):
					case <-r.Context().Done():
					}
				}))
				t.Cleanup(srv.Close)
				return srv.URL + "/path?token=" + token
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("errors.Is(err, context.DeadlineExceeded) = false for %v", err)
				}
				if !sinks.IsTimeout(err) {
					t.Errorf("IsTimeout = false for %v", err)
				}
			},
		},
		{
			name:    "connection refused",
			timeout: 5 * time.Second,
			url: func(t *testing.T) string {
				srv := httptest.NewServer(http.NotFoundHandler())
				u := srv.URL + "/path?token=" + token
				srv.Close()
				return u
			},
			check: func(t *testing.T, err error) {
				var op *net.OpError
				if !errors.As(err, &op) {
					t.Errorf("errors.As(*net.OpError) = false for %v", err)
				}
				if sinks.IsTimeout(err) {
					t.Errorf("IsTimeout = true for %v", err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, _ := escalated(t)
			u := tc.url(t)
			s := mustNew(t, Options{URL: u, Headers: map[string]string{"Authorization": auth}})
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()

			err := s.Send(ctx, &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev})
			if err == nil {
				t.Fatal("Send = nil, want an error")
			}
			if !retryable(err) {
				t.Errorf("error is not retryable: %v", err)
			}
			var he *sinks.HTTPError
			if errors.As(err, &he) {
				t.Errorf("a transport error is an HTTPError: %v", err)
			}
			msg := err.Error()
			for _, secret := range []string{token, auth, "AUTH-SECRET-456", u} {
				if strings.Contains(msg, secret) {
					t.Errorf("error text shows %q: %q", secret, msg)
				}
			}
			// It still says where it was going, without the query.
			if safe := sinks.SafeURL(u); !strings.Contains(msg, safe) {
				t.Errorf("error text %q does not name %q", msg, safe)
			}
			tc.check(t, err)
		})
	}
}

func TestNewInvalidURLIsRedacted(t *testing.T) {
	t.Parallel()
	const u = "http://exa mple.com/in?token=SECRET789"
	_, err := New(Options{URL: u})
	if err == nil {
		t.Fatal("New accepted an invalid URL")
	}
	if strings.Contains(err.Error(), "SECRET789") {
		t.Errorf("error text shows the token: %q", err.Error())
	}
}

// TestPreviewIsTheBodySent: Preview shows the bytes Send sends, as JSON
// when they are JSON, else as text.
func TestPreviewIsTheBodySent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts Options
		json bool
	}{
		{"normalized event", Options{}, true},
		{"object body", Options{Body: `{"note": data.summary}`}, true},
		{"cloudevents", Options{Format: FormatCloudEvents}, true},
		{"text template", Options{ContentType: "text/plain", Body: "{{ data.summary }}"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, _ := escalated(t)
			rec := &recorder{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rec.record(r) }))
			defer srv.Close()
			opts := tc.opts
			opts.URL = srv.URL
			s := mustNew(t, opts)
			p, err := s.Preview(ev)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(context.Background(), &sinks.Delivery{ID: "dlv_1", Attempt: 1, Event: ev}); err != nil {
				t.Fatal(err)
			}
			var got []byte
			switch p := p.(type) {
			case json.RawMessage:
				got = p
			case string:
				got = []byte(p)
			}
			if _, isJSON := p.(json.RawMessage); isJSON != tc.json {
				t.Errorf("preview is %T", p)
			}
			if sent := rec.requests()[0].body; !bytes.Equal(got, sent) {
				t.Fatalf("preview %s\nsent    %s", got, sent)
			}
		})
	}
}

// TestErrorResponsesKeepTheConnection: retries against a receiver
// answering 503 with a long body reuse one connection.
func TestErrorResponsesKeepTheConnection(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write(bytes.Repeat([]byte("down "), 2000)) // past the kept snippet
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	s := mustNew(t, Options{URL: srv.URL})
	ev, _ := escalated(t)
	for i := range 3 {
		if err := s.Send(context.Background(), &sinks.Delivery{ID: "dlv_1", Attempt: i + 1, Event: ev}); err == nil {
			t.Fatal("Send = nil, want the 503")
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("3 failed attempts opened %d connections, want 1", n)
	}
}
