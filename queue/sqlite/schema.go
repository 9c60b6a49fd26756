package sqlite

// migrations[i] moves the schema from user_version i to i+1. Append
// only: a released migration never changes.
var migrations = []string{
	`
CREATE TABLE events (
	id          TEXT PRIMARY KEY,
	source      TEXT NOT NULL,
	dedup_key   TEXT NOT NULL,
	event_type  TEXT NOT NULL,
	subject     TEXT NOT NULL DEFAULT '',
	received_at INTEGER NOT NULL,           -- Unix milliseconds
	event       BLOB NOT NULL,              -- the normalized event as JSON
	UNIQUE (source, dedup_key)
);
CREATE INDEX events_received_at ON events (received_at);

CREATE TABLE deliveries (
	id          TEXT PRIMARY KEY,
	event_id    TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
	sink        TEXT NOT NULL,
	routes      TEXT NOT NULL,              -- comma-separated route names
	subject     TEXT NOT NULL DEFAULT '',
	state       TEXT NOT NULL CHECK (state IN ('pending', 'failed', 'delivered', 'dead')),
	attempts    INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL,
	next_at     INTEGER NOT NULL,           -- due time of the next attempt
	lease_until INTEGER NOT NULL DEFAULT 0, -- an attempt is running until then
	updated_at  INTEGER NOT NULL,
	last_error  TEXT NOT NULL DEFAULT '',
	last_status INTEGER NOT NULL DEFAULT 0,
	UNIQUE (event_id, sink)
);
CREATE INDEX deliveries_due ON deliveries (sink, next_at) WHERE state IN ('pending', 'failed');
CREATE INDEX deliveries_state ON deliveries (state, updated_at);
`,
	// v2: replay (a replayed delivery's max_age counts from its replay),
	// ordered delivery per subject (the waiting head of each subject),
	// an index on dead letters only (one on every state was updated by
	// every attempt for the sake of rare listings), and events by source
	// and age, for pruning each source by its own dedup window.
	`
ALTER TABLE deliveries ADD COLUMN replayed_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN replays INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_subject ON deliveries (sink, subject) WHERE state IN ('pending', 'failed');
DROP INDEX deliveries_state;
CREATE INDEX deliveries_dead ON deliveries (updated_at) WHERE state = 'dead';
DROP INDEX events_received_at;
CREATE INDEX events_source_received ON events (source, received_at);
`,
	// v3: an event's fields in columns, its data as sent, so that
	// storing and loading it encodes and parses no JSON. (Since v3,
	// leases live in memory: deliveries.lease_until is no longer read.) Rows from v2
	// keep the whole event as JSON in event (and data NULL); new rows
	// leave event empty.
	`
ALTER TABLE events ADD COLUMN occurred_at TEXT NOT NULL DEFAULT '';  -- the event's timestamp, RFC 3339
ALTER TABLE events ADD COLUMN received TEXT NOT NULL DEFAULT '';     -- received_at, RFC 3339 to the nanosecond
ALTER TABLE events ADD COLUMN agent_id TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN agent_name TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN data BLOB;
`,
	// v4: the history of a delivery's attempts (all but a first attempt
	// that delivered, which the delivery row records, with how long it
	// took), the id the platform gave an event, and a row the store
	// writes to find out whether writes work again after a fault.
	`
ALTER TABLE deliveries ADD COLUMN took_ms INTEGER NOT NULL DEFAULT 0;
CREATE TABLE attempts (
	delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
	replays     INTEGER NOT NULL,           -- the run: how many replays came before it
	attempt     INTEGER NOT NULL,           -- from 1 in each run
	at          INTEGER NOT NULL,           -- when it ended, Unix milliseconds
	took_ms     INTEGER NOT NULL,
	state       TEXT NOT NULL,              -- its outcome: delivered, failed or dead
	status      INTEGER NOT NULL,
	error       TEXT NOT NULL,
	PRIMARY KEY (delivery_id, replays, attempt)
) WITHOUT ROWID;
ALTER TABLE events ADD COLUMN external_id TEXT NOT NULL DEFAULT '';
-- written while writes fail, to learn when they work again
CREATE TABLE health_probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);
`,
	// v5: what the console reads. The request an event came in (body
	// as received, headers without secrets), written in the same insert;
	// when the event's data is a part of the body, as the sender wrote
	// it, it is not stored again: data is empty and data_off, data_len
	// say where it is in request_body. Events newest first and by
	// subject without a scan; the audit log of operators' bulk actions.
	`
ALTER TABLE events ADD COLUMN request_header TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN request_body BLOB;
ALTER TABLE events ADD COLUMN data_off INTEGER NOT NULL DEFAULT -1;
ALTER TABLE events ADD COLUMN data_len INTEGER NOT NULL DEFAULT 0;
CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_subject ON events (subject, received_at) WHERE subject != '';
CREATE TABLE audit (
	id      INTEGER PRIMARY KEY,
	at      INTEGER NOT NULL,               -- Unix milliseconds
	actor   TEXT NOT NULL,                  -- the token's role, never the token
	action  TEXT NOT NULL,
	filter  TEXT NOT NULL,
	matched INTEGER NOT NULL,
	done    INTEGER NOT NULL,
	note    TEXT NOT NULL
);
`,
}
