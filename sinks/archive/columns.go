package archive

import (
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

// Column is a configured column of sessions: a name and the expression
// filling it.
type Column struct {
	Name string
	Expr *lang.Expression
}

// ConfiguredColumns sorts the configured columns by name: the order
// they are added in and appear in exports.
func ConfiguredColumns(m map[string]*lang.Expression) []Column {
	cols := make([]Column, 0, len(m))
	for name, e := range m {
		cols = append(cols, Column{Name: name, Expr: e})
	}
	slices.SortFunc(cols, func(a, b Column) int { return strings.Compare(a.Name, b.Name) })
	return cols
}

var identRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// reserved are the names of columns an archive keeps itself, or that a
// backend reserves.
var reserved = []string{"id", "session_id", "rowid", "oid", "search", "_versions", "ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"}

// CheckColumnName reports whether name can be a configured column of
// sessions: lower-case letters, digits and _, starting with a letter,
// and not a column an archive fills itself.
func CheckColumnName(name string) error {
	if !identRE.MatchString(name) {
		return fmt.Errorf("invalid column name %q: use lower-case letters, digits and _, starting with a letter (at most 63)", name)
	}
	if slices.Contains(builtinColumns[:], name) || slices.Contains(reserved, name) {
		return fmt.Errorf("column %q is built in: choose another name", name)
	}
	return nil
}

// Quote quotes an identifier checked by CheckColumnName, or a built-in
// one; the same in SQLite and PostgreSQL.
func Quote(name string) string { return `"` + name + `"` }

// evalColumn evaluates a configured column for an event. A missing
// field (nil, or a member of a missing object) is NULL; other runtime
// errors are NULL too, and logged when they change.
func (m *Mapper) evalColumn(c Column, env *event.Env, eventID string) any {
	v, err := c.Expr.Eval(env)
	if err != nil {
		if !strings.Contains(err.Error(), "from <nil>") {
			m.warn.once(m.log, "column "+c.Name, "configured column: expression failed; stored NULL", "column", c.Name, "event_id", eventID, "err", err)
		}
		return nil
	}
	return m.value(v)
}

// ColumnValue converts an expression result to a SQLite value: numbers
// are REAL, booleans INTEGER 0/1, strings TEXT, times TEXT in
// TimeFormat, lists and maps TEXT JSON, nil NULL.
func ColumnValue(v any) any {
	switch x := TypedValue(v).(type) {
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	case json.RawMessage:
		return string(x)
	default:
		return x
	}
}

// TypedValue converts an expression result to one of nil, string,
// float64, bool or, for lists, maps and other values, JSON text in a
// json.RawMessage. Times are TimeFormat text, durations seconds.
func TypedValue(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return x
	case bool:
		return x
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
	return json.RawMessage(b)
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

// Warnings logs a message per key only when its text (the last
// argument) changes. The zero value is ready to use.
type Warnings struct{ w warnings }

// Once logs msg with args unless the last warning for key had the same
// last argument.
func (w *Warnings) Once(log *slog.Logger, key, msg string, args ...any) {
	w.w.once(log, key, msg, args...)
}
