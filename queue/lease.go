package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
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
	// LastError is the previous attempt's error, as recorded ("" for a
	// first attempt).
	LastError string
	Event     *event.Event

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

// Leases live in memory: only one gateway delivers from a store (the
// storage directory is locked), so a lease needs no write. Lease reads
// due deliveries on a reader connection and the writer only records
// outcomes. A crash forgets every lease, and the deliveries it held are
// due again at the next start. The price: an attempt cut short by a
// crash is not counted in the delivery's attempts.
type leases struct {
	// mu orders reads of due deliveries with the end of leases: a lease
	// ends (under mu) only after its outcome is committed, and Lease
	// reads and marks (under mu), so it never sees a delivery as
	// waiting whose attempt has just succeeded.
	mu   sync.Mutex
	held map[string]map[string]lease // sink → delivery id → lease
}

type lease struct {
	until time.Time
	seq   int64 // the delivery's rowid
}

// notHeld is a condition leaving out the deliveries in held. Rowids
// are the store's own integers, so they are written into the SQL: the
// condition is checked on the index entry, before reading the row.
func notHeld(held map[string]lease) string {
	if len(held) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" AND d.rowid NOT IN (")
	first := true
	for _, l := range held {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(strconv.FormatInt(l.seq, 10))
	}
	b.WriteByte(')')
	return b.String()
}

// heldBy returns the deliveries of sink under a lease at now, dropping
// expired ones. Call with mu held.
func (l *leases) heldBy(sink string, now time.Time) map[string]lease {
	h := l.held[sink]
	if h == nil {
		h = map[string]lease{}
		l.held[sink] = h
	}
	for id, l := range h {
		if !now.Before(l.until) {
			delete(h, id)
		}
	}
	return h
}

// all returns the ids of every delivery under a lease at now.
func (l *leases) all(now time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for sink := range l.held {
		for id := range l.heldBy(sink, now) {
			ids = append(ids, id)
		}
	}
	return ids
}

func (l *leases) release(sink, id string) {
	l.mu.Lock()
	delete(l.held[sink], id)
	l.mu.Unlock()
}

// Lease claims up to r.Limit due deliveries of r.Sink. A lease that
// outlives r.For (an attempt that never completes) expires, and the
// delivery is attempted again.
func (s *Store) Lease(ctx context.Context, r LeaseRequest) ([]Delivery, error) {
	s.leases.mu.Lock()
	now := s.now()
	held := s.leases.heldBy(r.Sink, now)
	rows, err := s.rdb.QueryContext(ctx, sqlDue(r.Ordered, notHeld(held)), r.Sink, now.UnixMilli(), r.Limit)
	if err != nil {
		s.leases.mu.Unlock()
		return nil, fmt.Errorf("lease: %w", err)
	}
	var out []Delivery
	for rows.Next() {
		var (
			d                 Delivery
			routes            string
			created, replayed int64
		)
		if err := rows.Scan(&d.seq, &d.ID, &d.EventID, &routes, &d.Subject, &d.Attempt, &created, &replayed, &d.LastError); err != nil {
			rows.Close()
			s.leases.mu.Unlock()
			return nil, fmt.Errorf("lease: %w", err)
		}
		d.Sink = r.Sink
		d.Attempt++
		d.Routes = strings.Split(routes, ",")
		d.CreatedAt = time.UnixMilli(created)
		d.Since = time.UnixMilli(max(created, replayed))
		out = append(out, d)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		s.leases.mu.Unlock()
		return nil, fmt.Errorf("lease: %w", err)
	}
	until := now.Add(r.For)
	for _, d := range out {
		held[d.ID] = lease{until: until, seq: d.seq}
	}
	s.leases.mu.Unlock()

	if err := s.loadEvents(ctx, out); err != nil {
		for _, d := range out {
			s.leases.release(r.Sink, d.ID)
		}
		return nil, err
	}
	sortDeliveries(out)
	return out, nil
}

