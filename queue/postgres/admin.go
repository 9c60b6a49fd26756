package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/queue"
)

// where turns f into a condition on deliveries d, with its arguments
// numbered from $first.
func where(f queue.Filter, first int) (string, []any, error) {
	f = cleanedFilter(f)
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		conds = append(conds, fmt.Sprintf(cond, first+len(args)-1))
	}
	if f.ID != "" {
		add("d.id = $%d", f.ID)
	}
	if f.IDs != nil {
		// No deliveries named selects none.
		add("d.id = ANY($%d)", f.IDs)
	}
	if f.EventID != "" {
		add("d.event_id = $%d", f.EventID)
	}
	if f.Sink != "" {
		add("d.sink = $%d", f.Sink)
	}
	if f.Subject != "" {
		add("d.subject = $%d", f.Subject)
	}
	if f.Status != 0 {
		add("d.last_status = $%d", f.Status)
	}
	if f.Error != "" {
		add(containsCond("d.last_error"), contains(f.Error))
	}
	if len(f.States) > 0 {
		for _, st := range f.States {
			if !slices.Contains(queue.States, st) {
				return "", nil, fmt.Errorf("unknown state %q: one of %s", st, strings.Join(queue.States, ", "))
			}
		}
		add("d.state = ANY($%d)", f.States)
	}
	if !f.Since.IsZero() {
		add("d.updated_at >= $%d", ms(f.Since))
	}
	if !f.Before.IsZero() {
		add("d.updated_at < $%d", ms(f.Before))
	}
	if f.After != "" {
		at, seq, err := parseCursor(f.After)
		if err != nil {
			return "", nil, err
		}
		args = append(args, at, seq)
		conds = append(conds, fmt.Sprintf("(d.updated_at, d.seq) < ($%d, $%d)", first+len(args)-2, first+len(args)-1))
	}
	if len(conds) == 0 {
		return "true", nil, nil
	}
	return strings.Join(conds, " AND "), args, nil
}

