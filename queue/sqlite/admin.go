package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/queue"
)

// Counts returns how many deliveries are in each state, per sink.
func (s *Store) Counts(ctx context.Context) (map[string]map[string]int, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT sink, state, count(*) FROM deliveries GROUP BY sink, state`)
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var sink, state string
		var n int
		if err := rows.Scan(&sink, &state, &n); err != nil {
			return nil, err
		}
		if out[sink] == nil {
			out[sink] = map[string]int{}
		}
		out[sink][state] = n
	}
	return out, rows.Err()
}

func where(f queue.Filter) (string, []any, error) {
	var conds []string
	var args []any
	if f.ID != "" {
		conds, args = append(conds, "d.id = ?"), append(args, f.ID)
	}
	if f.EventID != "" {
		conds, args = append(conds, "d.event_id = ?"), append(args, f.EventID)
	}
	if f.Sink != "" {
		conds, args = append(conds, "d.sink = ?"), append(args, f.Sink)
	}
	if len(f.States) > 0 {
		marks := make([]string, len(f.States))
		for i, st := range f.States {
			if !slices.Contains(queue.States, st) {
				return "", nil, fmt.Errorf("unknown state %q: one of %s", st, strings.Join(queue.States, ", "))
			}
			marks[i] = "?"
			args = append(args, st)
		}
		conds = append(conds, "d.state IN ("+strings.Join(marks, ", ")+")")
	}
	if !f.Since.IsZero() {
		conds, args = append(conds, "d.updated_at >= ?"), append(args, f.Since.UnixMilli())
	}
	if !f.Before.IsZero() {
		conds, args = append(conds, "d.updated_at < ?"), append(args, f.Before.UnixMilli())
	}
	if len(conds) == 0 {
		return "1", nil, nil
	}
	return strings.Join(conds, " AND "), args, nil
}

// List returns the deliveries f selects, most recently changed first.
func (s *Store) List(ctx context.Context, f queue.Filter) ([]queue.DeliveryInfo, error) {
	where, args, err := where(f)
	if err != nil {
		return nil, err
	}
	q := `SELECT d.id, d.event_id, e.event_type, e.source, d.sink, d.subject, d.routes, d.state, d.attempts, d.replays,
			d.last_error, d.last_status, d.created_at, d.updated_at, d.next_at
		FROM deliveries d JOIN events e ON e.id = d.event_id
		WHERE ` + where + ` ORDER BY d.updated_at DESC, d.rowid DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []queue.DeliveryInfo
	for rows.Next() {
		var d queue.DeliveryInfo
		var routes string
		var created, updated, next int64
		if err := rows.Scan(&d.ID, &d.EventID, &d.EventType, &d.Source, &d.Sink, &d.Subject, &routes, &d.State, &d.Attempts, &d.Replays,
			&d.LastError, &d.LastStatus, &created, &updated, &next); err != nil {
			return nil, err
		}
		d.Routes = strings.Split(routes, ",")
		d.CreatedAt, d.UpdatedAt, d.NextAt = time.UnixMilli(created), time.UnixMilli(updated), time.UnixMilli(next)
		out = append(out, d)
	}
	return out, rows.Err()
}

// Deliveries returns the deliveries of an event, by sink.
func (s *Store) Deliveries(ctx context.Context, eventID string) ([]queue.DeliveryInfo, error) {
	ds, err := s.List(ctx, queue.Filter{EventID: eventID})
	slices.SortFunc(ds, func(a, b queue.DeliveryInfo) int { return strings.Compare(a.Sink, b.Sink) })
	return ds, err
}

