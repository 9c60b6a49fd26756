// Package sqlite is the sqlite sink: an archive of events, and of the
// Darwin sessions they describe, in a SQLite file analysts query with
// SQL, full-text search and exports (see Reader).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/groupcommit"
	"github.com/switchyard/switchyard/internal/sqlitedb"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/sinks"
	"github.com/switchyard/switchyard/sinks/archive"
)

// TimeFormat is how times are stored: ISO 8601 in UTC with milliseconds,
// which sorts as text and which SQLite's date functions read.
const TimeFormat = archive.TimeFormat

// migrations[i] moves the archive from user_version i to i+1. Released
// migrations never change. Configured columns are not migrations: they
// depend on the configuration and are added at Open (see columns.go).
var migrations = []string{`
CREATE TABLE events (
	id          TEXT PRIMARY KEY,         -- Switchyard's event id
	source      TEXT NOT NULL,            -- configured source name
	event_type  TEXT NOT NULL,            -- e.g. session.forwarded.escalated
	subject     TEXT NOT NULL DEFAULT '', -- Darwin: the session id
	agent_id    TEXT NOT NULL DEFAULT '',
	agent_name  TEXT NOT NULL DEFAULT '',
	timestamp   TEXT NOT NULL,            -- when it happened, per the sender
	received_at TEXT NOT NULL,            -- when Switchyard received it
	data        TEXT NOT NULL DEFAULT '{}' -- the data object, JSON
);
CREATE INDEX events_event_type ON events (event_type);
CREATE INDEX events_subject ON events (subject);
CREATE INDEX events_timestamp ON events (timestamp);
`, `
CREATE TABLE sessions (
	id                     INTEGER PRIMARY KEY, -- stable row id; the search index's docid
	session_id             TEXT NOT NULL UNIQUE, -- Darwin's sessionId = events.subject
	source                 TEXT NOT NULL,
	agent_id               TEXT,
	agent_name             TEXT,
	conversation_id        TEXT,
	channel_id             TEXT,
	channel_name           TEXT,
	title                  TEXT, -- conversationTitle
	created_at             TEXT, -- data.createdAt
	opened_at              TEXT, -- timestamp of session.opened
	closed_at              TEXT, -- data.closedAt of session.closed*
	forwarded_at           TEXT,
	forward_type           TEXT, -- qualified, escalated, recovered
	forwarded_to_id        TEXT,
	forwarded_to_name      TEXT,
	stage                  TEXT,
	previous_stage         TEXT,
	stage_at               TEXT, -- data.transitionedAt
	summary                TEXT,
	summarized_at          TEXT,
	smart_fields           TEXT, -- JSON object
	last_human_activity_at TEXT,
	first_event_at         TEXT NOT NULL, -- oldest event timestamp seen
	last_event_at          TEXT NOT NULL, -- newest; retention prunes on it
	event_count            INTEGER NOT NULL, -- distinct events archived
	_versions              TEXT NOT NULL DEFAULT '{}' -- internal: which event each column group came from
);
CREATE INDEX sessions_last_event_at ON sessions (last_event_at);
CREATE INDEX sessions_channel_name ON sessions (channel_name);
CREATE INDEX sessions_forward ON sessions (forward_type, forwarded_at);

-- Full-text search over titles and summaries. FTS4, not FTS5: FTS5
-- needs a build tag in mattn/go-sqlite3, FTS4 is compiled in. The index
-- reads its text from sessions (content=), so it is not stored twice.
CREATE VIRTUAL TABLE sessions_fts USING fts4(content="sessions", title, summary, tokenize=unicode61 "remove_diacritics=2");
CREATE TRIGGER sessions_fts_ai AFTER INSERT ON sessions BEGIN
	INSERT INTO sessions_fts (docid, title, summary) VALUES (new.id, new.title, new.summary);
END;
CREATE TRIGGER sessions_fts_bu BEFORE UPDATE OF title, summary ON sessions
WHEN old.title IS NOT new.title OR old.summary IS NOT new.summary BEGIN
	DELETE FROM sessions_fts WHERE docid = old.id;
END;
CREATE TRIGGER sessions_fts_au AFTER UPDATE OF title, summary ON sessions
WHEN old.title IS NOT new.title OR old.summary IS NOT new.summary BEGIN
	INSERT INTO sessions_fts (docid, title, summary) VALUES (new.id, new.title, new.summary);
END;
CREATE TRIGGER sessions_fts_bd BEFORE DELETE ON sessions BEGIN
	DELETE FROM sessions_fts WHERE docid = old.id;
END;

-- Columns added from the configuration's columns:, and their expressions.
CREATE TABLE archive_columns (
	name     TEXT PRIMARY KEY,
	expr     TEXT NOT NULL,
	added_at TEXT NOT NULL
);
`, `
-- The id the platform gave the event ('' when it gives none), to find it
-- in the platform's own logs.
ALTER TABLE events ADD COLUMN external_id TEXT NOT NULL DEFAULT '';
CREATE INDEX events_external_id ON events (external_id) WHERE external_id != '';
`}

// Options configures a sink.
type Options struct {
	// Path is the archive file; its directory is created if missing.
	Path string
	// Columns adds a column to sessions per entry, filled with the
	// expression's value for the session's newest event where it is not
	// nil. Names are checked with archive.CheckColumnName.
	Columns map[string]*lang.Expression
	// Retention prunes events older than this, and sessions whose newest
	// event is; zero keeps everything.
	Retention time.Duration
	// Providers names each source's provider, by source name: the chat
	// inbox's and DocsSmith Demo2's events keep a sessions row per
	// conversation, as Darwin's do per session.
	Providers map[string]string
	// PruneEvery is how often retention runs; default an hour.
	PruneEvery time.Duration
	Logger     *slog.Logger
	// Now is the clock for retention; default time.Now.
	Now func() time.Time
}

