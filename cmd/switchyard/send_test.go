package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSendSignsForEverySource: send posts as each kind of sender would,
// to a real gateway that verifies it: DocsSmith Demo2's signature under
// its configured header, the unsigned chat inbox bare (saying so), a
// token in the query, Basic credentials, and Ed25519 with the sender's
// private key; without that key it says why it cannot sign.
func TestSendSignsForEverySource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "discord.key")
	os.WriteFile(keyFile, []byte(hex.EncodeToString(priv.Seed())+"\n"), 0o600)
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`server: {listen: "127.0.0.1:0"}
storage: {dir: %[1]s/data}
sources:
  - name: docssmith
    provider: docssmith
    secret: docs-secret
    verify: {header: X-DocsSmith-Demo2-Signature}
  - name: inbox
    provider: chat-inbox
    verify: {type: none}
  - name: acme
    provider: custom
    secret: acme-token
    verify: {type: token, query: token}
    map: {eventType: 'body.type'}
  - name: twilio
    provider: custom
    secret: basic-password
    verify: {type: basic, username: twilio}
    map: {eventType: 'body.type'}
  - name: discord
    provider: discord
    verify: {public_key: %[2]s}
sinks: [{name: archive, type: sqlite, path: %[1]s/archive.db}]
routes: [{name: all, match: ["*"], to: [archive]}]
`, dir, hex.EncodeToString(pub))), 0o600)
	a, _ := startGateway(t, path)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	docs := "../../receiver/presets/testdata/docssmith_message_updated.json"
	inbox := "../../receiver/presets/testdata/chat_new_message.json"
	plain := write("plain.json", `{"type":"ticket.created","id":"t1"}`)
	discordEvent := write("discord.json", `{"version":1,"application_id":"1","type":1,"event":{"type":"APPLICATION_AUTHORIZED","timestamp":"2026-11-21T14:32:08Z","data":{}}}`)

	for _, tc := range []struct {
		name, source, file string
		extra              []string
		stderr             string
	}{
		{"docssmith", "docssmith", docs, nil, ""},
		{"unsigned chat inbox", "inbox", inbox, nil, `source "inbox" verifies nothing`},
		{"token in the query", "acme", plain, nil, ""},
		{"basic", "twilio", plain, nil, ""},
		{"ed25519 with the private key", "discord", discordEvent, []string{"--ed25519-key", keyFile}, ""},
	} {
		url := "http://" + a.Addr() + "/hooks/" + tc.source
		args := append([]string{"send", "--config", path, "--source", tc.source, "--url", url}, tc.extra...)
		out, errOut, err := runCmd(t, append(args, tc.file)...)
		if err != nil || !strings.Contains(out, "200 OK") || !strings.Contains(out, `"id":"evt_`) {
			t.Errorf("%s: %v\n%s%s", tc.name, err, out, errOut)
		}
		if tc.stderr != "" && !strings.Contains(errOut, tc.stderr) {
			t.Errorf("%s: stderr %q, want %q", tc.name, errOut, tc.stderr)
		}
	}

	url := "http://" + a.Addr() + "/hooks/discord"
	_, _, err = runCmd(t, "send", "--config", path, "--source", "discord", "--url", url, discordEvent)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), `source "discord" (provider discord): cannot sign: an ed25519 source is verified with the sender's public key`) {
		t.Errorf("ed25519 without a key: exit %d, %v", exitCode(err), err)
	}
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	other := write("other.key", hex.EncodeToString(otherPriv))
	_, _, err = runCmd(t, "send", "--config", path, "--source", "discord", "--url", url, "--ed25519-key", other, discordEvent)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("ed25519 with another key: exit %d, %v", exitCode(err), err)
	}
	// The gateway refuses a wrong signature: send is not fooling itself.
	os.WriteFile(path, []byte(strings.Replace(string(mustRead(t, path)), "secret: docs-secret", "secret: other-secret", 1)), 0o600)
	out, _, err := runCmd(t, "send", "--config", path, "--source", "docssmith", "--url", "http://"+a.Addr()+"/hooks/docssmith", docs)
	if exitCode(err) != 1 || !strings.Contains(out, "401") {
		t.Errorf("a wrong secret: exit %d\n%s", exitCode(err), out)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
