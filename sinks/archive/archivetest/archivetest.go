// Package archivetest is the contract of the archive sinks (sqlite,
// postgres): one suite, run by each backend's tests, feeding both the
// same events and expecting the same answers, read back through the
// backend's archive.Reader (exports and searches) as `switchyard
// archive` reads them.
package archivetest

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/receiver/darwin"
	"github.com/switchyard/switchyard/sinks"
	"github.com/switchyard/switchyard/sinks/archive"
)

// Sink is an archive sink as the suite drives it.
type Sink interface {
	sinks.Sink
	sinks.Opener
	Prune(ctx context.Context) (events, sessions int64, err error)
}

// Options configure a sink under test.
type Options struct {
	Columns   map[string]*lang.Expression
	Providers map[string]string
	Retention time.Duration
	Now       func() time.Time
}

// Backend opens archives of one kind.
type Backend struct {
	// New returns the name of a fresh, empty archive (a file path, a
	// database's DSN).
	New func(t *testing.T) string
	// Open returns a sink on archive name, not opened; the suite closes
	// it. Several sinks may be open on one archive at once (replicas).
	Open func(t *testing.T, name string, o Options) Sink
	// Reader opens archive name for reading; the suite closes it.
	Reader func(t *testing.T, name string) archive.Reader
	// Replicas is true when several gateways may write one archive at
	// once (postgres); the suite then writes with two sinks.
	Replicas bool
}

// Run runs the suite.
func Run(t *testing.T, b Backend) {
	t.Run("EventRows", func(t *testing.T) { t.Parallel(); testEventRows(t, b) })
	t.Run("RetryAndReplay", func(t *testing.T) { t.Parallel(); testRetryAndReplay(t, b) })
	t.Run("SessionsInAnyOrder", func(t *testing.T) { t.Parallel(); testSessionsInAnyOrder(t, b) })
	t.Run("SessionsConcurrently", func(t *testing.T) { t.Parallel(); testSessionsConcurrently(t, b) })
	t.Run("Columns", func(t *testing.T) { t.Parallel(); testColumns(t, b) })
	t.Run("Search", func(t *testing.T) { t.Parallel(); testSearch(t, b) })
	t.Run("Export", func(t *testing.T) { t.Parallel(); testExport(t, b) })
	t.Run("Conversations", func(t *testing.T) { t.Parallel(); testConversations(t, b) })
	t.Run("Retention", func(t *testing.T) { t.Parallel(); testRetention(t, b) })
}

// receivedAt is deliberately not in UTC and has sub-millisecond digits:
// archives keep UTC with milliseconds, truncated.
var receivedAt = time.Date(2026, 11, 21, 11, 32, 9, 987_654_321, time.FixedZone("BRT", -3*3600))

const receivedAtText = "2026-11-21T14:32:09.987Z"

func fixtureDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "darwin")
}

// load reads a Darwin fixture as the receiver would, with id.
func load(t testing.TB, name, id string) *event.Event {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(fixtureDir(), name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := darwin.Normalize(body, receivedAt)
	if err != nil {
		t.Fatalf("Normalize(%s): %v", name, err)
	}
	ev.ID = id
	ev.Source = "darwin-prod"
	return ev
}

func delivery(ev *event.Event, attempt int) *sinks.Delivery {
	return &sinks.Delivery{ID: "dlv-" + ev.ID, Attempt: attempt, Event: ev}
}

func open(t *testing.T, b Backend, name string, o Options) Sink {
	t.Helper()
	s := b.Open(t, name, o)
	if err := s.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func send(t *testing.T, s Sink, ev *event.Event) {
	t.Helper()
	if err := s.Send(context.Background(), delivery(ev, 1)); err != nil {
		t.Fatalf("Send(%s): %v", ev.ID, err)
	}
}

func reader(t *testing.T, b Backend, name string) archive.Reader {
	t.Helper()
	r := b.Reader(t, name)
	t.Cleanup(func() { r.Close() })
	return r
}

// rows exports a table as JSONL and decodes it: one map per row, in
// export order, numbers as float64, JSON columns as decoded JSON.
func rows(t *testing.T, r archive.Reader, table string, o archive.ExportOptions) []map[string]any {
	t.Helper()
	o.Table, o.Format = table, "jsonl"
	var buf bytes.Buffer
	n, err := r.Export(context.Background(), &buf, o)
	if err != nil {
		t.Fatalf("Export(%s): %v", table, err)
	}
	var out []map[string]any
	for line := range strings.Lines(buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		out = append(out, m)
	}
	if len(out) != n {
		t.Fatalf("Export(%s) said %d rows, wrote %d", table, n, len(out))
	}
	return out
}

func bySession(t *testing.T, rs []map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, r := range rs {
		out[r["session_id"].(string)] = r
	}
	return out
}

func diffRow(got, want map[string]any) string {
	var b strings.Builder
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if g, ok := got[k]; !ok || !reflect.DeepEqual(g, want[k]) {
			fmt.Fprintf(&b, "\n  %s = %#v, want %#v", k, got[k], want[k])
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "\n  unexpected column %s = %#v", k, g)
		}
	}
	return b.String()
}

