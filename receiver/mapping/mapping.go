// Package mapping normalizes payloads of senders without a preset with
// expressions (expr-lang/expr) over the request, one per event field:
//
//	map: {eventType: 'headers["X-Event"]', id: 'body.id', data: 'body.payload'}
//
// The environment is headers (first value of each, canonical names such
// as X-Event, and lower-case names too), query, method, path, and body:
// the JSON body decoded (numbers kept exact), or a form body's first
// values. Expressions are compiled at load.
package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/receiver/darwin"
	"github.com/switchyard/switchyard/receiver/inbound"
	"github.com/switchyard/switchyard/receiver/rawjson"
)

// Env is what mapping expressions see.
type Env struct {
	Headers map[string]string `expr:"headers"`
	Query   map[string]string `expr:"query"`
	Method  string            `expr:"method"`
	Path    string            `expr:"path"`
	Body    any               `expr:"body"`
}

// Fields are the event fields a map may set; eventType is required.
var Fields = []string{"eventType", "id", "subject", "timestamp", "agentId", "agentName", "data"}

// Error is a map entry that does not compile; Line and Column are inside
// the expression.
type Error struct {
	Field        string
	Line, Column int
	Msg          string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Msg) }

// Mapping is a compiled map.
type Mapping struct {
	progs map[string]*vm.Program
}

// Compile compiles m; every error is an *Error (joined when several).
func Compile(m map[string]string) (*Mapping, error) {
	out := &Mapping{progs: map[string]*vm.Program{}}
	var errs []error
	for _, field := range slices.Sorted(maps.Keys(m)) {
		src := m[field]
		if !slices.Contains(Fields, field) {
			errs = append(errs, &Error{Field: field, Msg: fmt.Sprintf("unknown field %q: one of %s", field, strings.Join(Fields, ", "))})
			continue
		}
		if strings.TrimSpace(src) == "" {
			errs = append(errs, &Error{Field: field, Msg: "empty expression"})
			continue
		}
		prog, err := expr.Compile(src, append(lang.Functions(), expr.Env(Env{}), expr.MaxNodes(1000))...)
		if err != nil {
			var ferr *file.Error
			if errors.As(err, &ferr) {
				errs = append(errs, &Error{Field: field, Line: ferr.Line, Column: ferr.Column + 1, Msg: ferr.Message})
			} else {
				errs = append(errs, &Error{Field: field, Msg: err.Error()})
			}
			continue
		}
		out.progs[field] = prog
	}
	if _, ok := m["eventType"]; !ok {
		errs = append(errs, &Error{Field: "eventType", Msg: "missing: every event needs a type, such as eventType: 'body.type'"})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func env(r *inbound.Request) (*Env, error) {
	e := &Env{Headers: map[string]string{}, Query: map[string]string{}, Method: r.Method}
	for k, vs := range r.Header {
		if len(vs) > 0 {
			e.Headers[k] = vs[0]
			e.Headers[strings.ToLower(k)] = vs[0]
		}
	}
	if r.URL != nil {
		e.Path = r.URL.Path
		for k, vs := range r.URL.Query() {
			e.Query[k] = vs[0]
		}
	}
	if strings.HasPrefix(strings.ToLower(r.Get("Content-Type")), "application/x-www-form-urlencoded") {
		vals, err := url.ParseQuery(string(r.Body))
		if err != nil {
			return nil, &inbound.FieldError{Msg: "form body is malformed"}
		}
		form := map[string]any{}
		for k, vs := range vals {
			form[k] = vs[0]
		}
		e.Body = form
		return e, nil
	}
	if len(bytes.TrimSpace(r.Body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(r.Body))
		dec.UseNumber()
		if err := dec.Decode(&e.Body); err != nil || dec.More() {
			return nil, &inbound.FieldError{Msg: rawjson.ErrSyntax.Error()}
		}
	}
	return e, nil
}

// Normalize evaluates the map over r. A field that fails to evaluate, or
// a missing eventType, is an *inbound.FieldError naming it (a 400).
func (m *Mapping) Normalize(r *inbound.Request) (*event.Event, error) {
	e, err := env(r)
	if err != nil {
		return nil, err
	}
	ev := &event.Event{ReceivedAt: r.ReceivedAt, Timestamp: r.ReceivedAt}
	var id string
	for _, field := range Fields {
		prog := m.progs[field]
		if prog == nil {
			continue
		}
		out, err := expr.Run(prog, e)
		if err != nil {
			return nil, &inbound.FieldError{Field: field, Msg: "cannot evaluate the map expression: " + firstLine(err.Error()) + " (use ?. for optional paths)"}
		}
		if out == nil {
			if field == "eventType" {
				return nil, &inbound.FieldError{Field: field, Msg: "missing from the payload"}
			}
			continue
		}
		switch field {
		case "data":
			if _, ok := out.(map[string]any); !ok {
				return nil, &inbound.FieldError{Field: field, Msg: fmt.Sprintf("must be an object, the expression gave %T", out)}
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(out); err != nil {
				return nil, &inbound.FieldError{Field: field, Msg: err.Error()}
			}
			ev.Data = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		case "timestamp":
			t, err := lang.Time(out)
			if err != nil {
				return nil, &inbound.FieldError{Field: field, Msg: err.Error()}
			}
			ev.Timestamp = t
		default:
			s, err := toText(out)
			if err != nil {
				return nil, &inbound.FieldError{Field: field, Msg: err.Error()}
			}
			switch field {
			case "eventType":
				if s == "" {
					return nil, &inbound.FieldError{Field: field, Msg: "empty"}
				}
				ev.EventType = s
			case "id":
				id = s
			case "subject":
				ev.Subject = s
			case "agentId":
				ev.AgentID = s
			case "agentName":
				ev.AgentName = s
			}
		}
	}
	if id != "" {
		ev.ExternalID, ev.DedupKey = id, "id:"+id
	} else {
		ev.DedupKey = darwin.DedupKey(r.Body)
	}
	return ev, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func toText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case int, int64, float64, bool:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("must be text or a number, the expression gave %T", v)
}
