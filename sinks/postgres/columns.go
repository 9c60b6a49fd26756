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

// A configured column's type is the PostgreSQL type of the first value
// its expression gives (pgType), decided when that value is written:
// an expression's type is not known before it runs (data.* can hold
// anything). Until then the column is only recorded in archive_columns.
const (
	typeText   = "text"
	typeNumber = "double precision"
	typeBool   = "boolean"
	typeJSON   = "jsonb"
)

// pgType is the column type for a value from archive.TypedValue.
func pgType(v any) string {
	switch v.(type) {
	case float64:
		return typeNumber
	case bool:
		return typeBool
	case json.RawMessage:
		return typeJSON
	}
	return typeText
}

// addColumns records the configured columns archive_columns lacks and
// loads the types of those it has. Columns no longer configured stay,
// no longer filled. The caller holds the migration lock.
func (s *Sink) addColumns(ctx context.Context, conn *pgx.Conn) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, c := range s.columns {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'sessions'::regclass AND attname = $1 AND NOT attisdropped)
				AND NOT EXISTS (SELECT FROM archive_columns WHERE name = $1)`, c.Name).Scan(&exists); err != nil {
				return err
			}
			if exists {
				return fmt.Errorf("column %q: sessions already has a column of that name that is not a configured column", c.Name)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO archive_columns (name, expr, added_at) VALUES ($1, $2, now())
				ON CONFLICT (name) DO UPDATE SET expr = excluded.expr`, c.Name, c.Expr.String()); err != nil {
				return err
			}
		}
		return s.loadColumnTypes(ctx, tx)
	})
}

// loadColumnTypes reads the configured columns' types.
func (s *Sink) loadColumnTypes(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) error {
	rows, err := q.Query(ctx, `SELECT name, coalesce(type, '') FROM archive_columns`)
	if err != nil {
		return err
	}
	types := map[string]string{}
	var name, typ string
	_, err = pgx.ForEachRow(rows, []any{&name, &typ}, func() error {
		types[name] = typ
		return nil
	})
	if err != nil {
		return err
	}
	s.typesMu.Lock()
	s.types = types
	s.typesMu.Unlock()
	return nil
}

// columnTypes returns the configured columns' types ("" while pending).
func (s *Sink) columnTypes() map[string]string {
	s.typesMu.Lock()
	defer s.typesMu.Unlock()
	return s.types
}

// typeColumns adds the configured columns of a batch's first values:
// those pending in types that a row of the batch sets. Under the
// migration lock, in a transaction of its own, it adds each column
// with the type of its value, and an index.
func (s *Sink) typeColumns(ctx context.Context, batch []*op) error {
	types := s.columnTypes()
	need := map[string]string{}
	for _, o := range batch {
		u := o.row.Session
		if u == nil {
			continue
		}
		for i, c := range s.columns {
			if types[c.Name] != "" || need[c.Name] != "" {
				continue
			}
			if v := u.Value(archive.NBuiltin + i); v != nil {
				need[c.Name] = pgType(v)
			}
		}
	}
	if len(need) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockSpace, lockMigrate); err != nil {
			return err
		}
		for _, c := range s.columns { // in name order, as the sqlite archive adds them
			name, typ := c.Name, need[c.Name]
			if typ == "" {
				continue
			}
			var cur string
			if err := tx.QueryRow(ctx, `SELECT coalesce(type, '') FROM archive_columns WHERE name = $1`, name).Scan(&cur); err != nil {
				return err
			}
			if cur != "" {
				continue // another replica was first
			}
			q := archive.Quote(name)
			if _, err := tx.Exec(ctx, `ALTER TABLE sessions ADD COLUMN IF NOT EXISTS `+q+` `+typ); err != nil {
				return fmt.Errorf("add column %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, `CREATE INDEX IF NOT EXISTS `+archive.Quote("sessions_c_"+name)+` ON sessions (`+q+`)`); err != nil {
				return fmt.Errorf("index column %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE archive_columns SET type = $2 WHERE name = $1`, name, typ); err != nil {
				return err
			}
			s.log.Info("archive column added", "column", name, "type", typ)
		}
		return s.loadColumnTypes(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("add configured columns: %w", err)
	}
	return nil
}

// toColumn converts a configured column's value (archive.TypedValue)
// to the column's type. A value that does not fit (text in a number
// column) is NULL, and logged once.
func (s *Sink) toColumn(name, typ string, v any) any {
	if v == nil {
		return nil
	}
	switch typ {
	case typeText:
		switch x := v.(type) {
		case string:
			return clean(x)
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			return strconv.FormatBool(x)
		case json.RawMessage:
			return clean(string(x))
		}
	case typeNumber:
		switch x := v.(type) {
		case float64:
			return x
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return f
			}
		}
	case typeBool:
		if b, ok := v.(bool); ok {
			return b
		}
	case typeJSON:
		if raw, ok := v.(json.RawMessage); ok {
			return cleanJSON(string(raw))
		}
		b, _ := json.Marshal(v)
		return cleanJSON(string(b))
	}
	s.warn.Once(s.log, "column "+name, "configured column: a value does not fit the column's type; stored NULL",
		"column", name, "type", typ, "err", fmt.Sprintf("%T value for a %s column", v, typ))
	return nil
}

// clean replaces NUL characters, which PostgreSQL's text cannot hold.
func clean(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// cleanJSON makes JSON text storable as jsonb: without \u0000 (which
// jsonb refuses), and JSON at all (invalid text is stored as a JSON
// string).
func cleanJSON(s string) string {
	if !json.Valid([]byte(s)) {
		b, _ := json.Marshal(clean(s))
		return string(b)
	}
	if !strings.Contains(s, `\u0000`) {
		return s
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return s
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(cleanValue(v))
	return strings.TrimSuffix(b.String(), "\n")
}

func cleanValue(v any) any {
	switch x := v.(type) {
	case string:
		return clean(x)
	case []any:
		for i := range x {
			x[i] = cleanValue(x[i])
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[clean(k)] = cleanValue(e)
		}
		return out
	}
	return v
}

// parseTime reads a TimeFormat text, or reports false.
func parseTime(s string) (time.Time, bool) {
	t, err := time.Parse(archive.TimeFormat, s)
	return t, err == nil
}
