package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRedacted: what the console shows of a configuration keeps its
// settings and comments and none of its secrets, whether written in the
// file, expanded from the environment, in a list, a map of headers or a
// URL's user information; a secret read from a file shows its path.
func TestRedacted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte("file-token-0123456789-hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `# the gateway
server: {listen: ":8080"}
sources:
  - name: darwin
    provider: darwin
    secret: hunter2-source      # rotate yearly
    secrets: [hunter2-old]
sinks:
  - {name: ops, type: slack, webhook_url: "https://hooks.slack.com/services/hunter2-slack"}
  - name: crm
    type: http
    url: https://bob:hunter2-pass@crm.example.com/hook
    headers: {Authorization: "Bearer ${CRM_TOKEN}", X-Team: ops}
routes:
  - {name: all, match: ["*"], to: [ops, crm]}
admin:
  listen: 127.0.0.1:9090
  token_file: ` + tokenFile + `
  viewer_token: hunter2-viewer-0123456789
`
	cfg, err := Parse("c.yaml", []byte(src), env(map[string]string{"CRM_TOKEN": "hunter2-env"}))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	if strings.Contains(text, "hunter2") {
		t.Fatalf("a secret shows:\n%s", text)
	}
	for _, want := range []string{"# the gateway", "secret: <secret> # rotate yearly", "secrets: [<secret>]", "webhook_url: <secret>",
		"https://bob:<secret>@crm.example.com/hook", "Authorization: <secret>", "X-Team: <secret>", "token_file: " + tokenFile,
		"viewer_token: <secret>", `listen: ":8080"`} {
		if !strings.Contains(text, want) {
			t.Errorf("redacted configuration lacks %q:\n%s", want, text)
		}
	}
}
