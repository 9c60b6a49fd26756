package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchyard/switchyard/event"
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
	if f.IDs != nil {
		if len(f.IDs) == 0 {
			conds = append(conds, "0") // no deliveries named: none
		} else {
			conds = append(conds, "d.id IN (?"+strings.Repeat(", ?", len(f.IDs)-1)+")")
			for _, id := range f.IDs {
				args = append(args, id)
			}
		}
	}
	if f.EventID != "" {
		conds, args = append(conds, "d.event_id = ?"), append(args, f.EventID)
	}
	if f.Sink != "" {
		conds, args = append(conds, "d.sink = ?"), append(args, f.Sink)
	}
	if f.Subject != "" {
		conds, args = append(conds, "d.subject = ?"), append(args, f.Subject)
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
	if f.Status != 0 {
		conds, args = append(conds, "d.last_status = ?"), append(args, f.Status)
	}
	if f.Error != "" {
		conds, args = append(conds, `d.last_error LIKE ? ESCAPE '\'`), append(args, "%"+likeEscape(f.Error)+"%")
	}
	if !f.Since.IsZero() {
		conds, args = append(conds, "d.updated_at >= ?"), append(args, f.Since.UnixMilli())
	}
	if !f.Before.IsZero() {
		conds, args = append(conds, "d.updated_at < ?"), append(args, f.Before.UnixMilli())
	}
	if f.After != "" {
		at, seq, err := parseCursor(f.After)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, "(d.updated_at < ? OR d.updated_at = ? AND d.rowid < ?)")
		args = append(args, at, at, seq)
	}
	if len(conds) == 0 {
		return "1", nil, nil
	}
	return strings.Join(conds, " AND "), args, nil
}

// named reports whether f names the deliveries an action applies to.
func named(f queue.Filter) bool {
	return f.ID != "" || f.IDs != nil || f.EventID != "" || f.Sink != ""
}

// purgeable reports whether f names the deliveries a purge may delete:
// a sink's, or deliveries by id.
func purgeable(f queue.Filter) bool { return f.Sink != "" || f.ID != "" || f.IDs != nil }

// changeWhere is the condition on deliveries d selecting those an
// operator's change (a replay, a retry now, a give-up, a purge) applies
// to: every one f selects, whatever its Limit and After. It returns
// queue.ErrNoFilter when f does not name them as ok wants. Operators'
// changes reach deliveries the fresh list holds: from now on, they are
// leased as the queue has them.
func (s *Store) changeWhere(f queue.Filter, ok func(queue.Filter) bool) (string, []any, error) {
	s.leases.mu.Lock()
	s.leases.clearFresh()
	s.leases.mu.Unlock()
	if !ok(f) {
		return "", nil, queue.ErrNoFilter
	}
	f.Limit, f.After = 0, ""
	return where(f)
}

