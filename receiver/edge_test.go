package receiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/logbuf"
)

// counted is what OnRequest was called with.
type counted struct {
	source string
	status int
	reason string
}

type counter struct {
	mu  sync.Mutex
	got []counted
}

func (c *counter) count(source string, status int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, counted{source, status, reason})
}

func (c *counter) all() []counted {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// TestReceiverWrongMethod: a method a path does not serve is 405 with
// an Allow header naming the ones it does (GET too where the source
// answers a subscription challenge), not a 404 that sends the sender
// looking for the path; nothing is stored.
func TestReceiverWrongMethod(t *testing.T) {
	t.Parallel()
	ing := &fakeIngester{}
	meta := newSource(t, SourceConfig{Name: "whatsapp", Path: "/hooks/whatsapp", Provider: "meta", Secrets: []string{secret},
		Verify: &VerifyConfig{VerifyToken: "meta-verify-token"}})
	s := newServer(t, ing, Options{}, darwinSource(t), meta)
	body := loadFixture(t, "session_opened")
	for _, tc := range []struct {
		method, path string
		allow, msg   string
	}{
		{http.MethodGet, hookPath, "POST", "webhooks are POSTed"},
		{http.MethodPut, hookPath, "POST", "webhooks are POSTed"},
		{http.MethodDelete, "/HOOKS/Darwin/", "POST", "webhooks are POSTed"},
		{http.MethodPatch, hookPath, "POST", "webhooks are POSTed"},
		{http.MethodPut, "/hooks/whatsapp", "GET, POST", "webhooks are POSTed"},
		{http.MethodPost, "/healthz", "GET, HEAD", "GET only"},
		{http.MethodDelete, "/Healthz/", "GET, HEAD", "GET only"},
	} {
		res := do(t, s, tc.method, tc.path, body, signed(t, secret, body))
		if res.status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: status %d, want 405 (body %q)", tc.method, tc.path, res.status, res.body)
			continue
		}
		if got := res.header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
		if msg := res.errorMsg(t); !strings.Contains(msg, tc.msg) {
			t.Errorf("%s %s: error %q, want it to say %q", tc.method, tc.path, msg, tc.msg)
		}
	}
	if n := ing.Calls(); n != 0 {
		t.Errorf("ingester called %d times, want 0", n)
	}
	// A path nobody serves is still 404.
	if res := do(t, s, http.MethodPut, "/hooks/nobody", body, nil); res.status != http.StatusNotFound || res.header.Get("Allow") != "" {
		t.Errorf("PUT to no source: %d, Allow %q; want 404 without Allow", res.status, res.header.Get("Allow"))
	}
}

// TestReceiverCountsEveryRequest: each request is counted once with
// its source, status and reason, rejections included; a request to no
// source's path is counted under NoSource; GET /healthz is not a
// webhook and is not counted.
func TestReceiverCountsEveryRequest(t *testing.T) {
	t.Parallel()
	var c counter
	var mapped, refused []string
	opts := Options{
		OnRequest:       c.count,
		OnMapError:      func(src, field string) { mapped = append(mapped, src+"/"+field) },
		OnVerifyFailure: func(src, reason string) { refused = append(refused, src+"/"+reason) },
	}
	ing := &fakeIngester{}
	dup := &fakeIngester{result: Result{ID: "evt_orig", Duplicate: true}}
	down := &fakeIngester{err: errors.New("disk I/O error")}
	full := &fakeIngester{err: fmt.Errorf("max_pending: %w", ErrOverloaded)}
	walled := newSource(t, SourceConfig{Name: "walled", Path: "/hooks/walled", Provider: "darwin", Secrets: []string{secret}, IPAllow: []string{"192.0.2.0/24"}})
	slackSrc := newSource(t, SourceConfig{Name: "slack", Path: "/hooks/slack", Provider: "slack", Secrets: []string{secret}})
	s := newServer(t, ing, opts, darwinSource(t), walled, slackSrc)

	body := loadFixture(t, "session_opened")
	sig := signed(t, secret, body)
	notJSON := []byte(`{"eventType":`)
	challenge := []byte(`{"type":"url_verification","challenge":"abc"}`)
	steps := []struct {
		srv    *Server
		method string
		path   string
		body   []byte
		header http.Header
		want   counted
	}{
		{s, "POST", hookPath, body, sig, counted{"darwin", 200, "accepted"}},
		{newServer(t, dup, opts), "POST", hookPath, body, sig, counted{"darwin", 200, "duplicate"}},
		{s, "POST", hookPath, body, nil, counted{"darwin", 401, "missing"}},
		{s, "POST", hookPath, body, signed(t, "wrong", body), counted{"darwin", 401, "mismatch"}},
		{s, "POST", hookPath, notJSON, signed(t, secret, notJSON), counted{"darwin", 400, "bad_payload"}},
		{s, "POST", "/hooks/walled", body, sig, counted{"walled", 403, "ip_not_allowed"}},
		{s, "POST", "/hooks/nobody", body, sig, counted{NoSource, 404, "no_source"}},
		{s, "GET", hookPath, nil, nil, counted{"darwin", 405, "method_not_allowed"}},
		{s, "POST", "/healthz", nil, nil, counted{NoSource, 405, "method_not_allowed"}},
		{s, "POST", hookPath, body, withHeader(sig, "Content-Encoding", "gzip"), counted{"darwin", 415, "content_encoding"}},
		{newServer(t, down, opts), "POST", hookPath, body, sig, counted{"darwin", 503, "store_failed"}},
		{newServer(t, full, opts), "POST", hookPath, body, sig, counted{"darwin", 503, "overloaded"}},
		{s, "POST", "/hooks/slack", challenge, signAt(t, "slack", secret, challenge), counted{"slack", 200, "handshake"}},
		{newServer(t, &fakeIngester{panics: 1}, opts), "POST", hookPath, body, sig, counted{"darwin", 500, "internal"}},
	}
	var want []counted
	for _, st := range steps {
		res := do(t, st.srv, st.method, st.path, st.body, st.header)
		if res.status != st.want.status {
			t.Fatalf("%s %s: status %d, want %d (body %q)", st.method, st.path, res.status, st.want.status, res.body)
		}
		want = append(want, st.want)
	}
	do(t, s, "GET", "/healthz", nil, nil)
	if got := c.all(); !slices.Equal(got, want) {
		t.Errorf("counted:\n got %v\nwant %v", got, want)
	}
	for _, r := range c.all() {
		if !slices.Contains(Reasons(), r.reason) {
			t.Errorf("reason %q is not listed in Reasons()", r.reason)
		}
	}
	if !slices.Equal(mapped, []string{"darwin/"}) || !slices.Equal(refused, []string{"darwin/missing", "darwin/mismatch", "walled/ip_not_allowed"}) {
		t.Errorf("map errors %v, verification failures %v", mapped, refused)
	}
	if n := ing.Calls(); n != 1 {
		t.Errorf("ingester called %d times, want 1 (the accepted event only)", n)
	}
}

