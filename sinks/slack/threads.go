package slack

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/internal/sqlitedb"
)

// threads remembers, per sink, channel and subject, the message that
// started the subject's thread. It lives in its own SQLite file in the
// gateway's storage directory (slack.db), shared by the Slack sinks.
type threads struct {
	db *sql.DB
}

// dbMigrations move slack.db's schema (threads and groups) from version
// i to i+1; released entries never change.
var dbMigrations = []string{
	`CREATE TABLE threads (
		sink       TEXT NOT NULL,
		channel    TEXT NOT NULL, -- as configured (the channel template's value)
		subject    TEXT NOT NULL, -- Darwin: the session id
		channel_id TEXT NOT NULL, -- as Slack answered: replies go there
		ts         TEXT NOT NULL, -- the thread's first message
		created_at TEXT NOT NULL,
		PRIMARY KEY (sink, channel, subject)
	) WITHOUT ROWID;
	CREATE INDEX threads_created_at ON threads (created_at);`,
	`CREATE TABLE groups (
		sink       TEXT NOT NULL,
		channel    TEXT NOT NULL, -- as configured (the channel template's value)
		key        TEXT NOT NULL, -- group.by's value
		channel_id TEXT NOT NULL, -- as Slack answered: chat.update needs it
		ts         TEXT NOT NULL, -- the group's message
		started_at TEXT NOT NULL, -- the first event's receive time
		items      TEXT NOT NULL, -- JSON: the events shown, by id
		created_at TEXT NOT NULL,
		PRIMARY KEY (sink, channel, key)
	) WITHOUT ROWID;
	CREATE INDEX groups_created_at ON groups (created_at);`,
}

// threadTTL is how long a thread is remembered. Darwin closes an idle
// session after 7 days by default; later events start a new thread.
const threadTTL = 30 * 24 * time.Hour

// openDB opens slack.db, migrated, with entries older than ttl dropped
// from table.
func openDB(ctx context.Context, path, table string, ttl time.Duration) (*sql.DB, error) {
	db, err := sqlitedb.Open(ctx, path, sqlitedb.Options{Synchronous: "NORMAL"})
	if err != nil {
		return nil, fmt.Errorf("open slack db: %w", err)
	}
	if err := sqlitedb.Migrate(ctx, db, dbMigrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate slack db: %w", err)
	}
	cutoff := time.Now().Add(-ttl).UTC().Format(time.RFC3339)
	if _, err := db.ExecContext(ctx, `DELETE FROM `+table+` WHERE created_at < ?`, cutoff); err != nil {
		db.Close()
		return nil, fmt.Errorf("prune slack %s: %w", table, err)
	}
	return db, nil
}

func openThreads(ctx context.Context, path string) (*threads, error) {
	db, err := openDB(ctx, path, "threads", threadTTL)
	if err != nil {
		return nil, err
	}
	return &threads{db: db}, nil
}

// get returns the channel id and ts of the subject's thread, if any.
func (t *threads) get(ctx context.Context, sink, channel, subject string) (channelID, ts string, err error) {
	err = t.db.QueryRowContext(ctx,
		`SELECT channel_id, ts FROM threads WHERE sink = ? AND channel = ? AND subject = ?`,
		sink, channel, subject).Scan(&channelID, &ts)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil
	}
	return channelID, ts, err
}

// put records the thread a subject's first message started. An existing
// thread is kept: with ordered: false two first messages may race.
func (t *threads) put(ctx context.Context, sink, channel, subject, channelID, ts string) error {
	_, err := t.db.ExecContext(ctx,
		`INSERT INTO threads (sink, channel, subject, channel_id, ts, created_at) VALUES (?, ?, ?, ?, ?, ?)
		 ON CONFLICT (sink, channel, subject) DO NOTHING`,
		sink, channel, subject, channelID, ts, time.Now().UTC().Format(time.RFC3339))
	return err
}

// forget drops a thread Slack no longer has.
func (t *threads) forget(ctx context.Context, sink, channel, subject string) error {
	_, err := t.db.ExecContext(ctx, `DELETE FROM threads WHERE sink = ? AND channel = ? AND subject = ?`, sink, channel, subject)
	return err
}

func (t *threads) close() error { return t.db.Close() }
