package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/queue/sqlite"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/logbuf"
	"github.com/switchyard/switchyard/internal/sqlitedb"
	"github.com/switchyard/switchyard/receiver"
)

// TestHandshakesEndToEnd sets up Slack, WhatsApp (Meta) and Discord
// sources as their platforms do — Slack's url_verification, Meta's GET
// hub.challenge, Discord's PING — through the real HTTP endpoint, and
// checks that none of it becomes an event or a delivery, while the
// first real event after them does.
func TestHandshakesEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "verify_token")
	if err := os.WriteFile(tokenFile, []byte("meta-verify-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfgYAML := fmt.Sprintf(`
server: {listen: "127.0.0.1:0"}
storage: {dir: %[1]s/data}
sources:
  - name: slack
    provider: slack
    secret: slack-signing-secret
  - name: whatsapp
    provider: meta
    secret: meta-app-secret
    verify:
      verify_token_file: %[2]s
  - name: discord
    provider: discord
    verify: {public_key: %[3]s}
sinks:
  - name: archive
    type: sqlite
    path: %[1]s/archive.db
routes:
  - name: all
    match: ["*"]
    to: [archive]
`, dir, tokenFile, hex.EncodeToString(pub))
	cfg, err := config.Parse("handshakes.yaml", []byte(cfgYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	a := serve(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))

	send := func(method, path string, body []byte, header http.Header) (int, string, string) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, _ := http.NewRequest(method, "http://"+a.Addr()+path, rd)
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(raw)
	}
	slackSign := func(body []byte) http.Header {
		h, err := receiver.Sign("slack", "slack-signing-secret", body)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	discordSign := func(body []byte) http.Header {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		return http.Header{"X-Signature-Ed25519": {hex.EncodeToString(ed25519.Sign(priv, append([]byte(ts), body...)))}, "X-Signature-Timestamp": {ts}}
	}

	slackChallenge := []byte(`{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`)
	discordPing := []byte(`{"application_id":"2","id":"1","token":"t","type":1,"version":1}`)
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		header             http.Header
		status             int
		ctype, answer      string
	}{
		{"slack url_verification", "POST", "/hooks/slack", slackChallenge, slackSign(slackChallenge),
			200, "application/json", `{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}`},
		{"slack url_verification, bad signature", "POST", "/hooks/slack", slackChallenge,
			http.Header{"X-Slack-Signature": {"v0=" + strings.Repeat("0", 64)}, "X-Slack-Request-Timestamp": {strconv.FormatInt(time.Now().Unix(), 10)}},
			401, "application/json", ""},
		{"meta subscription check", "GET", "/hooks/whatsapp?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meta-verify-token", nil, nil,
			200, "text/plain", "1158201444"},
		{"meta subscription check, wrong token", "GET", "/hooks/whatsapp?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=nope", nil, nil,
			403, "application/json", ""},
		{"discord PING", "POST", "/hooks/discord", discordPing, discordSign(discordPing), 200, "application/json", `{"type":1}`},
		{"discord PING, unsigned", "POST", "/hooks/discord", discordPing, nil, 401, "application/json", ""},
	} {
		status, ctype, body := send(tc.method, tc.path, tc.body, tc.header)
		if status != tc.status || !strings.HasPrefix(ctype, tc.ctype) || (tc.answer != "" && body != tc.answer) {
			t.Errorf("%s: %d %s %q, want %d %s %q", tc.name, status, ctype, body, tc.status, tc.ctype, tc.answer)
		}
	}

	// A real event after the handshakes is stored and delivered.
	ev := []byte(`{"type":"event_callback","team_id":"T1","event_id":"Ev1","event_time":1763735528,"event":{"type":"app_mention","text":"hi"}}`)
	if status, _, body := send("POST", "/hooks/slack", ev, slackSign(ev)); status != 200 {
		t.Fatalf("slack event: %d %s", status, body)
	}
	eventually(t, "the event archived", func() bool {
		return len(archivedBySource(t, filepath.Join(dir, "archive.db"))) == 1
	})
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", sqlitedb.DSN(filepath.Join(dir, "data", sqlite.FileName), sqlitedb.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for table, want := range map[string]int{"events": 1, "deliveries": 1} {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%d rows in %s, want %d: a handshake was stored", n, table, want)
		}
	}
	if got := archivedBySource(t, filepath.Join(dir, "archive.db")); got["slack"] != [2]string{"app_mention", "T1"} {
		t.Errorf("archived %v", got)
	}
	if strings.Contains(logs.String(), "meta-verify-token") {
		t.Errorf("the verify token was logged:\n%s", logs.String())
	}
}
