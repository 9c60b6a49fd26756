package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
)

// Delivery is a leased delivery: one attempt to send Event to Sink.
type Delivery struct {
	ID      string
	EventID string
	Sink    string
	Routes  []string
	Subject string
	// Attempt is this attempt's number, from 1 (again from 1 after a
	// replay).
	Attempt   int
	CreatedAt time.Time
	// Since is when the current run of attempts began: CreatedAt, or the
	// last replay. A sink's max_age counts from it.
	Since time.Time
	Event *event.Event

	seq int64 // insertion order
}

// LeaseRequest says which deliveries to lease.
type LeaseRequest struct {
	Sink  string
	Limit int
	// For is how long the lease lasts: no other Lease returns the
	// delivery until then, unless it is completed first.
	For time.Duration
	// Ordered leases only the oldest waiting delivery of each subject,
	// so a subject's deliveries are attempted one at a time, in the
	// order they were accepted. Deliveries without a subject are not
	// held back.
	Ordered bool
}

// headOfSubject restricts a query over deliveries d to those that no
// earlier waiting delivery of the same subject holds back.
const headOfSubject = `(d.subject = '' OR NOT EXISTS (
	SELECT 1 FROM deliveries p
	WHERE p.sink = d.sink AND p.subject = d.subject AND p.state IN ('pending', 'failed') AND p.rowid < d.rowid))`

// Lease claims up to r.Limit due deliveries of r.Sink. A process that
// dies mid-attempt leaves the lease to expire, and the delivery is
// attempted again.
func (s *Store) Lease(ctx context.Context, r LeaseRequest) ([]Delivery, error) {
	now := s.now()
	q := sqlLease(r.Ordered)
	var out []Delivery
	err := s.write(ctx, func(tx *sql.Tx) (int64, error) {
		out = out[:0]
		rows, err := s.query(ctx, tx, q,
			now.Add(r.For).UnixMilli(), now.UnixMilli(), r.Sink, now.UnixMilli(), now.UnixMilli(), r.Limit)
		if err != nil {
			return 0, fmt.Errorf("lease: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				d                 Delivery
				routes            string
				created, replayed int64
			)
			if err := rows.Scan(&d.seq, &d.ID, &d.EventID, &routes, &d.Subject, &d.Attempt, &created, &replayed); err != nil {
				return 0, err
			}
			d.Sink = r.Sink
			d.Routes = strings.Split(routes, ",")
			d.CreatedAt = time.UnixMilli(created)
			d.Since = time.UnixMilli(max(created, replayed))
			out = append(out, d)
		}
		if err := rows.Err(); err != nil {
			return 0, err
		}
		rows.Close()
		for i := range out {
			var body []byte
			if err := s.queryRow(ctx, tx, sqlLoadEvent, out[i].EventID).Scan(&body); err != nil {
				return 0, fmt.Errorf("load event %s: %w", out[i].EventID, err)
			}
			ev, err := decodeEvent(body)
			if err != nil {
				return 0, fmt.Errorf("load event %s: %w", out[i].EventID, err)
			}
			out[i].Event = ev
		}
		return 0, nil
	})
	if err != nil {
		return nil, err
	}
	sortDeliveries(out)
	return out, nil
}

// Outcome is the result of an attempt.
type Outcome struct {
	State string // StateDelivered, StateFailed (retry at NextAt) or StateDead
	// NextAt is when a failed delivery is due again.
	NextAt time.Time
	// Error and Status describe the last failure (Status is the HTTP
	// status, 0 if there was none).
	Error  string
	Status int
}

// Complete records an attempt's outcome and ends its lease.
func (s *Store) Complete(ctx context.Context, id string, o Outcome) error {
	now := s.now().UnixMilli()
	var q string
	args := []any{}
	switch o.State {
	case StateDelivered:
		q = sqlDelivered
		args = append(args, now, o.Status, id)
	case StateFailed:
		q = sqlFailed
		args = append(args, o.NextAt.UnixMilli(), now, truncate(o.Error, 1000), o.Status, id)
	case StateDead:
		q = sqlDead
		args = append(args, now, truncate(o.Error, 1000), o.Status, id)
	default:
		return fmt.Errorf("complete %s: invalid state %q", id, o.State)
	}
	return s.write(ctx, func(tx *sql.Tx) (int64, error) {
		r, err := s.exec(ctx, tx, q, args...)
		if err != nil {
			return 0, err
		}
		if o.State == StateFailed {
			return 0, nil
		}
		n, err := r.RowsAffected()
		return -n, err
	})
}

// ReleaseLeases ends every lease, so deliveries interrupted by a crash
// are attempted at once rather than when their lease would expire. Call
// it only while no other process is delivering from this store.
func (s *Store) ReleaseLeases(ctx context.Context) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) (int64, error) {
		r, err := tx.ExecContext(ctx, `UPDATE deliveries SET lease_until = 0 WHERE lease_until > 0 AND state IN ('pending', 'failed')`)
		if err != nil {
			return 0, err
		}
		n, err = r.RowsAffected()
		return 0, err
	})
	return n, err
}

// NextDue returns when the earliest waiting delivery of sink that no
// attempt holds is due, or false if there is none. With ordered, only
// deliveries at the head of their subject count: the others wait for
// it, not for a time. Leased deliveries are left out (their attempt's
// end wakes the worker), so the answer comes from the deliveries_due
// index in next_at order instead of a scan of every waiting delivery.
func (s *Store) NextDue(ctx context.Context, sink string, ordered bool) (time.Time, bool, error) {
	q := `SELECT d.next_at FROM deliveries d WHERE d.sink = ? AND d.state IN ('pending', 'failed') AND d.lease_until <= ?`
	if ordered {
		q += " AND " + headOfSubject
	}
	q += ` ORDER BY d.next_at LIMIT 1`
	var next int64
	err := s.rdb.QueryRowContext(ctx, q, sink, s.now().UnixMilli()).Scan(&next)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due: %w", err)
	}
	return time.UnixMilli(next), true, nil
}

// sqlLease leases due deliveries of a sink; ordered, only the head of
// each subject.
func sqlLease(ordered bool) string {
	where := `d.sink = ? AND d.state IN ('pending', 'failed') AND d.next_at <= ? AND d.lease_until <= ?`
	if ordered {
		where += " AND " + headOfSubject
	}
	return `UPDATE deliveries
		SET lease_until = ?, attempts = attempts + 1, updated_at = ?
		WHERE id IN (SELECT d.id FROM deliveries d WHERE ` + where + ` ORDER BY d.next_at, d.rowid LIMIT ?)
		RETURNING rowid, id, event_id, routes, subject, attempts, created_at, replayed_at`
}

const (
	sqlLoadEvent = `SELECT event FROM events WHERE id = ?`
	// A completion applies only to a waiting delivery: completing twice
	// changes nothing the second time.
	sqlDelivered = `UPDATE deliveries SET state = 'delivered', lease_until = 0, updated_at = ?, last_status = ?
		WHERE id = ? AND state IN ('pending', 'failed')`
	sqlFailed = `UPDATE deliveries SET state = 'failed', lease_until = 0, next_at = ?, updated_at = ?, last_error = ?, last_status = ?
		WHERE id = ? AND state IN ('pending', 'failed')`
	sqlDead = `UPDATE deliveries SET state = 'dead', lease_until = 0, updated_at = ?, last_error = ?, last_status = ?
		WHERE id = ? AND state IN ('pending', 'failed')`
)
