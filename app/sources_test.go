package app

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/logbuf"
	"github.com/switchyard/switchyard/receiver/darwin"
)

// TestSeedPlatformsEndToEnd posts one event per seed platform shape
// through the real HTTP endpoint: Darwin (signed X-SIGNATURE), the
// unauthenticated chat inbox (explicit verify: none), DocsSmith Demo2's
// {id,type,payload} events (its own signature header) and a sender
// mapped with expressions (token in the query).
func TestSeedPlatformsEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgYAML := fmt.Sprintf(`
server: {listen: "127.0.0.1:0"}
storage: {dir: %[1]s/data}
sources:
  - name: darwin
    provider: darwin
    secret: darwin-secret
  - name: chat
    provider: chat-inbox
    verify: {type: none}
  - name: demo
    provider: docssmith
    secrets: [old-demo-secret, demo-secret]
    verify: {header: X-Demo-Signature}
  - name: acme
    provider: custom
    secret: acme-token
    verify: {type: token, query: token}
    map:
      eventType: 'headers["X-Acme-Event"]'
      id: 'body.uuid'
      subject: 'body.ticket?.id'
      data: 'body.ticket'
  - name: office
    provider: chat        # the chat inbox's old name: still works, with a warning
    verify: {type: none}
    ip_allow: [192.0.2.0/24]
sinks:
  - name: archive
    type: sqlite
    path: %[1]s/archive.db
routes:
  - name: all
    match: ["*"]
    to: [archive]
`, dir)
	cfg, err := config.Parse("seeds.yaml", []byte(cfgYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	a := serve(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if !strings.Contains(logs.String(), "unauthenticated") || !strings.Contains(logs.String(), "source=chat") {
		t.Errorf("no start-up warning for the unauthenticated source:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `sources[4].provider: \"chat\" is the old name of this provider: write provider: chat-inbox`) {
		t.Errorf("no start-up warning for the provider's old name:\n%s", logs.String())
	}

	send := func(path string, body []byte, header http.Header) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+path, bytes.NewReader(body))
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
		var out map[string]any
		json.Unmarshal(raw, &out)
		return resp.StatusCode, out
	}
	seed := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "receiver", "presets", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.TrimSpace(b)
	}
	hexMAC := func(secret string, body []byte) string {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		return hex.EncodeToString(m.Sum(nil))
	}

	darwinBody := fixture(t, "session_forwarded_escalated")
	chatBody := seed("chat_new_message.json")
	demoBody := seed("docssmith_message_updated.json")
	acmeBody := []byte(`{"uuid":"u-1","ticket":{"id":"T-9","title":"Olá"}}`)

	for _, tc := range []struct {
		name   string
		path   string
		body   []byte
		header http.Header
		want   int
	}{
		{"darwin signed", "/hooks/darwin", darwinBody, http.Header{"X-Signature": {darwin.Sign([]byte("darwin-secret"), darwinBody)}}, 200},
		{"darwin unsigned", "/hooks/darwin", darwinBody, nil, 401},
		{"chat unauthenticated by choice", "/hooks/chat", chatBody, nil, 200},
		{"demo signed with the new secret", "/hooks/demo", demoBody, http.Header{"X-Demo-Signature": {hexMAC("demo-secret", demoBody)}}, 200},
		{"demo signed twice", "/hooks/demo", demoBody, http.Header{"X-Demo-Signature": {hexMAC("demo-secret", demoBody), hexMAC("demo-secret", demoBody)}}, 401},
		{"demo wrong secret", "/hooks/demo", demoBody, http.Header{"X-Demo-Signature": {hexMAC("nope", demoBody)}}, 401},
		{"acme token", "/hooks/acme?token=acme-token", acmeBody, http.Header{"X-Acme-Event": {"ticket.created"}}, 200},
		{"acme wrong token", "/hooks/acme?token=acme-tokem", acmeBody, http.Header{"X-Acme-Event": {"ticket.created"}}, 401},
		{"office from a disallowed address", "/hooks/office", chatBody, nil, 403},
	} {
		code, out := send(tc.path, tc.body, tc.header)
		if code != tc.want {
			t.Errorf("%s: status %d (%v), want %d", tc.name, code, out, tc.want)
		}
	}

	// The mapping's required field missing: 400 naming it.
	code, out := send("/hooks/acme?token=acme-token", acmeBody, nil)
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), "eventType") {
		t.Errorf("missing mapped eventType: %d %v", code, out)
	}
	// The provider's id deduplicates: same id, different bytes.
	redelivered := bytes.Replace(demoBody, []byte(`"reactions":[]`), []byte(`"reactions":[ ]`), 1)
	code, out = send("/hooks/demo", redelivered, http.Header{"X-Demo-Signature": {hexMAC("old-demo-secret", redelivered)}})
	if code != http.StatusOK || out["duplicate"] != true {
		t.Errorf("redelivery of the same id: %d %v", code, out)
	}

	want := map[string][2]string{
		"darwin": {"session.forwarded.escalated", "6651a0e7c4b2f81d9a3e5c11"},
		"chat":   {"newMessage", "bf9d96d9-e495-489a-a22a-206b0ea44d90"},
		"demo":   {"message.updated", "xgQQXg3hrtjh7AvZ"},
		"acme":   {"ticket.created", "T-9"},
	}
	eventually(t, "every event archived", func() bool {
		got := archivedBySource(t, filepath.Join(dir, "archive.db"))
		if len(got) != len(want) {
			return false
		}
		for src, w := range want {
			if got[src] != w {
				t.Logf("%s: archived %v, want %v", src, got[src], w)
				return false
			}
		}
		return true
	})
}

