package slack

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/lang"
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