func withHeader(h http.Header, k, v string) http.Header {
	h = h.Clone()
	h.Set(k, v)
	return h
}

// logLines decodes a JSON log.
func logLines(t *testing.T, logs *logbuf.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestReceiverBodyLimitCountedAndLogged: a body over BodyLimit is
// refused by the HTTP layer before any handler runs; it is still
// counted (under the source whose path it was posted to, or NoSource)
// and logged, and nothing is stored.
func TestReceiverBodyLimitCountedAndLogged(t *testing.T) {
	t.Parallel()
	var c counter
	var logs logbuf.Buffer
	ing := &fakeIngester{}
	s := newServer(t, ing, Options{BodyLimit: 1024, OnRequest: c.count, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	ln := serveInMemory(t, s)
	big := paddedBody(t, 4096)
	for _, path := range []string{"/Hooks/Darwin/", "/hooks/nobody"} {
		req, err := http.NewRequest(http.MethodPost, "http://switchyard.test"+path, bytes.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = signed(t, secret, big)
		res, err := exchange(ln, req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("POST %s: status %d, want 413", path, res.StatusCode)
		}
	}
	want := []counted{{"darwin", 413, "body_too_large"}, {NoSource, 413, "body_too_large"}}
	if got := c.all(); !slices.Equal(got, want) {
		t.Errorf("counted %v, want %v", got, want)
	}
	lines := logLines(t, &logs)
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2:\n%s", len(lines), logs.String())
	}
	for i, l := range lines {
		if l["msg"] != "webhook rejected" || l["source"] != want[i].source || l["reason"] != "body_too_large" || l["status"] != 413.0 || l["size"] != 4096.0 {
			t.Errorf("log line %d: %v", i, l)
		}
	}
	if n := ing.Calls(); n != 0 {
		t.Errorf("ingester called %d times, want 0", n)
	}
}

// TestReceiverRejectionLogsLimited: a flood of bad requests logs one
// line per second per source and reason; the next line says how many
// were left out.
func TestReceiverRejectionLogsLimited(t *testing.T) {
	t.Parallel()
	var logs logbuf.Buffer
	ing := &fakeIngester{}
	var mu sync.Mutex
	clock := time.Unix(1_800_000_000, 0)
	s := newServer(t, ing, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))},
		darwinSource(t), newSource(t, SourceConfig{Name: "other", Path: "/hooks/other", Provider: "darwin", Secrets: []string{secret}}))
	s.rejected = newLogLimiter(time.Second, func() time.Time { mu.Lock(); defer mu.Unlock(); return clock })
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

	body := loadFixture(t, "session_opened")
	bad := signed(t, "wrong", body)
	for range 50 {
		do(t, s, "POST", hookPath, body, bad) // darwin, mismatch
	}
	do(t, s, "POST", hookPath, body, nil)        // darwin, missing: its own line
	do(t, s, "POST", "/hooks/other", body, bad)  // other, mismatch: its own line
	do(t, s, "POST", "/hooks/nobody", body, bad) // no source: its own line
	advance(500 * time.Millisecond)
	for range 10 {
		do(t, s, "POST", hookPath, body, bad)
	}
	advance(600 * time.Millisecond)
	do(t, s, "POST", hookPath, body, bad) // a second later: logged, with the count
	do(t, s, "POST", hookPath, body, bad)

	type line struct {
		source, reason string
		suppressed     float64
	}
	var got []line
	for _, l := range logLines(t, &logs) {
		n, _ := l["suppressed"].(float64)
		got = append(got, line{l["source"].(string), l["reason"].(string), n})
		if l["msg"] != "webhook rejected" || l["level"] != "WARN" {
			t.Errorf("line %v", l)
		}
	}
	want := []line{{"darwin", "mismatch", 0}, {"darwin", "missing", 0}, {"other", "mismatch", 0}, {NoSource, "no_source", 0}, {"darwin", "mismatch", 59}}
	if !slices.Equal(got, want) {
		t.Errorf("log lines:\n got %v\nwant %v", got, want)
	}
	if strings.Contains(logs.String(), secret) || strings.Contains(strings.ToLower(logs.String()), bad.Get("X-Signature")) {
		t.Errorf("log shows a secret or a signature:\n%s", logs.String())
	}
	if ing.Calls() != 0 {
		t.Errorf("ingester called %d times", ing.Calls())
	}
}
