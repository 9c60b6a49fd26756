package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/sqlitedb"
	"github.com/switchyard/switchyard/sinks/archive"
)

var _ archive.Reader = (*Reader)(nil)

// Reader reads an archive without writing to it, while the gateway
// writes: WAL gives it a snapshot per query and never blocks the writer.
type Reader struct {
	db *sql.DB
}

// OpenReader opens the archive at path read-only. The file must exist.
func OpenReader(ctx context.Context, path string) (*Reader, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	db, err := sqlitedb.Open(ctx, path, sqlitedb.Options{QueryOnly: true, BusyTimeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open archive %s: %w", path, err)
	}
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		db.Close()
		return nil, fmt.Errorf("open archive %s: %w", path, err)
	}
	if version != len(migrations) {
		db.Close()
		return nil, fmt.Errorf("archive %s has schema version %d, this switchyard reads %d: run the gateway once to migrate it, or use a matching switchyard", path, version, len(migrations))
	}
	return &Reader{db: db}, nil
}

// Close closes the reader.
func (r *Reader) Close() error { return r.db.Close() }

// Search finds sessions whose title or summary match query, in SQLite's
// full-text syntax: words (accents and case do not matter), "a phrase",
// prefix*, OR, NOT, parentheses, title:word. Newest sessions first.
func (r *Reader) Search(ctx context.Context, query string, limit int) ([]archive.Hit, error) {
	if limit <= 0 {
		limit = 20
	}
	rows, err := r.db.QueryContext(ctx, `SELECT s.session_id, coalesce(s.channel_name, ''), coalesce(s.title, ''),
			coalesce(s.forward_type, ''), s.last_event_at, snippet(sessions_fts, '[', ']', '…', -1, 16)
		FROM sessions_fts JOIN sessions s ON s.id = sessions_fts.docid
		WHERE sessions_fts MATCH ? ORDER BY s.last_event_at DESC LIMIT ?`, query, limit)
	if err != nil {
		return nil, fmt.Errorf("search %q: %w", query, err)
	}
	defer rows.Close()
	var hits []archive.Hit
	for rows.Next() {
		var h archive.Hit
		if err := rows.Scan(&h.SessionID, &h.Channel, &h.Title, &h.ForwardType, &h.LastEventAt, &h.Snippet); err != nil {
			return nil, err
		}
		hits = append(hits, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search %q: %w", query, err)
	}
	return hits, nil
}

// Columns returns the columns Export writes for table, in table order.
func (r *Reader) Columns(ctx context.Context, table string) ([]string, error) {
	if err := archive.CheckTable(table); err != nil {
		return nil, err
	}
	rows, err := r.db.QueryContext(ctx, "SELECT name FROM pragma_table_info(?) ORDER BY cid", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		if table == "sessions" && (c == "id" || c == "_versions") {
			continue // internal
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// Export streams a table to w as CSV (a header, then one record per row;
// NULL is empty) or JSONL (one object per line, keys in column order,
// NULL as null, data and smart_fields as JSON). It reads one snapshot of
// the archive and returns how many rows it wrote.
func (r *Reader) Export(ctx context.Context, w io.Writer, o archive.ExportOptions) (int, error) {
	if o.Table == "" {
		o.Table = "sessions"
	}
	cols, err := r.Columns(ctx, o.Table)
	if err != nil {
		return 0, err
	}
	if o.Where != nil {
		if err := o.Where.Check(cols); err != nil {
			return 0, err
		}
	}
	rw, err := archive.NewRowWriter(w, o.Format, cols)
	if err != nil {
		return 0, err
	}
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = quote(c)
	}
	q := "SELECT " + strings.Join(quoted, ", ") + " FROM " + o.Table
	var args []any
	if !o.Since.IsZero() {
		at := "timestamp"
		if o.Table == "sessions" {
			at = "last_event_at"
		}
		q += " WHERE " + at + " >= ?"
		args = append(args, o.Since.UTC().Format(TimeFormat))
	}
	if o.Table == "sessions" {
		q += " ORDER BY id"
	} else {
		q += " ORDER BY timestamp, id"
	}
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("export %s: %w", o.Table, err)
	}
	defer rows.Close()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = string(b)
			}
		}
		if o.Where != nil && !o.Where.Match(vals) {
			continue
		}
		if err := rw.Write(vals); err != nil {
			return n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("export %s: %w", o.Table, err)
	}
	return n, rw.Flush()
}
