package rules

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/event"
)

func ev(eventType, data string) *event.Event {
	return &event.Event{ID: "evt_1", Source: "darwin", EventType: eventType, Data: json.RawMessage(data)}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	set, err := Compile([]Route{
		{Name: "escalations", Match: []string{"session.forwarded.*"}, When: `data.forwardType == "escalated"`, To: []string{"ops-slack", "archive"}},
		{Name: "summaries", Match: []string{"session.analyzed"}, To: []string{"archive"}},
		{Name: "all", Match: []string{"*"}, To: []string{"archive", "crm"}},
		{Name: "broken", Match: []string{"session.closed"}, When: `data.a.b == 1`, To: []string{"ops-slack"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		ev      *event.Event
		want    []Target
		errWith string
	}{
		{
			name: "escalated reaches slack once and archive once",
			ev:   ev("session.forwarded.escalated", `{"forwardType":"escalated"}`),
			want: []Target{{"ops-slack", []string{"escalations"}}, {"archive", []string{"escalations", "all"}}, {"crm", []string{"all"}}},
		},
		{
			name: "qualified misses the condition",
			ev:   ev("session.forwarded.qualified", `{"forwardType":"qualified"}`),
			want: []Target{{"archive", []string{"all"}}, {"crm", []string{"all"}}},
		},
		{
			name: "analyzed",
			ev:   ev("session.analyzed", `{}`),
			want: []Target{{"archive", []string{"summaries", "all"}}, {"crm", []string{"all"}}},
		},
		{
			name:    "runtime error is no match",
			ev:      ev("session.closed", `{}`),
			want:    []Target{{"archive", []string{"all"}}, {"crm", []string{"all"}}},
			errWith: "route broken: cannot fetch b",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, errs := set.Match(tc.ev)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("targets = %v, want %v", got, tc.want)
			}
			joined := errors.Join(errs...)
			switch {
			case tc.errWith == "" && joined != nil:
				t.Errorf("errors: %v", joined)
			case tc.errWith != "" && (joined == nil || !strings.Contains(joined.Error(), tc.errWith)):
				t.Errorf("errors = %v, want %q", joined, tc.errWith)
			}
		})
	}
}

// TestExplain: each route's verdict and reason, and that Explain
// decides as Match does.
func TestExplain(t *testing.T) {
	t.Parallel()
	set, err := Compile([]Route{
		{Name: "escalations", Match: []string{"session.forwarded.*"}, When: `data.forwardType == "escalated"`, To: []string{"ops-slack", "archive"}},
		{Name: "summaries", Match: []string{"session.analyzed", "session.closed"}, To: []string{"archive"}},
		{Name: "broken", Match: []string{"session.*"}, When: `data.a.b == 1`, To: []string{"ops-slack"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ev   *event.Event
		want []string // per route: "match <pattern>", "miss", or "when <result>"
	}{
		{"escalated", ev("session.forwarded.escalated", `{"forwardType":"escalated","a":{"b":1}}`),
			[]string{"match session.forwarded.* when true", "miss", "match session.* when true"}},
		{"qualified", ev("session.forwarded.qualified", `{"forwardType":"qualified"}`),
			[]string{"miss session.forwarded.* when false", "miss", "miss session.* when error: cannot fetch b from <nil> (at 1:8)"}},
		{"closed", ev("session.closed", `{"a":{"b":2}}`),
			[]string{"miss", "match session.closed", "miss session.* when false"}},
		{"function", ev("function.call.x", `{}`),
			[]string{"miss", "miss", "miss"}},
		{"undecodable data", ev("session.forwarded.escalated", `[1]`),
			[]string{"miss session.forwarded.* when error: decode data: json: cannot unmarshal array into Go value of type map[string]interface {}", "miss", "miss session.* when error: decode data: json: cannot unmarshal array into Go value of type map[string]interface {}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			verdicts := set.Explain(tc.ev)
			targets, _ := set.Match(tc.ev)
			reached := map[string]bool{}
			for i, v := range verdicts {
				got := "miss"
				if v.Matched {
					got = "match"
				}
				if v.Pattern != "" {
					got += " " + v.Pattern
				}
				if v.When != nil {
					got += " when " + v.When.Result()
				}
				if got != tc.want[i] {
					t.Errorf("route %s: %q, want %q", v.Route, got, tc.want[i])
				}
				if v.Matched {
					for _, s := range v.To {
						reached[s] = true
					}
				}
			}
			if len(reached) != len(targets) {
				t.Errorf("Explain reaches %v, Match %v", reached, targets)
			}
			for _, tg := range targets {
				if !reached[tg.Sink] {
					t.Errorf("Match reaches %s, Explain does not", tg.Sink)
				}
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	_, err := Compile([]Route{
		{Name: "a", Match: []string{"session.*", "bad*"}, To: []string{"x"}},
		{Name: "b", Match: []string{"*"}, When: "data.x ==", To: []string{"x"}},
		{Name: "c", Match: []string{"*"}, When: "eventType", To: []string{"x"}},
	})
	var got []*CompileError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *CompileError
		if !errors.As(e, &ce) {
			t.Fatalf("%v is not a *CompileError", e)
		}
		got = append(got, ce)
	}
	if len(got) != 3 {
		t.Fatalf("got %d errors, want 3: %v", len(got), err)
	}
	if got[0].Route != 0 || got[0].Field != "match[1]" {
		t.Errorf("first = %+v", got[0])
	}
	if got[1].Route != 1 || got[1].Field != "when" || got[1].Line != 1 || got[1].Column != 9 {
		t.Errorf("second = %+v", got[1])
	}
	if got[2].Route != 2 || !strings.Contains(got[2].Msg, "expected bool") {
		t.Errorf("third = %+v", got[2])
	}
}

func BenchmarkMatch(b *testing.B) {
	set, err := Compile([]Route{
		{Name: "escalations", Match: []string{"session.forwarded.*"}, When: `data.forwardType == "escalated"`, To: []string{"ops-slack"}},
		{Name: "summaries", Match: []string{"session.analyzed"}, To: []string{"archive"}},
		{Name: "functions", Match: []string{"function.*"}, To: []string{"crm"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	e := ev("session.forwarded.escalated", `{"conversationId":"c1","sessionId":"s1","channelName":"WhatsApp Vendas","conversationTitle":"Maria Silva","forwardType":"escalated","forwardedToName":"Ana"}`)
	b.ReportAllocs()
	for b.Loop() {
		if ts, _ := set.Match(e); len(ts) != 1 {
			b.Fatal(ts)
		}
	}
}

// BenchmarkMatchHelpers is BenchmarkMatch with conditions written with
// lang's helpers.
func BenchmarkMatchHelpers(b *testing.B) {
	set, err := Compile([]Route{
		{Name: "escalations", Match: []string{"session.*"}, When: `matchType(eventType, "session.forwarded.*") && lookup(data, "forwardType", "") == "escalated"`, To: []string{"ops-slack"}},
		{Name: "stale", Match: []string{"session.*"}, When: `age(data.forwardedAt) > duration("1h")`, To: []string{"archive"}},
		{Name: "functions", Match: []string{"function.*"}, To: []string{"crm"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	e := ev("session.forwarded.escalated", `{"conversationId":"c1","sessionId":"s1","channelName":"WhatsApp Vendas","conversationTitle":"Maria Silva","forwardType":"escalated","forwardedToName":"Ana","forwardedAt":"2026-01-02T03:04:05Z"}`)
	b.ReportAllocs()
	for b.Loop() {
		if ts, _ := set.Match(e); len(ts) != 2 {
			b.Fatal(ts)
		}
	}
}
