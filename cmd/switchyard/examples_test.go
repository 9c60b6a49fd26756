package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exampleEnv are the variables the example configurations read.
var exampleEnv = map[string]string{
	"DARWIN_WEBHOOK_SECRET":    "darwin-webhook-test-secret",
	"DOCSSMITH_WEBHOOK_SECRET": "docssmith-webhook-test-secret",
	"CHAT_INBOX_URL_TOKEN":     "a-long-random-token-0123456789",
	"SLACK_WEBHOOK_URL":        "https://hooks.slack.com/services/T000/B000/XXXX",
}

// TestExampleConfigs: each platform's example configuration (the one its
// page in docs/platforms shows) passes check without a warning, and its
// example event reaches the sinks the page says.
func TestExampleConfigs(t *testing.T) {
	for k, v := range exampleEnv {
		t.Setenv(k, v)
	}
	for _, tc := range []struct {
		config, source, event string
		routes, sinks         []string
	}{
		{"darwin.yaml", "darwin", "events/session_forwarded_escalated.json", []string{"escalations", "archive"}, []string{"ops-slack", "archive"}},
		{"docssmith.yaml", "docssmith", "events/docssmith_message_created.json", []string{"new-messages", "archive"}, []string{"support-slack", "archive"}},
		{"chat-inbox.yaml", "inbox", "events/chat_inbox_new_message.json", []string{"messages"}, []string{"inbox-slack", "archive"}},
	} {
		path := filepath.Join("..", "..", "examples", tc.config)
		out, _, err := runCmd(t, "check", "--config", path)
		if err != nil || out != "OK\n" {
			t.Errorf("check %s: %v\n%s", tc.config, err, out)
		}
		out, _, code := runTest(t, "--config", path, "--source", tc.source, "--json", filepath.Join("..", "..", "examples", tc.event))
		if code != 0 {
			t.Errorf("test %s: exit %d\n%s", tc.config, code, out)
			continue
		}
		var res []struct {
			Routes []struct {
				Route   string `json:"route"`
				Matched bool   `json:"matched"`
			} `json:"routes"`
			Sinks []struct {
				Sink string `json:"sink"`
			} `json:"sinks"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 1 {
			t.Fatalf("test %s --json: %v\n%s", tc.config, err, out)
		}
		var routes, sinks []string
		for _, r := range res[0].Routes {
			if r.Matched {
				routes = append(routes, r.Route)
			}
		}
		for _, s := range res[0].Sinks {
			sinks = append(sinks, s.Sink)
		}
		if strings.Join(routes, ",") != strings.Join(tc.routes, ",") || strings.Join(sinks, ",") != strings.Join(tc.sinks, ",") {
			t.Errorf("%s: %s matches %v and reaches %v, want %v and %v", tc.config, tc.event, routes, sinks, tc.routes, tc.sinks)
		}
	}
}

// TestDocsShowTheExampleConfigs: the configuration each platform page
// (and the README's first setup) shows is the example file that
// TestExampleConfigs checks, byte for byte.
func TestDocsShowTheExampleConfigs(t *testing.T) {
	t.Parallel()
	for doc, example := range map[string]string{
		"README.md":                    "examples/darwin.yaml",
		"docs/platforms/darwin.md":     "examples/darwin.yaml",
		"docs/platforms/docssmith.md":  "examples/docssmith.yaml",
		"docs/platforms/chat-inbox.md": "examples/chat-inbox.yaml",
	} {
		page, err := os.ReadFile(filepath.Join("..", "..", doc))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("..", "..", example))
		if err != nil {
			t.Fatal(err)
		}
		_, block, ok := strings.Cut(string(page), "```yaml\nsources:")
		block, _, _ = strings.Cut(block, "```")
		if !ok || "sources:"+block != string(want) {
			t.Errorf("%s does not show %s as it is:\n%s", doc, example, "sources:"+block)
		}
	}
}
