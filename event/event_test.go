package event

import (
	"bytes"
	"encoding/json"
	"reflect"
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

// TestAppendJSONMatchesEncodingJSON: the hand-written encoder writes
// what encoding/json (no HTML escaping) writes, byte for byte.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	zone := time.FixedZone("-03", -3*3600)
	strs := []string{"", "plain", "<b>&amp;</b>", `quo"te`, `back\slash`, "tab\tnew\nline\r\x00\x1f\b\f",
		"Sessão ção 日本 🎉", "bad \xff utf8", "sep \u2028 \u2029", "\x7f"}
	datas := []string{"", "  ", "null", `{"a":1}`, " {\n  \"a\": [1, 2],\n  \"s\": \"x y\\\" z\"\n} ",
		`{"s":"Sessão <b>"}`, `"string"`, `[ ]`, `{"k":"tab\tin string"}`, `{"e":"\\"}`}
	for i, s := range strs {
		for j, d := range datas {
			ev := &Event{
				ID: s, Source: "src" + s, EventType: s, AgentID: s, AgentName: strs[(i+1)%len(strs)], Subject: s,
				ExternalID: strs[(i+2)%len(strs)],
				Timestamp:  time.Date(2026, 11, 21, 9, 0, 0, int(i)*111, zone),
				ReceivedAt: time.Date(2026, 11, 21, 12, 0, 0, int(j)*1000, time.UTC),
				Data:       json.RawMessage(d),
			}
			if i%3 == 0 {
				ev.Timestamp = time.Time{}
			}
			p := *ev
			if len(bytes.TrimSpace(p.Data)) == 0 {
				p.Data = json.RawMessage("null")
			}
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(p); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := ev.WriteJSON(&got); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Fatalf("str %d data %d:\n got %s\nwant %s", i, j, got.String(), want.String())
			}
		}
	}
}

func BenchmarkEventJSON(b *testing.B) {
	ev := &Event{ID: "evt_01", Source: "darwin", EventType: "session.analyzed", Subject: "sess-1",
		Timestamp: time.Now(), ReceivedAt: time.Now(),
		Data: json.RawMessage(`{"sessionId":"sess-1","summary":"` + strings.Repeat("O cliente pediu reembolso. ", 40) + `"}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ev.JSON(); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzAppendString: strings encode as encoding/json encodes them
// without HTML escaping.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a", "ç\"\\\n\x01\xff\xe2\x80\xa8", "<&>", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		enc.Encode(s)
		if got := string(appendString(nil, s)); got+"\n" != want.String() {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want.String())
		}
	})
}

// TestEnvNamesFollowTheJSONModel: every field of the JSON model is in the
// expression environment under the same name and with the event's value,
// so a field added to Event cannot be forgotten in Env.
func TestEnvNamesFollowTheJSONModel(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	ev := &Event{ID: "evt_1", Source: "s", EventType: "t", Timestamp: ts, AgentID: "a", AgentName: "n",
		Subject: "sub", ExternalID: "ext-1", ReceivedAt: ts.Add(time.Second), Data: json.RawMessage(`{"k":"v"}`)}
	env, err := ev.Env()
	if err != nil {
		t.Fatal(err)
	}
	envByName := map[string]reflect.Value{}
	et, ev2 := reflect.TypeOf(*env), reflect.ValueOf(*env)
	for i := range et.NumField() {
		envByName[et.Field(i).Tag.Get("expr")] = ev2.Field(i)
	}
	jt, jv := reflect.TypeOf(*ev), reflect.ValueOf(*ev)
	for i := range jt.NumField() {
		name, _, _ := strings.Cut(jt.Field(i).Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		got, ok := envByName[name]
		if !ok {
			t.Errorf("Event's JSON field %q has no expression name in Env", name)
			continue
		}
		if name == "data" {
			if got.Interface().(map[string]any)["k"] != "v" {
				t.Errorf("Env.Data = %v", got.Interface())
			}
			continue
		}
		if !reflect.DeepEqual(got.Interface(), jv.Field(i).Interface()) {
			t.Errorf("Env %s = %v, want %v", name, got.Interface(), jv.Field(i).Interface())
		}
	}
}