func jsonValue(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	return v
}

func testEventRows(t *testing.T, b Backend) {
	name := b.New(t)
	s := open(t, b, name, Options{})
	esc := load(t, "session_forwarded_escalated", "evt_escalated")
	fn := load(t, "function_call", "evt_function")
	nodata := &event.Event{ID: "evt_nodata", Source: "darwin-prod", EventType: "session.opened", Timestamp: receivedAt, ReceivedAt: receivedAt, ExternalID: "ext-1"}
	for _, ev := range []*event.Event{esc, fn, nodata} {
		send(t, s, ev)
	}
	got := rows(t, reader(t, b, name), "events", archive.ExportOptions{})
	want := []map[string]any{
		{"id": "evt_nodata", "source": "darwin-prod", "event_type": "session.opened", "subject": "", "agent_id": "", "agent_name": "",
			"timestamp": "2026-11-21T14:32:09.987Z", "received_at": receivedAtText, "data": map[string]any{}, "external_id": "ext-1"},
		{"id": "evt_function", "source": "darwin-prod", "event_type": "function.call.agendarVisita",
			"subject": "6651a0e7c4b2f81d9a3e5c11", "agent_id": "6650f1c2a9e4b3d2c1f0e9a8", "agent_name": "Sofia - Atendimento Imobiliária Horizonte",
			"timestamp": "2026-11-21T14:25:33.045Z", "received_at": receivedAtText, "data": jsonValue(string(fn.Data)), "external_id": fn.ExternalID},
		{"id": "evt_escalated", "source": "darwin-prod", "event_type": "session.forwarded.escalated",
			"subject": "6651a0e7c4b2f81d9a3e5c11", "agent_id": "6650f1c2a9e4b3d2c1f0e9a8", "agent_name": "Sofia - Atendimento Imobiliária Horizonte",
			"timestamp": "2026-11-21T14:32:08.512Z", "received_at": receivedAtText, "data": jsonValue(string(esc.Data)), "external_id": esc.ExternalID},
	}
	// Ordered by timestamp: the function call, the escalation, then the
	// event without data (received later than both happened).
	want[0], want[1], want[2] = want[1], want[2], want[0]
	if len(got) != len(want) {
		t.Fatalf("%d events rows, want %d", len(got), len(want))
	}
	for i := range want {
		if d := diffRow(got[i], want[i]); d != "" {
			t.Errorf("events row %d:%s", i, d)
		}
	}
}

func testRetryAndReplay(t *testing.T, b Backend) {
	name := b.New(t)
	s := open(t, b, name, Options{})
	ev := load(t, "session_analyzed", "evt_retry")
	send(t, s, ev)
	send(t, s, ev) // a retry
	// A replay of the same event id with other content leaves the rows
	// as they were, after a restart too.
	s.Close()
	s = open(t, b, name, Options{})
	replay := *ev
	replay.Data = json.RawMessage(`{"replayed":true,"summary":"outro"}`)
	replay.EventType = "session.closed"
	send(t, s, &replay)
	r := reader(t, b, name)
	evs := rows(t, r, "events", archive.ExportOptions{})
	if len(evs) != 1 || evs[0]["event_type"] != "session.analyzed" {
		t.Errorf("events = %v, want the first row only", evs)
	}
	ss := rows(t, r, "sessions", archive.ExportOptions{})
	if len(ss) != 1 || ss[0]["event_count"] != 1.0 || ss[0]["closed_at"] != nil {
		t.Errorf("sessions = %v, want one with event_count 1, not closed", ss)
	}
}

