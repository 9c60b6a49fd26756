package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/sinks/archive"
)

// statements are the writer's prepared statements.
type statements struct {
	insertEvent, selectSession, insertSession, updateSession *sql.Stmt
	ncols                                                    int
}

func prepare(ctx context.Context, db *sql.DB, columns []archive.Column) (*statements, error) {
	cols := make([]string, 0, archive.NBuiltin+len(columns))
	for i := range archive.NBuiltin {
		cols = append(cols, archive.BuiltinColumn(i))
	}
	for _, c := range columns {
		cols = append(cols, archive.Quote(c.Name))
	}
	st := &statements{ncols: len(cols)}
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var stmt *sql.Stmt
		stmt, err = db.PrepareContext(ctx, q)
		return stmt
	}
	st.insertEvent = prep(`INSERT INTO events
		(id, source, event_type, subject, agent_id, agent_name, timestamp, received_at, data, external_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`)
	st.selectSession = prep(`SELECT id, ` + strings.Join(cols, ", ") + `, _versions FROM sessions WHERE session_id = ?`)
	st.insertSession = prep(`INSERT INTO sessions (session_id, ` + strings.Join(cols, ", ") + `, _versions)
		VALUES (?` + strings.Repeat(", ?", len(cols)+1) + `)`)
	st.updateSession = prep(`UPDATE sessions SET ` + strings.Join(cols, " = ?, ") + ` = ?, _versions = ? WHERE id = ?`)
	if err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

func (st *statements) close() {
	for _, s := range []*sql.Stmt{st.insertEvent, st.selectSession, st.insertSession, st.updateSession} {
		if s != nil {
			s.Close()
		}
	}
}

// txWriter writes rows inside one transaction.
type txWriter struct {
	insertEvent, selectSession, insertSession, updateSession *sql.Stmt
	ncols                                                    int
}

func (st *statements) in(ctx context.Context, tx *sql.Tx) *txWriter {
	return &txWriter{
		insertEvent:   tx.StmtContext(ctx, st.insertEvent),
		selectSession: tx.StmtContext(ctx, st.selectSession),
		insertSession: tx.StmtContext(ctx, st.insertSession),
		updateSession: tx.StmtContext(ctx, st.updateSession),
		ncols:         st.ncols,
	}
}

// write inserts the events row and, if it is new, merges the event into
// its session.
func (w *txWriter) write(ctx context.Context, r *archive.EventRow) error {
	res, err := w.insertEvent.ExecContext(ctx, r.ID, r.Source, r.EventType, r.Subject, r.AgentID, r.AgentName, r.Timestamp, r.ReceivedAt, r.Data, r.ExternalID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 || r.Session == nil {
		return nil // archived before: a retry or a replay
	}
	return w.mergeSession(ctx, r.Session)
}

func (w *txWriter) mergeSession(ctx context.Context, u *archive.SessionUpdate) error {
	row := archive.NewSessionRow(w.ncols)
	var id int64
	dest := make([]any, 0, w.ncols+2)
	dest = append(dest, &id)
	for i := range row.Vals {
		dest = append(dest, &row.Vals[i])
	}
	var versions string
	dest = append(dest, &versions)
	switch err := w.selectSession.QueryRowContext(ctx, u.SessionID).Scan(dest...); {
	case errors.Is(err, sql.ErrNoRows):
		id = 0
	case err != nil:
		return fmt.Errorf("read session: %w", err)
	default:
		for i, v := range row.Vals {
			if b, ok := v.([]byte); ok {
				row.Vals[i] = string(b)
			}
		}
		if err := json.Unmarshal([]byte(versions), &row.Versions); err != nil {
			return fmt.Errorf("read session versions: %w", err)
		}
	}
	row.Merge(u)
	vb, err := json.Marshal(row.Versions)
	if err != nil {
		return err
	}
	args := make([]any, 0, w.ncols+2)
	if id == 0 {
		args = append(args, u.SessionID)
		args = append(args, row.Vals...)
		args = append(args, string(vb))
		_, err = w.insertSession.ExecContext(ctx, args...)
	} else {
		args = append(args, row.Vals...)
		args = append(args, string(vb), id)
		_, err = w.updateSession.ExecContext(ctx, args...)
	}
	if err != nil {
		return fmt.Errorf("write session: %w", err)
	}
	return nil
}

// backfillSize is how many events share a transaction while sessions
// are derived from an existing archive.
const backfillSize = 1000

// backfill derives sessions from the events of an archive written
// before the sessions table existed, in batches of events by rowid.
func (s *Sink) backfill(ctx context.Context, db *sql.DB, st *statements) error {
	var after int64
	for {
		n, last, err := s.backfillBatch(ctx, db, st, after)
		if err != nil {
			return err
		}
		if n < backfillSize {
			return nil
		}
		after = last
	}
}

func (s *Sink) backfillBatch(ctx context.Context, db *sql.DB, st *statements, after int64) (int, int64, error) {
	rows, err := db.QueryContext(ctx, `SELECT rowid, id, source, event_type, subject, agent_id, agent_name, timestamp, received_at, data
		FROM events WHERE rowid > ? AND event_type LIKE 'session.%' ORDER BY rowid LIMIT ?`, after, backfillSize)
	if err != nil {
		return 0, 0, err
	}
	var evs []*event.Event
	var last int64
	for rows.Next() {
		var ev event.Event
		var ts, recv, data string
		if err := rows.Scan(&last, &ev.ID, &ev.Source, &ev.EventType, &ev.Subject, &ev.AgentID, &ev.AgentName, &ts, &recv, &data); err != nil {
			rows.Close()
			return 0, 0, err
		}
		ev.Timestamp, _ = time.Parse(TimeFormat, ts)
		ev.ReceivedAt, _ = time.Parse(TimeFormat, recv)
		ev.Data = json.RawMessage(data)
		evs = append(evs, &ev)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	w := st.in(ctx, tx)
	for _, ev := range evs {
		if r := s.mapper.Row(ev); r.Session != nil {
			if err := w.mergeSession(ctx, r.Session); err != nil {
				return 0, 0, err
			}
		}
	}
	return len(evs), last, tx.Commit()
}
