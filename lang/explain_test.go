package lang

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src string
		want      string // Lines("") joined by newlines
	}{
		{"comparison", `data.forwardType == "qualified"`,
			`data.forwardType == "qualified"  →  "escalated" == "qualified"  →  false`},
		{"and: the left side decided", `data.forwardType == "qualified" && agentName != ""`,
			`data.forwardType == "qualified" && agentName != ""  →  false
  data.forwardType == "qualified"  →  "escalated" == "qualified"  →  false`},
		{"and: the right side decided", `data.forwardType == "escalated" && data.score > 90`,
			`data.forwardType == "escalated" && data.score > 90  →  false
  data.score > 90  →  87.5 > 90  →  false`},
		{"and: true shows both", `data.forwardType == "escalated" and data.score > 80`,
			`data.forwardType == "escalated" and data.score > 80  →  true
  data.forwardType == "escalated"  →  "escalated" == "escalated"  →  true
  data.score > 80  →  87.5 > 80  →  true`},
		{"or: false shows both", `data.forwardType in ["qualified", "recovered"] || subject startsWith "x"`,
			`data.forwardType in ["qualified", "recovered"] || subject startsWith "x"  →  false
  data.forwardType in ["qualified", "recovered"]  →  "escalated" in ["qualified","recovered"]  →  false
  subject startsWith "x"  →  "sess-1" startsWith "x"  →  false`},
		{"or: true shows the one", `data.nope == 1 || data.count == 3`,
			`data.nope == 1 || data.count == 3  →  true
  data.count == 3  →  3 == 3  →  true`},
		{"not", `!("vip" in data.tags)`,
			`!("vip" in data.tags)  →  false
  "vip" in data.tags  →  "vip" in ["vip","refund"]  →  true`},
		{"nested", `(data.forwardType == "qualified" || data.score < 50) && source == "darwin"`,
			`(data.forwardType == "qualified" || data.score < 50) && source == "darwin"  →  false
  data.forwardType == "qualified" || data.score < 50  →  false
    data.forwardType == "qualified"  →  "escalated" == "qualified"  →  false
    data.score < 50  →  87.5 < 50  →  false`},
		{"operands that are operations", `len(data.tags) + 1 > data.count`,
			`len(data.tags) + 1 > data.count  →  3 > 3  →  false
  len(data.tags) + 1  →  2 + 1  →  3`},
		{"a missing field", `data.forwardType == "escalated" && data.nope > 1`,
			`data.forwardType == "escalated" && data.nope > 1  →  error: invalid operation: <nil> > int (at 1:46)
  data.nope > 1  →  nil > 1  →  error: invalid operation: <nil> > int`},
		{"helpers", `matchType(eventType, "session.closed") || lookup(data, "smartFields.city", "") == "Natal"`,
			`matchType(eventType, "session.closed") || lookup(data, "smartFields.city", "") == "Natal"  →  false
  matchType(eventType, "session.closed")  →  false
  lookup(data, "smartFields.city", "") == "Natal"  →  "Recife" == "Natal"  →  false`},
		{"conditional", `data.score > 50 ? data.forwardType == "qualified" : true`,
			`data.score > 50 ? data.forwardType == "qualified" : true  →  false
  data.score > 50  →  87.5 > 50  →  true
  data.forwardType == "qualified"  →  "escalated" == "qualified"  →  false`},
		{"let is not broken down", `let s = data.score; s > 90`,
			`let s = data.score; s > 90  →  false`},
		{"predicates are leaves", `any(data.tags, # == "spam") && true`,
			`any(data.tags, # == "spam") && true  →  false
  any(data.tags, # == "spam")  →  false`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := CompileCondition(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			x := c.Explain(testEnv())
			if got := strings.Join(x.Lines(""), "\n"); got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
			// The explanation's value is the condition's.
			ok, err := c.Eval(testEnv())
			if (err != nil) != (x.Err != nil) || err == nil && x.Value != ok {
				t.Fatalf("Explain gave %v, %v; Eval %v, %v", x.Value, x.Err, ok, err)
			}
		})
	}
}

func TestExplanationJSON(t *testing.T) {
	t.Parallel()
	c, err := CompileCondition(`data.forwardType == "qualified"`)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c.Explain(testEnv()))
	if err != nil {
		t.Fatal(err)
	}
	if c, err = CompileCondition(`data.nope > 1 && true`); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err = enc.Encode(c.Explain(testEnv()))
	if failed := buf.String(); err != nil || !strings.Contains(failed, `"expr":"data.nope > 1 && true","op":"&&"`) ||
		!strings.Contains(failed, `"value":null,"error":"invalid operation: <nil> > int"}],"value":null,"error":"invalid operation: <nil> > int (at 1:15)"}`) {
		t.Fatalf("a failed condition: %s, %v", failed, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	want := `{"expr":"data.forwardType == \"qualified\"","op":"==","operands":[{"expr":"data.forwardType","value":"escalated"},{"expr":"\"qualified\"","value":"qualified"}],"value":false}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

// FuzzExplain: whatever compiles can be explained, without panicking,
// to the value Eval gives.
func FuzzExplain(f *testing.F) {
	for _, s := range []string{
		`data.forwardType == "escalated" && agentName != ""`, `!(data.a ?? true) || data.b?.c > 1`,
		`let x = data.score; x > 1 and x < 100`, `all(data.tags, # != "spam") ? true : false`,
		`matchType(eventType, "session.*") && lookup(data, "a.b", 1) == 1`, `data.nope > 1 || true`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		c, err := CompileCondition(src)
		if err != nil {
			return
		}
		x := c.Explain(testEnv())
		ok, err := c.Eval(testEnv())
		if (err != nil) != (x.Err != nil) || err == nil && x.Value != ok {
			t.Fatalf("%q: Explain gave %v, %v; Eval %v, %v", src, x.Value, x.Err, ok, err)
		}
		_ = x.Lines("")
	})
}
