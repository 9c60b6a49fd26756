package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/sinks"
)

// forwardedTo is a forwarded session i, to whom, received at.
func forwardedTo(i int, to string, at time.Time) *event.Event {
	return &event.Event{
		ID:         fmt.Sprintf("evt_%d", i),
		Source:     "darwin-prod",
		EventType:  "session.forwarded.escalated",
		Timestamp:  at,
		ReceivedAt: at,
		Subject:    fmt.Sprintf("s%d", i),
		Data:       json.RawMessage(fmt.Sprintf(`{"conversationTitle":"Customer %d","forwardedToName":%q}`, i, to)),
	}
}

// groupSink is a bot sink grouping by data.forwardedToName for 30s, its
// groups kept in db.
func groupSink(t *testing.T, srv *httptest.Server, db string) *Sink {
	t.Helper()
	by, err := lang.CompileExpression("data.forwardedToName")
	if err != nil {
		t.Fatal(err)
	}
	return botSink(t, srv, Options{
		Group:        &Group{By: by, Wait: 30 * time.Second},
		State:        SQLiteState(db),
		ChannelRateN: 1000, ChannelRatePer: time.Second,
	})
}

func sendEvent(s *Sink, ev *event.Event) error {
	return s.Send(context.Background(), &sinks.Delivery{ID: "d-" + ev.ID, Attempt: 1, Event: ev})
}

// groupView is a group's message as Slack shows it.
type groupView struct {
	header string
	lines  []string // section texts, in order
	more   string   // the context line, if any
	blocks int
}

func viewGroup(t *testing.T, p post) groupView {
	t.Helper()
	v := groupView{blocks: len(p.Blocks)}
	for _, b := range p.Blocks {
		m, _ := b.(map[string]any)
		text, _ := m["text"].(map[string]any)
		switch m["type"] {
		case "header":
			v.header, _ = text["text"].(string)
		case "section":
			s, _ := text["text"].(string)
			v.lines = append(v.lines, s)
		case "context":
			v.more = strings.Join(mrkdwnTexts(m), " ")
		default:
			t.Errorf("unexpected block %v", m)
		}
	}
	return v
}

// checkLines fails unless the lines show the customers, in order, once
// each.
func checkLines(t *testing.T, lines []string, customers ...int) {
	t.Helper()
	if len(lines) != len(customers) {
		t.Fatalf("%d lines, want %d: %q", len(lines), len(customers), lines)
	}
	for i, c := range customers {
		if want := fmt.Sprintf("Customer %d ", c); !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %q, want one about %q", i, lines[i], want)
		}
	}
}

