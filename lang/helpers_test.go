package lang

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/event"
)

// helperEnv is testEnv with times relative to now, for age().
func helperEnv() *event.Env {
	env := testEnv()
	env.Timestamp = time.Now().Add(-2 * time.Hour)
	env.Data["closedAt"] = time.Now().Add(-3 * time.Hour).UTC().Format(time.RFC3339)
	env.Data["unixSeconds"] = float64(time.Now().Add(-90 * time.Minute).Unix())
	env.Data["unixMillis"] = float64(time.Now().Add(-90 * time.Minute).UnixMilli())
	env.Data["digits"] = "1700000000"
	env.Data["empty"] = nil
	return env
}

func TestHelpers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src string
		want      any
		runErr    string // a run-time error containing this
	}{
		// matchType
		{"matchType prefix", `matchType(eventType, "session.*")`, true, ""},
		{"matchType any of several", `matchType(eventType, "function.*", "session.forwarded.*")`, true, ""},
		{"matchType exact", `matchType(eventType, "session.forwarded.escalated")`, true, ""},
		{"matchType miss", `matchType(eventType, "function.*")`, false, ""},
		{"matchType prefix is not the type itself", `matchType("session", "session.*")`, false, ""},
		{"matchType missing field", `matchType(data.nope, "session.*")`, false, ""},
		{"matchType wrong type", `matchType(data.score, "session.*")`, nil, "the event type is a number"},
		{"matchType pattern from data", `matchType(eventType, data.conversationTitle)`, nil, "invalid pattern"},

		// lookup
		{"lookup nested", `lookup(data, "smartFields.city")`, "Recife", ""},
		{"lookup default unused", `lookup(data, "smartFields.city", "?")`, "Recife", ""},
		{"lookup missing leaf", `lookup(data, "smartFields.nope", "?")`, "?", ""},
		{"lookup missing parent", `lookup(data, "nope.deeper.still", "?")`, "?", ""},
		{"lookup through a string", `lookup(data, "forwardType.x", "?")`, "?", ""},
		{"lookup list index", `lookup(data, "tags.1")`, "refund", ""},
		{"lookup index out of range", `lookup(data, "tags.7", "?")`, "?", ""},
		{"lookup index not a number", `lookup(data, "tags.first", "?")`, "?", ""},
		{"lookup null value", `lookup(data, "empty", 0)`, 0, ""},
		{"lookup no default", `lookup(data, "nope")`, nil, ""},
		{"lookup of nil", `lookup(data.nope, "a", "?")`, "?", ""},
		{"lookup empty path", `lookup(data.score, "")`, 87.5, ""},
		{"lookup in a condition", `lookup(data, "smartFields.city", "") == "Recife"`, true, ""},

		// age
		{"age of timestamp", `age(timestamp) > duration("1h") && age(timestamp) < duration("3h")`, true, ""},
		{"age of RFC 3339 text", `age(data.closedAt) > duration("150m")`, true, ""},
		{"age of Unix seconds", `age(data.unixSeconds) > duration("89m") && age(data.unixSeconds) < duration("91m")`, true, ""},
		{"age of Unix milliseconds", `age(data.unixMillis) > duration("89m") && age(data.unixMillis) < duration("91m")`, true, ""},
		{"age of digits", `age(data.digits) > duration("8760h")`, true, ""},
		{"age of now", `age(now()) < duration("1m")`, true, ""},
		{"age of a missing field", `age(data.nope) > duration("1h")`, nil, "nil (a missing field?)"},
		{"age of text that is no time", `age(data.forwardType)`, nil, `cannot read "escalated" as a time`},
		{"age of a list", `age(data.tags)`, nil, "cannot read a list as a time"},
		{"age of a bool", `age(true)`, nil, "cannot read a bool as a time"},

		// expr's builtins and operators that docs/rules.md documents
		{"lower", `lower(data.conversationTitle) contains "maria"`, true, ""},
		{"upper", `upper(data.forwardType)`, "ESCALATED", ""},
		{"startsWith", `eventType startsWith "session."`, true, ""},
		{"matches", `data.conversationTitle matches "^Maria"`, true, ""},
		{"default", `data.nope ?? "none"`, "none", ""},
		{"optional chain", `data.nope?.deeper ?? "none"`, "none", ""},
		{"get", `get(data.smartFields, "city")`, "Recife", ""},
		{"nil equality", `data.nope == "x"`, false, ""},
		{"nil inequality", `data.nope != "x"`, true, ""},
		{"nil contains", `data.nope contains "x"`, false, ""},
		{"nil ordering", `data.nope > 1`, nil, "invalid operation: <nil> > int"},
		{"nil to a string builtin", `lower(data.nope)`, nil, "is nil, not string"},
		{"nil member", `data.nope.deeper`, nil, "cannot fetch deeper from <nil>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := CompileExpression(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Eval(helperEnv())
			if tc.runErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.runErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.runErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestHelperCompileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		src      string
		line, co int
		msg      string
	}{
		{`matchType(eventType)`, 1, 1, "not enough arguments to call matchType"},
		{`matchType(1, "session.*")`, 1, 11, "cannot use int as argument (type string) to call matchType"},
		{`matchType(eventType, "session*")`, 1, 22, `matchType: invalid pattern "session*"`},
		{"true &&\n  matchType(eventType, \"a.*\", \"*.b\")", 2, 31, `matchType: invalid pattern "*.b"`},
		{`lookup(data)`, 1, 1, "not enough arguments to call lookup"},
		{`lookup(data, 1)`, 1, 1, "arguments to call lookup"},
		{`lookup(data, "a", 1, 2)`, 1, 1, "too many arguments to call lookup"},
		{`age()`, 1, 1, "not enough arguments to call age"},
		{`age(timestamp) > "1h"`, 1, 16, "invalid operation: > (mismatched types time.Duration and string)"},
	} {
		_, err := CompileCondition(tc.src + " != nil")
		if strings.HasPrefix(tc.src, "true") || strings.Contains(tc.src, ">") {
			_, err = CompileCondition(tc.src)
		}
		var serr *SyntaxError
		if !errors.As(err, &serr) {
			t.Errorf("%q: err = %v, want a SyntaxError", tc.src, err)
			continue
		}
		if serr.Line != tc.line || serr.Column != tc.co || !strings.Contains(serr.Msg, tc.msg) {
			t.Errorf("%q: got %d:%d %q, want %d:%d %q", tc.src, serr.Line, serr.Column, serr.Msg, tc.line, tc.co, tc.msg)
		}
	}
}