// sessionStory is one session's events, in the order they happened. The
// closed event carries an older forwarding (qualified, 21 Nov) than the
// recovered one (23 Nov): it must not win.
var sessionStory = []string{
	"session_opened",
	"session_stage_transitioned",
	"session_forwarded_escalated", // carries a first summary
	"session_analyzed",            // the summary and smart fields that must win
	"session_forwarded_recovered",
	"session_closed",
}

var storyColumns = map[string]string{
	"lead_score": "data.smartFields.leadScore",
	"intent":     "data.smartFields.intent",
	"escalated":  `data.forwardType == nil ? nil : data.forwardType == "escalated"`,
}

// wantSession is sessionStory's exported row, whatever the order of
// arrival.
var wantSession = map[string]any{
	"session_id":             "",
	"source":                 "darwin-prod",
	"agent_id":               "6650f1c2a9e4b3d2c1f0e9a8",
	"agent_name":             "Sofia - Atendimento Imobiliária Horizonte",
	"conversation_id":        "6651a0e7c4b2f81d9a3e5c10",
	"channel_id":             "6650f20ba9e4b3d2c1f0e9b0",
	"channel_name":           "WhatsApp Vendas",
	"title":                  "Mariana Costa (+55 11 98765-4321)",
	"created_at":             "2026-11-21T13:58:02.114Z",
	"opened_at":              "2026-11-21T13:58:02.120Z",
	"closed_at":              "2026-11-28T14:31:48.000Z",
	"forwarded_at":           "2026-11-23T10:05:41.102Z",
	"forward_type":           "recovered",
	"forwarded_to_id":        "6650f3d1a9e4b3d2c1f0e9c4",
	"forwarded_to_name":      "Rafael Almeida",
	"stage":                  "Qualificado",
	"previous_stage":         "Lead",
	"stage_at":               "2026-11-21T14:20:00.300Z",
	"summary":                "Mariana procura apartamento de 2 quartos na Zona Sul de São Paulo, até R$ 650 mil, com vaga de garagem. Pediu reembolso do sinal pago em duplicidade; sessão transferida para a supervisora.",
	"summarized_at":          "2026-11-21T14:40:15.700Z",
	"smart_fields":           map[string]any{"intent": "compra", "leadScore": 82.0, "city": "São Paulo", "budget": 650000.0, "bedrooms": 2.0, "wantsRefund": true},
	"last_human_activity_at": "2026-11-21T14:31:47.903Z",
	"first_event_at":         "2026-11-21T13:58:02.120Z",
	"last_event_at":          "2026-11-28T14:31:48.000Z",
	"event_count":            6.0,
	"lead_score":             82.0,
	"intent":                 "compra",
	"escalated":              0.0, // the newest forwarding is a recovery; booleans export as 1 and 0
}

func storyEvents(t testing.TB, sid string) []*event.Event {
	t.Helper()
	evs := make([]*event.Event, len(sessionStory))
	for i, name := range sessionStory {
		ev := load(t, name, fmt.Sprintf("evt_%s_%d", sid, i))
		ev.Subject = sid
		evs[i] = ev
	}
	return evs
}

func columnExprs(t testing.TB, m map[string]string) map[string]*lang.Expression {
	t.Helper()
	out := map[string]*lang.Expression{}
	for name, src := range m {
		e, err := lang.CompileExpression(src)
		if err != nil {
			t.Fatalf("column %s: %v", name, err)
		}
		out[name] = e
	}
	return out
}

func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			out = append(out, append(append(append([]int{}, p[:i]...), n-1), p[i:]...))
		}
	}
	return out
}

