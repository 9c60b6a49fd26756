package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/receiver/darwin"
	"github.com/switchyard/switchyard/sinks"
)

// receivedAt is deliberately not in UTC and has sub-millisecond digits:
// the archive stores UTC with milliseconds, truncated.
var receivedAt = time.Date(2026, 11, 21, 11, 32, 9, 987_654_321, time.FixedZone("BRT", -3*3600))

const receivedAtText = "2026-11-21T14:32:09.987Z"

type fixture struct {
	ev   *event.Event
	data json.RawMessage // the data object as written in the file
}

func load(t testing.TB, name, id string) fixture {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "testdata", "darwin", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := darwin.Normalize(body, receivedAt)
	if err != nil {
		t.Fatalf("Normalize(%s): %v", name, err)
	}
	ev.ID = id
	ev.Source = "darwin-prod"
	var raw struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	return fixture{ev: ev, data: raw.Data}
}

func delivery(ev *event.Event, attempt int) *sinks.Delivery {
	return &sinks.Delivery{ID: "dlv-" + ev.ID, Attempt: attempt, Event: ev}
}

// openSink opens a sink at path and closes it when the test ends.
func openSink(t *testing.T, path string) *Sink {
	t.Helper()
	s := New(Options{Path: path})
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

// reader opens the archive the way an analyst would, independently of
// the sink.
func reader(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM events").Scan(&n); err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

func userVersion(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOpenCreatesDirectoryAndSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "does", "not", "exist", "archive.db")
	openSink(t, path)

	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("archive file %s: %v", path, err)
	}
	db := reader(t, path)
	if v := userVersion(t, db); v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	rows, err := db.Query("SELECT name FROM pragma_table_info('events') ORDER BY cid")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	want := []string{"id", "source", "event_type", "subject", "agent_id", "agent_name", "timestamp", "received_at", "data", "external_id"}
	if fmt.Sprint(cols) != fmt.Sprint(want) {
		t.Errorf("columns = %v, want %v", cols, want)
	}
}

func TestOpenTwiceIsANoOp(t *testing.T) {
	t.Parallel()
	s := openSink(t, filepath.Join(t.TempDir(), "archive.db"))
	db := s.db
	if err := s.Open(context.Background()); err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if s.db != db {
		t.Error("second Open replaced the database handle")
	}
}