// Counts implements queue.Store.
func (s *Store) Counts(ctx context.Context) (map[string]map[string]int, error) {
	rows, _ := s.pool.Query(ctx, `SELECT sink, state, count(*) FROM queue_deliveries GROUP BY sink, state`)
	out := map[string]map[string]int{}
	var sink, state string
	var n int
	_, err := pgx.ForEachRow(rows, []any{&sink, &state, &n}, func() error {
		if out[sink] == nil {
			out[sink] = map[string]int{}
		}
		out[sink][state] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	return out, nil
}

// List implements queue.Store.
func (s *Store) List(ctx context.Context, f queue.Filter) ([]queue.DeliveryInfo, error) {
	cond, args, err := where(f, 1)
	if err != nil {
		return nil, err
	}
	q := sqlDeliveryColumns + ` WHERE ` + cond + ` ORDER BY d.updated_at DESC, d.seq DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	out, err := s.deliveries(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}

// deliveryColumns are what deliveries reads, from queue_deliveries d
// JOIN queue_events e (sqlDeliveryColumns).
const (
	deliveryColumns = `d.id, d.event_id, e.event_type, e.source, d.sink, d.subject, d.routes, d.state, d.attempts, d.replays,
			d.last_error, d.last_status, d.created_at, d.updated_at, d.next_at, d.seq, e.exact`
	sqlDeliveryColumns = `SELECT ` + deliveryColumns + ` FROM queue_deliveries d JOIN queue_events e ON e.id = d.event_id`
)

// deliveries runs q, which selects deliveryColumns and then the
// columns more point at, and returns the deliveries; each calls each
// row's more after it is scanned.
func (s *Store) deliveries(ctx context.Context, q string, args ...any) ([]queue.DeliveryInfo, error) {
	return s.deliveriesWith(ctx, nil, nil, q, args...)
}

func (s *Store) deliveriesWith(ctx context.Context, more []any, each func(*queue.DeliveryInfo), q string, args ...any) ([]queue.DeliveryInfo, error) {
	rows, _ := s.pool.Query(ctx, q, args...)
	var out []queue.DeliveryInfo
	var d queue.DeliveryInfo
	var routes string
	var seq int64
	var exact []byte
	dest := append([]any{&d.ID, &d.EventID, &d.EventType, &d.Source, &d.Sink, &d.Subject, &routes, &d.State,
		&d.Attempts, &d.Replays, &d.LastError, &d.LastStatus, &d.CreatedAt, &d.UpdatedAt, &d.NextAt, &seq, &exact}, more...)
	_, err := pgx.ForEachRow(rows, dest, func() error {
		d.Routes = strings.Split(routes, ",")
		if exact != nil {
			// The columns hold a cleaned copy (a NUL byte in the
			// subject, say): the event as stored says what it was.
			var ev event.Event
			if err := decodeEvent(exact, &ev); err != nil {
				return fmt.Errorf("event %s: %w", d.EventID, err)
			}
			d.EventType, d.Source, d.Subject = ev.EventType, ev.Source, ev.Subject
		}
		d.Cursor = formatCursor(d.UpdatedAt, seq)
		if each != nil {
			each(&d)
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

// Replay implements queue.Store. It works from any replica and from the
// CLI: the replicas are told at once (NOTIFY). A delivery with an
// attempt in flight keeps its lease: the attempt's outcome goes to the
// history, and the delivery stays due.
func (s *Store) Replay(ctx context.Context, f queue.Filter) (int64, error) {
	if !named(f) {
		return 0, queue.ErrNoFilter
	}
	f.Limit, f.After = 0, ""
	cond, args, err := where(f, 2)
	if err != nil {
		return 0, err
	}
	now := ms(s.now())
	var n int64
	var sinks []string
	// The rows are locked first, so that each one's state is read as it
	// is when replayed: deliveries that stop being finished wait again.
	q := `WITH old AS (
		SELECT d.id, d.state FROM queue_deliveries d WHERE ` + cond + ` FOR UPDATE
	), r AS (
		UPDATE queue_deliveries d SET state = 'pending', attempts = 0, next_at = $1, replayed_at = $1, replays = replays + 1, updated_at = $1
		FROM old WHERE d.id = old.id
		RETURNING d.sink, old.state
	)
	SELECT sink, count(*), count(*) FILTER (WHERE state IN ('delivered', 'dead')) FROM r GROUP BY sink`
	err = s.inTx(ctx, func(tx pgx.Tx) ([]sinkDelta, error) {
		n, sinks = 0, nil
		rows, _ := tx.Query(ctx, q, append([]any{now}, args...)...)
		var deltas []sinkDelta
		var sink string
		var all, revived int64
		_, err := pgx.ForEachRow(rows, []any{&sink, &all, &revived}, func() error {
			n += all
			sinks = append(sinks, sink)
			deltas = append(deltas, sinkDelta{sink, revived})
			return nil
		})
		return deltas, err
	})
	if err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	s.announce(sinks...)
	return n, nil
}

// Purge implements queue.Store. Deliveries an attempt holds anywhere in
// the cluster are left alone.
func (s *Store) Purge(ctx context.Context, f queue.Filter, dryRun bool) (int64, error) {
	if f.Sink == "" && f.ID == "" && f.IDs == nil {
		return 0, queue.ErrNoFilter
	}
	f.Limit, f.After = 0, ""
	cond, args, err := where(f, 2)
	if err != nil {
		return 0, err
	}
	cond += ` AND (d.lease_until IS NULL OR d.lease_until <= $1)`
	args = append([]any{ms(s.now())}, args...)
	if dryRun {
		var n int64
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM queue_deliveries d WHERE `+cond, args...).Scan(&n); err != nil {
			return 0, fmt.Errorf("purge: %w", err)
		}
		return n, nil
	}
	var n int64
	err = s.inTx(ctx, func(tx pgx.Tx) ([]sinkDelta, error) {
		n = 0
		rows, _ := tx.Query(ctx, `WITH gone AS (DELETE FROM queue_deliveries d WHERE `+cond+` RETURNING d.sink, d.state)
			SELECT sink, count(*), count(*) FILTER (WHERE state IN ('pending', 'failed')) FROM gone GROUP BY sink`, args...)
		var deltas []sinkDelta
		var sink string
		var all, waiting int64
		_, err := pgx.ForEachRow(rows, []any{&sink, &all, &waiting}, func() error {
			n += all
			deltas = append(deltas, sinkDelta{sink, -waiting})
			return nil
		})
		return deltas, err
	})
	if err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	return n, nil
}

