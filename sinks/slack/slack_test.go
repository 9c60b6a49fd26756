package slack

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/receiver/darwin"
	"github.com/switchyard/switchyard/sinks"
)

// webhookPath is the credential part of an incoming webhook URL.
const webhookPath = "/services/T000/B000/XXXXSECRET"

var received = time.Date(2026, 11, 21, 14, 32, 9, 0, time.UTC)

func fixturePaths(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "darwin", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	return files
}

func load(t *testing.T, path string) *event.Event {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := darwin.Normalize(body, received)
	if err != nil {
		t.Fatalf("Normalize(%s): %v", path, err)
	}
	ev.ID = "evt_" + strings.TrimSuffix(filepath.Base(path), ".json")
	ev.Source = "darwin-prod"
	return ev
}

func escalated(t *testing.T) *event.Event {
	t.Helper()
	return load(t, filepath.Join("..", "..", "testdata", "darwin", "session_forwarded_escalated.json"))
}

// hostile is an event whose payload tries to inject Slack control
// sequences.
func hostile() *event.Event {
	return &event.Event{
		ID:         "evt_hostile",
		Source:     "darwin-prod",
		EventType:  "session.forwarded.escalated",
		Timestamp:  received,
		ReceivedAt: received,
		AgentName:  "<!here> bot",
		Subject:    "s1",
		Data:       json.RawMessage(`{"sessionId":"s1","conversationTitle":"<!channel> <http://evil|click> & co","forwardedToName":"Carla"}`),
	}
}

func newSink(t *testing.T, opts Options) *Sink {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func retryable(err error) bool {
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	return true
}

// fakeSlack plays an incoming webhook: it keeps the texts posted to
// webhookPath and answers as told.
type fakeSlack struct {
	mu    sync.Mutex
	texts []string
	bad   []string // what was wrong with requests, reported by the test
}

func (f *fakeSlack) handler(status int, body string, header http.Header, delay time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			Text *string `json:"text"`
		}
		err := json.NewDecoder(r.Body).Decode(&msg)
		f.mu.Lock()
		switch {
		case r.Method != http.MethodPost:
			f.bad = append(f.bad, "method "+r.Method)
		case r.URL.Path != webhookPath:
			f.bad = append(f.bad, "path "+r.URL.Path)
		case r.Header.Get("Content-Type") != "application/json":
			f.bad = append(f.bad, "content type "+r.Header.Get("Content-Type"))
		case err != nil || msg.Text == nil:
			f.bad = append(f.bad, "body without text")
		default:
			f.texts = append(f.texts, *msg.Text)
		}
		f.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	})
}

func (f *fakeSlack) posted(t *testing.T) []string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.bad {
		t.Errorf("bad request: %s", b)
	}
	return append([]string(nil), f.texts...)
}

func TestSendPostsRenderedText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		template string // "" for DefaultText
		ev       func(t *testing.T) *event.Event
		want     func(t *testing.T, ev *event.Event) string
	}{
		{
			name: "default text",
			ev:   escalated,
			want: func(t *testing.T, ev *event.Event) string {
				env, err := ev.Env()
				if err != nil {
					t.Fatal(err)
				}
				return DefaultText(env, Platform{})
			},
		},
		{
			name:     "custom template",
			template: `Escalated: {{ data.conversationTitle }} -> {{ data.forwardedToName }}`,
			ev:       escalated,
			want: func(*testing.T, *event.Event) string {
				return "Escalated: Mariana Costa (+55 11 98765-4321) -> Carla Mendes (Supervisora)"
			},
		},
		{
			name:     "static template",
			template: `Something happened <https://example.com|Open>`,
			ev:       escalated,
			want: func(*testing.T, *event.Event) string {
				return `Something happened <https://example.com|Open>`
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSlack{}
			srv := httptest.NewServer(f.handler(http.StatusOK, "ok", nil, 0))
			defer srv.Close()
			opts := Options{WebhookURL: srv.URL + webhookPath}
			if tc.template != "" {
				tmpl, err := lang.ParseTemplate(tc.template)
				if err != nil {
					t.Fatalf("ParseTemplate: %v", err)
				}
				opts.Text = tmpl
			}
			s := newSink(t, opts)
			ev := tc.ev(t)
			want := tc.want(t, ev)

			if err := s.Send(context.Background(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev}); err != nil {
				t.Fatalf("Send = %v, want nil", err)
			}
			texts := f.posted(t)
			if len(texts) != 1 {
				t.Fatalf("posted %d messages, want 1", len(texts))
			}
			if texts[0] != want {
				t.Errorf("posted text = %q, want %q", texts[0], want)
			}
			if m, err := s.Render(ev); err != nil || m.Text != texts[0] {
				t.Errorf("Render = %+v, %v; want the posted text %q", m, err, texts[0])
			}
		})
	}
}

