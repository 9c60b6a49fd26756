package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestRowJSONKeepsColumnOrder(t *testing.T) {
	t.Parallel()
	// json.Marshal escapes HTML after MarshalJSON; an Encoder with
	// SetEscapeHTML(false) does not.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(Row{{"a", "<x> & y"}}); err != nil || buf.String() != "{\"a\":\"<x> & y\"}\n" {
		t.Fatalf("got %s, %v", buf.String(), err)
	}
	b, err := json.Marshal(Row{{"b", 1}, {"a", "<x> & y"}, {"data", json.RawMessage(`{"k":[1]}`)}, {"n", nil}})
	if err != nil || string(b) != `{"b":1,"a":"\u003cx\u003e \u0026 y","data":{"k":[1]},"n":null}` {
		t.Fatalf("got %s, %v", b, err)
	}
}

// The merge rule on its own, table-driven: what a late or partial event
// may change.
func TestSessionMerge(t *testing.T) {
	t.Parallel()
	base := func() *SessionRow {
		return NewSessionRow(NBuiltin)
	}
	up := func(ts, group, version string, sets ...set) *SessionUpdate {
		return &SessionUpdate{SessionID: "s", Timestamp: ts, facts: []fact{{group: group, version: version, sets: sets}}}
	}
	for _, tc := range []struct {
		name    string
		updates []*SessionUpdate
		col     int
		want    any
	}{
		{"newer replaces", []*SessionUpdate{
			up("1", "forward", "1 a", set{CForwardType, "qualified"}),
			up("2", "forward", "2 b", set{CForwardType, "escalated"}),
		}, CForwardType, "escalated"},
		{"older does not replace", []*SessionUpdate{
			up("2", "forward", "2 b", set{CForwardType, "escalated"}),
			up("1", "forward", "1 a", set{CForwardType, "qualified"}),
		}, CForwardType, "escalated"},
		{"older fills a gap", []*SessionUpdate{
			up("2", "info", "2 b", set{CTitle, nil}),
			up("1", "info", "1 a", set{CTitle, "Mariana"}),
		}, CTitle, "Mariana"},
		{"newer nil keeps", []*SessionUpdate{
			up("1", "info", "1 a", set{CTitle, "Mariana"}),
			up("2", "info", "2 b", set{CTitle, nil}),
		}, CTitle, "Mariana"},
		{"same time: event id decides", []*SessionUpdate{
			up("1", "forward", "1 b", set{CForwardedToName, "Carla"}),
			up("1", "forward", "1 a", set{CForwardedToName, "Rafael"}),
		}, CForwardedToName, "Carla"},
		{"first and last event", []*SessionUpdate{
			up("2", "x", "2"), up("3", "x", "3"), up("1", "x", "1"),
		}, CFirstEventAt, "1"},
		{"count", []*SessionUpdate{up("2", "x", "2"), up("1", "x", "1")}, CEventCount, int64(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := base()
			for _, u := range tc.updates {
				r.Merge(u)
			}
			if got := r.Vals[tc.col]; got != tc.want {
				t.Errorf("%s = %#v, want %#v", builtinColumns[tc.col], got, tc.want)
			}
		})
	}
}

func TestColumnValue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want any
	}{
		{nil, nil}, {"a", "a"}, {true, int64(1)}, {false, int64(0)}, {3, 3.0}, {2.5, 2.5},
		{[]any{"x", 1.0}, `["x",1]`}, {map[string]any{"a": 1.0}, `{"a":1}`},
	} {
		if got := ColumnValue(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ColumnValue(%#v) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
}

func TestCheckColumnName(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{
		"lead_score": true, "city2": true,
		"Lead": false, "_x": false, "2x": false, "a-b": false, "": false, `a"b`: false,
		"summary": false, "session_id": false, "id": false, "rowid": false, "event_count": false,
		"search": false, "_versions": false,
	} {
		if err := CheckColumnName(name); (err == nil) != ok {
			t.Errorf("CheckColumnName(%q) = %v, want ok %v", name, err, ok)
		}
	}
}

func TestCompileWhereErrors(t *testing.T) {
	t.Parallel()
	cols := []string{"title", "lead_score"}
	for _, tc := range []struct {
		src       string
		line, col int
		msg       string
	}{
		{`titel == "x"`, 1, 1, "unknown name titel"},
		{`lead_score >`, 1, 12, "unexpected token EOF"},
		{`"title"`, 1, 1, "bool"},
		{"   ", 1, 1, "empty"},
	} {
		_, err := CompileWhere(tc.src, cols)
		var we *WhereError
		if !errors.As(err, &we) || we.Line != tc.line || we.Column != tc.col || !strings.Contains(we.Msg, tc.msg) {
			t.Errorf("CompileWhere(%q) = %v; want %d:%d %s", tc.src, err, tc.line, tc.col, tc.msg)
		}
	}
}