// Attempts implements queue.Store: the history, and a first attempt
// that delivered, which only the delivery row records.
func (s *Store) Attempts(ctx context.Context, deliveryID string) ([]queue.AttemptInfo, error) {
	var (
		state             string
		attempts, replays int
		status            int
		updated           time.Time
		took              int64
	)
	err := s.pool.QueryRow(ctx, `SELECT state, attempts, replays, last_status, updated_at, took_ms FROM queue_deliveries WHERE id = $1`,
		cleaned(deliveryID)).Scan(&state, &attempts, &replays, &status, &updated, &took)
	if isNoRows(err) {
		return nil, fmt.Errorf("delivery %s: %w", deliveryID, queue.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	rows, _ := s.pool.Query(ctx, `SELECT replays, attempt, at, took_ms, state, status, error FROM queue_attempts
		WHERE delivery_id = $1 ORDER BY replays, attempt`, cleaned(deliveryID))
	var out []queue.AttemptInfo
	var a queue.AttemptInfo
	var tookMS int64
	_, err = pgx.ForEachRow(rows, []any{&a.Replays, &a.Attempt, &a.At, &tookMS, &a.State, &a.Status, &a.Error}, func() error {
		a.Took = time.Duration(tookMS) * time.Millisecond
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	if state == queue.StateDelivered && attempts > 0 &&
		(len(out) == 0 || out[len(out)-1].Replays != replays || out[len(out)-1].Attempt != attempts) {
		out = append(out, queue.AttemptInfo{Attempt: attempts, Replays: replays, At: updated,
			Took: time.Duration(took) * time.Millisecond, State: state, Status: status})
	}
	return out, nil
}

// OldestPending implements queue.Store.
func (s *Store) OldestPending(ctx context.Context) (time.Time, bool, error) {
	var oldest *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT min(created_at) FROM queue_deliveries WHERE state IN ('pending', 'failed')`).Scan(&oldest); err != nil {
		return time.Time{}, false, fmt.Errorf("oldest pending delivery: %w", err)
	}
	if oldest == nil {
		return time.Time{}, false, nil
	}
	return *oldest, true, nil
}

// WaitingBySink implements queue.Store.
func (s *Store) WaitingBySink(ctx context.Context) (map[string]int64, error) {
	rows, _ := s.pool.Query(ctx, `SELECT sink, count(*) FROM queue_deliveries WHERE state IN ('pending', 'failed') GROUP BY sink`)
	out := map[string]int64{}
	var sink string
	var n int64
	_, err := pgx.ForEachRow(rows, []any{&sink, &n}, func() error {
		out[sink] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count waiting deliveries: %w", err)
	}
	return out, nil
}

// Events implements queue.Store.
func (s *Store) Events(ctx context.Context, f queue.EventFilter) ([]queue.EventInfo, error) {
	conds, args, err := eventWhere(f)
	if err != nil {
		return nil, err
	}
	q := `SELECT ` + eventColumns("e") + `, e.received_at, e.seq FROM queue_events e`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY e.received_at DESC, e.seq DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, _ := s.pool.Query(ctx, q, args...)
	defer rows.Close()
	var out []queue.EventInfo
	for rows.Next() {
		var at time.Time
		var seq int64
		e, err := scanEvent(rows, &at, &seq)
		if err != nil {
			return nil, err
		}
		e.Cursor = formatCursor(at, seq)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return out, nil
}

// Event implements queue.Store.
func (s *Store) Event(ctx context.Context, id string) (queue.EventInfo, error) {
	var header string
	var body []byte
	e, err := scanEvent(s.pool.QueryRow(ctx, `SELECT `+eventColumns("e")+`, e.request_header, e.request_body FROM queue_events e WHERE e.id = $1`, cleaned(id)),
		&header, &body)
	if isNoRows(err) {
		return queue.EventInfo{}, fmt.Errorf("event %s: %w", id, queue.ErrNotFound)
	}
	if err == nil && body != nil {
		e.Request = &event.Request{Body: body, Header: header}
	}
	return e, err
}

// scanEvent reads eventColumns, then into more.
func scanEvent(row pgx.Row, more ...any) (queue.EventInfo, error) {
	build, dest := eventScanner()
	if err := row.Scan(append(dest, more...)...); err != nil {
		return queue.EventInfo{}, err
	}
	ev, err := build()
	if err != nil {
		return queue.EventInfo{}, err
	}
	body, err := ev.JSON()
	if err != nil {
		return queue.EventInfo{}, fmt.Errorf("event %s: %w", ev.ID, err)
	}
	return queue.EventInfo{ID: ev.ID, Source: ev.Source, ExternalID: ev.ExternalID, EventType: ev.EventType, Subject: ev.Subject, ReceivedAt: ev.ReceivedAt, JSON: body}, nil
}

func decodeEvent(body []byte, ev *event.Event) error { return json.Unmarshal(body, ev) }

// pruneBatch bounds the events one prune transaction deletes.
const pruneBatch = 500

// Prune implements queue.Store. One replica prunes at a time: the
// others find the prune lock taken and return at once, having deleted
// nothing.
func (s *Store) Prune(ctx context.Context, window func(source string) time.Duration) (int64, error) {
	if err := s.errClosed(); err != nil {
		return 0, err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	// Each statement on its own bound: a prune may run long, in batches.
	pctx := ctx
	ctx, cancel := s.bound(pctx)
	defer func() { cancel() }()
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, lockSpace, lockPrune).Scan(&locked); err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	if !locked {
		return 0, nil
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, $2)`, lockSpace, lockPrune)
	rows, _ := conn.Query(ctx, `SELECT DISTINCT source FROM queue_events`)
	sources, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	var total int64
	for _, src := range sources {
		w := window(src)
		if w <= 0 {
			continue
		}
		cutoff := ms(s.now().Add(-w))
		for {
			cancel()
			ctx, cancel = s.bound(pctx)
			ct, err := conn.Exec(ctx, `DELETE FROM queue_events WHERE id IN (
				SELECT e.id FROM queue_events e WHERE e.source = $1 AND e.received_at < $2
				AND NOT EXISTS (SELECT 1 FROM queue_deliveries d WHERE d.event_id = e.id AND d.state <> 'delivered')
				LIMIT $3)`, src, cutoff, pruneBatch)
			if err != nil {
				return total, fmt.Errorf("prune: %w", err)
			}
			total += ct.RowsAffected()
			if ct.RowsAffected() < pruneBatch {
				break
			}
		}
	}
	return total, nil
}
