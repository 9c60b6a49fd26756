package slack

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/receiver/inbound"
	"github.com/switchyard/switchyard/receiver/presets"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

// golden compares got, as indented JSON, with testdata/name.golden.json.
func golden(t *testing.T, name string, got any) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(got); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s differs from the rendered message (go test -update rewrites it):\n%s", path, buf.String())
	}
}

// TestLayoutGolden renders each Darwin fixture with the default layout,
// with a link, and with a custom template, as posted.
func TestLayoutGolden(t *testing.T) {
	t.Parallel()
	custom, err := ParseBlocks([]any{
		map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": "{{ data.conversationTitle ?? subject }}"}},
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "*{{ eventType }}* for <https://inbox.example.com/s/{{ subject }}|the session> {{ data.summary ?? '' }}"}},
		map[string]any{"type": "actions", "elements": []any{map[string]any{
			"type": "button", "text": map[string]any{"type": "plain_text", "text": "Open"},
			"url": "https://inbox.example.com/s/{{ subject }}?from={{ agentName }}",
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	link := lang.MustParseTemplate("https://app.example.com/sessions/{{ subject }}?agent={{ agentId }}")
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"default", Options{}},
		{"link", Options{Link: link}},
		{"custom", Options{Blocks: custom, Text: lang.MustParseTemplate("{{ eventType }}: {{ data.conversationTitle }}")}},
	} {
		for _, path := range fixturePaths(t) {
			fixture := strings.TrimSuffix(filepath.Base(path), ".json")
			if tc.name != "default" && fixture != "session_forwarded_escalated" && fixture != "session_analyzed" {
				continue
			}
			t.Run(tc.name+"/"+fixture, func(t *testing.T) {
				t.Parallel()
				opts := tc.opts
				opts.WebhookURL = "https://hooks.slack.com" + webhookPath
				opts.Platforms = map[string]Platform{"darwin-prod": darwinPlatform}
				s := newSink(t, opts)
				m, err := s.Render(load(t, path))
				if err != nil {
					t.Fatal(err)
				}
				if len(m.Blocks) == 0 || m.Text == "" {
					t.Fatalf("message without blocks or text: %+v", m)
				}
				name := fixture
				if tc.name != "default" {
					name = tc.name + "_" + fixture
				}
				golden(t, name, m)
			})
		}
	}
}

var darwinPlatform = Platform{Provider: "darwin", Name: "Darwin", Subject: "session"}

// platformEvent normalizes a body as the provider's source does.
func platformEvent(t *testing.T, provider, file string) *event.Event {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "receiver", "presets", "testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	s := presets.Settings{Provider: provider, Secrets: []string{"s"}, Verify: &presets.Verify{Header: "X-Sig"}}
	if provider == "chat-inbox" {
		s = presets.Settings{Provider: provider, Verify: &presets.Verify{Type: "none"}}
	}
	src, err := presets.Build(s)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := src.Normalize(&inbound.Request{Body: bytes.TrimSpace(body), Header: http.Header{}, ReceivedAt: received})
	if err != nil {
		t.Fatal(err)
	}
	ev.ID, ev.Source = "evt_"+strings.TrimSuffix(file, ".json"), provider
	return ev
}

// TestPlatformLayoutGolden: the chat inbox's and DocsSmith Demo2's
// events get layouts of their own, which name their platform: the chat
// inbox's shows the customer and the message text.
func TestPlatformLayoutGolden(t *testing.T) {
	t.Parallel()
	platforms := map[string]Platform{
		"chat-inbox": {Provider: "chat-inbox", Name: "the chat inbox", Subject: "conversation"},
		"docssmith":  {Provider: "docssmith", Name: "DocsSmith Demo2", Subject: "conversation"},
	}
	link := lang.MustParseTemplate("https://app.example.com/c/{{ subject }}")
	for _, tc := range []struct{ provider, file string }{
		{"chat-inbox", "chat_new_message.json"},
		{"docssmith", "docssmith_message_updated.json"},
	} {
		s := newSink(t, Options{WebhookURL: "https://hooks.slack.com" + webhookPath, Link: link, Platforms: platforms})
		ev := platformEvent(t, tc.provider, tc.file)
		m, err := s.Render(ev)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, strings.TrimSuffix(tc.file, ".json"), m)
		all, _ := json.Marshal(m)
		for _, want := range map[string][]string{
			"chat-inbox": {"Customer name", "Hello World!", "Channel name (WHATSAPP)", "in-queue", "Open in the chat inbox", "conversation `bf9d96d9-e495-489a-a22a-206b0ea44d90`"},
			"docssmith":  {"Message updated: KevinMcCallister", "I’m traveling with my dad", "Open in DocsSmith Demo2", "conversation `xgQQXg3hrtjh7AvZ`", "id `a056V7R7NmNRjl70`"},
		}[tc.provider] {
			if !strings.Contains(string(all), want) {
				t.Errorf("%s: the message lacks %q:\n%s", tc.provider, want, all)
			}
		}
		if strings.Contains(string(all), "Darwin") || strings.Contains(string(all), "session") {
			t.Errorf("%s: the message names Darwin or a session:\n%s", tc.provider, all)
		}
	}
}

// TestEscalationSaysEachThingOnce: the escalation layout names the
// person it went to once, and its kind once (the text fallback aside).
func TestEscalationSaysEachThingOnce(t *testing.T) {
	t.Parallel()
	s := newSink(t, Options{WebhookURL: "https://hooks.slack.com" + webhookPath, Platforms: map[string]Platform{"darwin-prod": darwinPlatform}})
	m, err := s.Render(escalated(t))
	if err != nil {
		t.Fatal(err)
	}
	blocks, _ := json.Marshal(m.Blocks[:len(m.Blocks)-1]) // the footer names the event type
	for word, want := range map[string]int{"Carla Mendes": 1, "orwarded to": 1, "scalated": 1} {
		if n := strings.Count(string(blocks), word); n != want {
			t.Errorf("%q appears %d times in the blocks, want %d:\n%s", word, n, want, blocks)
		}
	}
}

// TestDocsSmithObjectLayout: a DocsSmith Demo2 event about another object
// than a message lists the payload's plain values, times as dates, and
// escapes what it shows.
func TestDocsSmithObjectLayout(t *testing.T) {
	t.Parallel()
	ev := &event.Event{ID: "evt_1", Source: "docs", EventType: "contact.created", ExternalID: "e9", Timestamp: received, ReceivedAt: received,
		Data: json.RawMessage(`{"id":"WAz8","username":"<!channel>","created_at":692233200,"tags":["a"]}`)}
	s := newSink(t, Options{WebhookURL: "https://hooks.slack.com" + webhookPath,
		Platforms: map[string]Platform{"docs": {Provider: "docssmith", Name: "DocsSmith Demo2", Subject: "conversation"}}})
	m, err := s.Render(ev)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := json.Marshal(m)
	for _, want := range []string{`:new: Contact created: \u003c!channel\u003e`, `*username*\n\u0026lt;!channel\u0026gt;`, `*created_at*\n\u003c!date^692233200^`, "id `e9`"} {
		if !strings.Contains(string(all), want) {
			t.Errorf("missing %s in:\n%s", want, all)
		}
	}
	if strings.Contains(string(all), "tags") {
		t.Errorf("a list is shown as a field:\n%s", all)
	}
}
