package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/queue"
)

// headOfSubject restricts a query over deliveries d to those that no
// earlier waiting delivery of the same subject holds back.
const headOfSubject = `(d.subject = '' OR NOT EXISTS (
	SELECT 1 FROM deliveries p
	WHERE p.sink = d.sink AND p.subject = d.subject AND p.state IN ('pending', 'failed') AND p.rowid < d.rowid))`

// Leases live in memory: only one gateway delivers from a store (the
// storage directory is locked), so a lease needs no write, and a sink's
// concurrency and rate (LeaseRequest) are counted in memory too. Lease reads
// due deliveries on a reader connection and the writer only records
// outcomes. A crash forgets every lease, and the deliveries it held are
// due again at the next start. The price: an attempt cut short by a
// crash is not counted in the delivery's attempts.
//
// Each lease has a fencing token. An expired lease stays in the map,
// out of the way of Lease, until another attempt takes the delivery
// (and the token) over, its holder completes it, or it is long stale:
// so a late but successful attempt is still recorded.
type leases struct {
	// mu orders reads of due deliveries with the end of leases: a lease
	// ends (under mu) only after its outcome is committed, and Lease
	// reads and marks (under mu), so it never sees a delivery as
	// waiting whose attempt has just succeeded.
	mu    sync.Mutex
	token int64
	held  map[string]map[string]*lease // sink → delivery id → lease
	// nextStart is, per sink with a rate (LeaseRequest.Every), when its
	// next attempt may start.
	nextStart map[string]time.Time
	// fresh are the deliveries just accepted for unordered sinks
	// (fresh.go); read is when Lease last read each sink's due
	// deliveries from the queue.
	fresh map[string]*freshList
	read  map[string]time.Time
}

type lease struct {
	token int64
	until time.Time
	seq   int64 // the delivery's rowid
	// writing is set while the lease's outcome is being written: the
	// lease holds, whatever until says.
	writing bool
}

func (l *lease) active(now time.Time) bool { return l.writing || now.Before(l.until) }

// staleLease is how long an expired lease is remembered for a late
// Complete.
const staleLease = time.Hour

// active returns the rowids of sink's deliveries under a lease at now,
// forgetting long-expired leases. Call with mu held.
func (l *leases) active(sink string, now time.Time) []int64 {
	h := l.held[sink]
	var out []int64
	for id, le := range h {
		switch {
		case le.active(now):
			out = append(out, le.seq)
		case now.Sub(le.until) > staleLease:
			delete(h, id)
		}
	}
	return out
}

// holder returns d's lease if it still holds d's token. Call with mu
// held.
func (l *leases) holder(d *queue.Delivery) *lease {
	le := l.held[d.Sink][d.ID]
	if le == nil || le.token != d.Token {
		return nil
	}
	return le
}

