package presets

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/receiver/verify"
)

// TestSignEverySource: Sign signs for every preset and every verify type
// so that the source's own verifier accepts the request, posts an
// unsigned source's request bare, and refuses (with the reason) what it
// cannot sign for.
func TestSignEverySource(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	type tc struct {
		name  string
		s     Settings
		body  string
		ctype string
		key   ed25519.PrivateKey
		// cannot: Sign must refuse, naming this
		cannot string
	}
	var cases []tc
	for _, name := range Names() {
		if name == "custom" {
			continue
		}
		c := tc{name: name, s: Settings{Provider: name, Secrets: secretsFor(name), Verify: verifyFor(name)}, body: `{"type":"x","id":"1"}`, ctype: "application/json"}
		switch name {
		case "discord":
			c.s.Verify = &Verify{PublicKeys: []string{hex.EncodeToString(pub)}}
			c.key = priv
		case "linear":
			c.body = fmt.Sprintf(`{"type":"Issue","action":"create","webhookTimestamp":%d}`, time.Now().UnixMilli())
		}
		cases = append(cases, c)
	}
	cases = append(cases,
		tc{name: "twilio form", s: Settings{Provider: "twilio", Secrets: []string{"tok"}}, body: "MessageSid=SM1&MessageStatus=sent", ctype: "application/x-www-form-urlencoded"},
		tc{name: "renamed envelope", s: Settings{Provider: "envelope", Secrets: []string{"s"}, Verify: &Verify{Header: "X-Sig"}}, body: `{}`, ctype: "application/json"},
		tc{name: "custom hmac with timestamp and id", s: Settings{Provider: "custom", Secrets: []string{"s"}, Map: map[string]string{"eventType": "'x'"},
			Verify: &Verify{Type: "hmac", Header: "X-Sig", Algorithm: "sha512", Encoding: "base64", Prefix: "v1=", Signed: "{id}.{timestamp}.{body}", TimestampHeader: "X-Ts", IDHeader: "X-Id"}}, body: `{}`, ctype: "application/json"},
		tc{name: "token header with a scheme", s: Settings{Provider: "custom", Secrets: []string{"tok"}, Map: map[string]string{"eventType": "'x'"},
			Verify: &Verify{Type: "token", Header: "Authorization", Prefix: "Bearer "}}, body: `{}`, ctype: "application/json"},
		tc{name: "token in the query", s: Settings{Provider: "custom", Secrets: []string{"tok en&"}, Map: map[string]string{"eventType": "'x'"},
			Verify: &Verify{Type: "token", Query: "token"}}, body: `{}`, ctype: "application/json"},
		tc{name: "basic", s: Settings{Provider: "custom", Secrets: []string{"pass:word"}, Map: map[string]string{"eventType": "'x'"},
			Verify: &Verify{Type: "basic", Username: "twilio"}}, body: `{}`, ctype: "application/json"},
		tc{name: "ip_allow around hmac", s: Settings{Provider: "darwin", Secrets: []string{"s"}, IPAllow: []string{"192.0.2.0/24"}}, body: `{"eventType":"x"}`, ctype: "application/json"},
		tc{name: "ed25519 without a private key", s: Settings{Provider: "discord", Verify: &Verify{PublicKeys: []string{hex.EncodeToString(pub)}}},
			body: `{}`, ctype: "application/json", cannot: "only the sender holds the private key"},
		tc{name: "ed25519 with another key", s: Settings{Provider: "discord", Verify: &Verify{PublicKeys: []string{hex.EncodeToString(pub)}}},
			body: `{}`, ctype: "application/json", key: otherPriv, cannot: "does not match any of the source's verify.public_keys"},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			src := build(t, c.s)
			now := time.Now()
			target := "https://hooks.example.com/hooks/x?a=1"
			out, err := src.Sign([]byte(c.body), SignOptions{Signed: verify.Signed{ID: "msg_1", Timestamp: now, Method: "POST", URL: target, ContentType: c.ctype}, Ed25519Key: c.key})
			if c.cannot != "" {
				if !errors.Is(err, ErrCannotSign) || !strings.Contains(err.Error(), c.cannot) {
					t.Fatalf("Sign = %v, want ErrCannotSign naming %q", err, c.cannot)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h := out.Header.Clone()
			h.Set("Content-Type", c.ctype)
			r := request(t, "POST", out.URL, []byte(c.body), h, now)
			r.RemoteIP = netip.MustParseAddr("192.0.2.7")
			if err := src.Verifier.Verify(r); err != nil {
				t.Fatalf("the source refuses its own signature: %v\nheaders %v\nurl %s", err, out.Header, out.URL)
			}
			if c.s.Verify != nil && c.s.Verify.Type == "none" && len(out.Header) != 0 {
				t.Errorf("an unsigned source got headers %v", out.Header)
			}
			// The signature is the body's: another body is refused.
			if c.s.Verify == nil || c.s.Verify.Type != "none" {
				if c.name == "telegram" || c.s.Verify != nil && (c.s.Verify.Type == "token" || c.s.Verify.Type == "basic") {
					return // a credential, not a signature
				}
				other := request(t, "POST", out.URL, []byte(c.body+" "), h, now)
				other.RemoteIP = netip.MustParseAddr("192.0.2.7")
				if err := src.Verifier.Verify(other); err == nil {
					t.Errorf("another body verified with the same headers")
				}
			}
		})
	}
}

func TestParseEd25519Key(t *testing.T) {
	t.Parallel()
	_, priv, _ := ed25519.GenerateKey(nil)
	for _, text := range []string{hex.EncodeToString(priv.Seed()), hex.EncodeToString(priv), " " + hex.EncodeToString(priv) + "\n"} {
		got, err := ParseEd25519Key(text)
		if err != nil || !got.Equal(priv) {
			t.Errorf("ParseEd25519Key(%q) = %v", text, err)
		}
	}
	bad := append([]byte(nil), priv...)
	bad[40] ^= 1
	for _, text := range []string{"", "zz", hex.EncodeToString(priv[:10]), hex.EncodeToString(bad)} {
		if _, err := ParseEd25519Key(text); err == nil {
			t.Errorf("ParseEd25519Key(%q) accepted", text)
		}
	}
}
