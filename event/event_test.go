package event

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestNewIDSortsByTime(t *testing.T) {
	t.Parallel()
	t0 := time.UnixMilli(1_700_000_000_000)
	a := NewID("evt_", t0)
	b := NewID("evt_", t0.Add(time.Millisecond))
	if len(a) != 30 || !strings.HasPrefix(a, "evt_") {
		t.Fatalf("id %q: want evt_ and 26 characters", a)
	}
	if a >= b {
		t.Fatalf("ids do not sort by time: %q >= %q", a, b)
	}
	if NewID("", t0) == NewID("", t0) {
		t.Fatal("two ids in the same millisecond are equal")
	}
}

func TestMarshalKeepsDataAsSent(t *testing.T) {
	t.Parallel()
	e := Event{
		ID:        "evt_1",
		Source:    "darwin",
		EventType: "session.analyzed",
		Data:      json.RawMessage(`{"summary":"Cliente pediu reembolso <urgente> & rápido","big":12345678901234567890}`),
	}
	out, err := e.JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"summary":"Cliente pediu reembolso <urgente> & rápido"`, `"big":12345678901234567890`, `"eventType":"session.analyzed"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("marshal lost %s:\n%s", want, out)
		}
	}
	var back Event
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if back.EventType != e.EventType || string(back.Data) != string(e.Data) {
		t.Fatalf("round trip changed the event: %+v", back)
	}
}

func TestEnvDecodesData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		data string
		want int
	}{
		{"object", `{"a":1,"b":"x"}`, 2},
		{"null", `null`, 0},
		{"absent", ``, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := Event{Data: json.RawMessage(tc.data)}
			env, err := e.Env()
			if err != nil {
				t.Fatal(err)
			}
			if env.Data == nil || len(env.Data) != tc.want {
				t.Fatalf("data = %#v, want %d keys", env.Data, tc.want)
			}
		})
	}
	if _, err := (&Event{Data: json.RawMessage(`[1]`)}).Env(); err == nil {
		t.Fatal("an array data object decoded without error")
	}
}
