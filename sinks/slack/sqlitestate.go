package slack

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/internal/sqlitedb"
)

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

// ThreadTTL is how long a thread is remembered. Darwin closes an idle
// session after 7 days by default; later events start a new thread.
const ThreadTTL = 30 * 24 * time.Hour

// GroupTTL is how long a group's message is remembered; far beyond the
// longest wait, for backlogs.
const GroupTTL = 7 * 24 * time.Hour

// sqliteState is State for one gateway: threads and groups in a SQLite
// file of the storage directory (slack.db), which one gateway locks;
// channels paced in memory.
type sqliteState struct {
	db     *sql.DB
	locks  keyLocks
	pacers pacers
}

// SQLiteState opens the State in the SQLite file at path (created,
// migrated, its entries older than ThreadTTL and GroupTTL dropped).
// Sinks may share the file: their keys name them.
func SQLiteState(path string) OpenState {
	return func(ctx context.Context) (State, error) {
		db, err := sqlitedb.Open(ctx, path, sqlitedb.Options{Synchronous: "NORMAL"})
		if err != nil {
			return nil, fmt.Errorf("open slack db: %w", err)
		}
		if err := sqlitedb.Migrate(ctx, db, dbMigrations); err != nil {
			db.Close()
			return nil, fmt.Errorf("migrate slack db: %w", err)
		}
		for table, ttl := range map[string]time.Duration{"threads": ThreadTTL, "groups": GroupTTL} {
			cutoff := time.Now().Add(-ttl).UTC().Format(time.RFC3339)
			if _, err := db.ExecContext(ctx, `DELETE FROM `+table+` WHERE created_at < ?`, cutoff); err != nil {
				db.Close()
				return nil, fmt.Errorf("prune slack %s: %w", table, err)
			}
		}
		return &sqliteState{db: db}, nil
	}
}

func (s *sqliteState) Thread(ctx context.Context, k ThreadKey) (Thread, bool, error) {
	var t Thread
	err := s.db.QueryRowContext(ctx,
		`SELECT channel_id, ts FROM threads WHERE sink = ? AND channel = ? AND subject = ?`,
		k.Sink, k.Channel, k.Subject).Scan(&t.ChannelID, &t.TS)
	if errors.Is(err, sql.ErrNoRows) {
		return Thread{}, false, nil
	}
	return t, err == nil, err
}

func (s *sqliteState) StartThread(ctx context.Context, k ThreadKey, start func(context.Context) (Thread, error)) (Thread, bool, error) {
	return startThread(ctx, &s.locks, k, s.Thread, start, func(ctx context.Context, t Thread) error {
		_, err := s.db.ExecContext(ctx,
			`INSERT INTO threads (sink, channel, subject, channel_id, ts, created_at) VALUES (?, ?, ?, ?, ?, ?)
			 ON CONFLICT (sink, channel, subject) DO UPDATE SET channel_id = excluded.channel_id, ts = excluded.ts, created_at = excluded.created_at`,
			k.Sink, k.Channel, k.Subject, t.ChannelID, t.TS, time.Now().UTC().Format(time.RFC3339))
		return err
	})
}

func (s *sqliteState) ForgetThread(ctx context.Context, k ThreadKey, t Thread) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM threads WHERE sink = ? AND channel = ? AND subject = ? AND ts = ?`,
		k.Sink, k.Channel, k.Subject, t.TS)
	return err
}

func (s *sqliteState) WithGroup(ctx context.Context, k GroupKey, fn func(context.Context, *GroupState) (*GroupState, error)) error {
	return withGroup(ctx, &s.locks, k, fn,
		func(ctx context.Context) (*GroupState, error) {
			var g GroupState
			var started, items string
			err := s.db.QueryRowContext(ctx,
				`SELECT channel_id, ts, started_at, items FROM groups WHERE sink = ? AND channel = ? AND key = ?`,
				k.Sink, k.Channel, k.Key).Scan(&g.ChannelID, &g.TS, &started, &items)
			if errors.Is(err, sql.ErrNoRows) {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			if g.StartedAt, err = time.Parse(time.RFC3339Nano, started); err != nil {
				return nil, fmt.Errorf("group started_at: %w", err)
			}
			if err := json.Unmarshal([]byte(items), &g.Items); err != nil {
				return nil, fmt.Errorf("group items: %w", err)
			}
			return &g, nil
		},
		func(ctx context.Context, g *GroupState) error {
			items, err := json.Marshal(g.Items)
			if err != nil {
				return err
			}
			_, err = s.db.ExecContext(ctx,
				`INSERT INTO groups (sink, channel, key, channel_id, ts, started_at, items, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				 ON CONFLICT (sink, channel, key) DO UPDATE SET
				   channel_id = excluded.channel_id, ts = excluded.ts, started_at = excluded.started_at,
				   items = excluded.items, created_at = excluded.created_at`,
				k.Sink, k.Channel, k.Key, g.ChannelID, g.TS, g.StartedAt.UTC().Format(time.RFC3339Nano), string(items),
				time.Now().UTC().Format(time.RFC3339))
			return err
		})
}

func (s *sqliteState) Pacer(sink string, n int, per time.Duration) Pacer {
	return s.pacers.get(sink, n, per)
}

func (s *sqliteState) Close() error { return s.db.Close() }