// List returns the deliveries f selects, most recently changed first.
func (s *Store) List(ctx context.Context, f queue.Filter) ([]queue.DeliveryInfo, error) {
	where, args, err := where(f)
	if err != nil {
		return nil, err
	}
	q := sqlDeliveryColumns + ` WHERE ` + where + ` ORDER BY d.updated_at DESC, d.rowid DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return s.deliveries(ctx, "list deliveries", q, args...)
}

// deliveryColumns are what scanDelivery reads, from deliveries d JOIN
// events e (sqlDeliveryColumns).
const (
	deliveryColumns = `d.id, d.event_id, e.event_type, e.source, d.sink, d.subject, d.routes, d.state, d.attempts, d.replays,
			d.last_error, d.last_status, d.created_at, d.updated_at, d.next_at, d.rowid`
	sqlDeliveryColumns = `SELECT ` + deliveryColumns + ` FROM deliveries d JOIN events e ON e.id = d.event_id`
)

func (s *Store) deliveries(ctx context.Context, what, q string, args ...any) ([]queue.DeliveryInfo, error) {
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []queue.DeliveryInfo
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

func scanDelivery(row interface{ Scan(...any) error }, more ...any) (queue.DeliveryInfo, error) {
	var d queue.DeliveryInfo
	var routes string
	var created, updated, next, seq int64
	dest := []any{&d.ID, &d.EventID, &d.EventType, &d.Source, &d.Sink, &d.Subject, &routes, &d.State, &d.Attempts, &d.Replays,
		&d.LastError, &d.LastStatus, &created, &updated, &next, &seq}
	if err := row.Scan(append(dest, more...)...); err != nil {
		return d, err
	}
	d.Routes = strings.Split(routes, ",")
	d.CreatedAt, d.UpdatedAt, d.NextAt = time.UnixMilli(created), time.UnixMilli(updated), time.UnixMilli(next)
	d.Cursor = formatCursor(updated, seq)
	return d, nil
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
	where, args, err := s.changeWhere(f, named)
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
	where, args, err := s.changeWhere(f, purgeable)
	if err != nil {
		return 0, err
	}
	where, args = s.notLeased(where, args)
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
	return queue.WithDelivered(out, queue.AttemptInfo{Attempt: attempts, Replays: replays, At: time.UnixMilli(updated),
		Took: time.Duration(took) * time.Millisecond, State: state, Status: status}), nil
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

// Events returns the events f selects, newest first.
func (s *Store) Events(ctx context.Context, f queue.EventFilter) ([]queue.EventInfo, error) {
	conds, args, err := eventWhere(f)
	if err != nil {
		return nil, err
	}
	q := `SELECT ` + storedEventColumns + `, e.received_at, e.rowid FROM events e`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY e.received_at DESC, e.rowid DESC"
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
		var at, seq int64
		e, err := scanEvent(rows, &at, &seq)
		if err != nil {
			return nil, err
		}
		e.Cursor = formatCursor(at, seq)
		out = append(out, e)
	}
	return out, rows.Err()
}

// textExpr is an event's title and summary (queue.TextFields), for
// EventFilter.Text: from data, or from the whole event of a row stored
// by schema v2.
var textExpr = func() string {
	var parts []string
	for _, f := range queue.TextFields {
		parts = append(parts, fmt.Sprintf(`coalesce(json_extract(coalesce(CAST(`+dataColumn+` AS TEXT), json_extract(CAST(e.event AS TEXT), '$.data')), '$.%s'), '')`, f))
	}
	return strings.Join(parts, " || ' ' || ")
}()

func eventWhere(f queue.EventFilter) ([]string, []any, error) {
	var conds []string
	var args []any
	if f.Source != "" {
		conds, args = append(conds, "e.source = ?"), append(args, f.Source)
	}
	switch p := f.EventType; {
	case p == "" || p == "*":
	case strings.HasSuffix(p, ".*"):
		prefix := strings.TrimSuffix(p, "*")
		n := utf8.RuneCountInString(prefix)
		conds = append(conds, "substr(e.event_type, 1, ?) = ? AND length(e.event_type) > ?")
		args = append(args, n, prefix, n)
	default:
		conds, args = append(conds, "e.event_type = ?"), append(args, p)
	}
	if f.Subject != "" {
		// subject != '' lets SQLite use the partial index on subjects.
		conds, args = append(conds, "e.subject = ? AND e.subject != ''"), append(args, f.Subject)
	}
	if len(f.States) > 0 {
		for _, st := range f.States {
			if !slices.Contains(queue.States, st) {
				return nil, nil, fmt.Errorf("unknown state %q: one of %s", st, strings.Join(queue.States, ", "))
			}
			args = append(args, st)
		}
		conds = append(conds, "EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.state IN (?"+strings.Repeat(", ?", len(f.States)-1)+"))")
	}
	if !f.Since.IsZero() {
		conds, args = append(conds, "e.received_at >= ?"), append(args, f.Since.UnixMilli())
	}
	if !f.Until.IsZero() {
		conds, args = append(conds, "e.received_at < ?"), append(args, f.Until.UnixMilli())
	}
	if f.Text != "" {
		conds, args = append(conds, "("+textExpr+`) LIKE ? ESCAPE '\'`), append(args, "%"+likeEscape(f.Text)+"%")
	}
	if f.After != "" {
		at, seq, err := parseCursor(f.After)
		if err != nil {
			return nil, nil, err
		}
		conds = append(conds, "(e.received_at < ? OR e.received_at = ? AND e.rowid < ?)")
		args = append(args, at, at, seq)
	}
	return conds, args, nil
}

// Event returns one stored event, with its request, or ErrNotFound.
func (s *Store) Event(ctx context.Context, id string) (queue.EventInfo, error) {
	var header string
	var body []byte
	e, err := scanEvent(s.rdb.QueryRowContext(ctx, `SELECT `+storedEventColumns+`, e.request_header, e.request_body FROM events e WHERE e.id = ?`, id),
		&header, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return queue.EventInfo{}, fmt.Errorf("event %s: %w", id, queue.ErrNotFound)
	}
	if err == nil && (body != nil || header != "") {
		e.Request = &event.Request{Body: body, Header: header}
	}
	return e, err
}

func scanEvent(row interface{ Scan(...any) error }, more ...any) (queue.EventInfo, error) {
	ev, err := scanStoredEvent(row, more...)
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
