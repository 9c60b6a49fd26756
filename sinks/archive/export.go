package archive

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// JSONColumns hold JSON; JSONL embeds them as JSON, not as strings.
var JSONColumns = map[string]bool{"data": true, "smart_fields": true}

// CheckTable reports whether table can be exported.
func CheckTable(table string) error {
	if table != "sessions" && table != "events" {
		return fmt.Errorf("unknown table %q: sessions or events", table)
	}
	return nil
}

// RowWriter writes exported rows: CSV (a header, then one record per
// row; NULL is empty) or JSONL (one object per line, keys in column
// order, NULL as null, JSON columns as JSON). Values are nil, string,
// int64, float64, bool or json.RawMessage.
type RowWriter struct {
	cols   []string
	bw     *bufio.Writer
	cw     *csv.Writer
	record []string
	line   bytes.Buffer
	enc    *json.Encoder
}

// NewRowWriter starts an export of cols to w in format.
func NewRowWriter(w io.Writer, format string, cols []string) (*RowWriter, error) {
	if format != "csv" && format != "jsonl" {
		return nil, fmt.Errorf("unknown format %q: csv or jsonl", format)
	}
	rw := &RowWriter{cols: cols, bw: bufio.NewWriterSize(w, 64<<10)}
	rw.enc = json.NewEncoder(&rw.line)
	rw.enc.SetEscapeHTML(false)
	if format == "csv" {
		rw.cw = csv.NewWriter(rw.bw)
		if err := rw.cw.Write(cols); err != nil {
			return nil, err
		}
		rw.record = make([]string, len(cols))
	}
	return rw, nil
}

// Write writes a row, its values in column order.
func (rw *RowWriter) Write(vals []any) error {
	if rw.cw != nil {
		for i, v := range vals {
			rw.record[i] = csvText(v)
		}
		return rw.cw.Write(rw.record)
	}
	line := &rw.line
	line.Reset()
	line.WriteByte('{')
	for i, c := range rw.cols {
		if i > 0 {
			line.WriteByte(',')
		}
		rw.enc.Encode(c)
		line.Truncate(line.Len() - 1)
		line.WriteByte(':')
		switch v := vals[i].(type) {
		case json.RawMessage:
			if json.Valid(v) {
				line.Write(v)
				continue
			}
			vals[i] = string(v)
		case string:
			if JSONColumns[c] && json.Valid([]byte(v)) {
				line.WriteString(v)
				continue
			}
		}
		if err := rw.enc.Encode(vals[i]); err != nil {
			return err
		}
		line.Truncate(line.Len() - 1)
	}
	line.WriteString("}\n")
	_, err := rw.bw.Write(line.Bytes())
	return err
}

// Flush writes what is buffered.
func (rw *RowWriter) Flush() error {
	if rw.cw != nil {
		rw.cw.Flush()
		if err := rw.cw.Error(); err != nil {
			return err
		}
	}
	return rw.bw.Flush()
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
	case bool:
		return strconv.FormatBool(x)
	case json.RawMessage:
		return string(x)
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

// Check reports whether w was compiled for cols.
func (w *Where) Check(cols []string) error {
	if strings.Join(cols, ",") != strings.Join(w.cols, ",") {
		return errors.New("--where was compiled for other columns")
	}
	return nil
}

// Match reports whether the row, its values in column order, matches.
func (w *Where) Match(vals []any) bool {
	env := reflect.New(w.typ).Elem()
	for i, v := range vals {
		if raw, ok := v.(json.RawMessage); ok {
			v = string(raw)
		}
		if v != nil {
			env.Field(i).Set(reflect.ValueOf(v))
		}
	}
	out, err := expr.Run(w.prog, env.Interface())
	b, _ := out.(bool)
	return err == nil && b
}
