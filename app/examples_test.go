package app

import (
	"bytes"
	"database/sql"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// loadExample loads examples/name with env, its storage and archive in
// dir and its Slack webhook at slackURL.
func loadExample(t *testing.T, name, dir, slackURL string, env map[string]string) *config.Config {
	t.Helper()
	env["SLACK_WEBHOOK_URL"] = slackURL
	raw, err := os.ReadFile(filepath.Join("..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(name, raw, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Storage.Dir = filepath.Join(dir, "data")
	for i := range cfg.Sinks {
		if cfg.Sinks[i].SQLite != nil {
			cfg.Sinks[i].SQLite.Path = filepath.Join(dir, "archive.db")
		}
	}
	return cfg
}

// TestPlatformExamplesEndToEnd runs the DocsSmith Demo2 and chat inbox
// example configurations as their pages describe: the example event,
// sent as the platform sends it, reaches Slack with its text and the
// archive with its conversation and the platform's id.
func TestPlatformExamplesEndToEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		config, source, event string
		env                   map[string]string
		query                 string
		slack                 []string
		subject, external     string
	}{
		{"docssmith.yaml", "docssmith", "docssmith_message_created.json", map[string]string{"DOCSSMITH_WEBHOOK_SECRET": "docs-secret"}, "",
			[]string{"Message created: KevinMcCallister", "Can someone call me back", "conversation `xgQQXg3hrtjh7AvZ`", "id `b7Qm2XkR9pLs4TdE`"},
			"xgQQXg3hrtjh7AvZ", "b7Qm2XkR9pLs4TdE"},
		{"chat-inbox.yaml", "inbox", "chat_inbox_new_message.json", map[string]string{"CHAT_INBOX_URL_TOKEN": "tok-0123456789abcdef"}, "?token=tok-0123456789abcdef",
			[]string{"New message: Customer name", "Hello World!", "Channel name (WHATSAPP)"},
			"bf9d96d9-e495-489a-a22a-206b0ea44d90", ""},
	} {
		t.Run(tc.config, func(t *testing.T) {
			t.Parallel()
			var (
				mu    sync.Mutex
				posts []string
			)
			slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				posts = append(posts, string(b))
				mu.Unlock()
				io.WriteString(w, "ok")
			}))
			defer slack.Close()
			dir := t.TempDir()
			cfg := loadExample(t, tc.config, dir, slack.URL+"/services/T/B/C", tc.env)
			a := serve(t, cfg, nil)
			body, err := os.ReadFile(filepath.Join("..", "examples", "events", tc.event))
			if err != nil {
				t.Fatal(err)
			}
			body = bytes.TrimSpace(body)
			src, err := NewSource(cfg.Sources[0])
			if err != nil {
				t.Fatal(err)
			}
			url := "http://" + a.Addr() + cfg.Sources[0].Path + tc.query
			headers, url, err := src.Sign(body, url, "application/json", nil)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.Header = headers
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST: %s", resp.Status)
			}
			eventually(t, "the Slack message", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(posts) == 1
			})
			for _, want := range tc.slack {
				if !strings.Contains(posts[0], want) {
					t.Errorf("the Slack message lacks %q:\n%s", want, posts[0])
				}
			}
			var subject, external, title string
			eventually(t, "the archived event", func() bool {
				db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "archive.db")+"?mode=ro")
				if err != nil {
					return false
				}
				defer db.Close()
				return db.QueryRow(`SELECT e.subject, e.external_id, coalesce(s.title, '') FROM events e JOIN sessions s ON s.session_id = e.subject`).Scan(&subject, &external, &title) == nil
			})
			if subject != tc.subject || external != tc.external || title == "" {
				t.Errorf("archived subject %q external %q title %q, want %q %q and a title", subject, external, title, tc.subject, tc.external)
			}
		})
	}
}
