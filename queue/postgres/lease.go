package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/queue"
)

// notLeased selects the deliveries d that no lease holds at $2 (now).
const notLeased = `(d.lease_until IS NULL OR d.lease_until <= $2)`

// headOfSubject restricts deliveries d to those no other delivery of
// their subject holds back: an earlier one still waiting, or one an
// attempt holds (at $2, now) anywhere in the cluster.
const headOfSubject = `(d.subject = '' OR NOT EXISTS (
	SELECT 1 FROM queue_deliveries p
	WHERE p.sink = d.sink AND p.subject = d.subject AND p.state IN ('pending', 'failed')
	AND (p.seq < d.seq OR p.lease_until > $2)))`

// sqlLease claims up to $3 due deliveries of sink $1 at $2 under new
// tokens until $4, and returns them with their events.
func sqlLease(ordered bool) string {
	head := ""
	if ordered {
		head = " AND " + headOfSubject
	}
	return `WITH due AS (
	SELECT d.id FROM queue_deliveries d
	WHERE d.sink = $1 AND d.state IN ('pending', 'failed') AND d.next_at <= $2 AND ` + notLeased + head + `
	ORDER BY d.next_at, d.seq
	LIMIT $3
	FOR UPDATE OF d SKIP LOCKED
)
UPDATE queue_deliveries d SET token = nextval('queue_lease_token'), lease_until = $4, leased_by = $5
FROM due, queue_events e
WHERE d.id = due.id AND e.id = d.event_id
RETURNING d.seq, d.id, d.event_id, d.routes, d.subject, d.attempts, d.created_at, d.replayed_at, d.last_error, d.replays, d.token,
	` + eventColumns("e")
}

