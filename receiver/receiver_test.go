package receiver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/logbuf"
	"github.com/switchyard/switchyard/receiver/darwin"
)

const (
	hookPath = "/hooks/darwin"
	secret   = "s3cret"
)

// fixedNow is the server clock in tests, so ReceivedAt is checkable.
var fixedNow = time.Date(2026, 11, 21, 14, 32, 9, 0, time.UTC)

// fakeIngester records the events it is given. It can be told to fail
// (a store that cannot commit), to answer with a fixed result (such as a
// duplicate) or to panic on its next calls.
type fakeIngester struct {
	mu       sync.Mutex
	events   []*event.Event
	returned []string // ids answered, in call order
	calls    int

	// Behaviour; set before the server serves.
	err     error  // returned when non-nil
	result  Result // returned when its ID is set
	panics  int    // number of upcoming calls that panic
	discard bool   // do not keep events (fuzzing, benchmarks)
}

func (f *fakeIngester) Ingest(ctx context.Context, ev *event.Event) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.panics > 0 {
		f.panics--
		panic("fake ingester: boom")
	}
	if !f.discard {
		f.events = append(f.events, ev)
	}
	if f.err != nil {
		return Result{}, f.err
	}
	res := f.result
	if res.ID == "" {
		res = Result{ID: fmt.Sprintf("evt_stored_%d", f.calls)}
	}
	f.returned = append(f.returned, res.ID)
	return res, nil
}

func (f *fakeIngester) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeIngester) Events() []*event.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*event.Event(nil), f.events...)
}

func (f *fakeIngester) Returned() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.returned...)
}

// fixture is one Darwin webhook body from testdata/darwin.
type fixture struct {
	name string
	body []byte
}

func loadFixtures(tb testing.TB) []fixture {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("..", "testdata", "darwin", "*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no Darwin fixtures: %v", err)
	}
	out := make([]fixture, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, fixture{name: strings.TrimSuffix(filepath.Base(f), ".json"), body: b})
	}
	return out
}

func loadFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "darwin", name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func darwinSource(tb testing.TB, secrets ...string) Source {
	tb.Helper()
	if len(secrets) == 0 {
		secrets = []string{secret}
	}
	src, err := NewSource(SourceConfig{Name: "darwin", Path: hookPath, Provider: "darwin", Secrets: secrets})
	if err != nil {
		tb.Fatalf("NewSource: %v", err)
	}
	return src
}

