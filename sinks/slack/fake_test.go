package slack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// testToken is the bot token tests use; it must never appear in an
// error or a log line.
const testToken = "xoxb-1111-2222-TOKENSECRET"

// post is a message the fake Slack received.
type post struct {
	Channel   string // as requested
	Text      string
	Blocks    []any
	ThreadTS  string
	Broadcast bool
	TS        string // the ts it was given; for an update, the ts edited
	At        time.Time
}

// fakeAPI plays Slack's Web API (chat.postMessage, chat.update) and
// incoming webhooks. By default it accepts every message; answer, when set,
// decides the answer to each request (n counts requests from 1).
type fakeAPI struct {
	mu      sync.Mutex
	posts   []post
	updates []post // accepted chat.update calls, in order
	bad     []string
	n       int
	answer  func(n int, w http.ResponseWriter, r *http.Request) bool // true: answered
	// channelIDs maps channel names to the ids Slack answers with.
	channelIDs map[string]string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.n++
	n := f.n
	answer := f.answer
	f.mu.Unlock()
	if r.Method != http.MethodPost {
		f.fail("method %s", r.Method)
	}
	var p post
	switch r.URL.Path {
	case "/chat.postMessage", "/chat.update":
		if err := r.ParseForm(); err != nil {
			f.fail("form: %v", err)
		}
		if got := r.PostForm.Get("token"); got != testToken {
			f.fail("token %q", got)
		}
		p = post{
			Channel:   r.PostForm.Get("channel"),
			Text:      r.PostForm.Get("text"),
			ThreadTS:  r.PostForm.Get("thread_ts"),
			Broadcast: r.PostForm.Get("reply_broadcast") == "true",
			TS:        r.PostForm.Get("ts"),
		}
		if r.URL.Path == "/chat.update" && p.TS == "" {
			f.fail("chat.update without ts")
		}
		if b := r.PostForm.Get("blocks"); b != "" {
			if err := json.Unmarshal([]byte(b), &p.Blocks); err != nil {
				f.fail("blocks: %v", err)
			}
		}
	case webhookPath:
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			f.fail("content type %q", ct)
		}
		var msg struct {
			Text   *string `json:"text"`
			Blocks []any   `json:"blocks"`
		}
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil || msg.Text == nil {
			f.fail("webhook body without text (%v)", err)
		} else {
			p.Text, p.Blocks = *msg.Text, msg.Blocks
		}
	default:
		f.fail("path %s", r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if answer != nil && answer(n, w, r) {
		return
	}
	f.mu.Lock()
	p.At = time.Now()
	if r.URL.Path == "/chat.update" {
		f.updates = append(f.updates, p)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": p.Channel, "ts": p.TS, "text": p.Text})
		return
	}
	p.TS = fmt.Sprintf("1700000000.%06d", len(f.posts)+1)
	f.posts = append(f.posts, p)
	chID := f.channelIDs[p.Channel]
	f.mu.Unlock()
	if r.URL.Path == webhookPath {
		w.Write([]byte("ok"))
		return
	}
	if chID == "" {
		chID = p.Channel
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": chID, "ts": p.TS})
}

func (f *fakeAPI) fail(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bad = append(f.bad, fmt.Sprintf(format, args...))
}

// received returns the accepted posts, and fails t for bad requests.
func (f *fakeAPI) received(t *testing.T) []post {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.bad {
		t.Errorf("bad request: %s", b)
	}
	return append([]post(nil), f.posts...)
}

// updated returns the accepted chat.update calls.
func (f *fakeAPI) updated() []post {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]post(nil), f.updates...)
}

// okFalse answers Slack's refusal with code.
func okFalse(code string) func(int, http.ResponseWriter, *http.Request) bool {
	return func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":false,"error":%q}`, code)
		return true
	}
}

// status answers an HTTP status with a body and headers.
func status(code int, body string, header http.Header) func(int, http.ResponseWriter, *http.Request) bool {
	return func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(code)
		w.Write([]byte(body))
		return true
	}
}

// memTransport serves requests with a handler in memory: no sockets,
// so tests can run inside a synctest bubble.
type memTransport struct{ h http.Handler }

func (m memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

func hasAny(s string, subs ...string) string {
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			return sub
		}
	}
	return ""
}
