// Package sqlite is the sqlite sink: an archive of events in a SQLite
// file analysts query with SQL.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/sqlitedb"
	"github.com/switchyard/switchyard/sinks"
)

// TimeFormat is how times are stored: ISO 8601 in UTC with milliseconds,
// which sorts as text and which SQLite's date functions read.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// migrations[i] moves the archive from user_version i to i+1.
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
`}

// Options configures a sink.
type Options struct {
	// Path is the archive file; its directory is created if missing.
	Path string
}

// Sink writes events to a SQLite archive.
type Sink struct {
	path string

	mu sync.Mutex
	db *sql.DB
}

var (
	_ sinks.Sink   = (*Sink)(nil)
	_ sinks.Opener = (*Sink)(nil)
)

// New returns a sink for opts. Nothing is opened until Open.
func New(opts Options) *Sink { return &Sink{path: opts.Path} }

// Open creates or migrates the archive.
func (s *Sink) Open(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db != nil {
		return nil
	}
	if dir := filepath.Dir(s.path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("create archive dir: %w", err)
		}
	}
	// WAL lets analysts read while events are written. NORMAL: a power
	// loss may lose the last archived rows, which the queue redelivers.
	db, err := sqlitedb.Open(ctx, s.path, sqlitedb.Options{Synchronous: "NORMAL", BusyTimeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("open archive %s: %w", s.path, err)
	}
	db.SetMaxOpenConns(1)
	if err := sqlitedb.Migrate(ctx, db, migrations); err != nil {
		db.Close()
		return fmt.Errorf("migrate archive %s: %w", s.path, err)
	}
	s.db = db
	return nil
}

// Send inserts the event; an event already archived (a retry or replay)
// is left as it is.
func (s *Sink) Send(ctx context.Context, d *sinks.Delivery) error {
	s.mu.Lock()
	db := s.db
	s.mu.Unlock()
	if db == nil {
		if err := s.Open(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		db = s.db
		s.mu.Unlock()
	}
	ev := d.Event
	data := string(ev.Data)
	if len(ev.Data) == 0 || data == "null" {
		data = "{}"
	}
	_, err := db.ExecContext(ctx, `INSERT INTO events
		(id, source, event_type, subject, agent_id, agent_name, timestamp, received_at, data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		ev.ID, ev.Source, ev.EventType, ev.Subject, ev.AgentID, ev.AgentName,
		ev.Timestamp.UTC().Format(TimeFormat), ev.ReceivedAt.UTC().Format(TimeFormat), data)
	if err != nil {
		return fmt.Errorf("archive event: %w", err)
	}
	return nil
}

// Close closes the archive.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	if err != nil && !errors.Is(err, sql.ErrConnDone) {
		return err
	}
	return nil
}