// activeIDs returns the ids of every delivery under a lease at now.
func (l *leases) activeIDs(now time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for _, h := range l.held {
		for id, le := range h {
			if le.active(now) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// Lease implements queue.Store.
func (s *Store) Lease(ctx context.Context, r queue.LeaseRequest) ([]queue.Delivery, error) {
	s.leases.mu.Lock()
	now := s.now()
	held := s.leases.active(r.Sink, now)
	limit := r.Limit
	if r.Every > 0 {
		if now.Before(s.leases.nextStart[r.Sink]) {
			s.leases.mu.Unlock()
			return nil, nil
		}
		limit = min(limit, 1)
	}
	if r.Concurrency > 0 {
		limit = min(limit, r.Concurrency-len(held))
	}
	if limit <= 0 {
		s.leases.mu.Unlock()
		return nil, nil
	}
	if !r.Ordered && now.Sub(s.leases.read[r.Sink]) < freshWindow && s.leases.readyFresh(r.Sink) {
		return s.leaseFresh(ctx, r, now, limit)
	}
	s.leases.read[r.Sink] = now
	// The deliveries in flight are skipped here rather than left out in
	// the SQL: one statement, prepared once, serves every lease.
	skip := heldSet(held)
	rows, err := s.stmtDue[r.Ordered].QueryContext(ctx, r.Sink, now.UnixMilli(), limit+len(held))
	if err != nil {
		s.leases.mu.Unlock()
		return nil, fmt.Errorf("lease: %w", err)
	}
	var (
		out  []queue.Delivery
		seqs []int64
	)
	for rows.Next() {
		var (
			d                 queue.Delivery
			seq               int64
			routes            string
			created, replayed int64
		)
		if err := rows.Scan(&seq, &d.ID, &d.EventID, &routes, &d.Subject, &d.Attempt, &created, &replayed, &d.LastError, &d.Replays); err != nil {
			rows.Close()
			s.leases.mu.Unlock()
			return nil, fmt.Errorf("lease: %w", err)
		}
		if _, ok := skip[seq]; ok {
			continue
		}
		if len(out) == limit {
			break
		}
		s.leases.dropFresh(r.Sink, d.ID) // handed out here: not again from the fresh list
		d.Sink = r.Sink
		d.Attempt++
		d.Routes = strings.Split(routes, ",")
		d.CreatedAt = time.UnixMilli(created)
		d.Since = time.UnixMilli(max(created, replayed))
		out = append(out, d)
		seqs = append(seqs, seq)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		s.leases.mu.Unlock()
		return nil, fmt.Errorf("lease: %w", err)
	}
	if err := s.hold(ctx, r, now, out, seqs); err != nil {
		return nil, err
	}
	// As accepted: the rows came in due order.
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

// hold leases out (rows seqs) to r's caller, with fresh tokens, and
// loads their events: s.leases.mu is held, and unlocked here. When the
// events cannot be read, the leases are let go and nothing is handed
// out.
func (s *Store) hold(ctx context.Context, r queue.LeaseRequest, now time.Time, out []queue.Delivery, seqs []int64) error {
	until := now.Add(r.For)
	h := s.leases.held[r.Sink]
	if h == nil {
		h = map[string]*lease{}
		s.leases.held[r.Sink] = h
	}
	for i := range out {
		s.leases.token++
		out[i].Token = s.leases.token
		h[out[i].ID] = &lease{token: s.leases.token, until: until, seq: seqs[i]}
	}
	if r.Every > 0 && len(out) > 0 {
		s.leases.nextStart[r.Sink] = now.Add(time.Duration(len(out)) * r.Every)
	}
	s.leases.mu.Unlock()
	if err := s.loadEvents(ctx, out); err != nil {
		s.leases.mu.Lock()
		for _, d := range out {
			if s.leases.holder(&d) != nil {
				delete(h, d.ID)
			}
		}
		s.leases.mu.Unlock()
		return err
	}
	return nil
}

// leaseFresh leases deliveries from the fresh list: s.leases.mu is held,
// and unlocked here.
func (s *Store) leaseFresh(ctx context.Context, r queue.LeaseRequest, now time.Time, limit int) ([]queue.Delivery, error) {
	entries := s.leases.popFresh(r.Sink, limit)
	out := make([]queue.Delivery, len(entries))
	seqs := make([]int64, len(entries))
	for i, e := range entries {
		out[i], seqs[i] = e.d, e.seq
	}
	if err := s.hold(ctx, r, now, out, seqs); err != nil {
		return nil, err
	}
	return out, nil
}

// Renew implements queue.Store: leases live in memory, so renewing
// writes nothing.
func (s *Store) Renew(ctx context.Context, d *queue.Delivery, extend time.Duration) error {
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	le := s.leases.holder(d)
	if le == nil {
		return fmt.Errorf("renew %s: %w", d.ID, queue.ErrLeaseLost)
	}
	le.until = s.now().Add(extend)
	return nil
}

// loadEvents fills in each delivery's event: from the cache of recently
// accepted events, else from the table.
func (s *Store) loadEvents(ctx context.Context, ds []queue.Delivery) error {
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
	q := `SELECT ` + storedEventColumns + ` FROM events e WHERE e.id IN (?` + strings.Repeat(", ?", len(missing)-1) + `)`
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

// Complete implements queue.Store. The outcome applies only to the run
// of attempts the lease began in: after a replay during the attempt,
// the attempt is recorded in the history and the delivery stays due.
func (s *Store) Complete(ctx context.Context, d *queue.Delivery, o queue.Outcome) error {
	var q string
	var args []any
	now := s.now()
	nowMS := now.UnixMilli()
	took := o.Took.Milliseconds()
	errText := queue.Truncate(o.Error, queue.MaxError)
	switch o.State {
	case queue.StateDelivered:
		q = sqlDelivered
		args = []any{nowMS, o.Status, took, d.ID, d.Replays}
	case queue.StateFailed:
		q = sqlFailed
		args = []any{o.NextAt.UnixMilli(), nowMS, errText, o.Status, took, d.ID, d.Replays}
	case queue.StateDead:
		q = sqlDead
		args = []any{nowMS, errText, o.Status, took, d.ID, d.Replays}
	default:
		return fmt.Errorf("complete %s: invalid state %q", d.ID, o.State)
	}
	// The history keeps every attempt but a first attempt that
	// delivered: that one is the delivery row itself (Attempts).
	history := o.State != queue.StateDelivered || d.Attempt > 1

	s.leases.mu.Lock()
	le := s.leases.holder(d)
	if le == nil {
		s.leases.mu.Unlock()
		return fmt.Errorf("complete %s: %w", d.ID, queue.ErrLeaseLost)
	}
	le.writing = true
	s.leases.mu.Unlock()

	// Lazy: a lost outcome only sends the delivery once more.
	err := s.writeLazy(ctx, func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error) {
		r, err := s.exec(ctx, tx, q, args...)
		if err != nil {
			return nil, err
		}
		n, err := r.RowsAffected()
		if err != nil {
			return nil, err
		}
		if history || n == 0 {
			if _, err := s.exec(ctx, tx, sqlInsertAttempt, d.Replays, d.Attempt, nowMS, took, o.State, o.Status, errText, d.ID); err != nil {
				return nil, err
			}
		}
		if n == 0 || o.State == queue.StateFailed {
			return nil, nil
		}
		return []sinkDelta{{d.Sink, -1}}, nil
	})

	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	if s.leases.held[d.Sink][d.ID] == le {
		if err == nil {
			delete(s.leases.held[d.Sink], d.ID)
		} else {
			// The outcome was not written: the lease stays with its
			// holder, who writes it again (renewing the lease).
			le.writing = false
		}
	}
	return err
}

// NextDue implements queue.Store. Leased deliveries are left out
// (their attempt's end wakes the worker); the answer comes from the
// deliveries_due index in next_at order.
func (s *Store) NextDue(ctx context.Context, sink string, ordered bool) (time.Time, bool, error) {
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	held := s.leases.active(sink, s.now())
	skip := heldSet(held)
	rows, err := s.stmtNext[ordered].QueryContext(ctx, sink, 1+len(held))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq, next int64
		if err := rows.Scan(&seq, &next); err != nil {
			return time.Time{}, false, fmt.Errorf("next due: %w", err)
		}
		if _, ok := skip[seq]; !ok {
			return time.UnixMilli(next), true, nil
		}
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, false, fmt.Errorf("next due: %w", err)
	}
	return time.Time{}, false, nil
}

// heldSet makes a set of rowids, nil when there are none.
func heldSet(seqs []int64) map[int64]struct{} {
	if len(seqs) == 0 {
		return nil
	}
	m := make(map[int64]struct{}, len(seqs))
	for _, s := range seqs {
		m[s] = struct{}{}
	}
	return m
}

// sqlNext selects the waiting deliveries of a sink in due order, for
// NextDue; ordered, only the head of each subject.
func sqlNext(ordered bool) string {
	where := `d.sink = ? AND d.state IN ('pending', 'failed')`
	if ordered {
		where += " AND " + headOfSubject
	}
	return `SELECT d.rowid, d.next_at FROM deliveries d WHERE ` + where + ` ORDER BY d.next_at LIMIT ?`
}

// sqlDue selects due deliveries of a sink, in the order to attempt
// them; ordered, only the head of each subject.
func sqlDue(ordered bool) string {
	where := `d.sink = ? AND d.state IN ('pending', 'failed') AND d.next_at <= ?`
	if ordered {
		where += " AND " + headOfSubject
	}
	return `SELECT d.rowid, d.id, d.event_id, d.routes, d.subject, d.attempts, d.created_at, d.replayed_at, d.last_error, d.replays
		FROM deliveries d WHERE ` + where + ` ORDER BY d.next_at, d.rowid LIMIT ?`
}

// Each completion counts the attempt. A completion applies only to a
// waiting delivery of the run it was leased in: completing twice
// changes nothing the second time, and nor does completing after a
// replay.
const (
	sqlDelivered = `UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, updated_at = ?, last_status = ?, took_ms = ?
		WHERE id = ? AND state IN ('pending', 'failed') AND replays = ?`
	sqlFailed = `UPDATE deliveries SET state = 'failed', attempts = attempts + 1, next_at = ?, updated_at = ?, last_error = ?, last_status = ?, took_ms = ?
		WHERE id = ? AND state IN ('pending', 'failed') AND replays = ?`
	sqlDead = `UPDATE deliveries SET state = 'dead', attempts = attempts + 1, updated_at = ?, last_error = ?, last_status = ?, took_ms = ?
		WHERE id = ? AND state IN ('pending', 'failed') AND replays = ?`
	// A purged delivery has no history to add to.
	sqlInsertAttempt = `INSERT OR REPLACE INTO attempts (delivery_id, replays, attempt, at, took_ms, state, status, error)
		SELECT id, ?, ?, ?, ?, ?, ?, ? FROM deliveries WHERE id = ?`
)
