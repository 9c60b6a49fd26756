package slack

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/sinks"
)

// TestThreadsPerSession sends a session's events through a sink that is
// closed and reopened (a gateway restart) half-way: the first message
// starts a thread, every later one replies in it, in order; another
// session gets a thread of its own; the broadcast type is also shown in
// the channel.
func TestThreadsPerSession(t *testing.T) {
	t.Parallel()
	f := &fakeAPI{channelIDs: map[string]string{"#ops": "C0OPS"}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	db := filepath.Join(t.TempDir(), "slack.db")
	dir := filepath.Join("..", "..", "testdata", "darwin")
	session := []string{"session_opened", "session_stage_transitioned", "session_forwarded_escalated", "function_call", "session_analyzed", "session_closed"}
	other := load(t, filepath.Join(dir, "session_opened.json"))
	other.ID, other.Subject = "evt_other", "another-session"

	send := func(s *Sink, ev *event.Event) {
		t.Helper()
		if err := s.Send(context.Background(), &sinks.Delivery{ID: "d-" + ev.ID, Attempt: 1, Event: ev}); err != nil {
			t.Fatalf("Send(%s) = %v", ev.ID, err)
		}
	}
	opts := Options{Threads: true, State: SQLiteState(db), ReplyBroadcast: []string{"session.closed", "session.closed.*"}, ChannelRateN: 100, ChannelRatePer: 1e9}
	s := botSink(t, srv, opts)
	for _, name := range session[:3] {
		send(s, load(t, filepath.Join(dir, name+".json")))
	}
	send(s, other)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = botSink(t, srv, opts) // restarted: only slack.db remembers
	for _, name := range session[3:] {
		send(s, load(t, filepath.Join(dir, name+".json")))
	}

	posts := f.received(t)
	if len(posts) != len(session)+1 {
		t.Fatalf("posted %d messages, want %d", len(posts), len(session)+1)
	}
	first := posts[0]
	if first.ThreadTS != "" || first.Channel != "#ops" {
		t.Errorf("first message: thread_ts %q, channel %q; want a new message in #ops", first.ThreadTS, first.Channel)
	}
	var replies []post
	for i, p := range posts[1:] {
		if i+1 == 3 {
			if p.ThreadTS != "" {
				t.Errorf("another session's first message replied in thread %q", p.ThreadTS)
			}
			continue
		}
		replies = append(replies, p)
	}
	for i, p := range replies {
		if p.ThreadTS != first.TS || p.Channel != "C0OPS" {
			t.Errorf("reply %d: thread_ts %q in %q, want %q in C0OPS (the channel id Slack answered)", i, p.ThreadTS, p.Channel, first.TS)
		}
		wantBroadcast := i == len(replies)-1 // session.closed
		if p.Broadcast != wantBroadcast {
			t.Errorf("reply %d: reply_broadcast = %v, want %v", i, p.Broadcast, wantBroadcast)
		}
	}
	// In order: each message names its event type in its footer.
	wantOrder := append([]string{}, session[:3]...)
	wantOrder = append(wantOrder, "other")
	wantOrder = append(wantOrder, session[3:]...)
	for i, p := range posts {
		ev := other
		if wantOrder[i] != "other" {
			ev = load(t, filepath.Join(dir, wantOrder[i]+".json"))
		}
		if texts := mrkdwnTexts(p.Blocks); len(texts) == 0 || !strings.Contains(texts[len(texts)-1], ev.EventType) {
			t.Errorf("post %d is not %s: %q", i, ev.EventType, texts)
		}
	}
}

// A deleted thread start (thread_not_found) starts a new thread rather
// than failing the session's later events.
func TestThreadGone(t *testing.T) {
	t.Parallel()
	f := &fakeAPI{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := botSink(t, srv, Options{Threads: true, State: SQLiteState(filepath.Join(t.TempDir(), "slack.db")), ChannelRateN: 100, ChannelRatePer: 1e9})
	ev := escalated(t)
	for i := range 3 {
		if i == 1 {
			f.mu.Lock()
			f.answer = func(n int, w http.ResponseWriter, r *http.Request) bool {
				if r.PostForm.Get("thread_ts") != "" && n == 2 {
					return okFalse("thread_not_found")(n, w, r)
				}
				return false
			}
			f.mu.Unlock()
		}
		if err := s.Send(context.Background(), &sinks.Delivery{ID: "d", Attempt: 1, Event: ev}); err != nil {
			t.Fatalf("Send %d = %v", i, err)
		}
	}
	posts := f.received(t)
	if len(posts) != 3 {
		t.Fatalf("posted %d, want 3", len(posts))
	}
	if posts[1].ThreadTS != "" || posts[2].ThreadTS != posts[1].TS {
		t.Errorf("thread_ts = %q, %q; want a new thread (%q) after thread_not_found", posts[1].ThreadTS, posts[2].ThreadTS, posts[1].TS)
	}
}