func TestSendStoresColumns(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "archive.db")
	s := openSink(t, path)
	esc := load(t, "session_forwarded_escalated", "evt_escalated")
	fn := load(t, "function_call", "evt_function")
	for _, f := range []fixture{esc, fn} {
		if err := s.Send(context.Background(), delivery(f.ev, 1)); err != nil {
			t.Fatalf("Send(%s): %v", f.ev.ID, err)
		}
	}

	db := reader(t, path)
	if n := count(t, db); n != 2 {
		t.Fatalf("rows = %d, want 2", n)
	}
	type row struct {
		ID, Source, EventType, Subject, AgentID, AgentName, Timestamp, ReceivedAt, Data string
	}
	for _, tc := range []struct {
		f    fixture
		want row
	}{
		{esc, row{
			ID: "evt_escalated", Source: "darwin-prod", EventType: "session.forwarded.escalated",
			Subject: "6651a0e7c4b2f81d9a3e5c11", AgentID: "6650f1c2a9e4b3d2c1f0e9a8",
			AgentName: "Sofia - Atendimento Imobiliária Horizonte",
			Timestamp: "2026-11-21T14:32:08.512Z", ReceivedAt: receivedAtText, Data: string(esc.data),
		}},
		{fn, row{
			ID: "evt_function", Source: "darwin-prod", EventType: "function.call.agendarVisita",
			Subject: "6651a0e7c4b2f81d9a3e5c11", AgentID: "6650f1c2a9e4b3d2c1f0e9a8",
			AgentName: "Sofia - Atendimento Imobiliária Horizonte",
			Timestamp: "2026-11-21T14:25:33.045Z", ReceivedAt: receivedAtText, Data: string(fn.data),
		}},
	} {
		t.Run(tc.want.ID, func(t *testing.T) {
			var got row
			err := db.QueryRow(`SELECT id, source, event_type, subject, agent_id, agent_name, timestamp, received_at, data
				FROM events WHERE id = ?`, tc.want.ID).Scan(
				&got.ID, &got.Source, &got.EventType, &got.Subject, &got.AgentID, &got.AgentName,
				&got.Timestamp, &got.ReceivedAt, &got.Data)
			if err != nil {
				t.Fatalf("select: %v", err)
			}
			if got != tc.want {
				t.Errorf("row =\n%+v\nwant\n%+v", got, tc.want)
			}
			// The stored times parse back with the documented format.
			if ts, err := time.Parse(TimeFormat, got.Timestamp); err != nil || !ts.Equal(tc.f.ev.Timestamp) {
				t.Errorf("timestamp %q parses to %v, %v; want %v", got.Timestamp, ts, err, tc.f.ev.Timestamp)
			}
		})
	}

	var summary string
	if err := db.QueryRow(`SELECT json_extract(data, '$.summary') FROM events WHERE id = 'evt_escalated'`).Scan(&summary); err != nil {
		t.Fatalf("json_extract summary: %v", err)
	}
	const wantSummary = "Cliente reclama de cobrança em duplicidade no sinal do apartamento e pede reembolso <urgente> & falar com a gerência."
	if summary != wantSummary {
		t.Errorf("summary = %q, want %q", summary, wantSummary)
	}
	var name string
	if err := db.QueryRow(`SELECT json_extract(data, '$.inputs.nome') FROM events WHERE event_type = 'function.call.agendarVisita'`).Scan(&name); err != nil || name != "Mariana Costa" {
		t.Errorf("inputs.nome = %q, %v; want Mariana Costa", name, err)
	}
	// SQLite's date functions read the stored times.
	var day string
	if err := db.QueryRow(`SELECT date(timestamp) FROM events WHERE id = 'evt_escalated'`).Scan(&day); err != nil || day != "2026-11-21" {
		t.Errorf("date(timestamp) = %q, %v; want 2026-11-21", day, err)
	}
}

func TestSendRetryKeepsOneRow(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "archive.db")
	s := openSink(t, path)
	f := load(t, "session_forwarded_escalated", "evt_retry")
	ctx := context.Background()
	if err := s.Send(ctx, delivery(f.ev, 1)); err != nil {
		t.Fatalf("attempt 1: %v", err)
	}
	if err := s.Send(ctx, delivery(f.ev, 2)); err != nil {
		t.Fatalf("attempt 2 (a retry): %v", err)
	}
	// A replay of the same event id with other content leaves the
	// archived row as it was.
	replay := *f.ev
	replay.Data = json.RawMessage(`{"replayed":true}`)
	replay.EventType = "session.closed"
	if err := s.Send(ctx, delivery(&replay, 1)); err != nil {
		t.Fatalf("replay: %v", err)
	}

	db := reader(t, path)
	if n := count(t, db); n != 1 {
		t.Errorf("rows = %d, want 1", n)
	}
	var eventType, data string
	if err := db.QueryRow("SELECT event_type, data FROM events WHERE id = 'evt_retry'").Scan(&eventType, &data); err != nil {
		t.Fatal(err)
	}
	if eventType != "session.forwarded.escalated" || data != string(f.data) {
		t.Errorf("row was overwritten: event_type %q, data %s", eventType, data)
	}
}

func TestSendWithoutData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		data json.RawMessage
	}{
		{"nil", nil},
		{"empty", json.RawMessage{}},
		{"null", json.RawMessage("null")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "archive.db")
			s := openSink(t, path)
			ev := &event.Event{
				ID: "evt_nodata", Source: "darwin-prod", EventType: "session.opened",
				Timestamp: receivedAt, ReceivedAt: receivedAt, Data: tc.data,
			}
			if err := s.Send(context.Background(), delivery(ev, 1)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			var data, subject, agentID string
			if err := reader(t, path).QueryRow("SELECT data, subject, agent_id FROM events WHERE id = 'evt_nodata'").Scan(&data, &subject, &agentID); err != nil {
				t.Fatal(err)
			}
			if data != "{}" {
				t.Errorf("data = %q, want {}", data)
			}
			if subject != "" || agentID != "" {
				t.Errorf("subject, agent_id = %q, %q; want empty", subject, agentID)
			}
		})
	}
}

