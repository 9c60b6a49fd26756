package slack

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/sinks"
)

// botSink returns a bot-mode sink posting to srv.
func botSink(t *testing.T, srv *httptest.Server, opts Options) *Sink {
	t.Helper()
	opts.Token = testToken
	opts.APIURL = srv.URL + "/"
	if opts.Channel == nil {
		opts.Channel = lang.MustParseTemplate("#ops")
	}
	if opts.Name == "" {
		opts.Name = "ops-slack"
	}
	return newSink(t, opts)
}

func TestBotPostsBlocksAndText(t *testing.T) {
	t.Parallel()
	f := &fakeAPI{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := botSink(t, srv, Options{
		Channel: lang.MustParseTemplate(`{{ data.channelName == "WhatsApp Vendas" ? "#sales" : "#support" }}`),
	})
	ev := escalated(t)
	want, err := s.Render(ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev}); err != nil {
		t.Fatalf("Send = %v", err)
	}
	other := load(t, "../../testdata/darwin/function_call.json") // no channelName
	if err := s.Send(context.Background(), &sinks.Delivery{ID: "d2", Attempt: 1, Event: other}); err != nil {
		t.Fatalf("Send = %v", err)
	}
	posts := f.received(t)
	if len(posts) != 2 {
		t.Fatalf("posted %d messages, want 2", len(posts))
	}
	if posts[0].Channel != "#sales" || posts[1].Channel != "#support" {
		t.Errorf("channels = %q, %q; want #sales (routed by data.channelName), #support", posts[0].Channel, posts[1].Channel)
	}
	if posts[0].Text != want.Text || len(posts[0].Blocks) != len(want.Blocks) || len(want.Blocks) == 0 {
		t.Errorf("posted text %q with %d blocks, want %q with %d", posts[0].Text, len(posts[0].Blocks), want.Text, len(want.Blocks))
	}
}

func TestBotFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		answer    func(int, http.ResponseWriter, *http.Request) bool
		delay     time.Duration
		closed    bool
		retryable bool
		status    int // HTTPStatus(), 0: none
		after     time.Duration
		code      string // APIError code
	}{
		{name: "channel_not_found", answer: okFalse("channel_not_found"), status: 200, code: "channel_not_found"},
		{name: "invalid_auth", answer: okFalse("invalid_auth"), status: 200, code: "invalid_auth"},
		{name: "not_in_channel", answer: okFalse("not_in_channel"), status: 200, code: "not_in_channel"},
		{name: "invalid_blocks", answer: okFalse("invalid_blocks"), status: 200, code: "invalid_blocks"},
		{name: "ok:false ratelimited", answer: okFalse("ratelimited"), retryable: true, status: 200, code: "ratelimited", after: time.Second},
		{name: "ok:false service_unavailable", answer: okFalse("service_unavailable"), retryable: true, status: 200, code: "service_unavailable"},
		{name: "429 with Retry-After", answer: status(429, "", http.Header{"Retry-After": {"7"}}), retryable: true, status: 429, after: 7 * time.Second},
		{name: "429 without Retry-After", answer: status(429, "", nil), retryable: true, status: 429},
		{name: "500", answer: status(500, "<html>oops</html>", nil), retryable: true, status: 500},
		{name: "503", answer: status(503, "", nil), retryable: true, status: 503},
		{name: "timeout", delay: 300 * time.Millisecond, retryable: true},
		{name: "connection refused", closed: true, retryable: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeAPI{answer: tc.answer}
			if tc.delay > 0 {
				f.answer = func(_ int, w http.ResponseWriter, r *http.Request) bool {
					select {
					case <-time.After(tc.delay):
					case <-r.Context().Done():
					}
					return false
				}
			}
			srv := httptest.NewServer(f)
			defer srv.Close()
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			s := botSink(t, srv, Options{Logger: log, Threads: true, State: SQLiteState(t.TempDir() + "/slack.db")})
			if tc.closed {
				srv.Close()
			}
			timeout := 5 * time.Second
			if tc.delay > 0 {
				timeout = 50 * time.Millisecond // shorter than the delay
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			err := s.Send(ctx, &sinks.Delivery{ID: "d1", Attempt: 1, Event: escalated(t)})
			if err == nil {
				t.Fatal("Send = nil, want an error")
			}
			// Log it as the delivery worker does.
			log.Warn("delivery failed; will retry", "err", err)
			if got := retryable(err); got != tc.retryable {
				t.Errorf("retryable = %v, want %v (err %v)", got, tc.retryable, err)
			}
			var st interface{ HTTPStatus() int }
			if got := 0; errors.As(err, &st) {
				got = st.HTTPStatus()
				if got != tc.status {
					t.Errorf("HTTPStatus = %d, want %d", got, tc.status)
				}
			} else if tc.status != 0 {
				t.Errorf("no HTTPStatus in %v, want %d", err, tc.status)
			}
			var ra interface{ RetryAfter() time.Duration }
			if errors.As(err, &ra) && ra.RetryAfter() != tc.after {
				t.Errorf("RetryAfter = %v, want %v", ra.RetryAfter(), tc.after)
			} else if !errors.As(err, &ra) && tc.after != 0 {
				t.Errorf("no RetryAfter in %v, want %v", err, tc.after)
			}
			var api *APIError
			if errors.As(err, &api) != (tc.code != "") || (api != nil && api.Code != tc.code) {
				t.Errorf("APIError = %v, want code %q", api, tc.code)
			}
			if tc.delay > 0 && !sinks.IsTimeout(err) {
				t.Errorf("IsTimeout = false for %v", err)
			}
			for _, where := range []string{err.Error(), logs.String()} {
				if leak := hasAny(where, testToken, "TOKENSECRET"); leak != "" {
					t.Errorf("the token shows in %q", where)
				}
			}
			if !strings.Contains(logs.String(), "delivery failed") {
				t.Errorf("logs = %q: the error was not logged, so the leak check checked nothing", logs.String())
			}
		})
	}
}