func archivedBySource(t *testing.T, path string) map[string][2]string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT source, event_type, subject FROM events`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	out := map[string][2]string{}
	for rows.Next() {
		var src, typ, subject string
		rows.Scan(&src, &typ, &subject)
		out[src] = [2]string{typ, subject}
	}
	return out
}

// TestSourceConfigProblems checks that bad verification settings are
// positioned problems, and that nothing fails open.
func TestSourceConfigProblems(t *testing.T) {
	t.Parallel()
	y := `
storage: {dir: /tmp/x}
sources:
  - name: a
    provider: github
    secret: ${EMPTY:-}
  - name: b
    provider: chat-inbox
  - name: c
    provider: custom
    verify: {type: hmac, header: X-Sig, algorithm: md5}
    secret: s
    map: {eventType: 'body.type +'}
  - name: d
    provider: stripe
    secret: s
    ip_allow: [10.0.0.1/8]
  - name: e
    provider: github
    secret: s
    verify: {verify_token: t}
  - name: f
    provider: darwin
    secret: s
    subject: 'data.sessionId +'
sinks: []
routes: []
`
	cfg, err := config.Parse("v.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err == nil {
		_, err = Build(cfg, nil)
	}
	if err == nil {
		t.Fatal("bad sources accepted")
	}
	for _, want := range []string{
		"v.yaml:6:13: sources[0].secret: is empty",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	// Config-level problems stop before Build; fix the empty secret and
	// look at what Build reports.
	cfg, err = config.Parse("v.yaml", []byte(strings.Replace(y, "${EMPTY:-}", "s", 1)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(cfg, nil)
	if err == nil {
		t.Fatal("bad sources accepted")
	}
	for _, want := range []string{
		"v.yaml:7:5: sources[1].verify: missing: the chat inbox signs nothing",
		"v.yaml:11:52: sources[2].verify.algorithm: unknown algorithm \"md5\"",
		"v.yaml:13:33: sources[2].map.eventType: unexpected token EOF",
		"v.yaml:17:16: sources[3].ip_allow[0]: \"10.0.0.1/8\" has host bits set",
		"v.yaml:21:28: sources[4].verify.verify_token: provider github sends no GET subscription challenge",
		"v.yaml:25:30: sources[5].subject: unexpected token EOF",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
