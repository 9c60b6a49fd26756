package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/queue"
)

// A cursor is "<time in Unix ms>.<rowid>": where a list ordered by that
// time, then rowid, both descending, goes on.
func formatCursor(at, seq int64) string {
	return strconv.FormatInt(at, 10) + "." + strconv.FormatInt(seq, 10)
}

func parseCursor(c string) (at, seq int64, err error) {
	a, b, ok := strings.Cut(c, ".")
	if ok {
		at, err = strconv.ParseInt(a, 10, 64)
		if err == nil {
			seq, err = strconv.ParseInt(b, 10, 64)
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("invalid cursor %q: continue a list with the cursor it gave", c)
	}
	return at, seq, nil
}

// likeEscape escapes s for a LIKE pattern with ESCAPE '\'.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// notLeased adds to a condition on deliveries d that no attempt in
// flight in this process holds them.
func (s *Store) notLeased(where string, args []any) (string, []any) {
	held := s.leases.activeIDs(s.now())
	if len(held) == 0 {
		return where, args
	}
	where += " AND d.id NOT IN (?" + strings.Repeat(", ?", len(held)-1) + ")"
	for _, id := range held {
		args = append(args, id)
	}
	return where, args
}

// RetryNow implements queue.Store.
func (s *Store) RetryNow(ctx context.Context, f queue.Filter) (int64, error) {
	where, args, err := s.changeWhere(f, named)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error) {
		r, err := tx.ExecContext(ctx, `UPDATE deliveries AS d SET next_at = ? WHERE `+where+` AND d.state IN ('pending', 'failed')`,
			append([]any{s.now().UnixMilli()}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("retry now: %w", err)
		}
		n, err = r.RowsAffected()
		return nil, err
	})
	return n, err
}

// GiveUp implements queue.Store. Deliveries with an attempt in flight in
// this process are left alone: the attempt decides.
func (s *Store) GiveUp(ctx context.Context, f queue.Filter) (int64, error) {
	where, args, err := s.changeWhere(f, named)
	if err != nil {
		return 0, err
	}
	where, args = s.notLeased(where+" AND d.state IN ('pending', 'failed')", args)
	var n int64
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error) {
		gone, err := countBySink(ctx, tx, `SELECT d.sink, -count(*) FROM deliveries d WHERE `+where+` GROUP BY d.sink`, args...)
		if err != nil {
			return nil, fmt.Errorf("give up: %w", err)
		}
		r, err := tx.ExecContext(ctx, `UPDATE deliveries AS d SET state = 'dead', updated_at = ? WHERE `+where,
			append([]any{s.now().UnixMilli()}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("give up: %w", err)
		}
		n, err = r.RowsAffected()
		return gone, err
	})
	return n, err
}

// Session implements queue.Store: through the events of the subject
// (indexed), in the order the deliveries were stored.
func (s *Store) Session(ctx context.Context, subject string) ([]queue.DeliveryInfo, error) {
	return s.deliveries(ctx, "session", sqlDeliveryColumns+
		` WHERE d.event_id IN (SELECT id FROM events WHERE subject = ? AND subject != '') ORDER BY d.rowid`, subject)
}

// Blocked implements queue.Store.
func (s *Store) Blocked(ctx context.Context, sink string, limit int) ([]queue.Blocked, error) {
	q := `WITH heads AS (
			SELECT min(d.rowid) AS head, count(*) AS n FROM deliveries d
			WHERE d.sink = ? AND d.state IN ('pending', 'failed') AND d.subject != ''
			GROUP BY d.subject)
		SELECT ` + deliveryColumns + `, heads.n FROM heads JOIN deliveries d ON d.rowid = heads.head JOIN events e ON e.id = d.event_id
		WHERE d.state = 'failed' ORDER BY d.created_at, d.rowid`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := s.rdb.QueryContext(ctx, q, sink)
	if err != nil {
		return nil, fmt.Errorf("blocked subjects: %w", err)
	}
	defer rows.Close()
	var out []queue.Blocked
	for rows.Next() {
		var n int
		d, err := scanDelivery(rows, &n)
		if err != nil {
			return nil, fmt.Errorf("blocked subjects: %w", err)
		}
		out = append(out, queue.Blocked{Sink: d.Sink, Subject: d.Subject, Head: d, Behind: n - 1})
	}
	return out, rows.Err()
}

// SinkStats implements queue.Store.
func (s *Store) SinkStats(ctx context.Context) ([]queue.SinkStats, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT sink, state, count(*), min(created_at) FROM deliveries GROUP BY sink, state ORDER BY sink`)
	if err != nil {
		return nil, fmt.Errorf("sink stats: %w", err)
	}
	defer rows.Close()
	var out []queue.SinkStats
	for rows.Next() {
		var sink, state string
		var n int
		var oldest int64
		if err := rows.Scan(&sink, &state, &n, &oldest); err != nil {
			return nil, fmt.Errorf("sink stats: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Sink != sink {
			out = append(out, queue.SinkStats{Sink: sink, States: map[string]int{}})
		}
		st := &out[len(out)-1]
		st.States[state] = n
		if state == queue.StatePending || state == queue.StateFailed {
			if at := time.UnixMilli(oldest); st.OldestWaiting.IsZero() || at.Before(st.OldestWaiting) {
				st.OldestWaiting = at
			}
		}
	}
	return out, rows.Err()
}

// AddAudit implements queue.Store.
func (s *Store) AddAudit(ctx context.Context, a queue.Audit) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error) {
		_, err := tx.ExecContext(ctx, `INSERT INTO audit (at, actor, action, filter, matched, done, note) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			a.At.UnixMilli(), a.Actor, a.Action, a.Filter, a.Matched, a.Done, a.Note)
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		return nil, nil
	})
}

// Audits implements queue.Store.
func (s *Store) Audits(ctx context.Context, limit int) ([]queue.Audit, error) {
	q := `SELECT at, actor, action, filter, matched, done, note FROM audit ORDER BY id DESC`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := s.rdb.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer rows.Close()
	var out []queue.Audit
	for rows.Next() {
		var a queue.Audit
		var at int64
		if err := rows.Scan(&at, &a.Actor, &a.Action, &a.Filter, &a.Matched, &a.Done, &a.Note); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		a.At = time.UnixMilli(at)
		out = append(out, a)
	}
	return out, rows.Err()
}
