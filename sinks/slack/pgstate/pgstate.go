// Package pgstate keeps the Slack sinks' State in PostgreSQL, in the
// queue's database (storage.dsn), so that every gateway replica posts a
// session's messages in one thread, a burst in one group message, and
// paces each channel for the whole cluster, a 429's pause included.
// Its tables are named slack_*; the schema is migrated under an
// advisory lock. Holding a thread or a group while Slack answers is a
// transaction-scoped advisory lock: a replica that dies releases it
// with its connection, one that stops (SIGSTOP) loses it after
// IdleInTransaction.
package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/sinks"
	"github.com/switchyard/switchyard/sinks/slack"
)

// Advisory lock keys: two int4 keys. The queue uses 0x5357 and 0x5358,
// the postgres archive 0x5359 (1, 2).
const (
	lockSpace   = 0x5359
	lockMigrate = 3      // the slack_* tables
	keySpace    = 0x535A // a thread or a group, by hashtext of its key
)

// IdleInTransaction bounds how long a replica stopped while it holds a
// thread or a group (SIGSTOP, a hung host) keeps the others waiting:
// PostgreSQL then ends its session, releasing the lock. It is longer
// than any sane attempt timeout: a post holds the lock while Slack
// answers.
const IdleInTransaction = 60 * time.Second

var migrations = []string{`
CREATE TABLE slack_threads (
	sink       text NOT NULL,
	channel    text NOT NULL, -- as configured (the channel template's value)
	subject    text NOT NULL, -- Darwin: the session id
	channel_id text NOT NULL, -- as Slack answered: replies go there
	ts         text NOT NULL, -- the thread's first message
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (sink, channel, subject)
);
CREATE INDEX slack_threads_created_at ON slack_threads (created_at);

CREATE TABLE slack_groups (
	sink       text NOT NULL,
	channel    text NOT NULL,
	key        text NOT NULL, -- group.by's value
	channel_id text NOT NULL, -- as Slack answered: chat.update needs it
	ts         text NOT NULL, -- the group's message
	started_at timestamptz NOT NULL, -- the first event's receive time
	items      jsonb NOT NULL, -- the events shown, by id
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (sink, channel, key)
);
CREATE INDEX slack_groups_created_at ON slack_groups (created_at);

-- Each channel's pace: the slots booked within the last period, and a
-- pause Slack asked for. Times are the database's clock, the same for
-- every replica.
CREATE TABLE slack_pace (
	sink          text NOT NULL,
	channel       text NOT NULL,
	slots         timestamptz[] NOT NULL DEFAULT '{}',
	blocked_until timestamptz,
	PRIMARY KEY (sink, channel)
);
`}

// State is slack.State in PostgreSQL.
type State struct {
	pool     *pgxpool.Pool
	cfg      *pgxpool.Config
	describe string
	log      *slog.Logger
}

var _ slack.State = (*State)(nil)

// Options configure Open.
type Options struct {
	// MaxConns bounds the pool: sends holding a thread or a group each
	// hold a connection while Slack answers; default 8.
	MaxConns int32
	Logger   *slog.Logger
}

// Open returns the slack.OpenState of the database at dsn: it connects,
// migrates, and drops threads and groups older than slack.ThreadTTL and
// slack.GroupTTL.
func Open(dsn string, o Options) slack.OpenState {
	return func(ctx context.Context) (slack.State, error) {
		cfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			return nil, errors.New("slack state: invalid storage.dsn")
		}
		if o.MaxConns <= 0 {
			o.MaxConns = 8
		}
		if o.Logger == nil {
			o.Logger = slog.New(slog.DiscardHandler)
		}
		cfg.MaxConns = o.MaxConns
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = fmt.Sprint(IdleInTransaction.Milliseconds())
		s := &State{cfg: cfg, describe: fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database), log: o.Logger}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s.pool, err = pgxpool.NewWithConfig(cctx, cfg)
		if err == nil {
			err = s.pool.Ping(cctx)
		}
		if err == nil {
			err = s.migrate(cctx)
		}
		if err != nil {
			if s.pool != nil {
				s.pool.Close()
			}
			return nil, fmt.Errorf("slack state in postgres %s: %w", s.describe, s.redact(err))
		}
		return s, nil
	}
}

func (s *State) redact(err error) error {
	if pw := s.cfg.ConnConfig.Password; pw != "" && err != nil {
		return sinks.Redact(err, pw)
	}
	return err
}

