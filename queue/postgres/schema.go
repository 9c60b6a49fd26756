package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migrations[i] moves the schema from version i to i+1, in one
// transaction. Append only: a released migration never changes, and a
// new one only adds (replicas of the previous version keep running on
// the migrated schema while the others are upgraded one at a time).
//
// Every name starts with queue_, so that the queue can share a database
// with the archive and with Slack's shared state.
var migrations = []string{
	`
CREATE TABLE queue_events (
	seq         bigint GENERATED ALWAYS AS IDENTITY,  -- the order events were stored in
	id          text PRIMARY KEY,
	source      text NOT NULL,
	dedup_key   text NOT NULL,
	event_type  text NOT NULL,
	subject     text NOT NULL,
	received_at timestamptz NOT NULL,                 -- to the millisecond, for filters and pruning
	occurred    text NOT NULL,                        -- the event's timestamp, RFC 3339 as parsed
	received    text NOT NULL,                        -- received_at, RFC 3339 to the nanosecond
	agent_id    text NOT NULL,
	agent_name  text NOT NULL,
	external_id text NOT NULL,                        -- the id the platform gave the event, if any
	data        bytea NOT NULL,                       -- the data object as the sender wrote it
	-- the whole event as JSON when a field could not be stored as text
	-- (a NUL byte, invalid UTF-8): the columns then hold a cleaned copy
	exact       bytea,
	-- what the console's text search reads: the data's title and summary
	search_text text NOT NULL DEFAULT '',
	-- the request the event came in: headers without secrets, body as received
	request_header text NOT NULL DEFAULT '',
	request_body   bytea,
	UNIQUE (source, dedup_key)
);
CREATE INDEX queue_events_source_received ON queue_events (source, received_at);
CREATE INDEX queue_events_received ON queue_events (received_at, seq);
CREATE INDEX queue_events_subject ON queue_events (subject, received_at, seq) WHERE subject <> '';

CREATE SEQUENCE queue_lease_token;

CREATE TABLE queue_deliveries (
	seq         bigint GENERATED ALWAYS AS IDENTITY,  -- the order deliveries were accepted in
	id          text PRIMARY KEY,
	event_id    text NOT NULL REFERENCES queue_events (id) ON DELETE CASCADE,
	sink        text NOT NULL,
	routes      text NOT NULL,                        -- comma-separated route names
	subject     text NOT NULL,
	state       text NOT NULL CHECK (state IN ('pending', 'failed', 'delivered', 'dead')),
	attempts    integer NOT NULL DEFAULT 0,
	replays     integer NOT NULL DEFAULT 0,
	created_at  timestamptz NOT NULL,
	next_at     timestamptz NOT NULL,                 -- due time of the next attempt
	updated_at  timestamptz NOT NULL,
	replayed_at timestamptz,
	last_error  text NOT NULL DEFAULT '',
	last_status integer NOT NULL DEFAULT 0,
	took_ms     bigint NOT NULL DEFAULT 0,
	-- the lease: the fencing token of the last attempt, and while an
	-- attempt holds the delivery, until when (NULL: no attempt holds it)
	token       bigint NOT NULL DEFAULT 0,
	lease_until timestamptz,
	leased_by   text NOT NULL DEFAULT '',             -- the replica holding the lease
	UNIQUE (event_id, sink)
);
CREATE INDEX queue_deliveries_due ON queue_deliveries (sink, next_at, seq) WHERE state IN ('pending', 'failed');
CREATE INDEX queue_deliveries_subject ON queue_deliveries (sink, subject, seq) WHERE state IN ('pending', 'failed');
CREATE INDEX queue_deliveries_leased ON queue_deliveries (sink, lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX queue_deliveries_dead ON queue_deliveries (updated_at) WHERE state = 'dead';

CREATE TABLE queue_attempts (
	delivery_id text NOT NULL REFERENCES queue_deliveries (id) ON DELETE CASCADE,
	replays     integer NOT NULL,                     -- the run: how many replays came before it
	attempt     integer NOT NULL,                     -- from 1 in each run
	at          timestamptz NOT NULL,                 -- when it ended
	took_ms     bigint NOT NULL,
	state       text NOT NULL,                        -- its outcome: delivered, failed or dead
	status      integer NOT NULL,
	error       text NOT NULL,
	PRIMARY KEY (delivery_id, replays, attempt)
);

-- a sink's rate across the cluster: no attempt starts before next_start
CREATE TABLE queue_sinks (
	sink        text PRIMARY KEY,
	next_start  timestamptz NOT NULL
);

-- the replicas serving, each with its heartbeat
CREATE TABLE queue_replicas (
	name          text PRIMARY KEY,
	instance      text NOT NULL,                      -- the process: tells two replicas of one name apart
	version       text NOT NULL,
	config_digest text NOT NULL,                      -- SHA-256 of its configuration file
	started_at    timestamptz NOT NULL,
	heartbeat_at  timestamptz NOT NULL
);

-- operators' bulk actions
CREATE TABLE queue_audit (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at          timestamptz NOT NULL,
	actor       text NOT NULL,                        -- the token's role, never the token
	action      text NOT NULL,
	filter      text NOT NULL,
	matched     bigint NOT NULL,
	done        bigint NOT NULL,
	note        text NOT NULL
);

-- written while writes fail, to learn when they work again
CREATE TABLE queue_probe (
	origin      text PRIMARY KEY,
	at          timestamptz NOT NULL
);
`,
}