// TestGroupBurst sends a burst of five forwards to one person within the
// wait: one message, edited four times to list them all; a forward to
// someone else and an event without the key are messages of their own;
// a forward after the wait starts a new group message.
func TestGroupBurst(t *testing.T) {
	t.Parallel()
	f := &fakeAPI{channelIDs: map[string]string{"#ops": "C0OPS"}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := groupSink(t, srv, filepath.Join(t.TempDir(), "slack.db"))
	t0 := received
	for i := range 5 {
		if err := sendEvent(s, forwardedTo(i, "Carla Mendes", t0.Add(time.Duration(i)*5*time.Second))); err != nil {
			t.Fatalf("Send %d = %v", i, err)
		}
		if i == 2 {
			if err := sendEvent(s, forwardedTo(10, "Bruno", t0.Add(11*time.Second))); err != nil {
				t.Fatal(err)
			}
			unkeyed := forwardedTo(11, "", t0.Add(12*time.Second))
			unkeyed.Data = json.RawMessage(`{"conversationTitle":"Customer 11"}`)
			if err := sendEvent(s, unkeyed); err != nil {
				t.Fatal(err)
			}
		}
	}
	posts, updates := f.received(t), f.updated()
	if len(posts) != 3 || len(updates) != 4 {
		t.Fatalf("%d posts, %d updates; want 3 posts (Carla's group, Bruno, no key) and 4 updates", len(posts), len(updates))
	}
	for i, u := range updates {
		if u.Channel != "C0OPS" || u.TS != posts[0].TS {
			t.Errorf("update %d edits %s in %s, want %s in C0OPS (the id Slack answered)", i, u.TS, u.Channel, posts[0].TS)
		}
		if got := len(viewGroup(t, u).lines); got != i+2 {
			t.Errorf("update %d lists %d events, want %d", i, got, i+2)
		}
	}
	last := viewGroup(t, updates[3])
	if last.header != "5 forwarded sessions → Carla Mendes" {
		t.Errorf("header = %q", last.header)
	}
	if updates[3].Text != "5 forwarded sessions → Carla Mendes" {
		t.Errorf("fallback text = %q", updates[3].Text)
	}
	checkLines(t, last.lines, 0, 1, 2, 3, 4)
	if !strings.Contains(last.lines[0], "<!date^") {
		t.Errorf("a line without its time: %q", last.lines[0])
	}

	// After the wait (by receive time) a new group starts.
	if err := sendEvent(s, forwardedTo(5, "Carla Mendes", t0.Add(31*time.Second))); err != nil {
		t.Fatal(err)
	}
	if err := sendEvent(s, forwardedTo(6, "Carla Mendes", t0.Add(40*time.Second))); err != nil {
		t.Fatal(err)
	}
	posts, updates = f.received(t), f.updated()
	if len(posts) != 4 || len(updates) != 5 {
		t.Fatalf("after the wait: %d posts, %d updates; want 4, 5", len(posts), len(updates))
	}
	if updates[4].TS != posts[3].TS {
		t.Errorf("the new group edits %s, want its own message %s", updates[4].TS, posts[3].TS)
	}
	v := viewGroup(t, updates[4])
	checkLines(t, v.lines, 5, 6)
	if v.header != "2 forwarded sessions → Carla Mendes" {
		t.Errorf("header = %q", v.header)
	}
}

// A failed edit (500) fails the Send, so the queue retries it; the retry
// lists the event once, and so does a replay of an event already listed.
func TestGroupFailedUpdateRetried(t *testing.T) {
	t.Parallel()
	var fail sync.Once
	f := &fakeAPI{}
	f.answer = func(n int, w http.ResponseWriter, r *http.Request) bool {
		answered := false
		if r.URL.Path == "/chat.update" {
			fail.Do(func() { answered = status(500, "oops", nil)(n, w, r) })
		}
		return answered
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := groupSink(t, srv, filepath.Join(t.TempDir(), "slack.db"))
	ev0, ev1, ev2 := forwardedTo(0, "Carla", received), forwardedTo(1, "Carla", received.Add(time.Second)), forwardedTo(2, "Carla", received.Add(2*time.Second))
	if err := sendEvent(s, ev0); err != nil {
		t.Fatal(err)
	}
	err := sendEvent(s, ev1)
	if err == nil || !retryable(err) {
		t.Fatalf("Send with a failing update = %v, want a retryable error", err)
	}
	for _, ev := range []*event.Event{ev1, ev2, ev1, ev0} { // a retry, the next event, replays
		if err := sendEvent(s, ev); err != nil {
			t.Fatalf("Send(%s) = %v", ev.ID, err)
		}
	}
	posts, updates := f.received(t), f.updated()
	if len(posts) != 1 || len(updates) != 2 {
		t.Fatalf("%d posts, %d updates; want 1 post and 2 updates (the retry, the next event)", len(posts), len(updates))
	}
	checkLines(t, viewGroup(t, updates[0]).lines, 0, 1)
	checkLines(t, viewGroup(t, updates[1]).lines, 0, 1, 2)
}

// An edit whose answer was lost is repeated as is: the event is not in
// the group until Slack confirmed the edit, and the list is keyed by id.
func TestGroupLostAnswerRepeatsSameList(t *testing.T) {
	t.Parallel()
	var lost sync.Once
	f := &fakeAPI{}
	f.answer = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/chat.update" {
			lost.Do(func() {
				// Slack edits the message, but the answer never arrives.
				<-r.Context().Done()
			})
		}
		return false
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := groupSink(t, srv, filepath.Join(t.TempDir(), "slack.db"))
	if err := sendEvent(s, forwardedTo(0, "Carla", received)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	ev1 := forwardedTo(1, "Carla", received.Add(time.Second))
	if err := s.Send(ctx, &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev1}); err == nil || !retryable(err) {
		t.Fatalf("Send with a lost answer = %v, want a retryable error", err)
	}
	if err := sendEvent(s, ev1); err != nil {
		t.Fatal(err)
	}
	updates := f.updated()
	if len(updates) != 2 {
		t.Fatalf("%d updates, want 2", len(updates))
	}
	for _, u := range updates {
		checkLines(t, viewGroup(t, u).lines, 0, 1)
	}
}

// An event much older than the key's group (a replay) is posted on its
// own, and the group goes on.
func TestGroupOldEventPostedAlone(t *testing.T) {
	t.Parallel()
	f := &fakeAPI{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := groupSink(t, srv, filepath.Join(t.TempDir(), "slack.db"))
	for _, ev := range []*event.Event{
		forwardedTo(0, "Carla", received),
		forwardedTo(1, "Carla", received.Add(-time.Hour)), // replayed
		forwardedTo(2, "Carla", received.Add(time.Second)),
	} {
		if err := sendEvent(s, ev); err != nil {
			t.Fatalf("Send(%s) = %v", ev.ID, err)
		}
	}
	posts, updates := f.received(t), f.updated()
	if len(posts) != 2 || len(updates) != 1 || updates[0].TS != posts[0].TS {
		t.Fatalf("%d posts, %d updates; want the old event alone and the group's update of the first message", len(posts), len(updates))
	}
	checkLines(t, viewGroup(t, updates[0]).lines, 0, 2)
}

// A restart (the sink closed and reopened on the same slack.db) keeps
// folding into the same message.
func TestGroupSurvivesRestart(t *testing.T) {
	t.Parallel()
	f := &fakeAPI{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	db := filepath.Join(t.TempDir(), "slack.db")
	s := groupSink(t, srv, db)
	for i := range 2 {
		if err := sendEvent(s, forwardedTo(i, "Carla", received.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = groupSink(t, srv, db)
	if err := sendEvent(s, forwardedTo(1, "Carla", received.Add(time.Second))); err != nil { // redelivered
		t.Fatal(err)
	}
	if err := sendEvent(s, forwardedTo(2, "Carla", received.Add(2*time.Second))); err != nil {
		t.Fatal(err)
	}
	posts, updates := f.received(t), f.updated()
	if len(posts) != 1 || len(updates) != 2 {
		t.Fatalf("%d posts, %d updates; want 1, 2", len(posts), len(updates))
	}
	if updates[1].TS != posts[0].TS {
		t.Errorf("after the restart the update edits %s, want %s", updates[1].TS, posts[0].TS)
	}
	checkLines(t, viewGroup(t, updates[1]).lines, 0, 1, 2)
}

// Concurrent sends of one key (different subjects) are serialized: one
// message, each event listed once.
func TestGroupConcurrentSends(t *testing.T) {
	t.Parallel()
	f := &fakeAPI{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := groupSink(t, srv, filepath.Join(t.TempDir(), "slack.db"))
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() { errs[i] = sendEvent(s, forwardedTo(i, "Carla", received.Add(time.Duration(i)*time.Second))) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Send %d = %v", i, err)
		}
	}
	posts, updates := f.received(t), f.updated()
	if len(posts) != 1 || len(updates) != 5 {
		t.Fatalf("%d posts, %d updates; want 1, 5", len(posts), len(updates))
	}
	lines := viewGroup(t, updates[4]).lines
	seen := map[string]bool{}
	for _, l := range lines {
		c, _, _ := strings.Cut(l, " → ")
		if seen[c] {
			t.Errorf("listed twice: %q", c)
		}
		seen[c] = true
	}
	if len(lines) != 6 {
		t.Errorf("the last update lists %d events, want 6", len(lines))
	}
}

// A group larger than a message's 50 blocks lists the first events and
// counts the rest.
func TestGroupOverflow(t *testing.T) {
	t.Parallel()
	f := &fakeAPI{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := groupSink(t, srv, filepath.Join(t.TempDir(), "slack.db"))
	for i := range 60 {
		if err := sendEvent(s, forwardedTo(i, "Carla", received.Add(time.Duration(i)*100*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
	}
	updates := f.updated()
	if len(updates) != 59 {
		t.Fatalf("%d updates, want 59", len(updates))
	}
	full := viewGroup(t, updates[47]) // 49 events: all shown
	if full.blocks != 50 || len(full.lines) != 49 || full.more != "" {
		t.Errorf("49 events: %d blocks, %d lines, more %q", full.blocks, len(full.lines), full.more)
	}
	v := viewGroup(t, updates[58])
	if v.blocks != 50 || len(v.lines) != 48 || v.more != "…and 12 more" || v.header != "60 forwarded sessions → Carla" {
		t.Errorf("60 events: %d blocks, %d lines, more %q, header %q", v.blocks, len(v.lines), v.more, v.header)
	}
	checkLines(t, v.lines[:2], 0, 1)
}

// A deleted group message starts a new group rather than failing.
func TestGroupMessageGone(t *testing.T) {
	t.Parallel()
	var gone sync.Once
	f := &fakeAPI{}
	f.answer = func(n int, w http.ResponseWriter, r *http.Request) bool {
		answered := false
		if r.URL.Path == "/chat.update" {
			gone.Do(func() { answered = okFalse("message_not_found")(n, w, r) })
		}
		return answered
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := groupSink(t, srv, filepath.Join(t.TempDir(), "slack.db"))
	for i := range 3 {
		if err := sendEvent(s, forwardedTo(i, "Carla", received.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatalf("Send %d = %v", i, err)
		}
	}
	posts, updates := f.received(t), f.updated()
	if len(posts) != 2 || len(updates) != 1 || updates[0].TS != posts[1].TS {
		t.Fatalf("%d posts, %d updates; want a new group message after message_not_found, then its update", len(posts), len(updates))
	}
	checkLines(t, viewGroup(t, updates[0]).lines, 1, 2)
}

func TestGroupOptions(t *testing.T) {
	t.Parallel()
	by, err := lang.CompileExpression("data.forwardedToName")
	if err != nil {
		t.Fatal(err)
	}
	ch := lang.MustParseTemplate("#ops")
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"webhook", Options{WebhookURL: "https://hooks.slack.com/x", Group: &Group{By: by, Wait: time.Second}}, "needs a bot token"},
		{"threads", Options{Token: testToken, Channel: ch, Threads: true, Group: &Group{By: by, Wait: time.Second}}, "does not thread"},
		{"no wait", Options{Token: testToken, Channel: ch, Group: &Group{By: by}}, "wait"},
		{"no by", Options{Token: testToken, Channel: ch, Group: &Group{Wait: time.Second}}, "by"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestGroupTitleNouns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		types []string
		want  string
	}{
		{[]string{"newMessage", "newMessage"}, "2 messages · k"},
		{[]string{"message.created"}, "1 message · k"},
		{[]string{"session.forwarded.escalated", "newMessage"}, "2 events · k"},
	} {
		var items []GroupItem
		for _, typ := range tc.types {
			items = append(items, GroupItem{Type: typ})
		}
		if got := groupTitle("k", items); got != tc.want {
			t.Errorf("groupTitle(%v) = %q, want %q", tc.types, got, tc.want)
		}
	}
}
