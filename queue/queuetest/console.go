package queuetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/queue"
)

// The cases below hold what the console reads from a store: the request
// an event came in, event and delivery filters with keyset paging,
// sessions and what blocks them, per-sink figures and the audit log.

func (f *fixture) acceptEvent(ev *event.Event, sinks ...string) string {
	f.t.Helper()
	acc, err := f.s.Accept(f.ctx, queue.Incoming{Event: ev, Targets: targets(sinks...)})
	if err != nil {
		f.t.Fatal(err)
	}
	f.clock.Advance(time.Millisecond)
	return acc.EventID
}

func testRequest(t *testing.T, f *fixture) {
	ev := f.event("s")
	body := []byte("{\"eventType\": \"x\",\n \"data\": {\"summary\": \"<b>olá</b>\"}}\x00\xff")
	ev.Request = &event.Request{Body: body, Header: "Content-Type: application/json\nUser-Agent: Darwin/1.0\n"}
	id := f.acceptEvent(ev, "crm")
	plain := f.acceptEvent(f.event("s"), "crm")

	got, err := f.s.Event(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Request == nil || string(got.Request.Body) != string(body) || got.Request.Header != ev.Request.Header {
		t.Fatalf("Event's request = %+v, want the body and headers stored", got.Request)
	}
	if got, _ := f.s.Event(f.ctx, plain); got.Request != nil {
		t.Fatalf("an event stored without a request has one: %+v", got.Request)
	}
	// Sinks never see it.
	for _, d := range f.lease("crm", 10, false) {
		if d.Event.Request != nil {
			t.Fatalf("a leased event carries its request: %+v", d.Event.Request)
		}
	}

	// Data as the sender wrote it inside the body (a backend may store
	// it once): read back whole, after a restart (no cache), in lists,
	// leases and searches.
	inBody := f.event("s")
	inBody.Data = []byte(`{"summary": "Cliente pediu reembolso, encaminhado à supervisora", "score": 1.50, "tags": ["a", "b"]}`)
	inBody.Request = &event.Request{Body: append(append([]byte(`{"eventType": "x", "data": `), inBody.Data...), []byte(`, "n": 1}`)...)}
	inID := f.acceptEvent(inBody, "archive")
	f.s.Close()
	f.s = f.open(f.clock.Now)
	leased := f.lease("archive", 10, false)
	if len(leased) != 1 || string(leased[0].Event.Data) != string(inBody.Data) {
		t.Fatalf("leased after a restart: %+v, want data %s", leased, inBody.Data)
	}
	got, err = f.s.Event(f.ctx, inID)
	if err != nil || string(got.Request.Body) != string(inBody.Request.Body) || !strings.Contains(string(got.JSON), `"score":1.50`) {
		t.Fatalf("Event = %s, %+v, %v", got.JSON, got.Request, err)
	}
	if evs, err := f.s.Events(f.ctx, queue.EventFilter{Text: "supervisora"}); err != nil || len(evs) != 1 || evs[0].ID != inID {
		t.Fatalf("search in data stored in the body = %+v, %v", evs, err)
	}
}

func testEventFilters(t *testing.T, f *fixture) {
	mk := func(source, typ, subject, data string) string {
		ev := f.event(subject)
		ev.Source, ev.EventType, ev.Data = source, typ, []byte(data)
		return f.acceptEvent(ev, "crm")
	}
	start := f.clock.Now()
	a := mk("darwin", "session.forwarded.escalated", "S1", `{"conversationTitle": "Mariana Costa", "summary": "Pediu REEMBOLSO do sinal"}`)
	b := mk("darwin", "session.closed", "S1", `{"summary": "100% resolvido_ok"}`)
	c := mk("darwin", "session", "S2", `{"title": "Ticket"}`)
	d := mk("chat", "newMessage", "", `[1, 2]`)
	f.clock.Advance(time.Hour)
	e := mk("darwin", "sessionx.opened", "S2", `null`)

	// b's delivery is dead; the others pending.
	for _, dl := range f.lease("crm", 10, false) {
		if dl.EventID == b {
			f.complete(&dl, dead)
		}
	}
	for _, tc := range []struct {
		name string
		f    queue.EventFilter
		want []string
	}{
		{"all", queue.EventFilter{}, []string{e, d, c, b, a}},
		{"exact type", queue.EventFilter{EventType: "session.closed"}, []string{b}},
		{"prefix pattern", queue.EventFilter{EventType: "session.*"}, []string{b, a}},
		{"star", queue.EventFilter{EventType: "*"}, []string{e, d, c, b, a}},
		{"source", queue.EventFilter{Source: "chat"}, []string{d}},
		{"subject", queue.EventFilter{Subject: "S2"}, []string{e, c}},
		{"state", queue.EventFilter{States: []string{queue.StateDead}}, []string{b}},
		{"states", queue.EventFilter{States: []string{queue.StateDead, queue.StateDelivered}}, []string{b}},
		{"since", queue.EventFilter{Since: start.Add(time.Hour)}, []string{e}},
		{"until", queue.EventFilter{Until: start.Add(time.Millisecond)}, []string{a}},
		{"text in the summary, any case", queue.EventFilter{Text: "reembolso"}, []string{a}},
		{"text in the title", queue.EventFilter{Text: "mariana"}, []string{a}},
		{"text in data.title", queue.EventFilter{Text: "ticket"}, []string{c}},
		{"text with % and _ is literal", queue.EventFilter{Text: "100% resolvido_"}, []string{b}},
		{"a lone % matches no more", queue.EventFilter{Text: "%"}, []string{b}},
		{"text not in the searched fields", queue.EventFilter{Text: "session"}, nil},
		{"together", queue.EventFilter{Source: "darwin", EventType: "session.*", Subject: "S1", Text: "resolvido"}, []string{b}},
	} {
		got, err := f.s.Events(f.ctx, tc.f)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var ids []string
		for _, ev := range got {
			ids = append(ids, ev.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("%s: Events = %v, want %v", tc.name, ids, tc.want)
		}
	}
	if _, err := f.s.Events(f.ctx, queue.EventFilter{States: []string{"gone"}}); err == nil {
		t.Error("Events with an unknown state")
	}
	if _, err := f.s.Events(f.ctx, queue.EventFilter{After: "not a cursor"}); err == nil {
		t.Error("Events after a cursor it never gave")
	}
}

// testEventPaging: pages of Events, each after the last one's cursor,
// go through every event once, newest first, even among events received
// in the same millisecond.
func testEventPaging(t *testing.T, f *fixture) {
	var want []string
	for i := range 7 {
		ev := f.event(fmt.Sprint("s", i%2))
		acc, err := f.s.Accept(f.ctx, queue.Incoming{Event: ev, Targets: targets("crm")})
		if err != nil {
			t.Fatal(err)
		}
		want = append([]string{acc.EventID}, want...)
		if i%3 == 2 { // some share a millisecond
			f.clock.Advance(time.Millisecond)
		}
	}
	var got []string
	after := ""
	for range 10 {
		page, err := f.s.Events(f.ctx, queue.EventFilter{Limit: 3, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page {
			got = append(got, ev.ID)
		}
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].Cursor
		if after == "" {
			t.Fatal("an event listed without a cursor")
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged = %v, want %v", got, want)
	}
	// A filter pages the same way.
	page, err := f.s.Events(f.ctx, queue.EventFilter{Subject: "s0", Limit: 2})
	if err != nil || len(page) != 2 {
		t.Fatalf("first page of s0 = %v, %v", page, err)
	}
	rest, err := f.s.Events(f.ctx, queue.EventFilter{Subject: "s0", After: page[1].Cursor})
	if err != nil || len(rest) != 2 || rest[0].Subject != "s0" {
		t.Fatalf("rest of s0 = %+v, %v; want the 2 older", rest, err)
	}
}

func testDeliveryFilters(t *testing.T, f *fixture) {
	var ids []string
	for i := range 4 {
		acc := f.accept(fmt.Sprint("S", i%2), "crm")
		ids = append(ids, acc.Deliveries[0])
	}
	ds := f.lease("crm", 10, false)
	f.complete(&ds[0], queue.Outcome{State: queue.StateDead, Error: "HTTP 400: Bad Request: {\"error\":\"missing_field\"}", Status: 400})
	f.complete(&ds[1], queue.Outcome{State: queue.StateFailed, NextAt: f.clock.Now().Add(time.Hour), Error: "post https://crm: connection refused"})
	f.complete(&ds[2], queue.Outcome{State: queue.StateDead, Error: "HTTP 404: 100%_gone", Status: 404})
	for _, tc := range []struct {
		name string
		f    queue.Filter
		want []string
	}{
		{"ids", queue.Filter{IDs: []string{ids[0], ids[3]}}, []string{ids[0], ids[3]}},
		{"no ids named: none", queue.Filter{IDs: []string{}}, nil},
		{"subject", queue.Filter{Subject: "S1"}, []string{ids[1], ids[3]}},
		{"status", queue.Filter{Status: 400}, []string{ids[0]}},
		{"error, any case", queue.Filter{Error: "MISSING_FIELD"}, []string{ids[0]}},
		{"error with % and _ is literal", queue.Filter{Error: "100%_"}, []string{ids[2]}},
		{"error and state", queue.Filter{Error: "refused", States: []string{queue.StateFailed}}, []string{ids[1]}},
	} {
		got, err := f.s.List(f.ctx, tc.f)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var gotIDs []string
		for _, d := range got {
			gotIDs = append(gotIDs, d.ID)
		}
		slices.Sort(gotIDs)
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if !slices.Equal(gotIDs, want) {
			t.Errorf("%s: List = %v, want %v", tc.name, gotIDs, want)
		}
	}
	// Paging goes through all, most recently changed first, once each.
	all, _ := f.s.List(f.ctx, queue.Filter{})
	var paged []string
	after := ""
	for {
		page, err := f.s.List(f.ctx, queue.Filter{Limit: 3, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page {
			paged = append(paged, d.ID)
		}
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].Cursor
	}
	var want []string
	for _, d := range all {
		want = append(want, d.ID)
	}
	if !slices.Equal(paged, want) || len(paged) != 4 {
		t.Fatalf("paged = %v, want %v", paged, want)
	}
	// Replay and purge by ids touch only those.
	if n, err := f.s.Replay(f.ctx, queue.Filter{IDs: []string{ids[0]}}); err != nil || n != 1 {
		t.Fatalf("replay by ids = %d, %v", n, err)
	}
	if n, err := f.s.Purge(f.ctx, queue.Filter{IDs: []string{ids[2]}, States: []string{queue.StateDead}}, false); err != nil || n != 1 {
		t.Fatalf("purge by ids = %d, %v", n, err)
	}
	if n, err := f.s.Replay(f.ctx, queue.Filter{IDs: []string{}}); err != nil || n != 0 {
		t.Fatalf("replay of no ids = %d, %v; want nothing replayed", n, err)
	}
	left, _ := f.s.List(f.ctx, queue.Filter{})
	if len(left) != 3 || f.delivery(ids[0]).State != queue.StatePending || f.s.Waiting("crm") != 3 {
		t.Fatalf("after replay and purge by ids: %+v, waiting %d", left, f.s.Waiting("crm"))
	}
}

func testRetryNowAndGiveUp(t *testing.T, f *fixture) {
	a := f.accept("S", "crm").Deliveries[0]
	b := f.accept("S", "crm").Deliveries[0]
	c := f.accept("T", "crm").Deliveries[0]
	ds := f.lease("crm", 10, false)
	for i := range ds {
		if ds[i].ID != c {
			f.complete(&ds[i], f.failed(time.Hour))
		}
	}
	for _, fn := range []func(queue.Filter) (int64, error){
		func(q queue.Filter) (int64, error) { return f.s.RetryNow(f.ctx, q) },
		func(q queue.Filter) (int64, error) { return f.s.GiveUp(f.ctx, q) },
	} {
		if _, err := fn(queue.Filter{}); !errors.Is(err, queue.ErrNoFilter) {
			t.Fatalf("without a filter: %v, want ErrNoFilter", err)
		}
	}
	if again := f.lease("crm", 10, false); len(again) != 0 {
		t.Fatalf("leased before due: %+v", again)
	}
	n, err := f.s.RetryNow(f.ctx, queue.Filter{ID: a})
	if err != nil || n != 1 {
		t.Fatalf("RetryNow = %d, %v", n, err)
	}
	got := f.lease("crm", 10, false)
	if len(got) != 1 || got[0].ID != a || got[0].Attempt != 2 || got[0].Replays != 0 {
		t.Fatalf("after RetryNow: %+v, want %s due now, its attempt count kept", got, a)
	}
	// Giving up: the waiting one dies, the one in flight (a, leased) and
	// the one in flight since the start (c) are left to their attempts.
	n, err = f.s.GiveUp(f.ctx, queue.Filter{Sink: "crm"})
	if err != nil || n != 1 {
		t.Fatalf("GiveUp = %d, %v; want 1 (b)", n, err)
	}
	if info := f.delivery(b); info.State != queue.StateDead || info.LastError != "HTTP 503" {
		t.Fatalf("given up: %+v, want dead with its last error", info)
	}
	if w := f.s.Waiting("crm"); w != 2 {
		t.Fatalf("Waiting = %d, want 2 (a and c, in flight)", w)
	}
	if n, _ := f.s.RetryNow(f.ctx, queue.Filter{ID: b}); n != 0 {
		t.Fatalf("RetryNow of a dead delivery = %d, want 0: replay it instead", n)
	}
}

func testSessionAndBlocked(t *testing.T, f *fixture) {
	s1 := f.accept("S", "slack", "crm")
	s2 := f.accept("S", "slack")
	s3 := f.accept("S", "slack", "crm")
	other := f.accept("T", "slack")
	f.accept("", "slack")

	got, err := f.s.Session(f.ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, d := range got {
		order = append(order, d.Sink+":"+d.EventID)
	}
	want := []string{"slack:" + s1.EventID, "crm:" + s1.EventID, "slack:" + s2.EventID, "slack:" + s3.EventID, "crm:" + s3.EventID}
	if !slices.Equal(order, want) {
		t.Fatalf("Session = %v, want every sink's, in the order accepted: %v", order, want)
	}
	if got, _ := f.s.Session(f.ctx, ""); len(got) != 0 {
		t.Fatalf("the session of no subject: %+v", got)
	}
	// Nothing failed: nothing blocked.
	if b, err := f.s.Blocked(f.ctx, "slack", 0); err != nil || len(b) != 0 {
		t.Fatalf("Blocked before any failure = %+v, %v", b, err)
	}
	for _, d := range f.lease("slack", 10, true) {
		o := delivered
		if d.EventID == s1.EventID || d.EventID == other.EventID {
			o = f.failed(time.Hour)
		}
		f.complete(&d, o)
	}
	f.clock.Advance(time.Millisecond)
	blocked, err := f.s.Blocked(f.ctx, "slack", 0)
	if err != nil || len(blocked) != 2 {
		t.Fatalf("Blocked = %+v, %v; want S and T", blocked, err)
	}
	if b := blocked[0]; b.Subject != "S" || b.Sink != "slack" || b.Head.ID != s1.Deliveries[0] || b.Behind != 2 ||
		b.Head.State != queue.StateFailed || !b.Head.NextAt.After(f.clock.Now()) {
		t.Fatalf("Blocked[0] = %+v, want S held by %s with 2 behind", b, s1.Deliveries[0])
	}
	if b := blocked[1]; b.Subject != "T" || b.Behind != 0 {
		t.Fatalf("Blocked[1] = %+v", b)
	}
	if b, _ := f.s.Blocked(f.ctx, "slack", 1); len(b) != 1 || b[0].Subject != "S" {
		t.Fatalf("Blocked with a limit = %+v, want the longest held", b)
	}
	if b, _ := f.s.Blocked(f.ctx, "crm", 0); len(b) != 0 {
		t.Fatalf("Blocked for crm = %+v", b)
	}
}

func testSinkStats(t *testing.T, f *fixture) {
	if st, err := f.s.SinkStats(f.ctx); err != nil || len(st) != 0 {
		t.Fatalf("SinkStats of an empty store = %+v, %v", st, err)
	}
	first := f.clock.Now().Truncate(time.Millisecond)
	f.accept("a", "crm", "slack")
	f.accept("b", "crm")
	f.accept("c", "crm")
	ds := f.lease("crm", 2, false)
	f.complete(&ds[0], delivered)
	f.complete(&ds[1], dead)
	for _, d := range f.lease("slack", 1, false) {
		f.complete(&d, delivered)
	}
	st, err := f.s.SinkStats(f.ctx)
	if err != nil || len(st) != 2 {
		t.Fatalf("SinkStats = %+v, %v", st, err)
	}
	bySink := map[string]queue.SinkStats{}
	for _, s := range st {
		bySink[s.Sink] = s
	}
	crm, slack := bySink["crm"], bySink["slack"]
	if crm.States[queue.StateDelivered] != 1 || crm.States[queue.StateDead] != 1 || crm.States[queue.StatePending] != 1 ||
		!crm.OldestWaiting.Equal(first.Add(2*time.Millisecond)) {
		t.Fatalf("crm = %+v, want 1 delivered, 1 dead, 1 pending since %v", crm, first.Add(2*time.Millisecond))
	}
	if slack.States[queue.StateDelivered] != 1 || !slack.OldestWaiting.IsZero() {
		t.Fatalf("slack = %+v, want 1 delivered, none waiting", slack)
	}
}

func testAudit(t *testing.T, f *fixture) {
	if got, err := f.s.Audits(f.ctx, 10); err != nil || len(got) != 0 {
		t.Fatalf("Audits of an empty store = %+v, %v", got, err)
	}
	for i := range 3 {
		a := queue.Audit{At: f.clock.Now().Truncate(time.Millisecond), Actor: "admin", Action: "replay",
			Filter: fmt.Sprintf("sink=crm&state=dead&n=%d", i), Matched: int64(10 + i), Done: int64(9 + i)}
		if i == 2 {
			a.Action, a.Note = "purge", "stopped: "+strings.Repeat("x", 10)
		}
		if err := f.s.AddAudit(f.ctx, a); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second)
	}
	got, err := f.s.Audits(f.ctx, 2)
	if err != nil || len(got) != 2 {
		t.Fatalf("Audits = %+v, %v", got, err)
	}
	if a := got[0]; a.Action != "purge" || a.Filter != "sink=crm&state=dead&n=2" || a.Matched != 12 || a.Done != 11 ||
		a.Actor != "admin" || a.Note == "" || !a.At.Equal(f.clock.Now().Add(-time.Second).Truncate(time.Millisecond)) {
		t.Fatalf("newest audit = %+v", a)
	}
	if got[1].Action != "replay" || got[1].Matched != 11 {
		t.Fatalf("second audit = %+v", got[1])
	}
}

// testOddBytes: a NUL byte and bytes that are not UTF-8 are text like
// any other in what an operator asks (a console URL, a CLI flag): events
// stored with them are found by them, in every filter, a session and
// its blocked head; and asking with them never fails, whatever the
// backend's text can hold.
func testOddBytes(t *testing.T, f *fixture) {
	// A sender's JSON can carry a NUL (\u0000), not bytes that are not
	// UTF-8 (decoding makes them U+FFFD): those come only in queries.
	const nul, bad = "sess\x00nul", "sess\xffbad"
	ev := f.event(nul)
	ev.Data = []byte(`{"conversationTitle": "Ana\u0000Lima"}`)
	a := f.acceptEvent(ev, "crm")
	f.accept("plain", "crm")
	// a's delivery fails: its session is blocked.
	for _, d := range f.lease("crm", 10, false) {
		if d.EventID == a {
			f.complete(&d, f.failed(time.Hour))
		}
	}
	for _, tc := range []struct {
		name string
		f    queue.EventFilter
		want []string
	}{
		{"subject with a NUL", queue.EventFilter{Subject: nul}, []string{a}},
		{"subject not UTF-8, found nowhere", queue.EventFilter{Subject: bad}, nil},
		{"text with a NUL", queue.EventFilter{Text: "Ana\x00Lima"}, []string{a}},
		{"text not UTF-8, found nowhere", queue.EventFilter{Text: "\xfe\xffzz"}, nil},
		{"source and type", queue.EventFilter{Source: "\x00", EventType: "session.\xff.*"}, nil},
	} {
		got, err := f.s.Events(f.ctx, tc.f)
		var ids []string
		for _, ev := range got {
			ids = append(ids, ev.ID)
		}
		if err != nil || !slices.Equal(ids, tc.want) {
			t.Errorf("Events(%s) = %v, %v; want %v", tc.name, ids, err, tc.want)
		}
	}
	if ev, err := f.s.Event(f.ctx, a); err != nil || ev.Subject != nul {
		t.Errorf("Event(a) = subject %q, %v; want %q", ev.Subject, err, nul)
	}
	if ds, err := f.s.Session(f.ctx, nul); err != nil || len(ds) != 1 || ds[0].EventID != a {
		t.Errorf("Session(%q) = %+v, %v; want a's delivery", nul, ds, err)
	}
	if ds, err := f.s.List(f.ctx, queue.Filter{Subject: nul}); err != nil || len(ds) != 1 || ds[0].EventID != a || ds[0].Subject != nul {
		t.Errorf("List(subject %q) = %+v, %v; want a's delivery", nul, ds, err)
	}
	if bl, err := f.s.Blocked(f.ctx, "crm", 0); err != nil || len(bl) != 1 || bl[0].Subject != nul || bl[0].Head.Subject != nul {
		t.Errorf("Blocked = %+v, %v; want %q", bl, err, nul)
	}
	// Nothing stored under these: found nowhere, changed nowhere.
	for _, id := range []string{"evt\x00", "dlv\xff", bad} {
		if _, err := f.s.Event(f.ctx, id); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("Event(%q): %v, want ErrNotFound", id, err)
		}
		if _, err := f.s.Attempts(f.ctx, id); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("Attempts(%q): %v, want ErrNotFound", id, err)
		}
		if ds, err := f.s.Session(f.ctx, id); err != nil || len(ds) != 0 {
			t.Errorf("Session(%q) = %v, %v", id, ds, err)
		}
		if bl, err := f.s.Blocked(f.ctx, id, 1); err != nil || len(bl) != 0 {
			t.Errorf("Blocked(%q) = %v, %v", id, bl, err)
		}
		for _, fl := range []queue.Filter{{ID: id}, {IDs: []string{id}}, {EventID: id}, {Sink: id}, {Sink: "crm", Error: id}} {
			if ds, err := f.s.List(f.ctx, fl); err != nil || len(ds) != 0 {
				t.Errorf("List(%+v) = %v, %v", fl, ds, err)
			}
			ops := map[string]func(context.Context, queue.Filter) (int64, error){"Replay": f.s.Replay, "RetryNow": f.s.RetryNow, "GiveUp": f.s.GiveUp}
			if fl.EventID == "" { // purge names a sink or deliveries
				ops["Purge"] = func(ctx context.Context, fl queue.Filter) (int64, error) { return f.s.Purge(ctx, fl, false) }
			}
			for name, op := range ops {
				if n, err := op(f.ctx, fl); err != nil || n != 0 {
					t.Errorf("%s(%+v) = %d, %v", name, fl, n, err)
				}
			}
		}
	}
}

// testTextCase: text searches (an event's title and summary, a
// delivery's last error) match letters A-Z in any case and every other
// character as written, the same on every backend whatever the
// database's locale (PostgreSQL's ILIKE folds "Ã" under C.UTF-8 and
// en_US, not under C; SQLite's LIKE folds A-Z only).
func testTextCase(t *testing.T, f *fixture) {
	mk := func(data string) string {
		ev := f.event("s")
		ev.Data = []byte(data)
		return f.acceptEvent(ev, "crm")
	}
	a := mk(`{"conversationTitle": "JOÃO PEREIRA", "summary": "Pediu ESTORNO em São Paulo; ΣΊΣΥΦΟΣ"}`)
	b := mk(`{"summary": "1*2?3[4]5\\6.7(8)^$|+{9}'0\"; ação"}`)
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"jOÃO pereira", []string{a}},
		{"são paulo", []string{a}},
		{"ΣΊΣΥΦΟΣ", []string{a}},
		{"joão", nil}, // ã is not Ã: letters beyond A-Z as written
		{"SÃO", nil},
		{"σίσυφος", nil},
		{"joao", nil},
		{"AçãO", []string{b}},
		{"1*2?3[4]5\\6.7(8)^$|+{9}'0\"", []string{b}},
		{"*", []string{b}},
		{"?", []string{b}},
		{"[4]", []string{b}},
		{"[", []string{b}},
		{"3[4", []string{b}},
		{".", []string{b}},
		{"1.2", nil},
		{"2?", []string{b}},
		{"2.", nil},
		{"(8)", []string{b}},
		{"^", []string{b}},
		{"$|", []string{b}},
		{"{9}", []string{b}},
		{"\\", []string{b}},
		{"5\\6", []string{b}},
		{"'0\"", []string{b}},
	} {
		got, err := f.s.Events(f.ctx, queue.EventFilter{Text: tc.text})
		var ids []string
		for _, ev := range got {
			ids = append(ids, ev.ID)
		}
		if err != nil || !slices.Equal(ids, tc.want) {
			t.Errorf("Events(text %q) = %v, %v; want %v", tc.text, ids, err, tc.want)
		}
	}
	// A delivery's last error: an excerpt of what the sink answered.
	ds := f.lease("crm", 10, false)
	for i := range ds {
		msg := "HTTP 422: CAMPO OBRIGATÓRIO: contatoId"
		if ds[i].EventID == b {
			msg = "HTTP 400: [campo] inválido*"
		}
		f.complete(&ds[i], queue.Outcome{State: queue.StateDead, Error: msg, Status: 400})
	}
	for _, tc := range []struct {
		text string
		want string
	}{
		{"campo OBRIGATÓRIO", a},
		{"campo obrigatório", ""},
		{"INVáLIDO*", b},
		{"[CAMPO]", b},
	} {
		got, err := f.s.List(f.ctx, queue.Filter{Sink: "crm", Error: tc.text})
		var ids []string
		for _, d := range got {
			ids = append(ids, d.EventID)
		}
		want := []string{tc.want}
		if tc.want == "" {
			want = nil
		}
		if err != nil || !slices.Equal(ids, want) {
			t.Errorf("List(error %q) = events %v, %v; want %v", tc.text, ids, err, want)
		}
	}
}
