package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
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

// DeliveryInfo is a delivery's stored state.
type DeliveryInfo struct {
	ID         string
	EventID    string
	EventType  string
	Source     string
	Sink       string
	Subject    string
	Routes     []string
	State      string
	Attempts   int
	Replays    int
	LastError  string
	LastStatus int
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// NextAt is when a waiting delivery is due.
	NextAt time.Time
}

// Filter selects deliveries. Zero fields select everything.
type Filter struct {
	// ID selects one delivery.
	ID      string
	EventID string
	Sink    string
	// States are the states to select; any state when empty.
	States []string
	// Since selects deliveries whose state changed at or after it.
	Since time.Time
	// Limit bounds List (newest first); 0 is no limit.
	Limit int
}

// States lists the valid delivery states.
var States = []string{StatePending, StateFailed, StateDelivered, StateDead}

func (f Filter) where() (string, []any, error) {
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
			if !slices.Contains(States, st) {
				return "", nil, fmt.Errorf("unknown state %q: one of %s", st, strings.Join(States, ", "))
			}
			marks[i] = "?"
			args = append(args, st)
		}
		conds = append(conds, "d.state IN ("+strings.Join(marks, ", ")+")")
	}
	if !f.Since.IsZero() {
		conds, args = append(conds, "d.updated_at >= ?"), append(args, f.Since.UnixMilli())
	}
	if len(conds) == 0 {
		return "1", nil, nil
	}
	return strings.Join(conds, " AND "), args, nil
}

// List returns the deliveries f selects, most recently changed first.
func (s *Store) List(ctx context.Context, f Filter) ([]DeliveryInfo, error) {
	where, args, err := f.where()
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
	var out []DeliveryInfo
	for rows.Next() {
		var d DeliveryInfo
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
func (s *Store) Deliveries(ctx context.Context, eventID string) ([]DeliveryInfo, error) {
	ds, err := s.List(ctx, Filter{EventID: eventID})
	slices.SortFunc(ds, func(a, b DeliveryInfo) int { return strings.Compare(a.Sink, b.Sink) })
	return ds, err
}

// ErrNoFilter refuses a replay that would select every delivery.
var ErrNoFilter = errors.New("replay needs a delivery id, an event id or a sink")

// Replay queues the deliveries f selects again, due now, with a fresh
// attempt count and max_age. A delivery with an attempt in flight in
// this process is left alone. It returns how many deliveries were queued. Replay works
// while a gateway runs on the same storage: its workers pick the
// deliveries up when they next look at the queue.
func (s *Store) Replay(ctx context.Context, f Filter) (int64, error) {
	if f.ID == "" && f.EventID == "" && f.Sink == "" {
		return 0, ErrNoFilter
	}
	f.Limit = 0
	where, args, err := f.where()
	if err != nil {
		return 0, err
	}
	now := s.now().UnixMilli()
	// Leases are this process's: a replay from another process (the
	// CLI) cannot see attempts in flight in the gateway. The gateway
	// still attempts such a delivery once at a time, and the attempt's
	// outcome applies to the replayed delivery.
	if held := s.leases.all(s.now()); len(held) > 0 {
		where += " AND d.id NOT IN (?" + strings.Repeat(", ?", len(held)-1) + ")"
		for _, id := range held {
			args = append(args, id)
		}
	}
	var n int64
	err = s.write(ctx, func(tx *sql.Tx) (int64, error) {
		var revived int64 // deliveries that stop being finished
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM deliveries d WHERE `+where+
			` AND d.state IN ('delivered', 'dead')`, args...).Scan(&revived); err != nil {
			return 0, fmt.Errorf("replay: %w", err)
		}
		r, err := tx.ExecContext(ctx, `UPDATE deliveries AS d SET state = 'pending', attempts = 0, next_at = ?,
			replayed_at = ?, replays = replays + 1, updated_at = ? WHERE `+where,
			append([]any{now, now, now}, args...)...)
		if err != nil {
			return 0, fmt.Errorf("replay: %w", err)
		}
		n, err = r.RowsAffected()
		return revived, err
	})
	return n, err
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

// ErrNotFound is an event or delivery the store does not hold.
var ErrNotFound = errors.New("not found")

// EventInfo is a stored event.
type EventInfo struct {
	ID         string
	Source     string
	EventType  string
	Subject    string
	ReceivedAt time.Time
	// JSON is the normalized event as stored.
	JSON []byte
}

// EventFilter selects events. Zero fields select everything.
type EventFilter struct {
	Source    string
	EventType string
	// Since selects events received at or after it.
	Since time.Time
	// Limit bounds the list (newest first); 0 is no limit.
	Limit int
}

const sqlEventColumns = `SELECT ` + storedEventColumns + ` FROM events`

// Events returns the events f selects, newest first.
func (s *Store) Events(ctx context.Context, f EventFilter) ([]EventInfo, error) {
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
	var out []EventInfo
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
func (s *Store) Event(ctx context.Context, id string) (EventInfo, error) {
	e, err := scanEvent(s.rdb.QueryRowContext(ctx, sqlEventColumns+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return EventInfo{}, fmt.Errorf("event %s: %w", id, ErrNotFound)
	}
	return e, err
}

func scanEvent(row interface{ Scan(...any) error }) (EventInfo, error) {
	ev, err := scanStoredEvent(row)
	if err != nil {
		return EventInfo{}, err
	}
	body, err := ev.JSON()
	if err != nil {
		return EventInfo{}, fmt.Errorf("event %s: %w", ev.ID, err)
	}
	return EventInfo{ID: ev.ID, Source: ev.Source, EventType: ev.EventType, Subject: ev.Subject, ReceivedAt: ev.ReceivedAt, JSON: body}, nil
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
			err := s.write(ctx, func(tx *sql.Tx) (int64, error) {
				r, err := tx.ExecContext(ctx, `DELETE FROM events WHERE rowid IN (
					SELECT e.rowid FROM events e WHERE e.source = ? AND e.received_at < ?
					AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.state != 'delivered')
					LIMIT 500)`, src, cutoff)
				if err != nil {
					return 0, err
				}
				n, err = r.RowsAffected()
				return 0, err
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