func TestHelpersInTemplates(t *testing.T) {
	t.Parallel()
	tmpl, err := ParseTemplate(`{{ lookup(data, "smartFields.city", "?") }} / {{ lookup(data, "smartFields.nope", "?") }} / {{ matchType(eventType, "session.*") }}`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Render(testEnv(), nil)
	if err != nil || got != "Recife / ? / true" {
		t.Fatalf("Render = %q, %v", got, err)
	}
	if _, err := ParseTemplate(`x {{ matchType(eventType, "a.**") }}`); err == nil || !strings.Contains(err.Error(), "1:27: matchType: invalid pattern") {
		t.Fatalf("a bad pattern in a template: %v", err)
	}
}

func TestTime(t *testing.T) {
	t.Parallel()
	want := time.Date(2026, 11, 21, 14, 32, 8, 0, time.UTC)
	for _, v := range []any{want, want.In(time.FixedZone("x", 3600)), "2026-11-21T14:32:08Z", "2026-11-21T11:32:08-03:00", float64(want.Unix()), float64(want.UnixMilli()), want.Unix(), int(want.Unix()), "1795271528"} {
		got, err := Time(v)
		if err != nil || !got.Equal(want) {
			t.Errorf("Time(%#v) = %v, %v", v, got, err)
		}
	}
	for _, v := range []any{nil, "yesterday", true, -1.0, map[string]any{}} {
		if _, err := Time(v); err == nil {
			t.Errorf("Time(%#v) passed", v)
		}
	}
}

func BenchmarkCondition(b *testing.B) {
	env := helperEnv()
	for _, bc := range []struct{ name, src string }{
		{"plain", `data.forwardType == "escalated" && eventType startsWith "session.forwarded."`},
		{"matchType", `data.forwardType == "escalated" && matchType(eventType, "session.forwarded.*")`},
		{"lookup", `lookup(data, "smartFields.city", "") == "Recife"`},
		{"optional chain", `(data.smartFields?.city ?? "") == "Recife"`},
		{"age", `age(timestamp) > duration("1h")`},
		{"now minus", `now() - timestamp > duration("1h")`},
	} {
		c, err := CompileCondition(bc.src)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ok, err := c.Eval(env); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}
