package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/sinks/archive"
)

const insertEvent = `INSERT INTO events
	(id, source, event_type, subject, agent_id, agent_name, timestamp, received_at, data, external_id)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING`

// writeBatch writes a batch in one transaction: the events rows first,
// in order of subject and id, then the sessions of the new ones, each
// locked (SELECT … FOR UPDATE) in order of session id, merged in Go and
// written back. Statements are pipelined: a batch costs a few round
// trips whatever its size.
func (s *Sink) writeBatch(ctx context.Context, batch []*op) error {
	if err := s.typeColumns(ctx, batch); err != nil {
		return err
	}
	cols := s.sessionColumns()
	ops := sortOps(batch)
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, o := range ops {
			r := o.row
			b.Queue(insertEvent, r.ID, r.Source, r.EventType, r.Subject,
				r.AgentID, r.AgentName, mustTime(r.Timestamp), mustTime(r.ReceivedAt), r.Data, r.ExternalID)
		}
		br := tx.SendBatch(ctx, b)
		var updates []*archive.SessionUpdate
		for _, o := range ops {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return fmt.Errorf("insert event %s: %w", o.row.ID, err)
			}
			if tag.RowsAffected() == 1 && o.row.Session != nil {
				updates = append(updates, o.row.Session) // new: not a retry or a replay
			}
		}
		if err := br.Close(); err != nil {
			return err
		}
		if len(updates) == 0 {
			return nil
		}
		return s.mergeSessions(ctx, tx, cols, updates)
	})
}

func mustTime(s string) time.Time {
	t, _ := parseTime(s)
	return t
}

// sessionColumn is a sessions column the writer reads and writes.
type sessionColumn struct {
	name string
	idx  int    // in archive.SessionRow.Vals
	kind string // typeText…, or "time", "count", "jsonb" for built-ins
}

// sessionColumns are the built-in columns and the configured columns
// with a type; a pending configured column has no value yet anywhere.
func (s *Sink) sessionColumns() []sessionColumn {
	types := s.columnTypes()
	cols := make([]sessionColumn, 0, archive.NBuiltin+len(s.columns))
	for i := range archive.NBuiltin {
		c := sessionColumn{name: archive.BuiltinColumn(i), idx: i, kind: typeText}
		switch archive.BuiltinKind(i) {
		case archive.KindTime:
			c.kind = "time"
		case archive.KindJSON:
			c.kind = typeJSON
		case archive.KindCount:
			c.kind = "count"
		}
		cols = append(cols, c)
	}
	for i, c := range s.columns {
		if t := types[c.Name]; t != "" {
			cols = append(cols, sessionColumn{name: c.Name, idx: archive.NBuiltin + i, kind: t})
		}
	}
	return cols
}

// stored is a session's row as read, ready to merge into.
type stored struct {
	id  int64 // 0: not in the table
	row *archive.SessionRow
}

// mergeSessions merges updates (grouped by session, in order of session
// id) into their rows.
func (s *Sink) mergeSessions(ctx context.Context, tx pgx.Tx, cols []sessionColumn, updates []*archive.SessionUpdate) error {
	var sids []string
	bySID := map[string][]*archive.SessionUpdate{}
	for _, u := range updates {
		if _, ok := bySID[u.SessionID]; !ok {
			sids = append(sids, u.SessionID)
		}
		bySID[u.SessionID] = append(bySID[u.SessionID], u)
	}
	rows, err := s.lockSessions(ctx, tx, cols, sids)
	if err != nil {
		return err
	}
	b := &pgx.Batch{}
	for _, sid := range sids {
		st := rows[sid]
		for _, u := range bySID[sid] {
			st.row.Merge(u)
		}
		q, args, err := s.writeSession(cols, sid, st)
		if err != nil {
			return err
		}
		b.Queue(q, args...)
	}
	br := tx.SendBatch(ctx, b)
	var raced []string
	for _, sid := range sids {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return fmt.Errorf("write session %s: %w", sid, err)
		}
		if tag.RowsAffected() == 0 && rows[sid].id == 0 {
			raced = append(raced, sid) // another replica inserted it first
		}
	}
	if err := br.Close(); err != nil {
		return err
	}
	for _, sid := range raced {
		// The other replica's row is committed (the insert waited for
		// it): lock it and merge into it.
		again, err := s.lockSessions(ctx, tx, cols, []string{sid})
		if err != nil {
			return err
		}
		st := again[sid]
		if st.id == 0 {
			return fmt.Errorf("session %s: neither inserted nor found", sid)
		}
		for _, u := range bySID[sid] {
			st.row.Merge(u)
		}
		q, args, err := s.writeSession(cols, sid, st)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("write session %s: %w", sid, err)
		}
	}
	return nil
}

