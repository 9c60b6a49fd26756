package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/queue"
)

// A cursor is "<time in Unix ms>.<seq>": where a list ordered by that
// time, then seq, both descending, goes on.
func formatCursor(at time.Time, seq int64) string {
	return strconv.FormatInt(at.UnixMilli(), 10) + "." + strconv.FormatInt(seq, 10)
}

func parseCursor(c string) (time.Time, int64, error) {
	a, b, ok := strings.Cut(c, ".")
	var at, seq int64
	var err error
	if ok {
		at, err = strconv.ParseInt(a, 10, 64)
		if err == nil {
			seq, err = strconv.ParseInt(b, 10, 64)
		}
	}
	if !ok || err != nil {
		return time.Time{}, 0, fmt.Errorf("invalid cursor %q: continue a list with the cursor it gave", c)
	}
	return time.UnixMilli(at), seq, nil
}

// likeEscape escapes s for a LIKE pattern with ESCAPE '\'.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// containsCond is the condition that column contains the argument
// $%d (contains's pattern): letters A-Z in any case, every other
// character as itself, as SQLite's LIKE matches. ILIKE folds cases by
// the collation's locale: under the database's own, C.UTF-8 or en_US,
// "ã" matched "Ã" too, and under C not, so that one search found
// different events on different databases; under COLLATE "C" it folds
// A-Z only, everywhere.
func containsCond(column string) string {
	return column + ` COLLATE "C" ILIKE $%d ESCAPE '\'`
}

// contains is the pattern of containsCond for s.
func contains(s string) string { return "%" + likeEscape(s) + "%" }

// named reports whether f names the deliveries an action applies to.
func named(f queue.Filter) bool {
	return f.ID != "" || f.IDs != nil || f.EventID != "" || f.Sink != ""
}

// cleanedFilter is f with its text as stored (cleaned): a NUL byte or
// bytes that are not UTF-8, which PostgreSQL's text refuses, select
// what was stored with them, as on any backend, rather than fail.
func cleanedFilter(f queue.Filter) queue.Filter {
	f.ID, f.EventID, f.Sink, f.Subject, f.Error = cleaned(f.ID), cleaned(f.EventID), cleaned(f.Sink), cleaned(f.Subject), cleaned(f.Error)
	if f.IDs != nil {
		ids := make([]string, len(f.IDs))
		for i, id := range f.IDs {
			ids[i] = cleaned(id)
		}
		f.IDs = ids
	}
	return f
}

// eventWhere turns f into conditions on events e, with their arguments
// numbered from $1. Its text is cleaned as cleanedFilter's.
func eventWhere(f queue.EventFilter) ([]string, []any, error) {
	f.Source, f.EventType, f.Subject, f.Text = cleaned(f.Source), cleaned(f.EventType), cleaned(f.Subject), cleaned(f.Text)
	var conds []string
	var args []any
	add := func(cond string, arg ...any) {
		marks := make([]any, len(arg))
		for i := range arg {
			marks[i] = len(args) + i + 1
		}
		args = append(args, arg...)
		conds = append(conds, fmt.Sprintf(cond, marks...))
	}
	if f.Source != "" {
		add("e.source = $%d", f.Source)
	}
	switch p := f.EventType; {
	case p == "" || p == "*":
	case strings.HasSuffix(p, ".*"):
		prefix := strings.TrimSuffix(p, "*")
		n := utf8.RuneCountInString(prefix)
		add("left(e.event_type, $%d) = $%d AND length(e.event_type) > $%d", n, prefix, n)
	default:
		add("e.event_type = $%d", p)
	}
	if f.Subject != "" {
		add("e.subject = $%d AND e.subject <> ''", f.Subject)
	}
	if len(f.States) > 0 {
		for _, st := range f.States {
			if !slices.Contains(queue.States, st) {
				return nil, nil, fmt.Errorf("unknown state %q: one of %s", st, strings.Join(queue.States, ", "))
			}
		}
		add("EXISTS (SELECT 1 FROM queue_deliveries d WHERE d.event_id = e.id AND d.state = ANY($%d))", f.States)
	}
	if !f.Since.IsZero() {
		add("e.received_at >= $%d", ms(f.Since))
	}
	if !f.Until.IsZero() {
		add("e.received_at < $%d", ms(f.Until))
	}
	if f.Text != "" {
		add(containsCond("e.search_text"), contains(f.Text))
	}
	if f.After != "" {
		at, seq, err := parseCursor(f.After)
		if err != nil {
			return nil, nil, err
		}
		add("(e.received_at, e.seq) < ($%d, $%d)", at, seq)
	}
	return conds, args, nil
}

// RetryNow implements queue.Store.
func (s *Store) RetryNow(ctx context.Context, f queue.Filter) (int64, error) {
	if !named(f) {
		return 0, queue.ErrNoFilter
	}
	f.Limit, f.After = 0, ""
	cond, args, err := where(f, 2)
	if err != nil {
		return 0, err
	}
	var n int64
	var sinks []string
	err = s.inTx(ctx, func(tx pgx.Tx) ([]sinkDelta, error) {
		n, sinks = 0, nil
		rows, _ := tx.Query(ctx, `WITH r AS (UPDATE queue_deliveries d SET next_at = $1
			WHERE `+cond+` AND d.state IN ('pending', 'failed') RETURNING d.sink)
			SELECT sink, count(*) FROM r GROUP BY sink`, append([]any{ms(s.now())}, args...)...)
		var sink string
		var c int64
		_, err := pgx.ForEachRow(rows, []any{&sink, &c}, func() error {
			n += c
			sinks = append(sinks, sink)
			return nil
		})
		return nil, err
	})
	if err != nil {
		return 0, fmt.Errorf("retry now: %w", err)
	}
	s.announce(sinks...)
	return n, nil
}

