package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
)

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

// wantSession is sessionStory's row, whatever the order of arrival.
var wantSession = map[string]any{
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
	"smart_fields":           `{"intent":"compra","leadScore":82,"city":"São Paulo","budget":650000,"bedrooms":2,"wantsRefund":true}`,
	"last_human_activity_at": "2026-11-21T14:31:47.903Z",
	"first_event_at":         "2026-11-21T13:58:02.120Z",
	"last_event_at":          "2026-11-28T14:31:48.000Z",
	"event_count":            int64(6),
	"lead_score":             82.0,
	"intent":                 "compra",
	"escalated":              int64(0), // the newest forwarding is a recovery
}

func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

// storyEvents returns sessionStory's events for session sid, with ids
// that sort in story order.
func storyEvents(t *testing.T, sid string) []*event.Event {
	t.Helper()
	evs := make([]*event.Event, len(sessionStory))
	for i, name := range sessionStory {
		ev := load(t, name, fmt.Sprintf("evt_%s_%d", sid, i)).ev
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

var storyColumns = map[string]string{
	"lead_score": "data.smartFields.leadScore",
	"intent":     "data.smartFields.intent",
	"escalated":  `data.forwardType == nil ? nil : data.forwardType == "escalated"`,
}

// sessionRows reads every sessions row by session_id, without id and
// _versions.
func sessionRows(t *testing.T, db *sql.DB) map[string]map[string]any {
	t.Helper()
	rows, err := db.Query("SELECT * FROM sessions")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	out := map[string]map[string]any{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := map[string]any{}
		for i, c := range cols {
			if b, ok := vals[i].([]byte); ok {
				vals[i] = string(b)
			}
			row[c] = vals[i]
		}
		sid := row["session_id"].(string)
		delete(row, "id")
		delete(row, "session_id")
		delete(row, "_versions")
		out[sid] = row
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func diffRow(got, want map[string]any) string {
	var b strings.Builder
	for k, w := range want {
		if g, ok := got[k]; !ok || !reflect.DeepEqual(g, w) {
			fmt.Fprintf(&b, "\n  %s = %#v, want %#v", k, got[k], w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "\n  unexpected column %s = %#v", k, g)
		}
	}
	return b.String()
}

// Every order of the story's events, each with one event delivered a
// second time (a retry or replay), gives the same sessions row.
func TestSessionEventsInAnyOrder(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "archive.db")
	s := New(Options{Path: path, Columns: columnExprs(t, storyColumns)})
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	perms := permutations(len(sessionStory))
	if len(perms) != 720 {
		t.Fatalf("%d permutations", len(perms))
	}
	// Each permutation is its own session, sent in its order; sessions
	// run concurrently so that batches mix them.
	var wg sync.WaitGroup
	errs := make(chan error, len(perms))
	for n, perm := range perms {
		sid := fmt.Sprintf("sess%03d", n)
		evs := storyEvents(t, sid)
		wg.Go(func() {
			for _, i := range perm {
				if err := s.Send(context.Background(), delivery(evs[i], 1)); err != nil {
					errs <- fmt.Errorf("%s: %w", sid, err)
					return
				}
			}
			dup := evs[perm[n%len(perm)]]
			if err := s.Send(context.Background(), delivery(dup, 2)); err != nil {
				errs <- fmt.Errorf("%s: resend: %w", sid, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	db := reader(t, path)
	got := sessionRows(t, db)
	if len(got) != len(perms) {
		t.Fatalf("%d sessions rows, want %d", len(got), len(perms))
	}
	for n, perm := range perms {
		sid := fmt.Sprintf("sess%03d", n)
		if d := diffRow(got[sid], wantSession); d != "" {
			t.Fatalf("order %v (%s):%s", perm, sid, d)
		}
	}
	if n := count(t, db); n != len(perms)*len(sessionStory) {
		t.Errorf("events rows = %d, want %d", n, len(perms)*len(sessionStory))
	}
	// The search index follows the summary: the first summary (from the
	// escalation) was replaced everywhere.
	for q, want := range map[string]int{"reembolso": len(perms), "reclama": 0, "mariana": len(perms)} {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM sessions_fts WHERE sessions_fts MATCH ?", q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("search %q: %d sessions, want %d", q, n, want)
		}
	}
}

func TestConfiguredColumns(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "archive.db")
	ctx := context.Background()
	cols := columnExprs(t, map[string]string{"lead_score": "data.smartFields.leadScore", "city": "data.smartFields.city"})
	s := New(Options{Path: path, Columns: cols})
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"session_opened", "session_analyzed"} {
		if err := s.Send(ctx, delivery(load(t, name, "evt_"+name).ev, 1)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	// Reopened with one more column and one column fewer: the new one is
	// added, the old one kept (not filled any more).
	cols2 := columnExprs(t, map[string]string{"lead_score": "data.smartFields.leadScore", "wants_refund": "data.smartFields.wantsRefund"})
	s2 := New(Options{Path: path, Columns: cols2})
	if err := s2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ev := load(t, "session_analyzed", "evt_again").ev
	ev.Subject = "other-session"
	if err := s2.Send(ctx, delivery(ev, 1)); err != nil {
		t.Fatal(err)
	}

	db := reader(t, path)
	rows := sessionRows(t, db)
	first, second := rows["6651a0e7c4b2f81d9a3e5c11"], rows["other-session"]
	for _, c := range []struct {
		row  map[string]any
		col  string
		want any
	}{
		{first, "lead_score", 82.0},
		{first, "city", "São Paulo"},
		{first, "wants_refund", nil},
		{second, "lead_score", 82.0},
		{second, "city", nil},
		{second, "wants_refund", int64(1)},
	} {
		if got := c.row[c.col]; got != c.want {
			t.Errorf("%s = %#v, want %#v", c.col, got, c.want)
		}
	}
	// Typed: a number compares as a number, and each column is indexed.
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sessions WHERE lead_score > 80 AND typeof(lead_score) = 'real'").Scan(&n); err != nil || n != 2 {
		t.Errorf("lead_score > 80: %d rows, %v; want 2", n, err)
	}
	for _, c := range []string{"lead_score", "city", "wants_refund"} {
		var idx string
		if err := db.QueryRow("SELECT name FROM pragma_index_list('sessions') WHERE name = ?", "sessions_c_"+c).Scan(&idx); err != nil {
			t.Errorf("index on %s: %v", c, err)
		}
	}
	var exprs []string
	r, err := db.Query("SELECT name || '=' || expr FROM archive_columns ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var e string
		r.Scan(&e)
		exprs = append(exprs, e)
	}
	r.Close()
	if want := []string{"city=data.smartFields.city", "lead_score=data.smartFields.leadScore", "wants_refund=data.smartFields.wantsRefund"}; !reflect.DeepEqual(exprs, want) {
		t.Errorf("archive_columns = %q, want %q", exprs, want)
	}
}

func TestFunctionCallsMakeNoSession(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "archive.db")
	s := openSink(t, path)
	if err := s.Send(context.Background(), delivery(load(t, "function_call", "evt_fn").ev, 1)); err != nil {
		t.Fatal(err)
	}
	if rows := sessionRows(t, reader(t, path)); len(rows) != 0 {
		t.Errorf("sessions = %v, want none", rows)
	}
}

// An archive written by the first version (events only) gets its
// sessions derived when it is opened.
func TestUpgradeDerivesSessions(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "archive.db")
	db := reader(t, path)
	if _, err := db.Exec(migrations[0] + "PRAGMA user_version = 1;"); err != nil {
		t.Fatal(err)
	}
	for i, ev := range storyEvents(t, "old") {
		data, _ := json.Marshal(ev.Data)
		if _, err := db.Exec(`INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, ev.ID, ev.Source, ev.EventType, ev.Subject,
			ev.AgentID, ev.AgentName, ev.Timestamp.UTC().Format(TimeFormat), ev.ReceivedAt.UTC().Format(TimeFormat), string(data)); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	s := New(Options{Path: path, Columns: columnExprs(t, storyColumns)})
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d := diffRow(sessionRows(t, db)["old"], wantSession); d != "" {
		t.Errorf("derived session:%s", d)
	}
}
