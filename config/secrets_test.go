package config

import (
	"strings"
	"testing"
)

// TestShortSecretWarnings: an HMAC secret or token under 16 bytes is a
// warning at its line and column (the load still succeeds), and the
// warning gives its length, never the secret.
func TestShortSecretWarnings(t *testing.T) {
	t.Parallel()
	y := `storage: {dir: /tmp/sy}
sources:
  - name: short
    provider: github
    secret: hunter2
  - name: rotating
    provider: github
    secrets: [0123456789abcdef, tiny-secret]
  - name: long
    provider: darwin
    secret: ${LONG}
  - name: whsec
    provider: standard-webhooks
    secret: whsec_c2hvcnQta2V5
  - name: whsec-long
    provider: standard-webhooks
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
sinks:
  - name: crm
    type: http
    url: https://crm.example.com/hook
    sign: {scheme: hmac, header: X-Sig, secret: abc}
routes:
  - {name: all, match: ["*"], to: [crm]}
`
	c, err := Parse("c.yaml", []byte(y), env(map[string]string{"LONG": "0123456789abcdef"}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range c.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		"c.yaml:5:13: warning: sources[0].secret: only 7 bytes: a secret this short can be guessed from one signed request; use at least 16 random bytes (openssl rand -hex 32), or ask the platform for a longer one",
		"c.yaml:8:33: warning: sources[1].secrets[1]: only 11 bytes:",
		"c.yaml:14:13: warning: sources[3].secret: only 9 bytes once decoded from whsec_:",
		"c.yaml:22:49: warning: sinks[0].sign.secret: only 3 bytes: a secret this short can be guessed from one signed request; use at least 16 random bytes (openssl rand -hex 32)",
	}
	if len(got) != len(want) {
		t.Fatalf("warnings:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) || (strings.Contains(got[i], "sinks[") && strings.Contains(got[i], "platform")) {
			t.Errorf("warning %d:\n got %s\nwant %s…", i, got[i], want[i])
		}
	}
	all := strings.Join(got, "\n")
	for _, secret := range []string{"hunter2", "tiny-secret", "c2hvcnQta2V5", "short-key", "abc"} {
		if strings.Contains(all, secret) {
			t.Errorf("a warning shows the secret %q:\n%s", secret, all)
		}
	}
}