func TestSendEscapesEventValues(t *testing.T) {
	t.Parallel()
	const escapedTitle = "&lt;!channel&gt; &lt;http://evil|click&gt; &amp; co"
	for _, tc := range []struct {
		name     string
		template string // "" for DefaultText
		want     string // exact text, or "" to check only what must not appear
		contains []string
	}{
		{
			name:     "custom template",
			template: `Escalated: {{ data.conversationTitle }} -> {{ data.forwardedToName }}`,
			want:     "Escalated: " + escapedTitle + " -> Carla",
		},
		{
			name:     "author's link stays as written",
			template: "<https://example.com|Open> {{ data.conversationTitle }}",
			want:     "<https://example.com|Open> " + escapedTitle,
		},
		{
			name:     "default text",
			contains: []string{"*session.forwarded.escalated*: " + escapedTitle, "agent &lt;!here&gt; bot"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSlack{}
			srv := httptest.NewServer(f.handler(http.StatusOK, "ok", nil, 0))
			defer srv.Close()
			opts := Options{WebhookURL: srv.URL + webhookPath}
			if tc.template != "" {
				tmpl, err := lang.ParseTemplate(tc.template)
				if err != nil {
					t.Fatalf("ParseTemplate: %v", err)
				}
				opts.Text = tmpl
			}
			s := newSink(t, opts)

			if err := s.Send(context.Background(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: hostile()}); err != nil {
				t.Fatalf("Send = %v, want nil", err)
			}
			texts := f.posted(t)
			if len(texts) != 1 {
				t.Fatalf("posted %d messages, want 1", len(texts))
			}
			got := texts[0]
			if tc.want != "" && got != tc.want {
				t.Errorf("posted text = %q, want %q", got, tc.want)
			}
			for _, c := range tc.contains {
				if !strings.Contains(got, c) {
					t.Errorf("posted text %q does not contain %q", got, c)
				}
			}
			for _, bad := range []string{"<!channel>", "<!here>", "<http://evil"} {
				if strings.Contains(got, bad) {
					t.Errorf("posted text %q contains the injected %q", got, bad)
				}
			}
			// The default text has no literal markup: any < or > came
			// from the event.
			if tc.template == "" && strings.ContainsAny(got, "<>") {
				t.Errorf("posted text %q has a raw < or > from the event", got)
			}
		})
	}
}

func TestDefaultTextFixtures(t *testing.T) {
	t.Parallel()
	for _, path := range fixturePaths(t) {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".json"), func(t *testing.T) {
			t.Parallel()
			ev := load(t, path)
			env, err := ev.Env()
			if err != nil {
				t.Fatal(err)
			}
			got := DefaultText(env, Platform{})
			if got == "" {
				t.Fatal("DefaultText is empty")
			}
			if prefix := "*" + ev.EventType + "*"; !strings.HasPrefix(got, prefix) {
				t.Errorf("DefaultText = %q, want it to start with %q", got, prefix)
			}
			if title, ok := env.Data["conversationTitle"].(string); ok && title != "" {
				if !strings.Contains(got, Escape(title)) {
					t.Errorf("DefaultText = %q, want it to contain the title %q", got, title)
				}
			} else if !strings.Contains(got, ev.Subject) || ev.Subject == "" {
				t.Errorf("DefaultText = %q, want it to contain the subject %q when there is no title", got, ev.Subject)
			}
			if to, ok := env.Data["forwardedToName"].(string); ok {
				if !strings.Contains(got, "→ "+to) {
					t.Errorf("DefaultText = %q, want it to name %q", got, to)
				}
			}
			if !strings.Contains(got, "agent Sofia - Atendimento Imobiliária Horizonte") {
				t.Errorf("DefaultText = %q, want the agent's name", got)
			}
		})
	}
}

