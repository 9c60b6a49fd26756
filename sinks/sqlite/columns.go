package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
)

// column is a configured column of sessions.
type column struct {
	name string
	expr *lang.Expression
}

// configuredColumns sorts the configured columns by name: the order
// they are added in and appear in exports.
func configuredColumns(m map[string]*lang.Expression) []column {
	cols := make([]column, 0, len(m))
	for name, e := range m {
		cols = append(cols, column{name: name, expr: e})
	}
	slices.SortFunc(cols, func(a, b column) int { return strings.Compare(a.name, b.name) })
	return cols
}

var identRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// CheckColumnName reports whether name can be a configured column of
// sessions: lower-case letters, digits and _, starting with a letter,
// and not a column the archive fills itself.
func CheckColumnName(name string) error {
	if !identRE.MatchString(name) {
		return fmt.Errorf("invalid column name %q: use lower-case letters, digits and _, starting with a letter (at most 63)", name)
	}
	if slices.Contains(builtinColumns[:], name) || name == "id" || name == "session_id" || name == "rowid" || name == "oid" {
		return fmt.Errorf("column %q is built in: choose another name", name)
	}
	return nil
}

// quote quotes an identifier checked by CheckColumnName.
func quote(name string) string { return `"` + name + `"` }

// addColumns adds the configured columns sessions lacks, with an index
// each, and records them with their expressions in archive_columns.
// Columns no longer configured stay, no longer filled.
func (s *Sink) addColumns(ctx context.Context, db *sql.DB) error {
	if len(s.columns) == 0 {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	existing := map[string]bool{}
	rows, err := tx.QueryContext(ctx, "SELECT name FROM pragma_table_info('sessions')")
	if err != nil {
		return err
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		existing[strings.ToLower(n)] = true
	}
	rows.Close()
	now := s.opts.Now().UTC().Format(TimeFormat)
	for _, c := range s.columns {
		if !existing[c.name] {
			// No declared type: each value keeps the type of the
			// expression's result (REAL, INTEGER for booleans, TEXT).
			if _, err := tx.ExecContext(ctx, "ALTER TABLE sessions ADD COLUMN "+quote(c.name)); err != nil {
				return fmt.Errorf("add column %s: %w", c.name, err)
			}
		} else {
			var known int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM archive_columns WHERE name = ?", c.name).Scan(&known); err != nil {
				return err
			}
			if known == 0 {
				return fmt.Errorf("column %q: sessions already has a column of that name that is not a configured column", c.name)
			}
		}
		if _, err := tx.ExecContext(ctx, "CREATE INDEX IF NOT EXISTS "+quote("sessions_c_"+c.name)+" ON sessions ("+quote(c.name)+")"); err != nil {
			return fmt.Errorf("index column %s: %w", c.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO archive_columns (name, expr, added_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET expr = excluded.expr`, c.name, c.expr.String(), now); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// evalColumn evaluates a configured column for an event. A missing
// field (nil, or a member of a missing object) is NULL; other runtime
// errors are NULL too, and logged when they change.
func (s *Sink) evalColumn(c column, env *event.Env, eventID string) any {
	v, err := c.expr.Eval(env)
	if err != nil {
		if !strings.Contains(err.Error(), "from <nil>") {
			s.warn.once(s.log, "column "+c.name, "configured column: expression failed; stored NULL", "column", c.name, "event_id", eventID, "err", err)
		}
		return nil
	}
	return columnValue(v)
}

// columnValue converts an expression result to a SQLite value: numbers
// are REAL, booleans INTEGER 0/1, strings TEXT, times TEXT in
// TimeFormat, lists and maps TEXT JSON, nil NULL.
func columnValue(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return x
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	case float64:
		return x
	case float32:
		return float64(x)
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case uint:
		return float64(x)
	case uint64:
		return float64(x)
	case time.Time:
		return x.UTC().Format(TimeFormat)
	case time.Duration:
		return x.Seconds()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// warnings logs a message per key only when its text changes, so a
// failing expression does not log once per event.
type warnings struct {
	mu   sync.Mutex
	last map[string]string
}

func (w *warnings) once(log *slog.Logger, key, msg string, args ...any) {
	text := fmt.Sprint(args[len(args)-1])
	w.mu.Lock()
	if w.last == nil {
		w.last = map[string]string{}
	}
	same := w.last[key] == text
	w.last[key] = text
	w.mu.Unlock()
	if !same {
		log.Warn(msg, args...)
	}
}
