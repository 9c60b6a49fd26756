package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/logbuf"
	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/sinks"
)

var at = time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC)

func analyzed(id, sid, title, summary string) *event.Event {
	data, _ := json.Marshal(map[string]any{"conversationTitle": title, "summary": summary, "summarizedAt": at.Format(time.RFC3339)})
	return &event.Event{ID: id, Source: "darwin", EventType: "session.analyzed", Subject: sid, Timestamp: at, ReceivedAt: at, Data: data}
}

func newSink(t *testing.T, o Options) *Sink {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sendTo(t *testing.T, s *Sink, ev *event.Event) {
	t.Helper()
	if err := s.Send(context.Background(), &sinks.Delivery{ID: "d-" + ev.ID, Attempt: 1, Event: ev}); err != nil {
		t.Fatalf("Send(%s): %v", ev.ID, err)
	}
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// The archive folds accents with unaccent when its role may install
// it, else with its own table, and says so; either way a search ignores
// accents, and analysts search in SQL with switchyard_fold.
func TestFoldChoice(t *testing.T) {
	c := pgtest.Shared(t)
	for _, tc := range []struct {
		name string
		dsn  string
		fold string
	}{
		{"owner", c.DSN(t), FoldUnaccent},
		{"restricted", restrictedDSN(t, c), FoldTable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs logbuf.Buffer
			s := newSink(t, Options{DSN: tc.dsn, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err := s.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := s.Fold(); got != tc.fold {
				t.Errorf("Fold() = %q, want %q", got, tc.fold)
			}
			if warned := strings.Contains(logs.String(), "unaccent extension is not available"); warned != (tc.fold == FoldTable) {
				t.Errorf("warned about unaccent: %v; logs:\n%s", warned, logs.String())
			}
			sendTo(t, s, analyzed("e1", "s1", "Søren Müller", "Reclamação: cobrança em duplicidade, São Paulo"))
			conn := connect(t, tc.dsn)
			for _, q := range []string{"soren", "MULLER", "reclamacao", "cobranca", "são paulo", "sao & paulo"} {
				var n int
				if err := conn.QueryRow(context.Background(),
					`SELECT count(*) FROM sessions WHERE search @@ websearch_to_tsquery('simple', switchyard_fold($1))`, q).Scan(&n); err != nil || n != 1 {
					t.Errorf("websearch_to_tsquery(switchyard_fold(%q)): %d, %v; want 1", q, n, err)
				}
			}
		})
	}
}

// Serve fails fast when the archive's database cannot be reached, and
// never shows the password.
func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	s := newSink(t, Options{DSN: "postgres://archiver:s3cretpw@" + addr + "/archive?sslmode=disable&connect_timeout=2", ConnectTimeout: 3 * time.Second})
	start := time.Now()
	err = s.Open(context.Background())
	if err == nil {
		t.Fatal("Open succeeded with nothing listening")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %v to fail", d)
	}
	if msg := err.Error(); !strings.Contains(msg, "cannot reach the postgres archive at 127.0.0.1:") || strings.Contains(msg, "s3cretpw") {
		t.Errorf("error = %q; want it to name the server, without the password", msg)
	}
}

func TestParseDSN(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ dsn, msg string }{
		{"", "missing dsn"},
		{"postgres://u:s3cretpw@host:notaport/db", "invalid dsn"},
		{"host=x sslmode=sometimes password=s3cretpw", "invalid dsn"},
	} {
		_, err := ParseDSN(tc.dsn)
		if err == nil || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("ParseDSN(%q) = %v; want %q, without the password", tc.dsn, err, tc.msg)
		}
	}
	if _, err := ParseDSN("postgres://u:p@db.example:5432/archive?sslmode=verify-full"); err != nil {
		t.Errorf("a valid dsn: %v", err)
	}
}

