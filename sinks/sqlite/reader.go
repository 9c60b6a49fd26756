package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/switchyard/switchyard/internal/sqlitedb"
)

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

// Hit is a session found by Search.
type Hit struct {
	SessionID   string
	Channel     string
	Title       string
	ForwardType string
	LastEventAt string
	// Snippet is the matching text with matches in [brackets].
	Snippet string
}

// Search finds sessions whose title or summary match query, in SQLite's
// full-text syntax: words (accents and case do not matter), "a phrase",
// prefix*, OR, NOT, parentheses, title:word. Newest sessions first.
func (r *Reader) Search(ctx context.Context, query string, limit int) ([]Hit, error) {
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
	var hits []Hit
	for rows.Next() {
		var h Hit
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

// ExportOptions selects what Export writes.
type ExportOptions struct {
	// Format is "csv" or "jsonl".
	Format string
	// Table is "sessions" (default) or "events".
	Table string
	// Since keeps events with a timestamp, or sessions with a last event,
	// at or after it; zero keeps all.
	Since time.Time
	// Where, compiled by CompileWhere, keeps the rows it is true for.
	Where *Where
}

// jsonColumns hold JSON text; JSONL embeds them as JSON, not as strings.
var jsonColumns = map[string]bool{"data": true, "smart_fields": true}

// Columns returns the columns Export writes for table, in table order.
func (r *Reader) Columns(ctx context.Context, table string) ([]string, error) {
	if table != "sessions" && table != "events" {
		return nil, fmt.Errorf("unknown table %q: sessions or events", table)
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
func (r *Reader) Export(ctx context.Context, w io.Writer, o ExportOptions) (int, error) {
	if o.Table == "" {
		o.Table = "sessions"
	}
	if o.Format != "csv" && o.Format != "jsonl" {
		return 0, fmt.Errorf("unknown format %q: csv or jsonl", o.Format)
	}
	cols, err := r.Columns(ctx, o.Table)
	if err != nil {
		return 0, err
	}
	if o.Where != nil {
		if err := o.Where.check(cols); err != nil {
			return 0, err
		}
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

	bw := bufio.NewWriterSize(w, 64<<10)
	var cw *csv.Writer
	var record []string
	if o.Format == "csv" {
		cw = csv.NewWriter(bw)
		if err := cw.Write(cols); err != nil {
			return 0, err
		}
		record = make([]string, len(cols))
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var line bytes.Buffer
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false)
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
		if o.Where != nil && !o.Where.match(vals) {
			continue
		}
		if cw != nil {
			for i, v := range vals {
				record[i] = csvText(v)
			}
			if err := cw.Write(record); err != nil {
				return n, err
			}
		} else {
			line.Reset()
			line.WriteByte('{')
			for i, c := range cols {
				if i > 0 {
					line.WriteByte(',')
				}
				enc.Encode(c)
				line.Truncate(line.Len() - 1)
				line.WriteByte(':')
				if s, ok := vals[i].(string); ok && jsonColumns[c] && json.Valid([]byte(s)) {
					line.WriteString(s)
					continue
				}
				if err := enc.Encode(vals[i]); err != nil {
					return n, err
				}
				line.Truncate(line.Len() - 1)
			}
			line.WriteString("}\n")
			if _, err := bw.Write(line.Bytes()); err != nil {
				return n, err
			}
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("export %s: %w", o.Table, err)
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}

func csvText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// Where is an export filter: an expression over a row, whose columns are
// its variables (lead_score >= 80 && forward_type == "escalated"). It is
// evaluated in Go for each row; no text of it reaches SQL.
type Where struct {
	src  string
	cols []string
	typ  reflect.Type
	prog *vm.Program
}

// WhereError is a syntax error in a where expression, at a 1-based line
// and column.
type WhereError struct {
	Line, Column int
	Msg          string
}

func (e *WhereError) Error() string {
	return fmt.Sprintf("--where %d:%d: %s", e.Line, e.Column, e.Msg)
}

// CompileWhere compiles src against a table's columns (Reader.Columns).
// Names that are not columns are errors; a row for which the expression
// fails (a NULL compared with a number) does not match.
func CompileWhere(src string, cols []string) (*Where, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &WhereError{Line: 1, Column: 1, Msg: "empty expression"}
	}
	fields := make([]reflect.StructField, len(cols))
	for i, c := range cols {
		fields[i] = reflect.StructField{
			Name: fmt.Sprintf("C%d", i),
			Type: reflect.TypeFor[any](),
			Tag:  reflect.StructTag(fmt.Sprintf(`expr:%q`, c)),
		}
	}
	typ := reflect.StructOf(fields)
	prog, err := expr.Compile(src, expr.Env(reflect.New(typ).Elem().Interface()), expr.AsBool())
	if err != nil {
		var ferr *file.Error
		if errors.As(err, &ferr) {
			return nil, &WhereError{Line: ferr.Line, Column: ferr.Column + 1, Msg: ferr.Message}
		}
		return nil, &WhereError{Line: 1, Column: 1, Msg: err.Error()}
	}
	return &Where{src: src, cols: cols, typ: typ, prog: prog}, nil
}

func (w *Where) check(cols []string) error {
	if strings.Join(cols, ",") != strings.Join(w.cols, ",") {
		return errors.New("--where was compiled for other columns")
	}
	return nil
}

func (w *Where) match(vals []any) bool {
	env := reflect.New(w.typ).Elem()
	for i, v := range vals {
		if v != nil {
			env.Field(i).Set(reflect.ValueOf(v))
		}
	}
	out, err := expr.Run(w.prog, env.Interface())
	b, _ := out.(bool)
	return err == nil && b
}
