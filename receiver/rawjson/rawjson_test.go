package rawjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range corpus {
		if got, want := Valid([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("Valid(%q) = %v, encoding/json says %v", s, got, want)
		}
	}
}

var corpus = []string{
	``, ` `, `{}`, ` { } `, `[]`, `[1,2]`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{"a":}`, `{a:1}`,
	`"x"`, `"\u00e3"`, `"\u00g3"`, `"\x"`, "\"a\tb\"", `"a\/b"`, `"unterminated`,
	`0`, `-0`, `01`, `-`, `1.`, `1.5`, `1e`, `1e+`, `1E-7`, `.5`, `+1`, `1.5e3`, `-12.0e-0`,
	`true`, `tru`, `false`, `null`, `nul`, `nullx`, `{"a":[1,{"b":null}],"c":"d"}`,
	`{"a":1}{"b":2}`, `{"a":1} x`, "{\"a\":1}\n", `[[[[]]]]`, `{"":""}`, "\"\xff\xfe\"",
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 9999) + strings.Repeat("]", 9999),
}

func TestMembers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		keys string
		err  error
	}{
		{`{}`, "", nil},
		{` {"a":1, "b" : [1,2] ,"c":{"d":"e"}} `, "a=1 b=[1,2] c={\"d\":\"e\"}", nil},
		{`{"a":1}}`, "a=1", ErrSyntax},
		{`{"a":1,}`, "", ErrSyntax},
		{`[1]`, "", ErrNotObject},
		{`"x"`, "", ErrNotObject},
		{`[1`, "", ErrSyntax},
		{``, "", ErrSyntax},
		{`{"a":1`, "", ErrSyntax},
	} {
		var got []string
		it := Members([]byte(tc.in))
		for it.Next() {
			got = append(got, string(it.Key())+"="+string(it.Value()))
		}
		if !errors.Is(it.Err(), tc.err) {
			t.Errorf("%q: err = %v, want %v", tc.in, it.Err(), tc.err)
		}
		if tc.err == nil && strings.Join(got, " ") != tc.keys {
			t.Errorf("%q: members %q, want %q", tc.in, strings.Join(got, " "), tc.keys)
		}
	}
}

func TestKeyIsDecodesEscapes(t *testing.T) {
	t.Parallel()
	it := Members([]byte(`{"event\u0054ype":"x"}`))
	if !it.Next() || !it.KeyIs("eventType") || it.KeyIs("eventtype") {
		t.Fatalf("escaped key not matched: %q", it.Key())
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	body := []byte(`{"entry":[{"id":"1","changes":[{"field":"messages"}]}],"a":{"b":{"c":7}},"a2":1,"a2":2}`)
	for _, tc := range []struct {
		path  string
		want  string
		found bool
	}{
		{"entry.0.changes.0.field", `"messages"`, true},
		{"entry.1", "", false},
		{"entry.x", "", false},
		{"a.b.c", "7", true},
		{"a.b.c.d", "", false},
		{"a2", "2", true},
		{"nope", "", false},
	} {
		got, found, err := Get(body, strings.Split(tc.path, ".")...)
		if err != nil || found != tc.found || string(got) != tc.want {
			t.Errorf("Get(%s) = %q, %v, %v; want %q, %v", tc.path, got, found, err, tc.want, tc.found)
		}
	}
	if _, _, err := Get([]byte(`{"a":`), "a"); !errors.Is(err, ErrSyntax) {
		t.Errorf("Get on invalid JSON: err = %v", err)
	}
}

func TestTextAndTime(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{`"a\"b"`: `a"b`, `42`: "42", `null`: "", ``: "", `"Sessão"`: "Sessão"} {
		if got, err := Text([]byte(in)); err != nil || got != want {
			t.Errorf("Text(%s) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{`{}`, `[]`, `true`, `"\x"`} {
		if _, err := Text([]byte(in)); err == nil {
			t.Errorf("Text(%s): no error", in)
		}
	}
	fallback := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]string{
		`"2026-11-21T11:32:08-03:00"`: "2026-11-21T14:32:08Z",
		`1763735528`:                  "2025-11-21T14:32:08Z",
		`1763735528512`:               "2025-11-21T14:32:08.512Z",
		`"1763735528"`:                "2025-11-21T14:32:08Z",
		`null`:                        "2026-01-02T03:04:05Z",
	} {
		got, err := Time([]byte(in), fallback)
		if err != nil || got.Format(time.RFC3339Nano) != want {
			t.Errorf("Time(%s) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{`-1`, `1e300`, `"yesterday"`, `{}`} {
		if _, err := Time([]byte(in), fallback); err == nil {
			t.Errorf("Time(%s): no error", in)
		}
	}
}

// FuzzValid holds Valid to encoding/json: what one accepts, the other
// does, and Members never accepts an object json.Unmarshal rejects.
func FuzzValid(f *testing.F) {
	for _, s := range corpus {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v", b, got, want)
		}
		it := Members(b)
		n := 0
		for it.Next() {
			n++
			if !json.Valid(it.Value()) {
				t.Fatalf("member value %q is not valid JSON", it.Value())
			}
		}
		if it.Err() == nil {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("Members accepted %q, json.Unmarshal: %v", b, err)
			}
		}
		_, _, _ = Get(b, "a", "0", "b")
		_, _ = Elements(b)
	})
}

func BenchmarkMembers(b *testing.B) {
	body := []byte(`{"eventType":"session.forwarded.escalated","timestamp":"2026-11-21T14:32:08.512Z","agentId":"6650f1c2a9e4b3d2c1f0e9a8","data":{"summary":"` + strings.Repeat("Sessão reembolso ", 40) + `"}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		it := Members(body)
		for it.Next() {
		}
		if it.Err() != nil {
			b.Fatal(it.Err())
		}
	}
}