func newServer(tb testing.TB, ing Ingester, opts Options, sources ...Source) *Server {
	tb.Helper()
	if len(sources) == 0 {
		sources = []Source{darwinSource(tb)}
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	return New(sources, ing, opts)
}

func signed(tb testing.TB, sec string, body []byte) http.Header {
	tb.Helper()
	h, err := Sign("darwin", sec, body)
	if err != nil {
		tb.Fatalf("Sign: %v", err)
	}
	return h
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the answer, which must be a JSON object.
func (r response) json(tb testing.TB) map[string]any {
	tb.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("Content-Type = %q, want application/json (body %q)", ct, r.body)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		tb.Fatalf("answer is not a JSON object: %v: %q", err, r.body)
	}
	return m
}

// errorMsg returns the "error" of a JSON error answer.
func (r response) errorMsg(tb testing.TB) string {
	tb.Helper()
	m := r.json(tb)
	msg, ok := m["error"].(string)
	if !ok || msg == "" {
		tb.Fatalf("answer has no error message: %q", r.body)
	}
	return msg
}

func do(tb testing.TB, s *Server, method, path string, body []byte, header http.Header) response {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://switchyard.test"+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := s.Test(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func post(tb testing.TB, s *Server, body []byte, header http.Header) response {
	tb.Helper()
	return do(tb, s, http.MethodPost, hookPath, body, header)
}

// fixtureData returns the fixture's eventType and its data object as sent.
func fixtureData(tb testing.TB, body []byte) (eventType string, data json.RawMessage, sessionID string) {
	tb.Helper()
	var p struct {
		EventType string          `json:"eventType"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		tb.Fatal(err)
	}
	var d struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(p.Data, &d); err != nil {
		tb.Fatal(err)
	}
	return p.EventType, p.Data, d.SessionID
}

func TestReceiverAcceptsFixtures(t *testing.T) {
	t.Parallel()
	for _, fx := range loadFixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			ing := &fakeIngester{}
			s := newServer(t, ing, Options{})

			res := post(t, s, fx.body, signed(t, secret, fx.body))
			if res.status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %q", res.status, res.body)
			}
			returned := ing.Returned()
			if len(returned) != 1 {
				t.Fatalf("ingester answered %d times, want 1", len(returned))
			}
			m := res.json(t)
			if len(m) != 1 || m["id"] != returned[0] {
				t.Errorf("answer = %s, want {\"id\":%q}", res.body, returned[0])
			}

			evs := ing.Events()
			if len(evs) != 1 {
				t.Fatalf("ingester got %d events, want 1", len(evs))
			}
			ev := evs[0]
			wantType, wantData, wantSubject := fixtureData(t, fx.body)
			if ev.Source != "darwin" {
				t.Errorf("Source = %q, want darwin", ev.Source)
			}
			if ev.EventType != wantType {
				t.Errorf("EventType = %q, want %q", ev.EventType, wantType)
			}
			if !strings.HasPrefix(ev.ID, "evt_") || len(ev.ID) != len("evt_")+26 {
				t.Errorf("ID = %q, want evt_ and 26 digits", ev.ID)
			}
			if ev.Subject != wantSubject || wantSubject == "" {
				t.Errorf("Subject = %q, want data.sessionId %q", ev.Subject, wantSubject)
			}
			if !bytes.Equal(ev.Data, wantData) {
				t.Errorf("Data differs from the fixture's data object:\n got %s\nwant %s", ev.Data, wantData)
			}
			if !ev.ReceivedAt.Equal(fixedNow) {
				t.Errorf("ReceivedAt = %v, want the server clock %v", ev.ReceivedAt, fixedNow)
			}
			if !strings.HasPrefix(ev.DedupKey, "sha256:") {
				t.Errorf("DedupKey = %q, want sha256:…", ev.DedupKey)
			}
		})
	}
}

func TestReceiverDuplicate(t *testing.T) {
	t.Parallel()
	ing := &fakeIngester{result: Result{ID: "evt_orig", Duplicate: true}}
	s := newServer(t, ing, Options{})
	body := loadFixture(t, "session_opened")

	res := post(t, s, body, signed(t, secret, body))
	if res.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %q", res.status, res.body)
	}
	m := res.json(t)
	if len(m) != 2 || m["id"] != "evt_orig" || m["duplicate"] != true {
		t.Errorf(`answer = %s, want {"id":"evt_orig","duplicate":true}`, res.body)
	}
}

// TestReceiverSignatureAccepted covers the signatures that pass: the
// documented lowercase hex, uppercase hex (hex is case-insensitive: it
// decodes to the same MAC) and either secret while rotating.
func TestReceiverSignatureAccepted(t *testing.T) {
	t.Parallel()
	body := loadFixture(t, "session_forwarded_escalated")
	for _, tc := range []struct {
		name    string
		secrets []string
		sig     string
	}{
		{"lowercase hex", []string{secret}, darwin.Sign([]byte(secret), body)},
		{"uppercase hex", []string{secret}, strings.ToUpper(darwin.Sign([]byte(secret), body))},
		{"rotation: old secret", []string{"old", "new"}, darwin.Sign([]byte("old"), body)},
		{"rotation: new secret", []string{"old", "new"}, darwin.Sign([]byte("new"), body)},
		{"rotation: new secret uppercase", []string{"old", "new"}, strings.ToUpper(darwin.Sign([]byte("new"), body))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ing := &fakeIngester{}
			s := newServer(t, ing, Options{}, darwinSource(t, tc.secrets...))
			res := post(t, s, body, http.Header{"X-SIGNATURE": {tc.sig}})
			if res.status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %q", res.status, res.body)
			}
			if n := ing.Calls(); n != 1 {
				t.Errorf("ingester called %d times, want 1", n)
			}
		})
	}
}

// TestReceiverRejects covers requests answered with an error before the
// ingester: each must answer JSON {"error": …} and store nothing.
func TestReceiverRejects(t *testing.T) {
	t.Parallel()
	good := loadFixture(t, "session_forwarded_escalated")
	tampered := bytes.Clone(good)
	tampered[len(tampered)/2] ^= 0x01

	sig := func(body []byte) http.Header { return signed(t, secret, body) }
	with := func(h http.Header, k, v string) http.Header { h.Set(k, v); return h }

	for _, tc := range []struct {
		name       string
		method     string // POST when empty
		path       string // hookPath when empty
		body       []byte
		header     http.Header
		wantStatus []int
		wantErr    string // substring of the error message, if set
	}{
		{name: "missing signature", body: good, wantStatus: []int{401}, wantErr: "signature"},
		{name: "empty signature", body: good, header: http.Header{"X-Signature": {""}}, wantStatus: []int{401}},
		{name: "wrong secret", body: good, header: signed(t, "not-the-secret", good), wantStatus: []int{401}, wantErr: "signature"},
		{name: "tampered body", body: tampered, header: sig(good), wantStatus: []int{401}, wantErr: "signature"},
		{name: "signature of another body", body: good, header: sig(loadFixture(t, "session_opened")), wantStatus: []int{401}},
		{name: "not hex", body: good, header: http.Header{"X-Signature": {strings.Repeat("zz", 32)}}, wantStatus: []int{401}},
		{name: "truncated signature", body: good, header: http.Header{"X-Signature": {darwin.Sign([]byte(secret), good)[:62]}}, wantStatus: []int{401}},
		{name: "sha256= prefix", body: good, header: http.Header{"X-Signature": {"sha256=" + darwin.Sign([]byte(secret), good)}}, wantStatus: []int{401}},
		{name: "malformed JSON", body: []byte(`{"eventType":"session.opened",`), header: sig([]byte(`{"eventType":"session.opened",`)), wantStatus: []int{400}, wantErr: "not valid JSON"},
		{name: "empty body", body: []byte{}, header: sig([]byte{}), wantStatus: []int{400}, wantErr: "JSON"},
		{name: "missing eventType", body: []byte(`{"data":{"sessionId":"s1"}}`), header: sig([]byte(`{"data":{"sessionId":"s1"}}`)), wantStatus: []int{400}, wantErr: "eventType"},
		{name: "empty eventType", body: []byte(`{"eventType":""}`), header: sig([]byte(`{"eventType":""}`)), wantStatus: []int{400}, wantErr: "eventType"},
		{name: "JSON array", body: []byte(`[{"eventType":"session.opened"}]`), header: sig([]byte(`[{"eventType":"session.opened"}]`)), wantStatus: []int{400}, wantErr: "JSON object"},
		{name: "data not an object", body: []byte(`{"eventType":"x","data":[1]}`), header: sig([]byte(`{"eventType":"x","data":[1]}`)), wantStatus: []int{400}, wantErr: "data"},
		{name: "bad timestamp", body: []byte(`{"eventType":"x","timestamp":"yesterday"}`), header: sig([]byte(`{"eventType":"x","timestamp":"yesterday"}`)), wantStatus: []int{400}, wantErr: "timestamp"},
		{name: "unknown path", path: "/hooks/nope", body: good, header: sig(good), wantStatus: []int{404}},
		{name: "GET on hook path", method: http.MethodGet, wantStatus: []int{405}, wantErr: "POSTed"},
		{name: "PUT on hook path", method: http.MethodPut, body: good, header: sig(good), wantStatus: []int{405}, wantErr: "POSTed"},
		{name: "gzip", body: good, header: with(sig(good), "Content-Encoding", "gzip"), wantStatus: []int{415}, wantErr: "Content-Encoding"},
		{name: "gzip unsigned", body: good, header: http.Header{"Content-Encoding": {"gzip"}}, wantStatus: []int{415}},
		{name: "br", body: good, header: with(sig(good), "Content-Encoding", "br"), wantStatus: []int{415}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ing := &fakeIngester{}
			s := newServer(t, ing, Options{})
			method, path := tc.method, tc.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = hookPath
			}
			res := do(t, s, method, path, tc.body, tc.header)
			ok := false
			for _, st := range tc.wantStatus {
				ok = ok || res.status == st
			}
			if !ok {
				t.Fatalf("status = %d, want one of %v; body %q", res.status, tc.wantStatus, res.body)
			}
			msg := res.errorMsg(t)
			if tc.wantErr != "" && !strings.Contains(msg, tc.wantErr) {
				t.Errorf("error = %q, want it to mention %q", msg, tc.wantErr)
			}
			if n := ing.Calls(); n != 0 {
				t.Errorf("ingester called %d times, want 0", n)
			}
		})
	}
}

func TestReceiverIdentityEncodingAccepted(t *testing.T) {
	t.Parallel()
	ing := &fakeIngester{}
	s := newServer(t, ing, Options{})
	body := loadFixture(t, "session_opened")
	h := signed(t, secret, body)
	h.Set("Content-Encoding", "identity")
	if res := post(t, s, body, h); res.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %q", res.status, res.body)
	}
}

// paddedBody returns a valid, signable Darwin body of exactly n bytes.
func paddedBody(tb testing.TB, n int) []byte {
	tb.Helper()
	b := []byte(`{"eventType":"session.opened","data":{"sessionId":"s1","pad":"`)
	b = append(b, bytes.Repeat([]byte("a"), n-len(b)-3)...)
	b = append(b, `"}}`...)
	if len(b) != n || !json.Valid(b) {
		tb.Fatalf("padded body: %d bytes, valid %v", len(b), json.Valid(b))
	}
	return b
}

// serveInMemory serves s through Serve, as in production, on an
// in-memory listener (no network) and returns the listener to dial.
func serveInMemory(tb testing.TB, s *Server) *fasthttputil.InmemoryListener {
	tb.Helper()
	ln := fasthttputil.NewInmemoryListener()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	tb.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			tb.Errorf("Shutdown: %v", err)
		}
		ln.Close()
		<-served
	})
	return ln
}

// exchange sends req on a new connection to ln and reads the answer.
// The request is written whole before the answer is read (the in-memory
// connection buffers it), so an answer the server sends before reading
// the body, such as 413, is read deterministically; net/http's client
// may instead report the connection closed under it.
func exchange(ln *fasthttputil.InmemoryListener, req *http.Request) (*http.Response, error) {
	if req.ContentLength > 0 && req.Header.Get("Content-Length") == "" {
		req.Header.Set("Content-Length", strconv.FormatInt(req.ContentLength, 10))
	}
	dump, err := httputil.DumpRequest(req, true)
	if err != nil {
		return nil, err
	}
	conn, err := ln.Dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.Write(dump); err != nil {
		return nil, err
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, err
	}
	// Read the body before the connection closes.
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(b))
	return res, nil
}

// TestReceiverBodyLimit posts a correctly signed body of 4096 bytes to a
// server whose BodyLimit is 1024: 413, and nothing stored.
func TestReceiverBodyLimit(t *testing.T) {
	t.Parallel()
	big := paddedBody(t, 4096)
	check := func(t *testing.T, ing *fakeIngester, res response) {
		t.Helper()
		if res.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("status = %d, want 413; body %q", res.status, res.body)
		}
		if msg := res.errorMsg(t); !strings.Contains(msg, "body_limit") {
			t.Errorf("error = %q, want it to name body_limit", msg)
		}
		if n := ing.Calls(); n != 0 {
			t.Errorf("ingester called %d times, want 0", n)
		}
	}

	// Not through Server.Test: fiber's app.Test returns fasthttp's read
	// error for a request rejected while it is read, not the 413 written.
	// Through Serve on an in-memory connection: what a sender really gets.
	t.Run("served connection", func(t *testing.T) {
		t.Parallel()
		ing := &fakeIngester{}
		s := newServer(t, ing, Options{BodyLimit: 1024})
		ln := serveInMemory(t, s)
		req, err := http.NewRequest(http.MethodPost, "http://switchyard.test"+hookPath, bytes.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = signed(t, secret, big)
		res, err := exchange(ln, req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		check(t, ing, response{status: res.StatusCode, header: res.Header, body: b})

		// The server still serves afterwards.
		body := loadFixture(t, "session_opened")
		req, _ = http.NewRequest(http.MethodPost, "http://switchyard.test"+hookPath, bytes.NewReader(body))
		req.Header = signed(t, secret, body)
		res2, err := exchange(ln, req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res2.Body)
		res2.Body.Close()
		if res2.StatusCode != http.StatusOK {
			t.Errorf("after a 413: status = %d, want 200", res2.StatusCode)
		}
	})
}

func TestReceiverBodyAtLimit(t *testing.T) {
	t.Parallel()
	ing := &fakeIngester{}
	s := newServer(t, ing, Options{BodyLimit: 1024})
	body := paddedBody(t, 1024)
	if res := post(t, s, body, signed(t, secret, body)); res.status != http.StatusOK {
		t.Fatalf("body of exactly BodyLimit: status = %d, want 200; body %q", res.status, res.body)
	}
}

func TestReceiverIngesterError(t *testing.T) {
	t.Parallel()
	const internal = "sqlite: database is locked (/var/lib/switchyard/events.db)"
	ing := &fakeIngester{err: errors.New(internal)}
	s := newServer(t, ing, Options{})
	body := loadFixture(t, "session_closed")

	res := post(t, s, body, signed(t, secret, body))
	if res.status != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503; body %q", res.status, res.body)
	}
	if ra := res.header.Get("Retry-After"); ra == "" {
		t.Error("no Retry-After header")
	}
	msg := res.errorMsg(t)
	for _, leak := range []string{internal, "sqlite", "locked", "events.db", "store:"} {
		if strings.Contains(string(res.body), leak) {
			t.Errorf("answer %q leaks the ingester's error (%q)", res.body, leak)
		}
	}
	if msg == "" {
		t.Error("empty error message")
	}
	if n := ing.Calls(); n != 1 {
		t.Errorf("ingester called %d times, want 1", n)
	}
}

func TestReceiverHealthz(t *testing.T) {
	t.Parallel()
	ing := &fakeIngester{}
	s := newServer(t, ing, Options{})
	res := do(t, s, http.MethodGet, "/healthz", nil, nil)
	if res.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %q", res.status, res.body)
	}
	if m := res.json(t); m["status"] != "ok" {
		t.Errorf("answer = %s", res.body)
	}
	if n := ing.Calls(); n != 0 {
		t.Errorf("ingester called %d times, want 0", n)
	}
}

func TestReceiverUnknownPathNoSources(t *testing.T) {
	t.Parallel()
	s := New(nil, &fakeIngester{}, Options{})
	res := do(t, s, http.MethodPost, hookPath, []byte(`{}`), nil)
	if res.status != http.StatusNotFound {
		t.Fatalf("status = %d, want 404; body %q", res.status, res.body)
	}
	res.errorMsg(t)
}

// TestReceiverCopiesBody checks that the event outlives the request:
// Fiber reuses its request buffers, so an event that aliased them would
// change when the next request is read.
func TestReceiverCopiesBody(t *testing.T) {
	t.Parallel()
	ing := &fakeIngester{}
	s := newServer(t, ing, Options{})

	first := loadFixture(t, "session_forwarded_escalated")
	_, wantData, wantSubject := fixtureData(t, first)
	wantData = bytes.Clone(wantData)

	// Same length, different bytes: the likeliest to land in the same buffer.
	second := bytes.ReplaceAll(first, []byte("6651a0e7c4b2f81d9a3e5c11"), []byte("ffffffffffffffffffffffff"))
	second = bytes.Replace(second, []byte("session.forwarded.escalated"), []byte("session.forwarded.XXXXXXXXX"), 1)
	if len(second) != len(first) || bytes.Equal(first, second) {
		t.Fatal("second body must differ from the first with the same length")
	}

	for i, body := range [][]byte{first, second} {
		if res := post(t, s, body, signed(t, secret, body)); res.status != http.StatusOK {
			t.Fatalf("request %d: status = %d; body %q", i, res.status, res.body)
		}
	}
	evs := ing.Events()
	if len(evs) != 2 {
		t.Fatalf("ingester got %d events, want 2", len(evs))
	}
	ev := evs[0]
	if !bytes.Equal(ev.Data, wantData) {
		t.Errorf("first event's Data changed after a later request:\n got %s\nwant %s", ev.Data, wantData)
	}
	if ev.EventType != "session.forwarded.escalated" || ev.Subject != wantSubject {
		t.Errorf("first event changed: EventType %q Subject %q", ev.EventType, ev.Subject)
	}
	if evs[1].Subject != "ffffffffffffffffffffffff" {
		t.Errorf("second event Subject = %q", evs[1].Subject)
	}
}

func TestReceiverLogsNoSecrets(t *testing.T) {
	t.Parallel()
	var logs logbuf.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ing := &fakeIngester{}
	s := newServer(t, ing, Options{Logger: logger})
	failing := newServer(t, &fakeIngester{err: errors.New("disk full")}, Options{Logger: logger})
	panicky := newServer(t, &fakeIngester{panics: 1}, Options{Logger: logger})

	good := loadFixture(t, "session_forwarded_escalated")
	tampered := bytes.Clone(good)
	tampered[10] ^= 0x01
	goodSig := darwin.Sign([]byte(secret), good)
	wrongSig := darwin.Sign([]byte("wrong"), good)
	bad := []byte(`{"eventType":`)
	badSig := darwin.Sign([]byte(secret), bad)
	noType := []byte(`{"data":{}}`)
	noTypeSig := darwin.Sign([]byte(secret), noType)
	sigs := []string{goodSig, strings.ToUpper(goodSig), wrongSig, badSig, noTypeSig}

	hdr := func(sig string) http.Header { return http.Header{"X-Signature": {sig}} }
	for _, r := range []struct {
		s      *Server
		body   []byte
		header http.Header
		want   int
	}{
		{s, good, hdr(goodSig), 200},
		{s, good, hdr(strings.ToUpper(goodSig)), 200},
		{s, good, hdr(wrongSig), 401},
		{s, tampered, hdr(goodSig), 401},
		{s, good, nil, 401},
		{s, bad, hdr(badSig), 400},
		{s, noType, hdr(noTypeSig), 400},
		{failing, good, hdr(goodSig), 503},
		{panicky, good, hdr(goodSig), 500},
	} {
		if res := post(t, r.s, r.body, r.header); res.status != r.want {
			t.Fatalf("status = %d, want %d; body %q", res.status, r.want, res.body)
		}
	}

	out := logs.String()
	if !strings.Contains(out, "webhook rejected") || !strings.Contains(out, "event not stored") {
		t.Fatalf("expected rejections and store failures to be logged; log:\n%s", out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("log contains the secret %q:\n%s", secret, out)
	}
	for _, sig := range sigs {
		if strings.Contains(strings.ToLower(out), strings.ToLower(sig)) {
			t.Errorf("log contains an X-SIGNATURE value %q:\n%s", sig, out)
		}
	}
}

func TestNewSourceErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  SourceConfig
		want []string
	}{
		{"unknown provider", SourceConfig{Name: "x", Path: "/x", Provider: "strype", Secrets: []string{secret}}, []string{"strype", "darwin", "stripe", "github"}},
		{"empty secret", SourceConfig{Name: "x", Path: "/x", Provider: "github", Secrets: []string{""}}, []string{"secret", "empty"}},
		{"unauthenticated chat without verify", SourceConfig{Name: "x", Path: "/x", Provider: "chat"}, []string{"verify", "type: none"}},
		{"custom without map", SourceConfig{Name: "x", Path: "/x", Provider: "custom", Verify: &VerifyConfig{Type: "none"}}, []string{"map"}},
		{"envelope without header", SourceConfig{Name: "x", Path: "/x", Provider: "envelope", Secrets: []string{secret}}, []string{"verify.header"}},
		{"empty provider", SourceConfig{Name: "x", Path: "/x", Secrets: []string{secret}}, []string{"darwin"}},
		{"darwin without secrets", SourceConfig{Name: "darwin", Path: hookPath, Provider: "darwin"}, []string{"secret"}},
		{"darwin with empty secret list", SourceConfig{Name: "darwin", Path: hookPath, Provider: "darwin", Secrets: []string{}}, []string{"secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src, err := NewSource(tc.cfg)
			if err == nil {
				t.Fatalf("NewSource(%+v) = %+v, nil; want an error", tc.cfg, src)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if src.Verify != nil || src.Normalize != nil {
				t.Error("a failed NewSource returned a usable source")
			}
		})
	}
	// Every known provider is listed.
	_, err := NewSource(SourceConfig{Provider: "nope"})
	for _, p := range Providers() {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not list provider %q", err, p)
		}
	}
	if _, err := Sign("nope", secret, nil); err == nil {
		t.Error("Sign for an unknown provider did not fail")
	}
}