// loadEvents fills in each delivery's event: from the cache of recently
// accepted events, else from the table.
func (s *Store) loadEvents(ctx context.Context, ds []Delivery) error {
	var missing []any
	for i := range ds {
		if ev := s.events.get(ds[i].EventID); ev != nil {
			ds[i].Event = ev
		} else {
			missing = append(missing, ds[i].EventID)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	q := `SELECT ` + storedEventColumns + ` FROM events WHERE id IN (?` + strings.Repeat(", ?", len(missing)-1) + `)`
	rows, err := s.rdb.QueryContext(ctx, q, missing...)
	if err != nil {
		return fmt.Errorf("load events: %w", err)
	}
	defer rows.Close()
	loaded := map[string]*event.Event{}
	for rows.Next() {
		ev, err := scanStoredEvent(rows)
		if err != nil {
			return fmt.Errorf("load events: %w", err)
		}
		loaded[ev.ID] = ev
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load events: %w", err)
	}
	for i := range ds {
		if ds[i].Event != nil {
			continue
		}
		// An event has one delivery per sink, so one per lease: each
		// delivery has its own event.
		if ds[i].Event = loaded[ds[i].EventID]; ds[i].Event == nil {
			return fmt.Errorf("load event %s: not found", ds[i].EventID)
		}
	}
	return nil
}

// SameError reports whether err is the error recorded as last, as
// Complete records it (long errors are cut).
func SameError(last, err string) bool { return last != "" && last == truncate(err, maxError) }

// maxError bounds a recorded error.
const maxError = 1000

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
func (s *Store) Complete(ctx context.Context, d *Delivery, o Outcome) error {
	id := d.ID
	// The lease ends once the outcome is committed, or failed to be:
	// then the delivery is due again.
	defer s.leases.release(d.Sink, id)
	now := s.now().UnixMilli()
	var q string
	args := []any{}
	switch o.State {
	case StateDelivered:
		q = sqlDelivered
		args = append(args, now, o.Status, id)
	case StateFailed:
		q = sqlFailed
		args = append(args, o.NextAt.UnixMilli(), now, truncate(o.Error, maxError), o.Status, id)
	case StateDead:
		q = sqlDead
		args = append(args, now, truncate(o.Error, maxError), o.Status, id)
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

// NextDue returns when the earliest waiting delivery of sink that no
// attempt holds is due, or false if there is none. With ordered, only
// deliveries at the head of their subject count: the others wait for
// it, not for a time. Leased deliveries are left out (their attempt's
// end wakes the worker); the answer comes from the deliveries_due index
// in next_at order.
func (s *Store) NextDue(ctx context.Context, sink string, ordered bool) (time.Time, bool, error) {
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	q := `SELECT d.next_at FROM deliveries d WHERE d.sink = ? AND d.state IN ('pending', 'failed')` +
		notHeld(s.leases.heldBy(sink, s.now()))
	if ordered {
		q += " AND " + headOfSubject
	}
	q += ` ORDER BY d.next_at LIMIT 1`
	var next int64
	err := s.rdb.QueryRowContext(ctx, q, sink).Scan(&next)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due: %w", err)
	}
	return time.UnixMilli(next), true, nil
}

// sqlDue selects due deliveries of a sink, in the order to attempt
// them; ordered, only the head of each subject.
func sqlDue(ordered bool, notHeld string) string {
	where := `d.sink = ? AND d.state IN ('pending', 'failed') AND d.next_at <= ?` + notHeld
	if ordered {
		where += " AND " + headOfSubject
	}
	return `SELECT d.rowid, d.id, d.event_id, d.routes, d.subject, d.attempts, d.created_at, d.replayed_at, d.last_error
		FROM deliveries d WHERE ` + where + ` ORDER BY d.next_at, d.rowid LIMIT ?`
}

// Each completion counts the attempt.
const (
	// A completion applies only to a waiting delivery: completing twice
	// changes nothing the second time.
	sqlDelivered = `UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, updated_at = ?, last_status = ?
		WHERE id = ? AND state IN ('pending', 'failed')`
	sqlFailed = `UPDATE deliveries SET state = 'failed', attempts = attempts + 1, next_at = ?, updated_at = ?, last_error = ?, last_status = ?
		WHERE id = ? AND state IN ('pending', 'failed')`
	sqlDead = `UPDATE deliveries SET state = 'dead', attempts = attempts + 1, updated_at = ?, last_error = ?, last_status = ?
		WHERE id = ? AND state IN ('pending', 'failed')`
)
