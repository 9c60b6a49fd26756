package sqlite

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestPreviewIsWhatSendWrites: for every Darwin fixture, the rows
// Preview shows are the rows Send writes to a new archive.
func TestPreviewIsWhatSendWrites(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "darwin", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := load(t, name, "evt_"+name)
			path := filepath.Join(t.TempDir(), "archive.db")
			s := New(Options{Path: path, Columns: columnExprs(t, storyColumns)})
			p, err := s.Preview(f.ev)
			if err != nil {
				t.Fatal(err)
			}
			rows := p.(*Rows)
			if err := s.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Send(context.Background(), delivery(f.ev, 1)); err != nil {
				t.Fatal(err)
			}
			db := reader(t, path)

			var ev [10]any
			ptrs := make([]any, len(ev))
			for i := range ev {
				ptrs[i] = &ev[i]
			}
			if err := db.QueryRow("SELECT id, source, event_type, subject, agent_id, agent_name, timestamp, received_at, data, external_id FROM events").Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			if len(rows.Events) != len(ev) {
				t.Fatalf("preview has %d events columns", len(rows.Events))
			}
			for i, c := range rows.Events {
				if got, want := plain(c.Value), plain(ev[i]); got != want {
					t.Errorf("events.%s: preview %#v, archive %#v", c.Name, got, want)
				}
			}

			stored := sessionRows(t, db)[f.ev.Subject]
			previewed := map[string]any{}
			for _, c := range rows.Sessions {
				if c.Name != "session_id" {
					previewed[c.Name] = plain(c.Value)
				}
			}
			want := map[string]any{}
			for k, v := range stored {
				if v != nil {
					want[k] = plain(v)
				}
			}
			if strings.HasPrefix(name, "function") {
				if len(rows.Sessions) != 0 || stored != nil {
					t.Fatalf("function call: sessions preview %v, archive %v", rows.Sessions, stored)
				}
				return
			}
			if !reflect.DeepEqual(previewed, want) {
				t.Errorf("sessions differ:%s", diffRow(previewed, want))
			}
		})
	}
}

// plain turns the values of a preview and of a row read back into
// comparable ones: JSON and bytes as text.
func plain(v any) any {
	switch x := v.(type) {
	case json.RawMessage:
		return string(x)
	case []byte:
		return string(x)
	}
	return v
}