// Sink writes events to a SQLite archive. Concurrent Sends are grouped
// into one transaction by a single writer goroutine.
type Sink struct {
	opts    Options
	log     *slog.Logger
	mapper  *archive.Mapper
	columns []archive.Column

	mu     sync.Mutex
	db     *sql.DB
	stmts  *statements
	ops    chan *op
	stop   chan struct{} // closed by Close
	wg     sync.WaitGroup
	closed bool
}

var (
	_ sinks.Sink   = (*Sink)(nil)
	_ sinks.Opener = (*Sink)(nil)
)

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("archive closed")

// New returns a sink for opts. Nothing is opened until Open.
func New(opts Options) *Sink {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PruneEvery <= 0 {
		opts.PruneEvery = time.Hour
	}
	cols := archive.ConfiguredColumns(opts.Columns)
	return &Sink{opts: opts, log: opts.Logger, columns: cols, mapper: archive.NewMapper(archive.MapperOptions{Columns: cols, Providers: opts.Providers, Logger: opts.Logger})}
}

// Open creates or migrates the archive, adds configured columns, and
// starts the writer and, with a retention, the pruner.
func (s *Sink) Open(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.db != nil {
		return nil
	}
	for _, c := range s.columns {
		if err := archive.CheckColumnName(c.Name); err != nil {
			return err
		}
	}
	path := s.opts.Path
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("create archive dir: %w", err)
		}
	}
	// WAL lets analysts read while events are written. FULL: the queue
	// marks a delivery delivered once Send returns, so a committed row
	// must survive power loss; batching pays for the fsync.
	db, err := sqlitedb.Open(ctx, path, sqlitedb.Options{Synchronous: "FULL", BusyTimeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("open archive %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer
	var from int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&from); err != nil {
		db.Close()
		return fmt.Errorf("open archive %s: %w", path, err)
	}
	if err := sqlitedb.Migrate(ctx, db, migrations); err != nil {
		db.Close()
		return fmt.Errorf("migrate archive %s: %w", path, err)
	}
	if err := s.addColumns(ctx, db); err != nil {
		db.Close()
		return fmt.Errorf("archive %s: %w", path, err)
	}
	stmts, err := prepare(ctx, db, s.columns)
	if err != nil {
		db.Close()
		return fmt.Errorf("archive %s: prepare: %w", path, err)
	}
	if from == 1 {
		// An archive from before sessions existed: derive them once.
		if err := s.backfill(ctx, db, stmts); err != nil {
			stmts.close()
			db.Close()
			return fmt.Errorf("archive %s: derive sessions from events: %w", path, err)
		}
	}
	s.db, s.stmts = db, stmts
	s.ops = make(chan *op)
	s.stop = make(chan struct{})
	s.wg.Go(s.writer)
	if s.opts.Retention > 0 {
		s.wg.Go(s.pruner)
	}
	return nil
}

// Send archives the event: a row in events, and for a session event an
// update of its sessions row. An event already archived (a retry or a
// replay) changes nothing. Send returns once the rows are committed.
func (s *Sink) Send(ctx context.Context, d *sinks.Delivery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	ops, stop, closed := s.ops, s.stop, s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if ops == nil {
		if err := s.Open(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		ops, stop = s.ops, s.stop
		s.mu.Unlock()
	}
	// The work that needs no database happens here, in parallel.
	o := &op{row: s.mapper.Row(d.Event), done: make(chan error, 1)}
	// Once the writer has it, the row may commit after ctx ends; a retry
	// of it is harmless.
	return groupcommit.Submit(ctx, ops, stop, o, o.done, ErrClosed)
}

// op is one Send waiting for the writer.
type op struct {
	row  *archive.EventRow
	done chan error
}

// maxBatch bounds how many events share one transaction.
const maxBatch = 256

// writer commits queued Sends in batches until Close.
func (s *Sink) writer() {
	groupcommit.Loop[*op]{Ops: s.ops, Stop: s.stop, Max: maxBatch, Commit: s.commit}.Run()
}

// commit writes batch in one transaction. If it fails, each event is
// written again in a transaction of its own, so one bad event fails
// only its own Send.
func (s *Sink) commit(batch []*op) {
	if len(batch) > 1 {
		if err := s.tryBatch(batch); err == nil {
			for _, o := range batch {
				o.done <- nil
			}
			return
		}
	}
	for _, o := range batch {
		o.done <- s.tryBatch([]*op{o})
	}
}

func (s *Sink) tryBatch(batch []*op) error {
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("archive event: begin: %w", err)
	}
	defer tx.Rollback()
	w := s.stmts.in(ctx, tx)
	for _, o := range batch {
		if err := w.write(ctx, o.row); err != nil {
			return fmt.Errorf("archive event %s: %w", o.row.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("archive event: commit: %w", err)
	}
	return nil
}

// Close stops the writer after the Sends already queued, stops pruning,
// and closes the archive. Sends after Close return ErrClosed.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		close(stop)
	}
	s.wg.Wait()
	// No Send can reach the writer now; answer any that queued too late.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	s.stmts.close()
	err := s.db.Close()
	s.db = nil
	if err != nil && !errors.Is(err, sql.ErrConnDone) {
		return err
	}
	return nil
}