func TestDefaultTextDetails(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "testdata", "darwin")
	for _, tc := range []struct {
		fixture string
		want    string
	}{
		{
			"session_forwarded_escalated",
			"*session.forwarded.escalated*: Mariana Costa (+55 11 98765-4321) → Carla Mendes (Supervisora)\n" +
				"WhatsApp Vendas · escalated · agent Sofia - Atendimento Imobiliária Horizonte\n" +
				"> Cliente reclama de cobrança em duplicidade no sinal do apartamento e pede reembolso &lt;urgente&gt; &amp; falar com a gerência.",
		},
		{
			"function_call",
			"*function.call.agendarVisita*: 6651a0e7c4b2f81d9a3e5c11 `agendarVisita` (success)\n" +
				"agent Sofia - Atendimento Imobiliária Horizonte",
		},
		{
			"session_opened",
			"*session.opened*: Mariana Costa (+55 11 98765-4321)\n" +
				"WhatsApp Vendas · agent Sofia - Atendimento Imobiliária Horizonte",
		},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			t.Parallel()
			env, err := load(t, filepath.Join(dir, tc.fixture+".json")).Env()
			if err != nil {
				t.Fatal(err)
			}
			if got := DefaultText(env, Platform{}); got != tc.want {
				t.Errorf("DefaultText =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestSendFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		status    int
		body      string
		header    http.Header
		delay     time.Duration
		closed    bool          // the server is gone: connection refused
		timeout   time.Duration // 0: 5s
		wantHTTP  int           // 0: not an HTTPError
		retryable bool
		after     time.Duration
	}{
		{name: "400 invalid_payload", status: 400, body: "invalid_payload", wantHTTP: 400, retryable: false},
		{name: "403 action_prohibited", status: 403, body: "action_prohibited", wantHTTP: 403, retryable: false},
		{name: "404 no_service", status: 404, body: "no_service", wantHTTP: 404, retryable: false},
		{name: "410 channel_is_archived", status: 410, body: "channel_is_archived", wantHTTP: 410, retryable: false},
		{name: "429 with Retry-After", status: 429, body: "rate_limited", header: http.Header{"Retry-After": {"3"}}, wantHTTP: 429, retryable: true, after: 3 * time.Second},
		{name: "429 without Retry-After", status: 429, body: "rate_limited", wantHTTP: 429, retryable: true},
		{name: "500", status: 500, body: "<html>oops</html>", wantHTTP: 500, retryable: true},
		{name: "503", status: 503, body: "service_unavailable", wantHTTP: 503, retryable: true},
		{name: "302 is not followed", status: 302, header: http.Header{"Location": {"/elsewhere"}}, wantHTTP: 302, retryable: false},
		{name: "slower than the deadline", status: 200, body: "ok", delay: 200 * time.Millisecond, timeout: 50 * time.Millisecond, retryable: true},
		{name: "connection refused", closed: true, retryable: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSlack{}
			srv := httptest.NewServer(f.handler(tc.status, tc.body, tc.header, tc.delay))
			defer srv.Close()
			webhookURL := srv.URL + webhookPath
			if tc.closed {
				srv.Close()
			}
			s := newSink(t, Options{WebhookURL: webhookURL})
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()

			err := s.Send(ctx, &sinks.Delivery{ID: "d1", Attempt: 1, Event: escalated(t)})
			if err == nil {
				t.Fatal("Send = nil, want an error")
			}
			if got := retryable(err); got != tc.retryable {
				t.Errorf("retryable = %v, want %v (err %v)", got, tc.retryable, err)
			}
			var he *sinks.HTTPError
			isHTTP := errors.As(err, &he)
			switch {
			case tc.wantHTTP == 0 && isHTTP:
				t.Errorf("Send = %v, want a transport error, not an HTTPError", err)
			case tc.wantHTTP != 0 && !isHTTP:
				t.Errorf("Send = %v (%T), want *sinks.HTTPError", err, err)
			case tc.wantHTTP != 0:
				if he.Status != tc.wantHTTP {
					t.Errorf("Status = %d, want %d", he.Status, tc.wantHTTP)
				}
				if he.RetryAfter() != tc.after {
					t.Errorf("RetryAfter = %v, want %v", he.RetryAfter(), tc.after)
				}
			}
			if tc.delay > 0 && !sinks.IsTimeout(err) {
				t.Errorf("IsTimeout = false for %v", err)
			}
			msg := err.Error()
			if tc.wantHTTP >= 400 && tc.body != "" && !strings.Contains(msg, tc.body) {
				t.Errorf("error %q lost Slack's reason %q", msg, tc.body)
			}
			for _, secret := range []string{webhookURL, webhookPath, "XXXXSECRET", "B000/"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error text shows %q: %q", secret, msg)
				}
			}
		})
	}
}

func TestSendRenderErrorIsPermanent(t *testing.T) {
	t.Parallel()
	f := &fakeSlack{}
	srv := httptest.NewServer(f.handler(http.StatusOK, "ok", nil, 0))
	defer srv.Close()
	s := newSink(t, Options{WebhookURL: srv.URL + webhookPath, Text: lang.MustParseTemplate("{{ data.conversationTitle }}")})
	ev := escalated(t)
	ev.Data = json.RawMessage(`[1,2,3]`) // not an object: the environment cannot be built
	err := s.Send(context.Background(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev})
	if err == nil {
		t.Fatal("Send = nil for an event whose data is not an object")
	}
	if retryable(err) {
		t.Errorf("render error is retryable: %v", err)
	}
	if n := len(f.posted(t)); n != 0 {
		t.Errorf("posted %d messages after a render error", n)
	}
}

func TestEscape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain São Paulo", "plain São Paulo"},
		{"<!channel>", "&lt;!channel&gt;"},
		{"a & b", "a &amp; b"},
		{"&lt;", "&amp;lt;"},
		{"<http://evil|click>", "&lt;http://evil|click&gt;"},
	} {
		if got := Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPreviewIsRender(t *testing.T) {
	t.Parallel()
	s := newSink(t, Options{WebhookURL: "https://hooks.slack.com" + webhookPath, Text: lang.MustParseTemplate("{{ data.conversationTitle }}")})
	ev := hostile()
	want, err := s.Render(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Preview(ev)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Preview = %#v, %v; Render %#v", got, err, want)
	}
}