func TestReopenKeepsRows(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "archive.db")
	ctx := context.Background()
	first := New(Options{Path: path})
	if err := first.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := first.Send(ctx, delivery(load(t, "session_opened", "evt_1").ev, 1)); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	second := openSink(t, path)
	if err := second.Send(ctx, delivery(load(t, "session_closed", "evt_2").ev, 1)); err != nil {
		t.Fatal(err)
	}
	db := reader(t, path)
	if n := count(t, db); n != 2 {
		t.Errorf("rows after reopening = %d, want 2", n)
	}
	if v := userVersion(t, db); v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "archive.db")
	db := reader(t, path)
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s := New(Options{Path: path})
	err := s.Open(context.Background())
	if err == nil {
		s.Close()
		t.Fatal("Open = nil for an archive from a newer version")
	}
	if s.db != nil {
		t.Error("a failed Open kept a database handle")
	}
}

func TestSendBeforeOpen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "lazy", "archive.db")
	s := New(Options{Path: path})
	t.Cleanup(func() { s.Close() })
	if err := s.Send(context.Background(), delivery(load(t, "session_opened", "evt_lazy").ev, 1)); err != nil {
		t.Fatalf("Send before Open: %v", err)
	}
	db := reader(t, path)
	if n := count(t, db); n != 1 {
		t.Errorf("rows = %d, want 1", n)
	}
	if v := userVersion(t, db); v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
}

func TestSendWhileReaderHoldsReadTransaction(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "archive.db")
	s := openSink(t, path)
	ctx := context.Background()
	if err := s.Send(ctx, delivery(load(t, "session_opened", "evt_before").ev, 1)); err != nil {
		t.Fatal(err)
	}

	db := reader(t, path)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var before int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&before); err != nil {
		t.Fatal(err)
	}
	if before != 1 {
		t.Fatalf("reader sees %d rows, want 1", before)
	}

	// Without WAL the write would wait for the reader until the busy
	// timeout; the deadline keeps a failure short.
	sendCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Send(sendCtx, delivery(load(t, "session_closed", "evt_during").ev, 1)); err != nil {
		t.Fatalf("Send while a reader holds a read transaction: %v", err)
	}

	// The reader's snapshot is unchanged until it ends its transaction.
	var during int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&during); err != nil {
		t.Fatal(err)
	}
	if during != 1 {
		t.Errorf("reader's snapshot sees %d rows, want 1", during)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	var after int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != 2 {
		t.Errorf("after the reader's transaction: %d rows, want 2", after)
	}
}

func TestConcurrentSends(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "archive.db")
	s := New(Options{Path: path}) // not opened: the first Sends race to open it
	t.Cleanup(func() { s.Close() })
	base := load(t, "session_forwarded", "base").ev
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := *base
			ev.ID = fmt.Sprintf("evt_%02d", i)
			errs <- s.Send(context.Background(), delivery(&ev, 1))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Send: %v", err)
		}
	}
	if got := count(t, reader(t, path)); got != n {
		t.Errorf("rows = %d, want %d", got, n)
	}
}