func (s *State) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, lockSpace, lockMigrate); err != nil {
		return fmt.Errorf("lock the schema for migration: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, $2)`, lockSpace, lockMigrate)
	var version int
	err = conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM slack_schema`).Scan(&version)
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "42P01" {
		version, err = 0, nil
	}
	if err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("the slack tables are version %d, newer than this switchyard's (%d): upgrade switchyard", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS slack_schema (version integer NOT NULL);
				DELETE FROM slack_schema; INSERT INTO slack_schema (version) VALUES (`+fmt.Sprint(v+1)+`)`)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate the slack tables to version %d: %w", v+1, err)
		}
	}
	if _, err := conn.Exec(ctx, `DELETE FROM slack_threads WHERE created_at < now() - $1::interval`, slack.ThreadTTL); err != nil {
		return fmt.Errorf("prune slack threads: %w", err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM slack_groups WHERE created_at < now() - $1::interval`, slack.GroupTTL); err != nil {
		return fmt.Errorf("prune slack groups: %w", err)
	}
	return nil
}

// Close closes the pool.
func (s *State) Close() error {
	s.pool.Close()
	return nil
}

// lockKey joins a key's parts for hashtext; PostgreSQL's text holds no
// NUL.
func lockKey(parts ...string) string {
	return clean(strings.Join(parts, "\x1f"))
}

// clean replaces NUL characters, which PostgreSQL's text cannot hold.
func clean(s string) string { return strings.ReplaceAll(s, "\x00", "\uFFFD") }

// hold runs fn in a transaction holding key's advisory lock, on every
// replica: the lock is released at commit or rollback, or with the
// session if this replica dies.
func (s *State) hold(ctx context.Context, key string, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.redact(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, keySpace, key); err != nil {
		return s.redact(err)
	}
	return fn(tx)
}

func (s *State) Thread(ctx context.Context, k slack.ThreadKey) (slack.Thread, bool, error) {
	var t slack.Thread
	err := s.pool.QueryRow(ctx, `SELECT channel_id, ts FROM slack_threads WHERE sink = $1 AND channel = $2 AND subject = $3`,
		clean(k.Sink), clean(k.Channel), clean(k.Subject)).Scan(&t.ChannelID, &t.TS)
	if errors.Is(err, pgx.ErrNoRows) {
		return slack.Thread{}, false, nil
	}
	return t, err == nil, s.redact(err)
}

func (s *State) StartThread(ctx context.Context, k slack.ThreadKey, start func(context.Context) (slack.Thread, error)) (slack.Thread, bool, error) {
	var t slack.Thread
	started := false
	err := s.hold(ctx, lockKey("t", clean(k.Sink), clean(k.Channel), clean(k.Subject)), func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT channel_id, ts FROM slack_threads WHERE sink = $1 AND channel = $2 AND subject = $3`,
			clean(k.Sink), clean(k.Channel), clean(k.Subject)).Scan(&t.ChannelID, &t.TS)
		if err == nil {
			return nil // started meanwhile
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return s.redact(err)
		}
		if t, err = start(ctx); err != nil {
			return err
		}
		started = true
		// Posted: record it even if the attempt's deadline just passed.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := tx.Exec(pctx, `INSERT INTO slack_threads (sink, channel, subject, channel_id, ts) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (sink, channel, subject) DO UPDATE SET channel_id = excluded.channel_id, ts = excluded.ts, created_at = now()`,
			clean(k.Sink), clean(k.Channel), clean(k.Subject), t.ChannelID, t.TS); err != nil {
			return &slack.RecordError{Err: s.redact(err)}
		}
		if err := tx.Commit(pctx); err != nil {
			return &slack.RecordError{Err: s.redact(err)}
		}
		return nil
	})
	if err != nil && !started {
		return slack.Thread{}, false, err
	}
	return t, started, err
}