// lockSessions reads and locks the sessions rows of sids, in order.
func (s *Sink) lockSessions(ctx context.Context, tx pgx.Tx, cols []sessionColumn, sids []string) (map[string]*stored, error) {
	sel := make([]string, 0, len(cols)+2)
	sel = append(sel, "id")
	for _, c := range cols {
		switch c.kind {
		case typeJSON:
			sel = append(sel, archive.Quote(c.name)+"::text")
		default:
			sel = append(sel, archive.Quote(c.name))
		}
	}
	sel = append(sel, "_versions::text")
	q := "SELECT " + strings.Join(sel, ", ") + " FROM sessions WHERE session_id = $1 FOR UPDATE"
	b := &pgx.Batch{}
	for _, sid := range sids {
		b.Queue(q, sid)
	}
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	out := make(map[string]*stored, len(sids))
	n := archive.NBuiltin + len(s.columns)
	for _, sid := range sids {
		st := &stored{row: archive.NewSessionRow(n)}
		out[sid] = st
		vals := make([]any, len(cols))
		dest := make([]any, 0, len(cols)+2)
		dest = append(dest, &st.id)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		var versions string
		dest = append(dest, &versions)
		err := br.QueryRow().Scan(dest...)
		if err == pgx.ErrNoRows {
			st.id = 0
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read session %s: %w", sid, err)
		}
		for i, c := range cols {
			st.row.Vals[c.idx] = fromColumn(c.kind, vals[i])
		}
		if err := json.Unmarshal([]byte(versions), &st.row.Versions); err != nil {
			return nil, fmt.Errorf("read session %s versions: %w", sid, err)
		}
	}
	return out, nil
}

// fromColumn converts a value read from PostgreSQL to what the merge
// works with: times as TimeFormat text, JSON as text (built-in) or
// json.RawMessage (configured), counts as int64.
func fromColumn(kind string, v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case time.Time:
		return x.UTC().Format(archive.TimeFormat)
	case string:
		if kind == typeJSON {
			return x // built-in: smart_fields is JSON text
		}
		return x
	case int64:
		return x
	case int32:
		return int64(x)
	}
	return v
}

// writeSession is the statement writing a merged row: an UPDATE of a
// row read, or an INSERT of a new one that does nothing if another
// replica inserted it meanwhile.
func (s *Sink) writeSession(cols []sessionColumn, sid string, st *stored) (string, []any, error) {
	args := make([]any, 0, len(cols)+2)
	names := make([]string, 0, len(cols))
	for _, c := range cols {
		names = append(names, archive.Quote(c.name))
		args = append(args, s.toStored(c, st.row.Vals[c.idx]))
	}
	vb, err := json.Marshal(st.row.Versions)
	if err != nil {
		return "", nil, err
	}
	args = append(args, cleanJSON(string(vb)))
	if st.id == 0 {
		ph := make([]string, len(args)+1)
		for i := range ph {
			ph[i] = "$" + strconv.Itoa(i+1)
		}
		return "INSERT INTO sessions (session_id, " + strings.Join(names, ", ") + ", _versions) VALUES (" +
			strings.Join(ph, ", ") + ") ON CONFLICT (session_id) DO NOTHING", append([]any{sid}, args...), nil
	}
	sets := make([]string, len(names)+1)
	for i, n := range names {
		sets[i] = n + " = $" + strconv.Itoa(i+1)
	}
	sets[len(names)] = "_versions = $" + strconv.Itoa(len(names)+1)
	args = append(args, st.id)
	return "UPDATE sessions SET " + strings.Join(sets, ", ") + " WHERE id = $" + strconv.Itoa(len(args)), args, nil
}

// toStored converts a merged value to its column's type.
func (s *Sink) toStored(c sessionColumn, v any) any {
	if v == nil {
		return nil
	}
	switch c.kind {
	case "time":
		str, _ := v.(string)
		if t, ok := parseTime(str); ok {
			return t
		}
		s.warn.Once(s.log, "time "+c.name, "a session's time is not a time; stored NULL", "column", c.name, "err", fmt.Sprintf("%q", str))
		return nil
	case "count":
		return v
	}
	if c.idx == archive.CSmartFields {
		str, _ := v.(string)
		return cleanJSON(str)
	}
	if c.idx < archive.NBuiltin {
		str, ok := v.(string)
		if !ok {
			str = fmt.Sprint(v)
		}
		return clean(str)
	}
	return s.toColumn(c.name, c.kind, v)
}