// GiveUp implements queue.Store. A delivery an attempt holds anywhere
// in the cluster is left to its attempt; one whose lease expired loses
// it, so that a late outcome cannot bring it back from the dead.
func (s *Store) GiveUp(ctx context.Context, f queue.Filter) (int64, error) {
	if !named(f) {
		return 0, queue.ErrNoFilter
	}
	f.Limit, f.After = 0, ""
	cond, args, err := where(f, 2)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.inTx(ctx, func(tx pgx.Tx) ([]sinkDelta, error) {
		n = 0
		rows, _ := tx.Query(ctx, `WITH r AS (UPDATE queue_deliveries d SET state = 'dead', updated_at = $1, lease_until = NULL, leased_by = ''
			WHERE `+cond+` AND d.state IN ('pending', 'failed') AND (d.lease_until IS NULL OR d.lease_until <= $1) RETURNING d.sink)
			SELECT sink, count(*) FROM r GROUP BY sink`, append([]any{ms(s.now())}, args...)...)
		var deltas []sinkDelta
		var sink string
		var c int64
		_, err := pgx.ForEachRow(rows, []any{&sink, &c}, func() error {
			n += c
			deltas = append(deltas, sinkDelta{sink, -c})
			return nil
		})
		return deltas, err
	})
	if err != nil {
		return 0, fmt.Errorf("give up: %w", err)
	}
	return n, nil
}

// Session implements queue.Store.
func (s *Store) Session(ctx context.Context, subject string) ([]queue.DeliveryInfo, error) {
	out, err := s.deliveries(ctx, sqlDeliveryColumns+
		` WHERE d.event_id IN (SELECT id FROM queue_events WHERE subject = $1 AND subject <> '') ORDER BY d.seq`, cleaned(subject))
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return out, nil
}

// Blocked implements queue.Store.
func (s *Store) Blocked(ctx context.Context, sink string, limit int) ([]queue.Blocked, error) {
	q := `SELECT * FROM (
			SELECT DISTINCT ON (d.subject) ` + deliveryColumns + `, count(*) OVER (PARTITION BY d.subject)
			FROM queue_deliveries d JOIN queue_events e ON e.id = d.event_id
			WHERE d.sink = $1 AND d.state IN ('pending', 'failed') AND d.subject <> ''
			ORDER BY d.subject, d.seq
		) h WHERE h.state = 'failed' ORDER BY h.created_at, h.seq`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	var n int
	var out []queue.Blocked
	_, err := s.deliveriesWith(ctx, []any{&n}, func(d *queue.DeliveryInfo) {
		out = append(out, queue.Blocked{Sink: d.Sink, Subject: d.Subject, Head: *d, Behind: n - 1})
	}, q, cleaned(sink))
	if err != nil {
		return nil, fmt.Errorf("blocked subjects: %w", err)
	}
	return out, nil
}

// SinkStats implements queue.Store.
func (s *Store) SinkStats(ctx context.Context) ([]queue.SinkStats, error) {
	rows, _ := s.pool.Query(ctx, `SELECT sink, state, count(*), min(created_at) FROM queue_deliveries GROUP BY sink, state ORDER BY sink`)
	var out []queue.SinkStats
	var sink, state string
	var n int
	var oldest time.Time
	_, err := pgx.ForEachRow(rows, []any{&sink, &state, &n, &oldest}, func() error {
		if len(out) == 0 || out[len(out)-1].Sink != sink {
			out = append(out, queue.SinkStats{Sink: sink, States: map[string]int{}})
		}
		st := &out[len(out)-1]
		st.States[state] = n
		if state == queue.StatePending || state == queue.StateFailed {
			if st.OldestWaiting.IsZero() || oldest.Before(st.OldestWaiting) {
				st.OldestWaiting = oldest
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sink stats: %w", err)
	}
	return out, nil
}

// AddAudit implements queue.Store.
func (s *Store) AddAudit(ctx context.Context, a queue.Audit) error {
	err := s.inTx(ctx, func(tx pgx.Tx) ([]sinkDelta, error) {
		_, err := tx.Exec(ctx, `INSERT INTO queue_audit (at, actor, action, filter, matched, done, note) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			ms(a.At), cleaned(a.Actor), cleaned(a.Action), cleaned(a.Filter), a.Matched, a.Done, cleaned(a.Note))
		return nil, err
	})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// Audits implements queue.Store.
func (s *Store) Audits(ctx context.Context, limit int) ([]queue.Audit, error) {
	q := `SELECT at, actor, action, filter, matched, done, note FROM queue_audit ORDER BY id DESC`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, _ := s.pool.Query(ctx, q)
	var out []queue.Audit
	var a queue.Audit
	_, err := pgx.ForEachRow(rows, []any{&a.At, &a.Actor, &a.Action, &a.Filter, &a.Matched, &a.Done, &a.Note}, func() error {
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return out, nil
}