// A 429 holds the channel back for the Retry-After it asked for: the
// next post to that channel waits, other channels do not.
func TestRateLimitedHoldsChannel(t *testing.T) {
	t.Parallel()
	for name, limit := range map[string]func(int, http.ResponseWriter, *http.Request) bool{
		"429 Retry-After 1": status(429, "", http.Header{"Retry-After": {"1"}}),
		"ok:false":          okFalse("ratelimited"), // no wait named: one second
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testRateLimitedHoldsChannel(t, limit)
		})
	}
}

func testRateLimitedHoldsChannel(t *testing.T, limit func(int, http.ResponseWriter, *http.Request) bool) {
	f := &fakeAPI{answer: func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			return limit(n, w, r)
		}
		return false
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := botSink(t, srv, Options{
		Channel:        lang.MustParseTemplate(`{{ data.channel }}`),
		ChannelRateN:   100,
		ChannelRatePer: time.Second,
	})
	send := func(channel string, timeout time.Duration) error {
		ev := hostile()
		ev.Data = []byte(`{"channel":"` + channel + `"}`)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return s.Send(ctx, &sinks.Delivery{ID: "d", Attempt: 1, Event: ev})
	}
	if err := send("#a", time.Second); err == nil || !retryable(err) {
		t.Fatalf("first Send = %v, want a retryable rate limit", err)
	}
	start := time.Now()
	if err := send("#b", time.Second); err != nil {
		t.Fatalf("Send to another channel = %v", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("another channel waited %v for #a's Retry-After", took)
	}
	// Within a short deadline, #a refuses to post before Retry-After ends.
	err := send("#a", 100*time.Millisecond)
	var ra interface{ RetryAfter() time.Duration }
	if err == nil || !retryable(err) || !errors.As(err, &ra) || ra.RetryAfter() <= 0 {
		t.Fatalf("Send to #a during its Retry-After = %v, want a retryable error with a RetryAfter", err)
	}
	if err := send("#a", 3*time.Second); err != nil {
		t.Fatalf("Send to #a with time to wait = %v", err)
	}
	if took := time.Since(start); took < 800*time.Millisecond {
		t.Errorf("#a posted %v after a rate limit of 1s", took)
	}
	if n := len(f.received(t)); n != 2 {
		t.Errorf("accepted %d posts, want 2", n)
	}
}

// TestBotEscapesPayload posts a payload made to inject a mention, a
// forged link and an entity, through the default layout and a custom
// template, and checks that every mrkdwn text Slack would parse is inert.
func TestBotEscapesPayload(t *testing.T) {
	t.Parallel()
	custom, err := ParseBlocks([]any{
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "<https://ok.example.com|Mine>: {{ data.conversationTitle }} by {{ agentName }}"}},
		map[string]any{"type": "section", "fields": []any{map[string]any{"type": "mrkdwn", "text": "{{ data.forwardedToName }}"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"default layout", Options{}},
		{"custom blocks", Options{Blocks: custom}},
		{"custom text", Options{Text: lang.MustParseTemplate("New: {{ data.conversationTitle }}")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeAPI{}
			srv := httptest.NewServer(f)
			defer srv.Close()
			s := botSink(t, srv, tc.opts)
			if err := s.Send(context.Background(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: hostile()}); err != nil {
				t.Fatalf("Send = %v", err)
			}
			posts := f.received(t)
			if len(posts) != 1 {
				t.Fatalf("posted %d, want 1", len(posts))
			}
			texts := mrkdwnTexts(posts[0].Blocks)
			texts = append(texts, posts[0].Text)
			found := false
			for _, text := range texts {
				if leak := hasAny(text, "<!channel>", "<!here>", "<http://evil", "& co"); leak != "" {
					t.Errorf("mrkdwn %q contains the injected %q", text, leak)
				}
				if strings.Contains(text, "&lt;!channel&gt; &lt;http://evil|click&gt; &amp; co") {
					found = true
				}
			}
			if !found {
				t.Errorf("no text shows the title, escaped: %q", texts)
			}
			if tc.name == "custom blocks" && !strings.Contains(texts[0], "<https://ok.example.com|Mine>") {
				t.Errorf("the template's own link was escaped: %q", texts[0])
			}
		})
	}
}

// mrkdwnTexts collects the text of every mrkdwn object in blocks.
func mrkdwnTexts(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if v["type"] == "mrkdwn" {
			if s, ok := v["text"].(string); ok {
				out = append(out, s)
			}
		}
		for _, item := range v {
			out = append(out, mrkdwnTexts(item)...)
		}
	case []any:
		for _, item := range v {
			out = append(out, mrkdwnTexts(item)...)
		}
	}
	return out
}
