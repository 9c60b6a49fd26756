package dryrun

import (
	"strings"
	"testing"
)

func TestSplitBodies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"one object", `{"a": 1}`, []string{`{"a": 1}`}},
		{"one object over lines", "{\n  \"a\": 1\n}\n", []string{"{\n  \"a\": 1\n}\n"}},
		{"an array is one body", `[{"a":1},{"b":2}]`, []string{`[{"a":1},{"b":2}]`}},
		{"JSON lines", "{\"a\":1}\n{\"b\": 2}\n", []string{`{"a":1}`, `{"b": 2}`}},
		{"values on one line", `{"a":1} {"b":2}`, []string{`{"a":1}`, `{"b":2}`}},
		{"not JSON", "a=1&b=2", []string{"a=1&b=2"}},
		{"JSON then junk", "{\"a\":1}\n{", []string{"{\"a\":1}\n{"}},
		{"empty", "", []string{""}},
	} {
		got := SplitBodies([]byte(tc.in))
		var s []string
		for _, b := range got {
			s = append(s, string(b))
		}
		if strings.Join(s, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: got %q, want %q", tc.name, s, tc.want)
		}
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	obj := map[string]any{"a": 1.0, "b": []any{"x"}}
	for _, tc := range []struct {
		name  string
		want  any
		got   any
		found bool
		fail  string // "" passes
	}{
		{"equal string", "x", "x", true, ""},
		{"equal number from YAML int", 82, 82.0, true, ""},
		{"unequal", "x", "y", true, `want equals "x", got "y"`},
		{"missing", "x", nil, false, `want equals "x", got no such field`},
		{"equals nil", nil, nil, true, ""},
		{"equals object", map[string]any{"equals": map[string]any{"a": 1, "b": []any{"x"}}}, obj, true, ""},
		{"a list", []any{"x"}, []any{"x"}, true, ""},
		{"contains", map[string]any{"contains": "ll"}, "hello", true, ""},
		{"contains a number's text", map[string]any{"contains": "82"}, 82.0, true, ""},
		{"contains fails", map[string]any{"contains": "z"}, "hello", true, `want contains "z", got "hello"`},
		{"matches", map[string]any{"matches": "^h.*o$"}, "hello", true, ""},
		{"matches fails", map[string]any{"matches": "^x"}, "hello", true, `want matches "^x", got "hello"`},
		{"all must hold", map[string]any{"contains": "ell", "matches": "^x"}, "hello", true, `want matches "^x"`},
	} {
		msg := match(tc.want, tc.got, tc.found)
		if tc.fail == "" && msg != "" || tc.fail != "" && !strings.Contains(msg, tc.fail) {
			t.Errorf("%s: %q, want %q", tc.name, msg, tc.fail)
		}
	}
}

func TestCheckMatcher(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		m   any
		err string
	}{
		{"x", ""},
		{map[string]any{"contains": "x", "matches": "y"}, ""},
		{map[string]any{}, "empty matcher"},
		{map[string]any{"contain": "x"}, `unknown matcher "contain"`},
		{map[string]any{"contains": 1}, "contains: want a string"},
		{map[string]any{"matches": "("}, "matches: error parsing regexp"},
	} {
		err := checkMatcher(tc.m)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%v: %v, want %q", tc.m, err, tc.err)
		}
	}
}