func TestReceiverIngesterPanic(t *testing.T) {
	t.Parallel()
	ing := &fakeIngester{panics: 1}
	s := newServer(t, ing, Options{})
	body := loadFixture(t, "session_opened")

	res := post(t, s, body, signed(t, secret, body))
	if res.status != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500; body %q", res.status, res.body)
	}
	if m := res.json(t); len(m) != 1 || m["error"] != "internal error" {
		t.Errorf(`answer = %s, want {"error":"internal error"}`, res.body)
	}
	if strings.Contains(string(res.body), "boom") {
		t.Errorf("answer leaks the panic value: %s", res.body)
	}

	// The server keeps answering.
	res = post(t, s, body, signed(t, secret, body))
	if res.status != http.StatusOK {
		t.Fatalf("after a panic: status = %d, want 200; body %q", res.status, res.body)
	}
	if res := do(t, s, http.MethodGet, "/healthz", nil, nil); res.status != http.StatusOK {
		t.Fatalf("after a panic: /healthz status = %d", res.status)
	}
	if n := ing.Calls(); n != 2 {
		t.Errorf("ingester called %d times, want 2", n)
	}
}

// TestReceiverIngestDeadline checks the ingester is given a context that
// ends within IngestTimeout.
func TestReceiverIngestDeadline(t *testing.T) {
	t.Parallel()
	got := make(chan time.Duration, 1)
	ing := ingestFunc(func(ctx context.Context, ev *event.Event) (Result, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			got <- -1
		} else {
			got <- time.Until(dl)
		}
		return Result{ID: ev.ID}, nil
	})
	s := newServer(t, ing, Options{IngestTimeout: 2 * time.Second})
	body := loadFixture(t, "session_opened")
	if res := post(t, s, body, signed(t, secret, body)); res.status != http.StatusOK {
		t.Fatalf("status = %d; body %q", res.status, res.body)
	}
	if d := <-got; d <= 0 || d > 2*time.Second {
		t.Errorf("ingest context deadline in %v, want within (0, 2s]", d)
	}
}

type ingestFunc func(ctx context.Context, ev *event.Event) (Result, error)

func (f ingestFunc) Ingest(ctx context.Context, ev *event.Event) (Result, error) { return f(ctx, ev) }

func BenchmarkReceiver(b *testing.B) {
	s := newServer(b, &fakeIngester{discard: true}, Options{})
	body := loadFixture(b, "session_forwarded_escalated")
	sig := darwin.Sign([]byte(secret), body)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req, err := http.NewRequest(http.MethodPost, "http://switchyard.test"+hookPath, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(darwin.SignatureHeader, sig)
		res, err := s.Test(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("status = %d", res.StatusCode)
		}
	}
}