// Lease implements queue.Store. A sink's leases are taken one
// transaction at a time across the cluster (an advisory lock on the
// sink), so that each sees the leases taken before it: the sink's
// concurrency and rate, and one delivery in flight per subject of an
// ordered sink, hold for every replica together.
func (s *Store) Lease(ctx context.Context, r queue.LeaseRequest) ([]queue.Delivery, error) {
	if err := s.errClosed(); err != nil {
		return nil, err
	}
	if r.Limit <= 0 {
		return nil, nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	now := ms(s.now())
	var out []queue.Delivery
	var seqs []int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out, seqs = out[:0], seqs[:0]
		limit := r.Limit
		if r.Ordered || r.Concurrency > 0 || r.Every > 0 {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, leaseLockSpace, r.Sink); err != nil {
				return fmt.Errorf("lock sink: %w", err)
			}
		}
		if r.Every > 0 {
			var next time.Time
			err := tx.QueryRow(ctx, `SELECT next_start FROM queue_sinks WHERE sink = $1`, r.Sink).Scan(&next)
			if err != nil && !isNoRows(err) {
				return fmt.Errorf("read sink rate: %w", err)
			}
			if now.Before(next) {
				return nil
			}
			limit = 1
		}
		if r.Concurrency > 0 {
			var held int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM queue_deliveries d WHERE d.sink = $1 AND d.lease_until > $2`,
				r.Sink, now).Scan(&held); err != nil {
				return fmt.Errorf("count leases: %w", err)
			}
			limit = min(limit, r.Concurrency-held)
		}
		if limit <= 0 {
			return nil
		}
		rows, _ := tx.Query(ctx, sqlLease(r.Ordered), r.Sink, now, limit, now.Add(r.For), s.replica)
		for rows.Next() {
			var (
				d        queue.Delivery
				seq      int64
				routes   string
				replayed *time.Time
			)
			dest := []any{&seq, &d.ID, &d.EventID, &routes, &d.Subject, &d.Attempt, &d.CreatedAt, &replayed, &d.LastError, &d.Replays, &d.Token}
			ev, evDest := eventScanner()
			if err := rows.Scan(append(dest, evDest...)...); err != nil {
				rows.Close()
				return err
			}
			var err error
			if d.Event, err = ev(); err != nil {
				rows.Close()
				return err
			}
			d.Sink = r.Sink
			d.Attempt++
			d.Routes = strings.Split(routes, ",")
			d.Since = d.CreatedAt
			if replayed != nil && replayed.After(d.Since) {
				d.Since = *replayed
			}
			out = append(out, d)
			seqs = append(seqs, seq)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if r.Every > 0 && len(out) > 0 {
			_, err := tx.Exec(ctx, `INSERT INTO queue_sinks (sink, next_start) VALUES ($1, $2)
				ON CONFLICT (sink) DO UPDATE SET next_start = excluded.next_start`, r.Sink, now.Add(time.Duration(len(out))*r.Every))
			if err != nil {
				return fmt.Errorf("record sink rate: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("lease: %w", err)
		s.noteFault(err)
		return nil, err
	}
	s.noteFault(nil)
	// As accepted: the rows come back in no particular order.
	order := make([]int, len(out))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(seqs[a], seqs[b]) })
	sorted := make([]queue.Delivery, len(out))
	for i, j := range order {
		sorted[i] = out[j]
	}
	return sorted, nil
}

// Renew implements queue.Store.
func (s *Store) Renew(ctx context.Context, d *queue.Delivery, extend time.Duration) error {
	if err := s.errClosed(); err != nil {
		return err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	ct, err := s.pool.Exec(ctx, `UPDATE queue_deliveries SET lease_until = $1 WHERE id = $2 AND token = $3 AND lease_until IS NOT NULL`,
		ms(s.now().Add(extend)), d.ID, d.Token)
	if err != nil {
		err = fmt.Errorf("renew %s: %w", d.ID, err)
		s.noteFault(err)
		return err
	}
	s.noteFault(nil)
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("renew %s: %w", d.ID, queue.ErrLeaseLost)
	}
	return nil
}

// Complete implements queue.Store. The outcome applies only to the run
// of attempts the lease began in: after a replay during the attempt,
// the attempt is recorded in the history and the delivery stays due.
// It is grouped with concurrent writes.
func (s *Store) Complete(ctx context.Context, d *queue.Delivery, o queue.Outcome) error {
	switch o.State {
	case queue.StateDelivered, queue.StateFailed, queue.StateDead:
	default:
		return fmt.Errorf("complete %s: invalid state %q", d.ID, o.State)
	}
	c := &completeWrite{d: d, state: o.State}
	now := ms(s.now())
	next := ms(o.NextAt) // read only for a failed attempt
	errText := queue.Truncate(o.Error, queue.MaxError)
	if o.State == queue.StateDelivered {
		errText = ""
	}
	// The history keeps every attempt but a first attempt that
	// delivered: that one is the delivery row itself (Attempts).
	history := o.State != queue.StateDelivered || d.Attempt > 1
	c.args = []any{d.ID, d.Token, d.Replays, o.State, next, now, errText, o.Status, o.Took.Milliseconds(), d.Attempt, history}
	if err := s.submit(ctx, c); err != nil {
		return fmt.Errorf("complete %s: %w", d.ID, err)
	}
	if !c.found {
		return fmt.Errorf("complete %s: %w", d.ID, queue.ErrLeaseLost)
	}
	return nil
}

// sqlComplete records an outcome and ends the lease holding token $2;
// the attempt goes to the history when $11 says so, or when a replay
// began a new run since the lease ($3, the run it was leased in). A
// delivered delivery keeps its last error: it says what the retries were
// about.
const sqlComplete = `WITH d AS (
	UPDATE queue_deliveries SET lease_until = NULL, leased_by = '',
		state       = CASE WHEN replays = $3 THEN $4 ELSE state END,
		attempts    = CASE WHEN replays = $3 THEN attempts + 1 ELSE attempts END,
		next_at     = CASE WHEN replays = $3 AND $4 = 'failed' THEN $5 ELSE next_at END,
		updated_at  = CASE WHEN replays = $3 THEN $6 ELSE updated_at END,
		last_error  = CASE WHEN replays = $3 AND $4 <> 'delivered' THEN $7 ELSE last_error END,
		last_status = CASE WHEN replays = $3 THEN $8 ELSE last_status END,
		took_ms     = CASE WHEN replays = $3 THEN $9 ELSE took_ms END
	WHERE id = $1 AND token = $2 AND lease_until IS NOT NULL
	RETURNING id, sink, replays = $3 AS applied
), a AS (
	INSERT INTO queue_attempts (delivery_id, replays, attempt, at, took_ms, state, status, error)
	SELECT d.id, $3, $10, $6, $9, $4, $8, $7 FROM d WHERE $11 OR NOT d.applied
	ON CONFLICT (delivery_id, replays, attempt) DO UPDATE
	SET at = excluded.at, took_ms = excluded.took_ms, state = excluded.state, status = excluded.status, error = excluded.error
)
SELECT sink, applied FROM d`

// completeWrite is a Complete's part of a batch.
type completeWrite struct {
	d     *queue.Delivery
	state string
	args  []any

	found   bool
	applied bool
	sink    string
}

func (c *completeWrite) key() string { return "d" + c.d.ID }

func (c *completeWrite) queue(b *pgx.Batch) {
	c.found, c.applied = false, false
	b.Queue(sqlComplete, c.args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&c.sink, &c.applied); err != nil {
				return err
			}
			c.found = true
		}
		return rows.Err()
	})
}

func (c *completeWrite) finish(context.Context, pgx.Tx) ([]sinkDelta, error) {
	if !c.applied || c.state == queue.StateFailed {
		return nil, nil
	}
	return []sinkDelta{{c.sink, -1}}, nil
}

// sqlNextDue selects when the earliest waiting delivery of sink $1 that
// no lease holds at $2 is due. ORDER BY … LIMIT 1 reads the due index
// from its head and stops at the first such delivery, whatever the
// table's statistics. min(next_at) did the same only once the table had
// been analyzed: before autovacuum first came by (a new database, a
// table that grew fast), its plan read every waiting delivery of the
// sink, 8–32 ms a call with 15,000–30,000 waiting in the load benchmark.
func sqlNextDue(ordered bool) string {
	q := `SELECT d.next_at FROM queue_deliveries d WHERE d.sink = $1 AND d.state IN ('pending', 'failed') AND ` + notLeased
	if ordered {
		q += " AND " + headOfSubject
	}
	return q + ` ORDER BY d.next_at LIMIT 1`
}

// NextDue implements queue.Store. Leased deliveries are left out (their
// attempt's end wakes the worker).
func (s *Store) NextDue(ctx context.Context, sink string, ordered bool) (time.Time, bool, error) {
	var next time.Time
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.pool.QueryRow(ctx, sqlNextDue(ordered), sink, ms(s.now())).Scan(&next); err != nil {
		if isNoRows(err) {
			return time.Time{}, false, nil
		}
		return time.Time{}, false, fmt.Errorf("next due: %w", err)
	}
	return next, true, nil
}

// eventColumns are the columns of an event row a (aliased) that
// eventScanner reads.
func eventColumns(a string) string {
	cols := []string{"id", "source", "event_type", "subject", "occurred", "received", "agent_id", "agent_name", "external_id", "data", "exact"}
	for i, c := range cols {
		cols[i] = a + "." + c
	}
	return strings.Join(cols, ", ")
}

// eventScanner returns the destinations to scan eventColumns into, and
// a function that builds the event from them.
func eventScanner() (func() (*event.Event, error), []any) {
	var (
		ev                 event.Event
		occurred, received string
		data, exact        []byte
	)
	dest := []any{&ev.ID, &ev.Source, &ev.EventType, &ev.Subject, &occurred, &received, &ev.AgentID, &ev.AgentName, &ev.ExternalID, &data, &exact}
	return func() (*event.Event, error) {
		if exact != nil {
			var e event.Event
			if err := decodeEvent(exact, &e); err != nil {
				return nil, fmt.Errorf("event %s: %w", ev.ID, err)
			}
			return &e, nil
		}
		ev.Data = data
		var err error
		if ev.Timestamp, err = queue.ParseTime(occurred); err != nil {
			return nil, fmt.Errorf("event %s: %w", ev.ID, err)
		}
		if ev.ReceivedAt, err = queue.ParseTime(received); err != nil {
			return nil, fmt.Errorf("event %s: %w", ev.ID, err)
		}
		return &ev, nil
	}, dest
}