// Orders of the story's events (every fifth of the 720), each session
// sent concurrently with the others so that batches mix them, one event
// delivered twice; with replicas, events alternate between two sinks
// and the duplicate goes to the other one. Every order gives the same
// row, and the search index follows the summary that won.
func testSessionsInAnyOrder(t *testing.T, b Backend) {
	name := b.New(t)
	o := Options{Columns: columnExprs(t, storyColumns)}
	writers := []Sink{open(t, b, name, o)}
	if b.Replicas {
		writers = append(writers, open(t, b, name, o))
	}
	var perms [][]int
	for i, p := range permutations(len(sessionStory)) {
		if i%5 == 0 {
			perms = append(perms, p)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(perms))
	for n, perm := range perms {
		sid := fmt.Sprintf("sess%03d", n)
		evs := storyEvents(t, sid)
		wg.Go(func() {
			for k, i := range perm {
				if err := writers[(n+k)%len(writers)].Send(context.Background(), delivery(evs[i], 1)); err != nil {
					errs <- fmt.Errorf("%s: %w", sid, err)
					return
				}
			}
			dup := perm[n%len(perm)]
			if err := writers[(n+1)%len(writers)].Send(context.Background(), delivery(evs[dup], 2)); err != nil {
				errs <- fmt.Errorf("%s: resend: %w", sid, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r := reader(t, b, name)
	got := bySession(t, rows(t, r, "sessions", archive.ExportOptions{}))
	if len(got) != len(perms) {
		t.Fatalf("%d sessions rows, want %d", len(got), len(perms))
	}
	for n, perm := range perms {
		sid := fmt.Sprintf("sess%03d", n)
		want := maps(wantSession)
		want["session_id"] = sid
		if d := diffRow(got[sid], want); d != "" {
			t.Fatalf("order %v (%s):%s", perm, sid, d)
		}
	}
	if n := len(rows(t, r, "events", archive.ExportOptions{})); n != len(perms)*len(sessionStory) {
		t.Errorf("events rows = %d, want %d", n, len(perms)*len(sessionStory))
	}
	for q, want := range map[string]int{"reembolso": len(perms), "reclama": 0, "mariana": len(perms)} {
		hits, err := r.Search(context.Background(), q, 1000)
		if err != nil || len(hits) != want {
			t.Errorf("search %q: %d sessions, %v; want %d", q, len(hits), err, want)
		}
	}
}

// The events of many sessions delivered all at once (an unordered sink
// with concurrent deliveries), with replicas shared by two sinks, then
// all again: each row is still the one any order gives.
func testSessionsConcurrently(t *testing.T, b Backend) {
	name := b.New(t)
	o := Options{Columns: columnExprs(t, storyColumns)}
	writers := []Sink{open(t, b, name, o)}
	if b.Replicas {
		writers = append(writers, open(t, b, name, o))
	}
	const sessions = 40
	var all [][]*event.Event
	for n := range sessions {
		all = append(all, storyEvents(t, fmt.Sprintf("conc%02d", n)))
	}
	// The sessions exist (their opening), then their other events come
	// at once, each by one sink, the sinks sharing each session's
	// events; then all again (retries), by the other sink.
	sendAll := func(pick func(evs []*event.Event) []*event.Event, round int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, sessions*len(sessionStory))
		for _, evs := range all {
			for i, ev := range pick(evs) {
				w := writers[(i+round)%len(writers)]
				wg.Go(func() {
					if err := w.Send(context.Background(), delivery(ev, round+1)); err != nil {
						errs <- fmt.Errorf("%s: %w", ev.ID, err)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	sendAll(func(evs []*event.Event) []*event.Event { return evs[:1] }, 0)
	sendAll(func(evs []*event.Event) []*event.Event { return evs[1:] }, 0)
	sendAll(func(evs []*event.Event) []*event.Event { return evs }, 1)
	got := bySession(t, rows(t, reader(t, b, name), "sessions", archive.ExportOptions{}))
	if len(got) != sessions {
		t.Fatalf("%d sessions rows, want %d", len(got), sessions)
	}
	for n := range sessions {
		sid := fmt.Sprintf("conc%02d", n)
		want := maps(wantSession)
		want["session_id"] = sid
		if d := diffRow(got[sid], want); d != "" {
			t.Errorf("%s:%s", sid, d)
		}
	}
}

func maps(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Configured columns: typed values, NULL for a missing field, the
// newest event's value; a column added on reopening is filled from
// then on, one removed is kept, no longer filled.
func testColumns(t *testing.T, b Backend) {
	name := b.New(t)
	s := open(t, b, name, Options{Columns: columnExprs(t, map[string]string{
		"lead_score": "data.smartFields.leadScore", "city": "data.smartFields.city",
		"tags": `data.smartFields.leadScore == nil ? nil : ["hot", "pt"]`,
	})})
	send(t, s, load(t, "session_opened", "evt_opened"))
	send(t, s, load(t, "session_analyzed", "evt_analyzed"))
	s.Close()
	s2 := open(t, b, name, Options{Columns: columnExprs(t, map[string]string{
		"lead_score": "data.smartFields.leadScore", "wants_refund": "data.smartFields.wantsRefund",
	})})
	ev := load(t, "session_analyzed", "evt_again")
	ev.Subject = "other-session"
	send(t, s2, ev)
	r := reader(t, b, name)
	cols, err := r.Columns(context.Background(), "sessions")
	if err != nil {
		t.Fatal(err)
	}
	if tail := cols[len(cols)-4:]; !slices.Equal(tail, []string{"city", "lead_score", "tags", "wants_refund"}) {
		t.Errorf("columns end with %v, want the configured ones in the order they were added", tail)
	}
	got := bySession(t, rows(t, r, "sessions", archive.ExportOptions{}))
	first, second := got["6651a0e7c4b2f81d9a3e5c11"], got["other-session"]
	for _, c := range []struct {
		row  map[string]any
		col  string
		want any
	}{
		{first, "lead_score", 82.0},
		{first, "city", "São Paulo"},
		{first, "tags", `["hot","pt"]`}, // JSON text, as it is written
		{first, "wants_refund", nil},
		{second, "lead_score", 82.0},
		{second, "city", nil},
		{second, "wants_refund", 1.0},
	} {
		if g := c.row[c.col]; !reflect.DeepEqual(g, c.want) {
			t.Errorf("%s = %#v, want %#v", c.col, g, c.want)
		}
	}
	// Numbers filter as numbers.
	w, err := archive.CompileWhere("lead_score > 80 && lead_score < 100", cols)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rows(t, r, "sessions", archive.ExportOptions{Where: w})); n != 2 {
		t.Errorf("lead_score > 80: %d rows, want 2", n)
	}
}

// searchArchive holds three analyzed sessions: Portuguese with accents,
// English, and one that mentions neither refunds nor sessions.
func searchArchive(t *testing.T, b Backend) archive.Reader {
	t.Helper()
	name := b.New(t)
	s := open(t, b, name, Options{Columns: columnExprs(t, storyColumns)})
	for i, c := range []struct{ sid, title, summary string }{
		{"pt", "Mariana Costa (+55 11 98765-4321)", "Cliente pediu REEMBOLSO do sinal; sessão transferida para a gerência em São Paulo."},
		{"en", "John Smith", "Customer asked for a refund of the deposit; the session was escalated. Contact: john.smith@example.com"},
		{"other", "Ana Lima", "Quer agendar visita ao apartamento de três quartos, preço R$ 650.000,00."},
	} {
		ev := load(t, "session_analyzed", "evt_"+c.sid)
		ev.Subject = c.sid
		ev.Timestamp = ev.Timestamp.Add(time.Duration(i) * time.Hour)
		var data map[string]any
		json.Unmarshal(ev.Data, &data)
		data["summary"], data["conversationTitle"] = c.summary, c.title
		data["summarizedAt"] = ev.Timestamp.Format(time.RFC3339Nano)
		ev.Data, _ = json.Marshal(data)
		send(t, s, ev)
	}
	return reader(t, b, name)
}

func testSearch(t *testing.T, b Backend) {
	r := searchArchive(t, b)
	ctx := context.Background()
	for _, tc := range []struct {
		query string
		want  []string // session ids, newest first
	}{
		{"reembolso OR refund", []string{"en", "pt"}},
		{"reembolso", []string{"pt"}},
		{"sessão", []string{"pt"}},
		{"sessao", []string{"pt"}}, // without the accent
		{"SESSAO", []string{"pt"}},
		{"session", []string{"en"}},
		{"sao paulo", []string{"pt"}},
		{"São AND Paulo", []string{"pt"}},
		{"três", []string{"other"}},
		{"tres", []string{"other"}},
		{"TRÊS", []string{"other"}},
		{`"sessão transferida"`, []string{"pt"}},
		{`"transferida sessão"`, nil}, // a phrase is in order
		{`"paulo sao"`, nil},
		{"refun*", []string{"en"}},
		{"ger*", []string{"pt"}},
		{"title:mariana", []string{"pt"}},
		{"title:reembolso", nil},
		{"summary:reembolso", []string{"pt"}},
		{"summary:mariana", nil},
		{"(reembolso OR refund) NOT deposit", []string{"pt"}},
		{"refund NOT deposit", nil},
		{"4321", []string{"pt"}},            // in 98765-4321
		{"98765-4321", []string{"pt"}},      // as written
		{"example", []string{"en"}},         // inside an e-mail address
		{"650", []string{"other"}},          // in 650.000,00
		{"quartos três", []string{"other"}}, // all words, any order
		{"nada", nil},
	} {
		hits, err := r.Search(ctx, tc.query, 10)
		if err != nil {
			t.Errorf("Search(%q): %v", tc.query, err)
			continue
		}
		var got []string
		for _, h := range hits {
			got = append(got, h.SessionID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Search(%q) = %v, want %v", tc.query, got, tc.want)
		}
	}
	hits, err := r.Search(ctx, "reembolso", 10)
	if err != nil || len(hits) != 1 {
		t.Fatalf("Search(reembolso) = %v, %v", hits, err)
	}
	h := hits[0]
	if !strings.Contains(h.Snippet, "[REEMBOLSO]") || h.Channel != "WhatsApp Vendas" || h.Title != "Mariana Costa (+55 11 98765-4321)" ||
		h.ForwardType != "escalated" || h.LastEventAt != "2026-11-21T14:40:15.777Z" {
		t.Errorf("hit = %+v; want the Portuguese session with [REEMBOLSO] in its snippet", h)
	}
	if hits, _ := r.Search(ctx, "sessao", 10); len(hits) != 1 || !strings.Contains(hits[0].Snippet, "[sessão]") {
		t.Errorf("Search(sessao) = %+v; want [sessão] in the snippet", hits)
	}
	if hits, _ := r.Search(ctx, "refund OR reembolso", 1); len(hits) != 1 || hits[0].SessionID != "en" {
		t.Errorf("limit 1 = %+v, want the newest session only", hits)
	}
	for _, bad := range []string{`"unbalanced`, "(a OR b", "NOT a"} {
		if _, err := r.Search(ctx, bad, 10); err == nil {
			t.Errorf("Search(%q): no error for a malformed search", bad)
		}
	}
}

func testExport(t *testing.T, b Backend) {
	r := searchArchive(t, b)
	ctx := context.Background()
	cols, err := r.Columns(ctx, "sessions")
	if err != nil {
		t.Fatal(err)
	}
	if cols[0] != "session_id" || slices.Contains(cols, "id") || slices.Contains(cols, "_versions") || slices.Contains(cols, "search") {
		t.Errorf("sessions columns = %v: session_id first, nothing internal", cols)
	}
	evCols, err := r.Columns(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"id", "source", "event_type", "subject", "agent_id", "agent_name", "timestamp", "received_at", "data", "external_id"}; !slices.Equal(evCols, want) {
		t.Errorf("events columns = %v, want %v", evCols, want)
	}
	if _, err := r.Columns(ctx, "deliveries"); err == nil {
		t.Error("Columns(deliveries): no error")
	}
	since, _ := time.Parse(archive.TimeFormat, "2026-11-21T15:00:00.000Z")
	for _, tc := range []struct {
		name, where string
		since       time.Time
		want        []string
	}{
		{"all", "", time.Time{}, []string{"pt", "en", "other"}},
		{"since", "", since, []string{"en", "other"}},
		{"where", `title startsWith "John"`, time.Time{}, []string{"en"}},
		{"where number", `lead_score >= 80 && session_id != "pt"`, time.Time{}, []string{"en", "other"}},
		{"where boolean", `escalated == 1`, time.Time{}, []string{"pt", "en", "other"}},
		{"where time", `last_event_at > "2026-11-21T15"`, time.Time{}, []string{"en", "other"}},
		{"where and since", `session_id in ["pt", "other"]`, since, []string{"other"}},
		{"failing rows do not match", `forwarded_to_name > 3`, time.Time{}, nil},
		{"json column", `fromJSON(smart_fields).city == "São Paulo"`, time.Time{}, []string{"pt", "en", "other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := archive.ExportOptions{Since: tc.since}
			if tc.where != "" {
				w, err := archive.CompileWhere(tc.where, cols)
				if err != nil {
					t.Fatal(err)
				}
				o.Where = w
			}
			var got []string
			for _, row := range rows(t, r, "sessions", o) {
				got = append(got, row["session_id"].(string))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("exported %v, want %v", got, tc.want)
			}
		})
	}
	// CSV: a header, NULL as empty, times as text, JSON as JSON.
	var buf bytes.Buffer
	if _, err := r.Export(ctx, &buf, archive.ExportOptions{Format: "csv", Table: "sessions"}); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(records) != 4 || !slices.Equal(records[0], cols) {
		t.Fatalf("csv = %q, %v", records, err)
	}
	cell := func(row int, col string) string { return records[row][slices.Index(cols, col)] }
	var smart map[string]any
	if err := json.Unmarshal([]byte(cell(1, "smart_fields")), &smart); err != nil || smart["leadScore"] != 82.0 {
		t.Errorf("csv smart_fields = %q (%v); want its JSON", cell(1, "smart_fields"), err)
	}
	if cell(1, "summarized_at") != "2026-11-21T14:40:15.777Z" || cell(1, "stage") != "" || cell(1, "lead_score") != "82" || cell(1, "escalated") != "1" {
		t.Errorf("csv row = %q; want times as ISO text, NULL empty, numbers and booleans as numbers", records[1])
	}
	if _, err := r.Export(ctx, &buf, archive.ExportOptions{Format: "xml"}); err == nil {
		t.Error("Export(xml): no error")
	}
}

// The chat inbox's and DocsSmith Demo2's events keep a sessions row per
// conversation (their subject), with the customer or contact as its
// title, and count like a Darwin session's; another provider's events
// with a subject keep none.
func testConversations(t *testing.T, b Backend) {
	name := b.New(t)
	s := open(t, b, name, Options{Providers: map[string]string{"inbox": "chat-inbox", "docs": "docssmith", "gh": "github"},
		Columns: columnExprs(t, map[string]string{"medium": "data.conversation?.Channel?.medium"})})
	at := func(min int) time.Time { return receivedAt.Add(time.Duration(min) * time.Minute) }
	for _, ev := range []*event.Event{
		{ID: "evt_1", Source: "inbox", EventType: "newMessage", Subject: "conv-1", Timestamp: at(0),
			Data: json.RawMessage(`{"message":{"content":"Olá"},"conversation":{"id":"conv-1","customer":{"name":"Ana"},"createdAt":"2022-01-29T07:18:58.172Z","Channel":{"id":"ch1","name":"Vendas","medium":"WHATSAPP"}}}`)},
		{ID: "evt_2", Source: "inbox", EventType: "newMessage", Subject: "conv-1", Timestamp: at(5),
			Data: json.RawMessage(`{"message":{"content":"Oi?"},"conversation":{"id":"conv-1","customer":{"name":"Ana Souza"},"Channel":{"id":"ch1","name":"Vendas"}}}`)},
		{ID: "evt_3", Source: "docs", EventType: "message.created", Subject: "c9", ExternalID: "e3", Timestamp: at(1),
			Data: json.RawMessage(`{"id":"m1","conversation_id":"c9","contact":{"username":"Kevin"},"message":"hi"}`)},
		{ID: "evt_4", Source: "docs", EventType: "conversation.created", Subject: "c9", ExternalID: "e4", Timestamp: at(0),
			Data: json.RawMessage(`{"id":"c9","created_at":692233200}`)},
		{ID: "evt_5", Source: "gh", EventType: "push", Subject: "octocat/hello", Timestamp: at(0), Data: json.RawMessage(`{}`)},
	} {
		ev.ReceivedAt = ev.Timestamp
		send(t, s, ev)
	}
	r := reader(t, b, name)
	got := bySession(t, rows(t, r, "sessions", archive.ExportOptions{}))
	if len(got) != 2 || got["octocat/hello"] != nil {
		t.Fatalf("sessions rows: %v", got)
	}
	for col, want := range map[string]any{"source": "inbox", "conversation_id": "conv-1", "title": "Ana Souza", "channel_name": "Vendas",
		"channel_id": "ch1", "created_at": "2022-01-29T07:18:58.172Z", "event_count": 2.0, "medium": "WHATSAPP",
		"first_event_at": at(0).UTC().Format(archive.TimeFormat), "last_event_at": at(5).UTC().Format(archive.TimeFormat)} {
		if g := got["conv-1"][col]; g != want {
			t.Errorf("chat inbox conversation %s = %#v, want %#v", col, g, want)
		}
	}
	for col, want := range map[string]any{"source": "docs", "title": "Kevin", "created_at": "1991-12-08T23:00:00.000Z", "event_count": 2.0} {
		if g := got["c9"][col]; g != want {
			t.Errorf("DocsSmith conversation %s = %#v, want %#v", col, g, want)
		}
	}
	ext := map[string]any{}
	for _, e := range rows(t, r, "events", archive.ExportOptions{}) {
		ext[e["id"].(string)] = e["external_id"]
	}
	if ext["evt_3"] != "e3" || ext["evt_1"] != "" {
		t.Errorf("external ids = %v", ext)
	}
}

// Retention deletes events older than it and the sessions whose newest
// event is; a session with a recent event keeps its whole row, and
// leaves the search.
func testRetention(t *testing.T, b Backend) {
	name := b.New(t)
	now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC) // the story is from Nov 2026
	s := open(t, b, name, Options{Retention: 180 * 24 * time.Hour, Now: func() time.Time { return now }})
	for _, ev := range storyEvents(t, "old") {
		send(t, s, ev)
	}
	for i, ev := range storyEvents(t, "mixed") {
		if i >= 3 {
			ev.Timestamp = now.Add(-time.Duration(6-i) * 24 * time.Hour)
		}
		send(t, s, ev)
	}
	fn := load(t, "function_call", "x")
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16) // as the delivery workers would
	for i := range 1207 {          // more than a pruning batch of 500, twice
		ev := *fn
		ev.ID = fmt.Sprintf("evt_fn_%04d", i)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.Send(context.Background(), delivery(&ev, 1)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	events, sessions, err := s.Prune(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if events != 6+3+1207 || sessions != 1 {
		t.Errorf("pruned %d events, %d sessions; want %d, 1", events, sessions, 6+3+1207)
	}
	r := reader(t, b, name)
	if n := len(rows(t, r, "events", archive.ExportOptions{})); n != 3 {
		t.Errorf("events left = %d, want 3", n)
	}
	left := bySession(t, rows(t, r, "sessions", archive.ExportOptions{}))
	if _, ok := left["old"]; ok || len(left) != 1 || left["mixed"]["opened_at"] != "2026-11-21T13:58:02.120Z" {
		t.Errorf("sessions left: %v; want only mixed, whole", left)
	}
	if hits, err := r.Search(context.Background(), "reembolso", 10); err != nil || len(hits) != 1 {
		t.Errorf("search after pruning: %v, %v; want mixed only", hits, err)
	}
	if events, sessions, err := s.Prune(context.Background()); err != nil || events+sessions != 0 {
		t.Errorf("second prune: %d, %d, %v; want nothing", events, sessions, err)
	}
}
