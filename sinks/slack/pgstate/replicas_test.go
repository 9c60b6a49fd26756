package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/sinks"
	"github.com/switchyard/switchyard/sinks/slack"
)

const token = "xoxb-1-2-REPLICAS"

// request is a call the fake Slack received.
type request struct {
	Method   string // chat.postMessage or chat.update
	Channel  string
	ThreadTS string
	TS       string // given (post) or edited (update)
	Text     string
	Blocks   string
	At       time.Time // when it arrived
}

// fakeSlack plays Slack's Web API for two sinks standing for two
// replicas: it answers chat.postMessage after delay (so that concurrent
// first messages overlap), and lets answer decide a request's fate.
type fakeSlack struct {
	delay time.Duration

	mu     sync.Mutex
	reqs   []request
	answer func(n int, w http.ResponseWriter) bool
}

func (f *fakeSlack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	req := request{
		Method: strings.TrimPrefix(r.URL.Path, "/"), Channel: r.PostForm.Get("channel"), ThreadTS: r.PostForm.Get("thread_ts"),
		TS: r.PostForm.Get("ts"), Text: r.PostForm.Get("text"), Blocks: r.PostForm.Get("blocks"), At: time.Now(),
	}
	f.mu.Lock()
	n := len(f.reqs) + 1
	answer := f.answer
	f.mu.Unlock()
	if answer != nil && answer(n, w) {
		f.mu.Lock()
		f.reqs = append(f.reqs, request{Method: "refused", At: req.At})
		f.mu.Unlock()
		return
	}
	time.Sleep(f.delay)
	f.mu.Lock()
	if req.Method == "chat.postMessage" {
		req.TS = fmt.Sprintf("1700000000.%06d", len(f.reqs)+1)
	}
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": "C" + strings.TrimPrefix(req.Channel, "#"), "ts": req.TS})
}

func (f *fakeSlack) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// replicas builds two sinks with the same configuration, each with its
// own State on one database: two gateway replicas.
func replicas(t *testing.T, srv *httptest.Server, o slack.Options) [2]*slack.Sink {
	t.Helper()
	dsn := pgtest.Shared(t).DSN(t)
	var out [2]*slack.Sink
	for i := range out {
		o := o
		o.Name, o.Token, o.APIURL = "ops-slack", token, srv.URL+"/"
		if o.Channel == nil {
			o.Channel = lang.MustParseTemplate("#ops")
		}
		o.State = Open(dsn, Options{})
		s, err := slack.New(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out[i] = s
	}
	return out
}

func sessionEvent(id, subject, typ string, data map[string]any) *event.Event {
	if data == nil {
		data = map[string]any{}
	}
	data["conversationTitle"] = "Cliente " + subject
	b, _ := json.Marshal(data)
	now := time.Now()
	return &event.Event{ID: id, Source: "darwin", EventType: typ, Subject: subject, Timestamp: now, ReceivedAt: now, Data: b}
}

func send(s *slack.Sink, ev *event.Event) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Send(ctx, &sinks.Delivery{ID: "d-" + ev.ID, Attempt: 1, Event: ev})
}

