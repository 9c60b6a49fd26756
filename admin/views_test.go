package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/queue/sqlite"
)

// testStore is a SQLite queue with events of subject s<i%3>, i from 0,
// each with deliveries to slack and crm; leadScore is i.
func testStore(t *testing.T, n int) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := time.Now().Add(-time.Hour)
	for i := range n {
		at := now.Add(time.Duration(i) * time.Millisecond)
		ev := &event.Event{ID: event.NewID("evt_", at), Source: "darwin", EventType: "session.forwarded.escalated",
			Subject: fmt.Sprintf("s%d", i%3), Timestamp: at, ReceivedAt: at, DedupKey: fmt.Sprint("k", i),
			Data: json.RawMessage(fmt.Sprintf(`{"leadScore": %d, "summary": "update %d"}`, i, i))}
		if _, err := s.Accept(context.Background(), queue.Incoming{Event: ev, Targets: []queue.Target{
			{Sink: "slack", Routes: []string{"r"}}, {Sink: "crm", Routes: []string{"r"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestTokenRole(t *testing.T) {
	t.Parallel()
	admin, viewer := config.Secret("admin-token-0123456789"), config.Secret("viewer-token-0123456789")
	for _, c := range []struct {
		got, admin, viewer, want string
	}{
		{"admin-token-0123456789", string(admin), string(viewer), RoleAdmin},
		{"viewer-token-0123456789", string(admin), string(viewer), RoleViewer},
		{"viewer-token-0123456789", string(admin), "", ""},
		{"", string(admin), "", ""},
		{"", "", "", ""},
		{"admin-token-012345678", string(admin), string(viewer), ""},
	} {
		if got := TokenRole(c.got, config.Secret(c.admin), config.Secret(c.viewer)); got != c.want {
			t.Errorf("TokenRole(%q) = %q, want %q", c.got, got, c.want)
		}
	}
}

// TestViewerTokenReadsOnly: the viewer token reads through the API and
// is refused every change, which then does not happen.
func TestViewerTokenReadsOnly(t *testing.T) {
	t.Parallel()
	s := testStore(t, 2)
	h := Handler(Options{Ops: NewOps(s, nil), Reloader: reloader{},
		Token:       func() config.Secret { return "admin-token-0123456789" },
		ViewerToken: func() config.Secret { return "viewer-token-0123456789" }})
	do := func(method, path, body string) int {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer viewer-token-0123456789")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, path := range []string{"/events", "/deliveries", "/sessions/s0", "/audit"} {
		if code := do(http.MethodGet, path, ""); code != http.StatusOK {
			t.Errorf("viewer GET %s: %d", path, code)
		}
	}
	ds, _ := s.List(context.Background(), queue.Filter{Limit: 1})
	for _, c := range []struct{ path, body string }{
		{"/replay", `{"sink": "crm", "state": "pending"}`},
		{"/purge", `{"sink": "crm", "yes": true}`},
		{"/reload", ""},
		{"/deliveries/" + ds[0].ID + "/replay", ""},
		{"/deliveries/" + ds[0].ID + "/give-up", ""},
	} {
		if code := do(http.MethodPost, c.path, c.body); code != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", c.path, code)
		}
	}
	if n := s.Waiting("crm"); n != 2 {
		t.Errorf("crm's waiting deliveries = %d after refused changes, want 2", n)
	}
}

// TestEventPageWhere: a condition on data is evaluated in the gateway,
// reading at most MaxScan events per page, and paging goes on after
// the last event read.
func TestEventPageWhere(t *testing.T) {
	t.Parallel()
	s := testStore(t, MaxScan+300)
	ops := NewOps(s, nil)
	ctx := context.Background()
	// Scores over MaxScan+250 are in the newest 49 events.
	page, err := ops.EventPage(ctx, EventQuery{Where: fmt.Sprintf("data.leadScore > %d", MaxScan+250), Limit: 20})
	if err != nil || len(page.Events) != 20 || page.Next == "" || page.Partial || page.Scanned != 20 {
		t.Fatalf("first page: %d events, next %q, partial %v, scanned %d, %v", len(page.Events), page.Next, page.Partial, page.Scanned, err)
	}
	// A rare match: the page stops at MaxScan, partial, and goes on.
	page, err = ops.EventPage(ctx, EventQuery{Where: "data.leadScore < 2", Limit: 20})
	if err != nil || len(page.Events) != 0 || !page.Partial || page.Scanned != MaxScan || page.Next == "" {
		t.Fatalf("rare: %d events, partial %v, scanned %d, next %q, %v", len(page.Events), page.Partial, page.Scanned, page.Next, err)
	}
	page, err = ops.EventPage(ctx, EventQuery{Where: "data.leadScore < 2", Limit: 20, After: page.Next})
	if err != nil || len(page.Events) != 2 || page.Partial || page.Next != "" {
		t.Fatalf("rare, continued: %d events, partial %v, next %q, %v", len(page.Events), page.Partial, page.Next, err)
	}
	if _, err := ops.EventPage(ctx, EventQuery{Where: "data.leadScore >"}); !IsInput(err) || !strings.Contains(err.Error(), "where") {
		t.Fatalf("a bad condition: %v, want an input error on where", err)
	}
	if _, err := ops.EventPage(ctx, EventQuery{Type: "session.*.x"}); !IsInput(err) {
		t.Fatalf("a bad type pattern: %v", err)
	}
	if _, err := ops.EventPage(ctx, EventQuery{Since: "yesterday"}); !IsInput(err) {
		t.Fatalf("a bad since: %v", err)
	}
	if page, err := ops.EventPage(ctx, EventQuery{Since: time.Now().Add(-time.Hour - time.Second).UTC().Format("2006-01-02T15:04:05"), Until: "59m", Limit: 1}); err != nil || len(page.Events) != 1 {
		t.Fatalf("since a time, until a duration: %+v, %v", page, err)
	}
}

// TestSessionView: a session's deliveries, per sink in order, with the
// failed head that holds an ordered sink back.
func TestSessionView(t *testing.T) {
	t.Parallel()
	s := testStore(t, 7)
	ops := NewOps(s, nil)
	ops.SetSinkInfo(func() []SinkInfo { return []SinkInfo{{Name: "slack", Ordered: true}, {Name: "crm"}} })
	ctx := context.Background()
	ds, err := s.Lease(ctx, queue.LeaseRequest{Sink: "slack", Limit: 10, For: time.Minute, Ordered: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		o := queue.Outcome{State: queue.StateDelivered}
		if d.Subject == "s0" {
			o = queue.Outcome{State: queue.StateFailed, NextAt: time.Now().Add(time.Hour), Error: "HTTP 503"}
		}
		if err := s.Complete(ctx, &d, o); err != nil {
			t.Fatal(err)
		}
	}
	sess, err := ops.Session(ctx, "s0")
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.Sinks) != 2 || sess.Sinks[0].Sink != "slack" || !sess.Sinks[0].Ordered {
		t.Fatalf("sinks = %+v", sess.Sinks)
	}
	slack := sess.Sinks[0]
	if len(slack.Deliveries) != 3 || slack.Head != 0 || !slack.Blocked || slack.Waiting != 2 || slack.Deliveries[0].State != queue.StateFailed {
		t.Fatalf("slack: head %d, blocked %v, waiting %d: %+v", slack.Head, slack.Blocked, slack.Waiting, slack.Deliveries)
	}
	head := slack.Deliveries[0].ID
	if err := ops.RetryNow(ctx, head); err != nil {
		t.Fatal(err)
	}
	if err := ops.GiveUp(ctx, head); err != nil {
		t.Fatal(err)
	}
	if err := ops.GiveUp(ctx, head); !errorsIsNotFound(err) {
		t.Fatalf("giving up a dead delivery: %v, want not found", err)
	}
	sess, _ = ops.Session(ctx, "s0")
	if slack := sess.Sinks[0]; slack.Head != 1 || slack.Blocked || slack.Deliveries[0].State != queue.StateDead {
		t.Fatalf("after giving up the head: %+v", slack)
	}
	if _, err := ops.Session(ctx, "nope"); !errorsIsNotFound(err) {
		t.Fatalf("unknown session: %v", err)
	}
	ov, err := ops.Overview(ctx)
	if err != nil || len(ov) != 2 || ov[0].Name != "slack" || ov[0].States[queue.StateDead] != 1 || ov[1].Waiting != 7 {
		t.Fatalf("overview = %+v, %v", ov, err)
	}
}

func errorsIsNotFound(err error) bool {
	return err != nil && strings.Contains(err.Error(), "not found")
}

// TestBulk: a bulk action changes the deliveries its dry run counted
// that still match, at most the bound, and is audited.
func TestBulk(t *testing.T) {
	t.Parallel()
	s := testStore(t, 30)
	ops := NewOps(s, nil)
	ctx := context.Background()
	plan, err := ops.PlanBulk(ctx, ActionPurge, DeliveryQuery{Sink: "crm"}, 25)
	if err != nil || plan.Matched != 25 || !plan.Capped {
		t.Fatalf("plan = %d matched, capped %v, %v", plan.Matched, plan.Capped, err)
	}
	// Meanwhile one of them is delivered: a purge of the waiting leaves it.
	ds, _ := s.Lease(ctx, queue.LeaseRequest{Sink: "crm", Limit: 1, For: time.Minute})
	s.Complete(ctx, &ds[0], queue.Outcome{State: queue.StateDelivered})
	var progress []int64
	done, err := ops.RunBulk(ctx, plan, RoleAdmin, "sink=crm", func(n int64) { progress = append(progress, n) })
	if err != nil || done < 24 || done > 25 || len(progress) == 0 || progress[len(progress)-1] != done {
		t.Fatalf("purged %d (progress %v), %v", done, progress, err)
	}
	if left := s.Waiting("crm"); left != int64(30-1-done) {
		t.Fatalf("crm waiting %d after purging %d of 30 (one delivered)", left, done)
	}
	audits, err := ops.Audits(ctx, 10)
	if err != nil || len(audits) != 1 || audits[0].Actor != RoleAdmin || audits[0].Matched != 25 || audits[0].Done != done ||
		audits[0].Filter != "sink=crm" || !strings.Contains(audits[0].Note, "bound") {
		t.Fatalf("audit = %+v, %v", audits, err)
	}
	if _, err := ops.PlanBulk(ctx, "delete", DeliveryQuery{}, 0); !IsInput(err) {
		t.Fatalf("an unknown action: %v", err)
	}
}