func TestSendCanceledContext(t *testing.T) {
	t.Parallel()
	s := openSink(t, filepath.Join(t.TempDir(), "archive.db"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Send(ctx, delivery(load(t, "session_opened", "evt_canceled").ev, 1))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a canceled context = %v, want context.Canceled", err)
	}
}

// The archive path is a file name, not a URI: characters that mean
// something in a SQLite URI ('?', '#', '%') must not change which file
// is opened.
func TestOpenPathWithURICharacters(t *testing.T) {
	t.Parallel()
	// Subtest names stay plain: t.TempDir puts them in the directory name.
	for _, tc := range []struct{ name, file string }{
		{"hash", "events#2026.db"},
		{"question mark", "events?mode=ro.db"},
		{"percent", "100%25.db"},
		{"space", "with space.db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), tc.file)
			s := openSink(t, path)
			if err := s.Send(context.Background(), delivery(load(t, "session_opened", "evt_uri").ev, 1)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if _, err := os.Stat(path); err != nil {
				entries, _ := os.ReadDir(filepath.Dir(path))
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Fatalf("archive not at %q (directory holds %q): %v", path, names, err)
			}
		})
	}
}

// A replay (a new delivery of an archived event, possibly by another
// process after a restart) leaves one events row and does not count the
// event twice in its session.
func TestReplayAfterReopenLeavesOneRow(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "archive.db")
	ctx := context.Background()
	f := load(t, "session_analyzed", "evt_replayed")
	first := New(Options{Path: path})
	if err := first.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := first.Send(ctx, delivery(f.ev, 1)); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := openSink(t, path)
	replay := &sinks.Delivery{ID: "dlv-replay", Attempt: 1, Event: f.ev}
	for range 2 {
		if err := second.Send(ctx, replay); err != nil {
			t.Fatalf("replay: %v", err)
		}
	}
	db := reader(t, path)
	if n := count(t, db); n != 1 {
		t.Errorf("events rows = %d, want 1", n)
	}
	var sessions, events int
	if err := db.QueryRow("SELECT count(*), sum(event_count) FROM sessions").Scan(&sessions, &events); err != nil {
		t.Fatal(err)
	}
	if sessions != 1 || events != 1 {
		t.Errorf("sessions = %d with event_count %d; want 1 with 1", sessions, events)
	}
}

func TestSendAfterClose(t *testing.T) {
	t.Parallel()
	s := New(Options{Path: filepath.Join(t.TempDir(), "archive.db")})
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Send(context.Background(), delivery(load(t, "session_opened", "evt_late").ev, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
}

// Analysts read the archive while events flow: long read transactions,
// full scans, JSON and full-text queries from their own connections
// (as the sqlite3 shell or a BI tool would) never fail a Send.
func TestReadersDoNotBlockWrites(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "archive.db")
	s := openSink(t, path)
	ctx := context.Background()
	base := load(t, "session_analyzed", "base").ev
	if err := s.Send(ctx, delivery(base, 1)); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var readers sync.WaitGroup
	var reads atomic.Int64
	// One analyst keeps a read transaction open the whole time.
	long := reader(t, path)
	conn, err := long.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var snapshot int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&snapshot); err != nil {
		t.Fatal(err)
	}
	queries := []string{
		"SELECT count(*) FROM events",
		"SELECT count(*) FROM (SELECT json_extract(data, '$.channelName'), count(*) FROM events GROUP BY 1)",
		"SELECT count(*) FROM sessions_fts WHERE sessions_fts MATCH 'reembolso OR refund'",
		"SELECT count(*) FROM sessions WHERE forward_type = 'escalated'",
	}
	for i := range 3 {
		db := reader(t, path)
		readers.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var c int
				if err := db.QueryRow(queries[(i+n)%len(queries)]).Scan(&c); err != nil {
					t.Errorf("reader: %v", err)
					return
				}
				reads.Add(1)
			}
		})
	}

	const writers, perWriter = 16, 60
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				ev := *base
				ev.ID = fmt.Sprintf("evt_%02d_%03d", w, i)
				ev.Subject = fmt.Sprintf("sess_%02d_%03d", w, i%7)
				sendCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := s.Send(sendCtx, delivery(&ev, 1))
				cancel()
				if err != nil {
					t.Errorf("Send while analysts read: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	if reads.Load() == 0 {
		t.Error("the readers read nothing")
	}
	var still int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&still); err != nil || still != snapshot {
		t.Errorf("long reader's snapshot: %d, %v; want %d", still, err, snapshot)
	}
	conn.ExecContext(ctx, "COMMIT")
	if n := count(t, reader(t, path)); n != 1+writers*perWriter {
		t.Errorf("events = %d, want %d", n, 1+writers*perWriter)
	}
}