func (s *State) ForgetThread(ctx context.Context, k slack.ThreadKey, t slack.Thread) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM slack_threads WHERE sink = $1 AND channel = $2 AND subject = $3 AND ts = $4`,
		clean(k.Sink), clean(k.Channel), clean(k.Subject), t.TS)
	return s.redact(err)
}

func (s *State) WithGroup(ctx context.Context, k slack.GroupKey, fn func(context.Context, *slack.GroupState) (*slack.GroupState, error)) error {
	return s.hold(ctx, lockKey("g", clean(k.Sink), clean(k.Channel), clean(k.Key)), func(tx pgx.Tx) error {
		var g *slack.GroupState
		var cur slack.GroupState
		var items []byte
		err := tx.QueryRow(ctx, `SELECT channel_id, ts, started_at, items FROM slack_groups WHERE sink = $1 AND channel = $2 AND key = $3`,
			clean(k.Sink), clean(k.Channel), clean(k.Key)).Scan(&cur.ChannelID, &cur.TS, &cur.StartedAt, &items)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return s.redact(err)
		default:
			if err := json.Unmarshal(items, &cur.Items); err != nil {
				return fmt.Errorf("group items: %w", err)
			}
			g = &cur
		}
		next, err := fn(ctx, g)
		if err != nil || next == nil {
			return err
		}
		b, err := json.Marshal(next.Items)
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := tx.Exec(pctx, `INSERT INTO slack_groups (sink, channel, key, channel_id, ts, started_at, items) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (sink, channel, key) DO UPDATE SET channel_id = excluded.channel_id, ts = excluded.ts,
				started_at = excluded.started_at, items = excluded.items, created_at = now()`,
			clean(k.Sink), clean(k.Channel), clean(k.Key), next.ChannelID, next.TS, next.StartedAt, string(b)); err != nil {
			return &slack.RecordError{Err: s.redact(err)}
		}
		if err := tx.Commit(pctx); err != nil {
			return &slack.RecordError{Err: s.redact(err)}
		}
		return nil
	})
}

// Pacer returns sink's pacer: its channels' slots are rows of
// slack_pace, booked under the row's lock on the database's clock.
func (s *State) Pacer(sink string, n int, per time.Duration) slack.Pacer {
	return &pacer{s: s, sink: sink, n: n, per: per}
}

type pacer struct {
	s    *State
	sink string
	n    int
	per  time.Duration
}

func (p *pacer) Reserve(ctx context.Context, channel string) (slack.Slot, error) {
	var slot slack.Slot
	var mid time.Time // when, on this machine's clock, the database read its clock
	err := pgx.BeginFunc(ctx, p.s.pool, func(tx pgx.Tx) error {
		// A lost booking costs nothing: no need to wait for the disk.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		var slots []time.Time
		var until *time.Time
		var now time.Time
		t0 := time.Now()
		// The upsert locks the row until commit: replicas book in turn.
		err := tx.QueryRow(ctx, `INSERT INTO slack_pace (sink, channel) VALUES ($1, $2)
			ON CONFLICT (sink, channel) DO UPDATE SET sink = excluded.sink
			RETURNING slots, blocked_until, clock_timestamp()`, clean(p.sink), clean(channel)).Scan(&slots, &until, &now)
		if err != nil {
			return err
		}
		mid = t0.Add(time.Since(t0) / 2)
		var u time.Time
		if until != nil {
			u = *until
		}
		at, keep := slack.NextSlot(slots, u, now, p.n, p.per)
		at = at.Truncate(time.Microsecond) // timestamptz's precision: Release finds it
		keep[len(keep)-1] = at
		if _, err := tx.Exec(ctx, `UPDATE slack_pace SET slots = $3 WHERE sink = $1 AND channel = $2`, clean(p.sink), clean(channel), keep); err != nil {
			return err
		}
		slot = slack.Slot{At: at, Wait: at.Sub(now)}
		return nil
	})
	// The wait counts from when the database read its clock, not from
	// the commit: whatever the commit took is already waited.
	slot.Wait -= time.Since(mid)
	return slot, p.s.redact(err)
}

func (p *pacer) Release(ctx context.Context, channel string, slot slack.Slot) error {
	_, err := p.s.pool.Exec(ctx, `UPDATE slack_pace SET slots = array_remove(slots, $3) WHERE sink = $1 AND channel = $2`,
		clean(p.sink), clean(channel), slot.At)
	return p.s.redact(err)
}

func (p *pacer) Block(ctx context.Context, channel string, d time.Duration) error {
	_, err := p.s.pool.Exec(ctx, `INSERT INTO slack_pace (sink, channel, blocked_until) VALUES ($1, $2, clock_timestamp() + $3::interval)
		ON CONFLICT (sink, channel) DO UPDATE SET blocked_until = greatest(slack_pace.blocked_until, excluded.blocked_until)`,
		clean(p.sink), clean(channel), d)
	return p.s.redact(err)
}
