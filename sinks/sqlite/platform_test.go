package sqlite

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/sqlitedb"
)

// TestExternalIDMigration: an archive written before external_id gains
// the column (empty for the rows it had), and events archived from then on
// keep the platform's id.
func TestExternalIDMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "archive.db")
	old, err := sqlitedb.Open(ctx, path, sqlitedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitedb.Migrate(ctx, old, migrations[:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`INSERT INTO events (id, source, event_type, timestamp, received_at) VALUES ('evt_old', 'docs', 'message.created', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')`); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s := openSink(t, path)
	ev := &event.Event{ID: "evt_new", Source: "docs", EventType: "message.updated", Subject: "c1", ExternalID: "a056V7R7NmNRjl70",
		Timestamp: receivedAt, ReceivedAt: receivedAt, Data: json.RawMessage(`{"id":"m1"}`)}
	if err := s.Send(ctx, delivery(ev, 1)); err != nil {
		t.Fatal(err)
	}
	db := reader(t, path)
	got := map[string]string{}
	rows, err := db.Query("SELECT id, external_id FROM events")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, ext string
		rows.Scan(&id, &ext)
		got[id] = ext
	}
	if got["evt_old"] != "" || got["evt_new"] != "a056V7R7NmNRjl70" || len(got) != 2 {
		t.Fatalf("external ids = %v", got)
	}
	if v := userVersion(t, db); v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
}

// TestConversationRows: the chat inbox's and DocsSmith Demo2's events
// keep a sessions row per conversation (their subject), with the
// customer or contact as its title, and count like a Darwin session's;
// another provider's events with a subject keep none.
func TestConversationRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "archive.db")
	s := New(Options{Path: path, Providers: map[string]string{"inbox": "chat-inbox", "docs": "docssmith", "gh": "github"},
		Columns: columnExprs(t, map[string]string{"medium": "data.conversation?.Channel?.medium"})})
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	at := func(min int) time.Time { return receivedAt.Add(time.Duration(min) * time.Minute) }
	evs := []*event.Event{
		{ID: "evt_1", Source: "inbox", EventType: "newMessage", Subject: "conv-1", Timestamp: at(0),
			Data: json.RawMessage(`{"message":{"content":"Olá"},"conversation":{"id":"conv-1","customer":{"name":"Ana"},"createdAt":"2022-01-29T07:18:58.172Z","Channel":{"id":"ch1","name":"Vendas","medium":"WHATSAPP"}}}`)},
		{ID: "evt_2", Source: "inbox", EventType: "newMessage", Subject: "conv-1", Timestamp: at(5),
			Data: json.RawMessage(`{"message":{"content":"Oi?"},"conversation":{"id":"conv-1","customer":{"name":"Ana Souza"},"Channel":{"id":"ch1","name":"Vendas"}}}`)},
		{ID: "evt_3", Source: "docs", EventType: "message.created", Subject: "c9", ExternalID: "e3", Timestamp: at(1),
			Data: json.RawMessage(`{"id":"m1","conversation_id":"c9","contact":{"username":"Kevin"},"message":"hi"}`)},
		{ID: "evt_4", Source: "docs", EventType: "conversation.created", Subject: "c9", ExternalID: "e4", Timestamp: at(0),
			Data: json.RawMessage(`{"id":"c9","created_at":692233200}`)},
		{ID: "evt_5", Source: "gh", EventType: "push", Subject: "octocat/hello", Timestamp: at(0), Data: json.RawMessage(`{}`)},
	}
	for _, ev := range evs {
		ev.ReceivedAt = ev.Timestamp
		if err := s.Send(ctx, delivery(ev, 1)); err != nil {
			t.Fatal(err)
		}
	}
	rows := sessionRows(t, reader(t, path))
	if len(rows) != 2 || rows["octocat/hello"] != nil {
		t.Fatalf("sessions rows: %v", rows)
	}
	inbox, docs := rows["conv-1"], rows["c9"]
	for col, want := range map[string]any{"source": "inbox", "conversation_id": "conv-1", "title": "Ana Souza", "channel_name": "Vendas",
		"channel_id": "ch1", "created_at": "2022-01-29T07:18:58.172Z", "event_count": int64(2), "medium": "WHATSAPP",
		"first_event_at": at(0).UTC().Format(TimeFormat), "last_event_at": at(5).UTC().Format(TimeFormat)} {
		if plain(inbox[col]) != plain(want) {
			t.Errorf("chat inbox conversation %s = %#v, want %#v", col, inbox[col], want)
		}
	}
	for col, want := range map[string]any{"source": "docs", "title": "Kevin", "created_at": "1991-12-08T23:00:00.000Z", "event_count": int64(2)} {
		if plain(docs[col]) != plain(want) {
			t.Errorf("DocsSmith conversation %s = %#v, want %#v", col, docs[col], want)
		}
	}
}