// Replicas starting together create the schema once: every Open
// succeeds, and the configured columns are recorded once.
func TestReplicasOpenTogether(t *testing.T) {
	c := pgtest.Shared(t)
	dsn := c.DSN(t)
	col, _ := lang.CompileExpression("data.smartFields.leadScore")
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		s := newSink(t, Options{DSN: dsn, Columns: map[string]*lang.Expression{"lead_score": col}})
		wg.Go(func() { errs <- s.Open(context.Background()) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Open: %v", err)
		}
	}
	conn := connect(t, dsn)
	var versions, columns int
	if err := conn.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM archive_schema), (SELECT count(*) FROM archive_columns)`).Scan(&versions, &columns); err != nil || versions != 1 || columns != 1 {
		t.Errorf("archive_schema rows %d, archive_columns rows %d, %v; want 1 and 1", versions, columns, err)
	}
}

// The archive's tables have plain names: a database holding tables of
// those names that are not an archive is refused, untouched; so is an
// archive migrated by a newer switchyard.
func TestOpenRefuses(t *testing.T) {
	c := pgtest.Shared(t)
	ctx := context.Background()
	foreign := c.DSN(t)
	if _, err := connect(t, foreign).Exec(ctx, `CREATE TABLE events (x int)`); err != nil {
		t.Fatal(err)
	}
	err := newSink(t, Options{DSN: foreign}).Open(ctx)
	if err == nil || !strings.Contains(err.Error(), "already has tables named events") || !strings.Contains(err.Error(), "search_path") {
		t.Errorf("Open on a foreign events table = %v", err)
	}
	newer := c.DSN(t)
	if err := newSink(t, Options{DSN: newer}).Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, newer).Exec(ctx, `UPDATE archive_schema SET version = 99`); err != nil {
		t.Fatal(err)
	}
	if err := newSink(t, Options{DSN: newer}).Open(ctx); err == nil || !strings.Contains(err.Error(), "newer than this switchyard") {
		t.Errorf("Open on a newer schema = %v", err)
	}
	if _, err := OpenReader(ctx, newer); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Errorf("OpenReader on a newer schema = %v", err)
	}
	if _, err := OpenReader(ctx, c.DSN(t)); err == nil || !strings.Contains(err.Error(), "no switchyard archive") {
		t.Errorf("OpenReader on an empty database = %v", err)
	}
}

// PostgreSQL's text and jsonb cannot hold NUL: such an event is
// archived with U+FFFD in its place rather than failing forever.
func TestNULCharacters(t *testing.T) {
	c := pgtest.Shared(t)
	dsn := c.DSN(t)
	s := newSink(t, Options{DSN: dsn})
	ev := analyzed("e\x00nul", "s\x00nul", "Ana\x00Lima", "resumo")
	ev.Data = json.RawMessage(`{"conversationTitle":"Ana\u0000Lima","summary":"resumo","k\u0000":["\u0000"]}`)
	sendTo(t, s, ev)
	var title, data string
	if err := connect(t, dsn).QueryRow(context.Background(), `SELECT title, (SELECT data::text FROM events) FROM sessions`).Scan(&title, &data); err != nil {
		t.Fatal(err)
	}
	if title != "Ana\uFFFDLima" || !strings.Contains(data, "\uFFFD") {
		t.Errorf("title %q, data %s", title, data)
	}
}

// Retention runs on one replica at a time: while another holds the
// pruning lock, Prune deletes nothing and returns at once.
func TestPruneOneReplicaAtATime(t *testing.T) {
	c := pgtest.Shared(t)
	dsn := c.DSN(t)
	now := at.Add(400 * 24 * time.Hour)
	s := newSink(t, Options{DSN: dsn, Retention: 180 * 24 * time.Hour, Now: func() time.Time { return now }})
	sendTo(t, s, analyzed("e1", "s1", "Ana", "old"))
	holder := connect(t, dsn)
	ctx := context.Background()
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, lockSpace, lockPrune); err != nil {
		t.Fatal(err)
	}
	if ev, ss, err := s.Prune(ctx); err != nil || ev+ss != 0 {
		t.Errorf("Prune while another replica prunes = %d, %d, %v; want nothing", ev, ss, err)
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, lockSpace, lockPrune); err != nil {
		t.Fatal(err)
	}
	if ev, ss, err := s.Prune(ctx); err != nil || ev != 1 || ss != 1 {
		t.Errorf("Prune = %d, %d, %v; want 1 event, 1 session", ev, ss, err)
	}
}

// A configured column's type is its first value's; a later value of
// another type is converted when it can be, else NULL and a warning.
func TestColumnTypes(t *testing.T) {
	c := pgtest.Shared(t)
	dsn := c.DSN(t)
	expr := func(src string) *lang.Expression {
		e, err := lang.CompileExpression(src)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	var logs logbuf.Buffer
	s := newSink(t, Options{DSN: dsn, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Columns: map[string]*lang.Expression{
		"score": expr("data.score"), "label": expr("data.label"), "hot": expr("data.hot"), "tags": expr("data.tags"),
	}})
	for i, data := range []string{
		`{"score": 82, "label": "a", "hot": true, "tags": ["x"]}`,
		`{"score": "91", "label": 7, "hot": "yes", "tags": {"k": 1}}`,
		`{"score": "n/a"}`,
	} {
		ev := analyzed(fmt.Sprint("e", i), fmt.Sprint("s", i), "t", "s")
		ev.Data = json.RawMessage(data)
		sendTo(t, s, ev)
	}
	conn := connect(t, dsn)
	rows, err := conn.Query(context.Background(), `SELECT session_id, score, label, hot, tags::text FROM sessions ORDER BY session_id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var sid string
		var score *float64
		var label, tags *string
		var hot *bool
		if err := rows.Scan(&sid, &score, &label, &hot, &tags); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %v %v %v %v", sid, deref(score), deref(label), deref(hot), deref(tags)))
	}
	want := []string{`s0 82 a true ["x"]`, `s1 91 7 <nil> {"k": 1}`, `s2 <nil> <nil> <nil> <nil>`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(logs.String(), "does not fit the column's type") {
		t.Errorf("no warning about the misfit values:\n%s", logs.String())
	}
	var types []string
	r2, _ := conn.Query(context.Background(), `SELECT name || ' ' || type FROM archive_columns ORDER BY name`)
	types, _ = pgx.CollectRows(r2, pgx.RowTo[string])
	if strings.Join(types, ", ") != "hot boolean, label text, score double precision, tags jsonb" {
		t.Errorf("archive_columns types: %v", types)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// The reader cannot write, and reads while a sink writes.
func TestReaderIsReadOnly(t *testing.T) {
	c := pgtest.Shared(t)
	dsn := c.DSN(t)
	s := newSink(t, Options{DSN: dsn})
	sendTo(t, s, analyzed("e1", "s1", "Ana", "resumo"))
	r, err := OpenReader(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.pool.Exec(context.Background(), `DELETE FROM events`)
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("DELETE through the reader = %v; want a read-only error", err)
	}
	sendTo(t, s, analyzed("e2", "s2", "Bia", "resumo"))
	if hits, err := r.Search(context.Background(), "resumo", 10); err != nil || len(hits) != 2 {
		t.Errorf("Search while the sink writes = %v, %v", hits, err)
	}
	var closed error = ErrClosed
	s.Close()
	if err := s.Send(context.Background(), &sinks.Delivery{ID: "x", Event: analyzed("e3", "s3", "", "")}); !errors.Is(err, closed) {
		t.Errorf("Send after Close = %v", err)
	}
}