// Replay implements queue.Store. It works while a gateway runs on the
// same storage (the replay command): its workers pick the deliveries
// up when they next look at the queue. A delivery with an attempt in
// flight is replayed after that attempt: the attempt's outcome goes to
// the history, and the delivery stays due.
func (s *Store) Replay(ctx context.Context, f queue.Filter) (int64, error) {
	if f.ID == "" && f.EventID == "" && f.Sink == "" {
		return 0, queue.ErrNoFilter
	}
	f.Limit = 0
	where, args, err := where(f)
	if err != nil {
		return 0, err
	}
	now := s.now().UnixMilli()
	var n int64
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error) {
		// Deliveries that stop being finished wait again.
		revived, err := countBySink(ctx, tx, `SELECT d.sink, count(*) FROM deliveries d WHERE `+where+
			` AND d.state IN ('delivered', 'dead') GROUP BY d.sink`, args...)
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		r, err := tx.ExecContext(ctx, `UPDATE deliveries AS d SET state = 'pending', attempts = 0, next_at = ?,
			replayed_at = ?, replays = replays + 1, updated_at = ? WHERE `+where,
			append([]any{now, now, now}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		n, err = r.RowsAffected()
		return revived, err
	})
	return n, err
}

// countBySink runs q, which selects (sink, count) rows, into deltas.
func countBySink(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]sinkDelta, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sinkDelta
	for rows.Next() {
		var d sinkDelta
		if err := rows.Scan(&d.sink, &d.n); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Purge implements queue.Store. Deliveries with an attempt in flight in
// this process are left alone.
func (s *Store) Purge(ctx context.Context, f queue.Filter, dryRun bool) (int64, error) {
	if f.Sink == "" {
		return 0, queue.ErrNoFilter
	}
	f.Limit = 0
	where, args, err := where(f)
	if err != nil {
		return 0, err
	}
	if held := s.leases.activeIDs(s.now()); len(held) > 0 {
		where += " AND d.id NOT IN (?" + strings.Repeat(", ?", len(held)-1) + ")"
		for _, id := range held {
			args = append(args, id)
		}
	}
	if dryRun {
		var n int64
		err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM deliveries d WHERE `+where, args...).Scan(&n)
		if err != nil {
			return 0, fmt.Errorf("purge: %w", err)
		}
		return n, nil
	}
	var n int64
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error) {
		waiting, err := countBySink(ctx, tx, `SELECT d.sink, -count(*) FROM deliveries d WHERE `+where+
			` AND d.state IN ('pending', 'failed') GROUP BY d.sink`, args...)
		if err != nil {
			return nil, fmt.Errorf("purge: %w", err)
		}
		r, err := tx.ExecContext(ctx, `DELETE FROM deliveries AS d WHERE `+where, args...)
		if err != nil {
			return nil, fmt.Errorf("purge: %w", err)
		}
		n, err = r.RowsAffected()
		return waiting, err
	})
	return n, err
}

// Attempts implements queue.Store: the history, and a first attempt
// that delivered, which only the delivery row records.
func (s *Store) Attempts(ctx context.Context, deliveryID string) ([]queue.AttemptInfo, error) {
	var (
		state             string
		attempts, replays int
		status            int
		updated, took     int64
	)
	err := s.rdb.QueryRowContext(ctx, `SELECT state, attempts, replays, last_status, updated_at, took_ms FROM deliveries WHERE id = ?`,
		deliveryID).Scan(&state, &attempts, &replays, &status, &updated, &took)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("delivery %s: %w", deliveryID, queue.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT replays, attempt, at, took_ms, state, status, error FROM attempts
		WHERE delivery_id = ? ORDER BY replays, attempt`, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	defer rows.Close()
	var out []queue.AttemptInfo
	for rows.Next() {
		var a queue.AttemptInfo
		var at, tookMS int64
		if err := rows.Scan(&a.Replays, &a.Attempt, &at, &tookMS, &a.State, &a.Status, &a.Error); err != nil {
			return nil, fmt.Errorf("attempts: %w", err)
		}
		a.At, a.Took = time.UnixMilli(at), time.Duration(tookMS)*time.Millisecond
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	if state == queue.StateDelivered && attempts > 0 &&
		(len(out) == 0 || out[len(out)-1].Replays != replays || out[len(out)-1].Attempt != attempts) {
		out = append(out, queue.AttemptInfo{Attempt: attempts, Replays: replays, At: time.UnixMilli(updated),
			Took: time.Duration(took) * time.Millisecond, State: state, Status: status})
	}
	return out, nil
}

// OldestPending returns when the oldest delivery still waiting (pending
// or failed) was created; ok is false when none waits.
func (s *Store) OldestPending(ctx context.Context) (at time.Time, ok bool, err error) {
	var oldest sql.NullInt64
	if err := s.rdb.QueryRowContext(ctx,
		`SELECT min(created_at) FROM deliveries WHERE state IN ('pending', 'failed')`).Scan(&oldest); err != nil {
		return time.Time{}, false, fmt.Errorf("oldest pending delivery: %w", err)
	}
	if !oldest.Valid {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(oldest.Int64), true, nil
}

// WaitingBySink returns how many deliveries wait (pending or failed),
// per sink; sinks with none are absent.
func (s *Store) WaitingBySink(ctx context.Context) (map[string]int64, error) {
	rows, err := s.rdb.QueryContext(ctx,
		`SELECT sink, count(*) FROM deliveries WHERE state IN ('pending', 'failed') GROUP BY sink`)
	if err != nil {
		return nil, fmt.Errorf("count waiting deliveries: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var sink string
		var n int64
		if err := rows.Scan(&sink, &n); err != nil {
			return nil, err
		}
		out[sink] = n
	}
	return out, rows.Err()
}

const sqlEventColumns = `SELECT ` + storedEventColumns + ` FROM events`

// Events returns the events f selects, newest first.
func (s *Store) Events(ctx context.Context, f queue.EventFilter) ([]queue.EventInfo, error) {
	var conds []string
	var args []any
	if f.Source != "" {
		conds, args = append(conds, "source = ?"), append(args, f.Source)
	}
	if f.EventType != "" {
		conds, args = append(conds, "event_type = ?"), append(args, f.EventType)
	}
	if !f.Since.IsZero() {
		conds, args = append(conds, "received_at >= ?"), append(args, f.Since.UnixMilli())
	}
	q := sqlEventColumns
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY received_at DESC, rowid DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []queue.EventInfo
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Event returns one stored event, or ErrNotFound.
func (s *Store) Event(ctx context.Context, id string) (queue.EventInfo, error) {
	e, err := scanEvent(s.rdb.QueryRowContext(ctx, sqlEventColumns+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return queue.EventInfo{}, fmt.Errorf("event %s: %w", id, queue.ErrNotFound)
	}
	return e, err
}

func scanEvent(row interface{ Scan(...any) error }) (queue.EventInfo, error) {
	ev, err := scanStoredEvent(row)
	if err != nil {
		return queue.EventInfo{}, err
	}
	body, err := ev.JSON()
	if err != nil {
		return queue.EventInfo{}, fmt.Errorf("event %s: %w", ev.ID, err)
	}
	return queue.EventInfo{ID: ev.ID, Source: ev.Source, ExternalID: ev.ExternalID, EventType: ev.EventType, Subject: ev.Subject, ReceivedAt: ev.ReceivedAt, JSON: body}, nil
}

// Prune deletes events received before their source's dedup window
// (window(source)), with their delivered deliveries. An event with a
// delivery still waiting or dead is kept: it is needed to deliver or
// replay it. It returns how many events were deleted.
func (s *Store) Prune(ctx context.Context, window func(source string) time.Duration) (int64, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT DISTINCT source FROM events`)
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	var sources []string
	for rows.Next() {
		var src string
		if err := rows.Scan(&src); err != nil {
			rows.Close()
			return 0, err
		}
		sources = append(sources, src)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var total int64
	for _, src := range sources {
		w := window(src)
		if w <= 0 {
			continue
		}
		cutoff := s.now().Add(-w).UnixMilli()
		// Small batches keep the writer free for incoming events.
		for {
			var n int64
			err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error) {
				r, err := tx.ExecContext(ctx, `DELETE FROM events WHERE rowid IN (
					SELECT e.rowid FROM events e WHERE e.source = ? AND e.received_at < ?
					AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.state != 'delivered')
					LIMIT 500)`, src, cutoff)
				if err != nil {
					return nil, err
				}
				n, err = r.RowsAffected()
				return nil, err
			})
			if err != nil {
				return total, fmt.Errorf("prune: %w", err)
			}
			total += n
			if n < 500 {
				break
			}
		}
	}
	return total, nil
}