// migrateTimeout bounds a start's migration, and its wait for another
// replica's.
const migrateTimeout = 10 * time.Minute

// SchemaVersion is the schema this build writes.
var SchemaVersion = len(migrations)

// Advisory lock keys (the first of two int4 keys: a lock space of
// switchyard's own; the second names the lock).
const (
	lockSpace   = 0x5357 // "SW"
	lockMigrate = 1
	lockPrune   = 2
	// Lease locks take hashtext(sink) in lockSpace+1.
	leaseLockSpace = lockSpace + 1
)

// migrate creates or migrates the schema under a session advisory lock,
// so that replicas starting together apply each migration once. A
// database migrated by a newer switchyard is refused: this build does
// not know what the newer schema means. A client only checks the
// version.
func (s *Store) migrate(ctx context.Context, client bool) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres %s: %w", s.describe, err)
	}
	defer conn.Release()
	if !client {
		// A migration, and the wait for another replica's, may outlast
		// the statement timeout meant for the queue's own statements.
		if _, err := conn.Exec(ctx, fmt.Sprintf(`SET statement_timeout = %d`, migrateTimeout.Milliseconds())); err != nil {
			return fmt.Errorf("postgres %s: %w", s.describe, err)
		}
		defer conn.Exec(context.WithoutCancel(ctx), `RESET statement_timeout`)
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, lockSpace, lockMigrate); err != nil {
			return fmt.Errorf("postgres %s: lock the schema for migration: %w", s.describe, err)
		}
		defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, $2)`, lockSpace, lockMigrate)
		if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS queue_schema (version integer NOT NULL)`); err != nil {
			return fmt.Errorf("postgres %s: create the schema table: %w", s.describe, err)
		}
	}
	version, err := schemaVersion(ctx, conn.Conn())
	if err != nil {
		return fmt.Errorf("postgres %s: read the schema version: %w", s.describe, err)
	}
	switch {
	case version > len(migrations):
		return fmt.Errorf("postgres %s: the queue schema is version %d, newer than this switchyard's (%d): upgrade switchyard", s.describe, version, len(migrations))
	case client && version == 0:
		return fmt.Errorf("postgres %s: no switchyard queue in this database: start switchyard serve on it first", s.describe)
	case client && version < len(migrations):
		return fmt.Errorf("postgres %s: the queue schema is version %d, older than this switchyard's (%d): start an upgraded switchyard serve on it first", s.describe, version, len(migrations))
	case client:
		return nil
	}
	for v := version; v < len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM queue_schema; INSERT INTO queue_schema (version) VALUES (`+fmt.Sprint(v+1)+`)`)
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres %s: migrate the queue schema to version %d: %w", s.describe, v+1, err)
		}
		s.log.Info("queue schema migrated", "db", s.describe, "version", v+1)
	}
	return nil
}

func schemaVersion(ctx context.Context, conn *pgx.Conn) (int, error) {
	var v int
	err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM queue_schema`).Scan(&v)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table: never migrated
		return 0, nil
	}
	return v, err
}
