package lang

import (
	"errors"
	"html"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/event"
)

func testEnv() *event.Env {
	return &event.Env{
		ID:        "evt_1",
		Source:    "darwin",
		EventType: "session.forwarded.escalated",
		Timestamp: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC),
		Subject:   "sess-1",
		Data: map[string]any{
			"forwardType":       "escalated",
			"conversationTitle": "Maria <Silva> & Co",
			"score":             87.5,
			"count":             3.0,
			"smartFields":       map[string]any{"city": "Recife"},
			"tags":              []any{"vip", "refund"},
		},
	}
}

func TestCondition(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src string
		want      bool
		runErr    bool
	}{
		{"equal", `data.forwardType == "escalated"`, true, false},
		{"not equal", `data.forwardType == "qualified"`, false, false},
		{"number", `data.score > 80`, true, false},
		{"missing field is nil", `data.nope == nil`, true, false},
		{"nested", `data.smartFields.city == "Recife"`, true, false},
		{"optional chain", `data.missing?.city == "Recife"`, false, false},
		{"nil member is a runtime error", `data.missing.city == "x"`, false, true},
		{"top-level fields", `source == "darwin" && subject == "sess-1" && eventType startsWith "session."`, true, false},
		{"membership", `"vip" in data.tags`, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := CompileCondition(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Eval(testEnv())
			if (err != nil) != tc.runErr {
				t.Fatalf("err = %v, want error: %v", err, tc.runErr)
			}
			if got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestConditionCompileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		src      string
		line, co int
		msg      string
	}{
		{`dta.forwardType == "x"`, 1, 1, "unknown name dta"},
		{`data.forwardType ==`, 1, 19, "unexpected token EOF"},
		{`eventType`, 1, 1, "expected bool"},
		{"true &&\n  nope", 2, 3, "unknown name nope"},
		{`  `, 1, 1, "empty expression"},
	} {
		_, err := CompileCondition(tc.src)
		var serr *SyntaxError
		if !errors.As(err, &serr) {
			t.Fatalf("%q: err = %v, want *SyntaxError", tc.src, err)
		}
		if serr.Line != tc.line || serr.Column != tc.co || !strings.Contains(serr.Msg, tc.msg) {
			t.Errorf("%q: got %d:%d %q, want %d:%d %q", tc.src, serr.Line, serr.Column, serr.Msg, tc.line, tc.co, tc.msg)
		}
	}
}

func TestTemplateRender(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src, want string
		escape          func(string) string
	}{
		{"literal", "no placeholders", "no placeholders", nil},
		{"fields", "Escalated: {{ data.conversationTitle }} ({{ data.forwardType }})", "Escalated: Maria <Silva> & Co (escalated)", nil},
		{"escape applies to values only", "<b>{{ data.conversationTitle }}</b>", "<b>Maria &lt;Silva&gt; &amp; Co</b>", html.EscapeString},
		{"numbers", "{{ data.score }}/{{ data.count }}", "87.5/3", nil},
		{"missing is empty", "[{{ data.nope }}]", "[]", nil},
		{"default", `{{ data.nope ?? "n/a" }}`, "n/a", nil},
		{"object as json", "{{ data.smartFields }}", `{"city":"Recife"}`, nil},
		{"list as json", "{{ data.tags }}", `["vip","refund"]`, nil},
		{"time", "{{ timestamp }}", "2026-11-21T12:00:00Z", nil},
		{"braces inside strings", `{{ "}}" + subject }}`, "}}sess-1", nil},
		{"adjacent", "{{id}}{{subject}}", "evt_1sess-1", nil},
		{"unicode", "Sessão {{ subject }} ✓", "Sessão sess-1 ✓", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tpl, err := ParseTemplate(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tpl.Render(testEnv(), tc.escape)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTemplateErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		src       string
		line, col int
		msg       string
	}{
		{"Hi {{ dta.x }}", 1, 7, "unknown name dta"},
		{"Sessão {{ data.x + }}", 1, 19, "unexpected token"},
		{"line one\nok {{ nope }}", 2, 7, "unknown name nope"},
		{"open {{ data.x", 1, 6, "unclosed {{"},
		{"empty {{  }}", 1, 7, "empty {{ }}"},
	} {
		_, err := ParseTemplate(tc.src)
		var serr *SyntaxError
		if !errors.As(err, &serr) {
			t.Fatalf("%q: err = %v, want *SyntaxError", tc.src, err)
		}
		if serr.Line != tc.line || serr.Column != tc.col || !strings.Contains(serr.Msg, tc.msg) {
			t.Errorf("%q: got %d:%d %q, want %d:%d %q", tc.src, serr.Line, serr.Column, serr.Msg, tc.line, tc.col, tc.msg)
		}
	}
}

func TestTemplateRuntimeError(t *testing.T) {
	t.Parallel()
	tpl := MustParseTemplate("{{ data.missing.city }}")
	_, err := tpl.Render(testEnv(), nil)
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %q, want a one-line runtime error", err)
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"", "a {{ b }}", "{{", "}}", `{{ "}}" }}`, "{{ data.x ?? 'a' }}", "{{ `x` }}", "{{ '\\'' }}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := ParseTemplate(src)
		if err != nil {
			var serr *SyntaxError
			if !errors.As(err, &serr) || serr.Line < 1 || serr.Column < 1 {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		_, _ = tpl.Render(testEnv(), nil)
	})
}

func FuzzCompileCondition(f *testing.F) {
	for _, s := range []string{`data.forwardType == "escalated"`, `1 +`, `eventType matches "^session"`, `len(data.tags) > 1`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		c, err := CompileCondition(src)
		if err != nil {
			return
		}
		_, _ = c.Eval(testEnv())
	})
}

func TestExpression(t *testing.T) {
	t.Parallel()
	e, err := CompileExpression(`data.sessionId + ":" + eventType`)
	if err != nil {
		t.Fatal(err)
	}
	env := &event.Env{EventType: "session.closed", Data: map[string]any{"sessionId": "s-1"}}
	if got, err := e.Eval(env); err != nil || got != "s-1:session.closed" {
		t.Fatalf("Eval = %v, %v", got, err)
	}
	if _, err := CompileExpression(`data.sessionId +`); err == nil {
		t.Fatal("a syntax error compiled")
	}
	if _, err := CompileExpression(`nosuch.field`); err == nil {
		t.Fatal("an unknown name compiled")
	}
	if _, err := CompileExpression(" "); err == nil {
		t.Fatal("an empty expression compiled")
	}
}

func TestTemplateCut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src, sep    string
		before, after     string // rendered against testEnv
		found             bool
		beforeSrc, aftSrc string
	}{
		{"query", "https://x.test/s/{{ subject }}?t={{ eventType }}&k=1", "?",
			"https://x.test/s/sess-1", "t=session.forwarded.escalated&k=1", true,
			"https://x.test/s/{{ subject }}", "t={{ eventType }}&k=1"},
		{"sep inside a placeholder does not count", `/a/{{ "?" + subject }}/b?q`, "?",
			"/a/?sess-1/b", "q", true, `/a/{{ "?" + subject }}/b`, "q"},
		{"sep produced by a placeholder does not count", `/a/{{ "?" }}`, "?",
			"/a/?", "", false, `/a/{{ "?" }}`, ""},
		{"at the start", "?{{ subject }}", "?", "", "sess-1", true, "", "{{ subject }}"},
		{"at the end", "{{ subject }}?", "?", "sess-1", "", true, "{{ subject }}", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before, after, found := MustParseTemplate(tc.src).Cut(tc.sep)
			if found != tc.found {
				t.Fatalf("found = %v, want %v", found, tc.found)
			}
			b, err := before.Render(testEnv(), nil)
			if err != nil {
				t.Fatal(err)
			}
			a, err := after.Render(testEnv(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if b != tc.before || a != tc.after {
				t.Errorf("rendered %q, %q; want %q, %q", b, a, tc.before, tc.after)
			}
			if found && (before.String() != tc.beforeSrc || after.String() != tc.aftSrc) {
				t.Errorf("sources %q, %q; want %q, %q", before.String(), after.String(), tc.beforeSrc, tc.aftSrc)
			}
		})
	}
}

func TestTemplateLiterals(t *testing.T) {
	t.Parallel()
	got := MustParseTemplate("Bearer tok-1 {{ subject }}/{{ id }}").Literals()
	if strings.Join(got, "|") != "Bearer tok-1 |/" {
		t.Errorf("Literals = %q", got)
	}
	if got := MustParseTemplate("{{ subject }}").Literals(); len(got) != 0 {
		t.Errorf("Literals of a lone placeholder = %q", got)
	}
}

func TestExpressionKind(t *testing.T) {
	t.Parallel()
	for src, want := range map[string]reflect.Kind{
		`{"a": data.count, "b": [1]}`: reflect.Map,
		`data`:                        reflect.Map,
		`[subject, id]`:               reflect.Slice,
		`data.smartFields`:            reflect.Interface,
		`subject`:                     reflect.String,
		`data.count > 1`:              reflect.Bool,
	} {
		e, err := CompileExpression(src)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Kind(); got != want {
			t.Errorf("Kind(%s) = %v, want %v", src, got, want)
		}
	}
}
