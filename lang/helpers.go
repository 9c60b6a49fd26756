package lang

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/receiver/rawjson"
)

// Functions are Switchyard's helpers, callable in every expression (route
// conditions, templates, map:) next to expr's builtins. Each has a type
// signature, so a call with the wrong number or type of arguments fails
// at load:
//
//	matchType(eventType, "session.forwarded.*", ...)  // bool: the type matches one of the route patterns
//	lookup(data, "smartFields.city", "unknown")      // the value at a dotted path, or the default (nil)
//	age(timestamp) > duration("1h")                  // time.Duration since a time
//
// Strings, times and defaults otherwise use expr's own builtins and
// operators (lower, upper, trim, contains, startsWith, endsWith, matches,
// now(), duration(), date(), ??, ?.), which docs/rules.md lists.
func Functions() []expr.Option {
	return []expr.Option{
		expr.Function("matchType", matchType, new(func(string, string, ...string) bool)),
		expr.Function("lookup", lookup,
			new(func(any, string) any),
			new(func(any, string, any) any)),
		expr.Function("age", age, new(func(any) time.Duration)),
	}
}

// matchType reports whether args[0], an event type, matches one of the
// patterns that follow, as a route's match: does. A nil type (a missing
// field) matches nothing.
func matchType(args ...any) (any, error) {
	if args[0] == nil {
		return false, nil
	}
	typ, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("matchType: the event type is %s, want a string", typeName(args[0]))
	}
	for _, a := range args[1:] {
		p, _ := a.(string)
		if err := event.ValidPattern(p); err != nil {
			return nil, fmt.Errorf("matchType: %w", err)
		}
		if event.MatchType(p, typ) {
			return true, nil
		}
	}
	return false, nil
}

// lookup is Lookup with a default (args[2], or nil) for a missing or
// null value. It never fails.
func lookup(args ...any) (any, error) {
	path, _ := args[1].(string)
	if v, ok := Lookup(args[0], path); ok && v != nil {
		return v, nil
	}
	if len(args) == 3 {
		return args[2], nil
	}
	return nil, nil
}

// Lookup follows a dotted path ("a.b.0.c": keys of objects, indexes of
// lists) from v, as lookup() does in expressions; the empty path is v.
// It reports false when something on the way is missing or of a type it
// cannot go into.
func Lookup(v any, path string) (any, bool) {
	if path == "" {
		return v, true
	}
	for seg := range strings.SplitSeq(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[seg]; !ok {
				return nil, false
			}
		case map[string]string:
			s, ok := x[seg]
			if !ok {
				return nil, false
			}
			v = s
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// age is how long ago a time was: now minus the time, negative for a
// time in the future. See Time for what counts as a time.
func age(args ...any) (any, error) {
	t, err := Time(args[0])
	if err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	return time.Since(t), nil
}

// Time reads an expression value as a time: a time.Time, RFC 3339 text,
// or a Unix time in seconds or (when too large to be seconds)
// milliseconds, as a number or as digits.
func Time(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), nil
	case string:
		return rawjson.ParseTime(x)
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return time.Time{}, err
		}
		return rawjson.Unix(f)
	case float64:
		return rawjson.Unix(x)
	case int:
		return rawjson.Unix(float64(x))
	case int64:
		return rawjson.Unix(float64(x))
	case nil:
		return time.Time{}, errors.New("no time: the value is nil (a missing field?)")
	}
	return time.Time{}, fmt.Errorf("cannot read %s as a time: want a time, RFC 3339 text or a Unix time", typeName(v))
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case string:
		return "a string"
	case float64, int, int64, json.Number:
		return "a number"
	case bool:
		return "a bool"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("a %T", v)
}

// checkPatterns reports, at its position, a matchType pattern written as
// a string literal that is not a valid pattern, so that it fails at load
// rather than on every event.
func checkPatterns(src string, root ast.Node) error {
	var err error
	ast.Walk(&root, visitor(func(n ast.Node) {
		call, ok := n.(*ast.CallNode)
		if !ok || err != nil {
			return
		}
		if id, ok := call.Callee.(*ast.IdentifierNode); !ok || id.Value != "matchType" {
			return
		}
		for _, arg := range call.Arguments[1:] {
			s, ok := arg.(*ast.StringNode)
			if !ok {
				continue
			}
			if perr := event.ValidPattern(s.Value); perr != nil {
				err = at(src, byteOffset(src, s.Location().From), "matchType: "+perr.Error())
				return
			}
		}
	}))
	return err
}

// visitor calls a function for every node of a tree, children first.
type visitor func(ast.Node)

func (v visitor) Visit(n *ast.Node) { v(*n) }

// byteOffset converts expr's positions, counted in runes, to a byte
// offset of src.
func byteOffset(src string, runes int) int {
	for i := range src {
		if runes == 0 {
			return i
		}
		runes--
	}
	return len(src)
}