// TestRepliesShareOneThread: two replicas post the events of sessions
// into one thread per session, even when both post a session's first
// message at the same time (ordered: false, or a lease taken over from
// a replica still posting): one parent message per session, every
// other message a reply to it.
func TestRepliesShareOneThread(t *testing.T) {
	f := &fakeSlack{delay: 100 * time.Millisecond}
	srv := httptest.NewServer(f)
	defer srv.Close()
	rs := replicas(t, srv, slack.Options{Threads: true, ChannelRateN: 1000, ChannelRatePer: time.Second})
	const sessions = 6
	var wg sync.WaitGroup
	errs := make(chan error, sessions*4)
	for i := range sessions {
		sid := fmt.Sprintf("sess-%d", i)
		// Both replicas get a first event of the session at once.
		for r, typ := range []string{"session.opened", "session.stage.transitioned"} {
			wg.Go(func() { errs <- send(rs[r], sessionEvent(fmt.Sprintf("e-%d-%d", i, r), sid, typ, nil)) })
		}
	}
	wg.Wait()
	// Then more events, alternating replicas.
	for i := range sessions {
		sid := fmt.Sprintf("sess-%d", i)
		for r := range 2 {
			errs <- send(rs[r], sessionEvent(fmt.Sprintf("e-%d-later-%d", i, r), sid, "session.analyzed", nil))
		}
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	parents := map[string]request{}
	replies := map[string]int{}
	for _, r := range f.requests() {
		sid := r.Text[strings.Index(r.Text, "Cliente ")+len("Cliente "):]
		sid, _, _ = strings.Cut(sid, "\n")
		if r.ThreadTS == "" {
			if p, dup := parents[sid]; dup {
				t.Errorf("%s: a second parent message %s (first %s)", sid, r.TS, p.TS)
			}
			parents[sid] = r
			continue
		}
		replies[sid]++
	}
	for _, r := range f.requests() {
		if r.ThreadTS == "" {
			continue
		}
		sid := r.Text[strings.Index(r.Text, "Cliente ")+len("Cliente "):]
		sid, _, _ = strings.Cut(sid, "\n")
		if p := parents[sid]; r.ThreadTS != p.TS || r.Channel != "Cops" {
			t.Errorf("%s: a reply in thread %s of %s, want %s of Cops", sid, r.ThreadTS, r.Channel, p.TS)
		}
	}
	if len(parents) != sessions {
		t.Errorf("%d sessions have a parent message, want %d", len(parents), sessions)
	}
	for sid, n := range replies {
		if n != 3 {
			t.Errorf("%s: %d replies, want 3", sid, n)
		}
	}
}

// TestPaceHoldsAcrossReplicas: two replicas posting to one channel at
// once start their posts at the channel's pace, as one gateway would.
func TestPaceHoldsAcrossReplicas(t *testing.T) {
	f := &fakeSlack{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	const per = 200 * time.Millisecond
	rs := replicas(t, srv, slack.Options{ChannelRateN: 1, ChannelRatePer: per})
	const each = 5
	var wg sync.WaitGroup
	for r := range 2 {
		for i := range each {
			wg.Go(func() {
				if err := send(rs[r], sessionEvent(fmt.Sprintf("e-%d-%d", r, i), fmt.Sprintf("s-%d-%d", r, i), "session.opened", nil)); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	reqs := f.requests()
	if len(reqs) != 2*each {
		t.Fatalf("%d posts, want %d", len(reqs), 2*each)
	}
	gaps := make([]time.Duration, 0, len(reqs)-1)
	for i := 1; i < len(reqs); i++ {
		gaps = append(gaps, reqs[i].At.Sub(reqs[i-1].At))
	}
	slices.Sort(gaps)
	t.Logf("start spacing at Slack: min %v, median %v, max %v (pace 1/%v)", gaps[0], gaps[len(gaps)/2], gaps[len(gaps)-1], per)
	// Posts start at the pace; they arrive later by the HTTP round trip
	// and, on a busy machine, by scheduling, so one late arrival may
	// bring the next close. What per-replica pacing could not do is fit
	// 10 posts into less than 9 slots, nor bring several pairs together.
	total := reqs[len(reqs)-1].At.Sub(reqs[0].At)
	if min := time.Duration(2*each-1)*per - 100*time.Millisecond; total < min {
		t.Errorf("10 posts in %v: the pace of one per %v allows no less than %v", total, per, min)
	}
	close := 0
	for _, g := range gaps {
		if g < per/2 {
			close++
		}
	}
	if close > 1 {
		t.Errorf("%d pairs of posts arrived under %v apart; the channel's pace is one per %v", close, per/2, per)
	}
}

// TestPauseHoldsAcrossReplicas: after Slack answers one replica 429
// Retry-After: 1, the other replica's next post to the channel waits
// out the second too.
func TestPauseHoldsAcrossReplicas(t *testing.T) {
	f := &fakeSlack{answer: func(n int, w http.ResponseWriter) bool {
		if n != 1 {
			return false
		}
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	rs := replicas(t, srv, slack.Options{ChannelRateN: 100, ChannelRatePer: time.Second})
	err := send(rs[0], sessionEvent("e1", "s1", "session.opened", nil))
	var ra interface{ RetryAfter() time.Duration }
	if err == nil || !errorsAs(err, &ra) {
		t.Fatalf("the 429'd send = %v; want a retryable error", err)
	}
	if err := send(rs[1], sessionEvent("e2", "s2", "session.opened", nil)); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	waited := reqs[1].At.Sub(reqs[0].At)
	t.Logf("the other replica's post came %v after the 429", waited)
	if waited < 950*time.Millisecond {
		t.Errorf("the other replica posted %v after a 429 asking for 1s", waited)
	}
}

// TestGroupAcrossReplicas: the events of one burst, sent by two
// replicas at once, make one group message, edited to list them all.
func TestGroupAcrossReplicas(t *testing.T) {
	f := &fakeSlack{delay: 20 * time.Millisecond}
	srv := httptest.NewServer(f)
	defer srv.Close()
	by, err := lang.CompileExpression("data.forwardedToName")
	if err != nil {
		t.Fatal(err)
	}
	rs := replicas(t, srv, slack.Options{Group: &slack.Group{By: by, Wait: 30 * time.Second}, ChannelRateN: 1000, ChannelRatePer: time.Second})
	const events = 8
	var wg sync.WaitGroup
	for i := range events {
		wg.Go(func() {
			ev := sessionEvent(fmt.Sprint("e", i), fmt.Sprint("s", i), "session.forwarded.escalated", map[string]any{"forwardedToName": "Carla Mendes"})
			if err := send(rs[i%2], ev); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var posts, updates []request
	for _, r := range f.requests() {
		if r.Method == "chat.postMessage" {
			posts = append(posts, r)
		} else {
			updates = append(updates, r)
		}
	}
	if len(posts) != 1 || len(updates) != events-1 {
		t.Fatalf("%d posts, %d updates; want 1 group message, edited %d times", len(posts), len(updates), events-1)
	}
	last := updates[len(updates)-1]
	if last.TS != posts[0].TS || !strings.Contains(last.Text, fmt.Sprintf("%d forwarded sessions", events)) {
		t.Errorf("last update edits %s: %q; want %s listing %d", last.TS, last.Text, posts[0].TS, events)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
