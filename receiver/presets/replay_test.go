package presets

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/receiver/verify"
)

// TestApparentReplayProtectionRefused: settings that look like replay
// protection but are not refuse to build, at the setting the source
// wrote. Before, slack with verify: {signed: "{body}"} built, and a
// day-old signed body replayed under a fresh X-Slack-Request-Timestamp
// verified.
func TestApparentReplayProtectionRefused(t *testing.T) {
	t.Parallel()
	const sec = "0123456789abcdef0123"
	for _, tc := range []struct {
		name  string
		s     Settings
		field string
		msg   []string // parts of the message
	}{
		{"slack: signed without the preset's timestamp",
			Settings{Provider: "slack", Secrets: []string{sec}, Verify: &Verify{Signed: "{body}"}},
			"verify.signed", []string{`"{body}" leaves out {timestamp}`, "X-Slack-Request-Timestamp", `slack signs "v0:{timestamp}:{body}"`, "remove signed:"}},
		{"zendesk: signed without the preset's timestamp",
			Settings{Provider: "zendesk", Secrets: []string{sec}, Verify: &Verify{Signed: "{body}"}},
			"verify.signed", []string{"X-Zendesk-Webhook-Signature-Timestamp"}},
		{"standard-webhooks: signed without the preset's id",
			Settings{Provider: "standard-webhooks", Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, Verify: &Verify{Signed: "{timestamp}.{body}"}},
			"verify.signed", []string{`leaves out {id}`, "Webhook-Id", "taken for a new event"}},
		{"stripe: signed without t=",
			Settings{Provider: "stripe", Secrets: []string{sec}, Verify: &Verify{Signed: "{body}"}},
			"verify.signed", []string{"t= timestamp", "put {timestamp} where the sender signs it"}},
		{"stripe: a timestamp header it would ignore",
			Settings{Provider: "stripe", Secrets: []string{sec}, Verify: &Verify{TimestampHeader: "X-Ts"}},
			"verify.timestamp_header", []string{"t=", "remove timestamp_header"}},
		{"discord: signed without the preset's timestamp",
			Settings{Provider: "discord", Verify: &Verify{Signed: "{body}", PublicKeys: []string{strings.Repeat("ab", 32)}}},
			"verify.signed", []string{"X-Signature-Timestamp", `discord signs "{timestamp}{body}"`}},
		{"github: a timestamp header it does not sign",
			Settings{Provider: "github", Secrets: []string{sec}, Verify: &Verify{TimestampHeader: "X-Ts"}},
			"verify.timestamp_header", []string{`X-Ts is not part of the signed content "{body}"`, "add {timestamp} to signed:", "or remove timestamp_header"}},
		{"custom: timestamp header, signed body only",
			Settings{Provider: "custom", Secrets: []string{sec}, Map: map[string]string{"eventType": "body.type"},
				Verify: &Verify{Type: "hmac", Header: "X-Sig", TimestampHeader: "X-Ts", IDHeader: "X-Id", Signed: "{id}.{body}"}},
			"verify.timestamp_header", []string{"X-Ts is not part of the signed content"}},
		{"custom: id header, not signed",
			Settings{Provider: "custom", Secrets: []string{sec}, Map: map[string]string{"eventType": "body.type"},
				Verify: &Verify{Type: "hmac", Header: "X-Sig", IDHeader: "X-Id"}},
			"verify.id_header", []string{`X-Id is not part of the signed content "{body}"`, "or remove id_header"}},
		{"custom ed25519: timestamp header, signed body only",
			Settings{Provider: "custom", Map: map[string]string{"eventType": "body.type"},
				Verify: &Verify{Type: "ed25519", Header: "X-Sig", TimestampHeader: "X-Ts", Signed: "{body}", PublicKeys: []string{strings.Repeat("ab", 32)}}},
			"verify.timestamp_header", []string{"X-Ts is not part of the signed content"}},
		{"token: a timestamp it cannot sign",
			Settings{Provider: "telegram", Secrets: []string{sec}, Verify: &Verify{TimestampHeader: "X-Ts"}},
			"verify.timestamp_header", []string{"verify type token signs nothing"}},
		{"basic: an id it cannot sign",
			Settings{Provider: "custom", Secrets: []string{sec}, Map: map[string]string{"eventType": "body.type"}, Verify: &Verify{Type: "basic", Username: "u", IDHeader: "X-Id"}},
			"verify.id_header", []string{"verify type basic signs nothing"}},
		{"none: a signed template",
			Settings{Provider: "chat", Verify: &Verify{Type: "none", Signed: "{timestamp}.{body}"}},
			"verify.signed", []string{"verify type none signs nothing"}},
		{"github: a tolerance with no timestamp",
			Settings{Provider: "github", Secrets: []string{sec}, Verify: &Verify{Tolerance: time.Minute}},
			"verify.tolerance", []string{"no signed timestamp is checked"}},
		{"token: a tolerance",
			Settings{Provider: "telegram", Secrets: []string{sec}, Verify: &Verify{Tolerance: time.Minute}},
			"verify.tolerance", []string{"refuses nothing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src, err := Build(tc.s)
			if err == nil {
				t.Fatalf("Build(%+v) succeeded; want a problem at %s", tc.s, tc.field)
			}
			var e *Error
			if !errors.As(err, &e) || e.Field != tc.field {
				t.Fatalf("Build = %v, want a problem at %s", err, tc.field)
			}
			for _, m := range tc.msg {
				if !strings.Contains(e.Msg, m) {
					t.Errorf("message %q lacks %q", e.Msg, m)
				}
			}
			if src != nil {
				t.Error("a source was built")
			}
		})
	}
}

// TestReplayProtectionKept: overrides that keep the timestamp and id
// signed, or a tolerance where a timestamp is checked, still build.
func TestReplayProtectionKept(t *testing.T) {
	t.Parallel()
	const sec = "0123456789abcdef0123"
	for _, s := range []Settings{
		{Provider: "slack", Secrets: []string{sec}, Verify: &Verify{Tolerance: 10 * time.Minute}},
		{Provider: "slack", Secrets: []string{sec}, Verify: &Verify{Signed: "v0:{timestamp}:{body}"}},
		{Provider: "stripe", Secrets: []string{sec}, Verify: &Verify{Tolerance: time.Minute}},
		{Provider: "linear", Secrets: []string{sec}, Verify: &Verify{Tolerance: 2 * time.Minute}},
		{Provider: "discord", Verify: &Verify{Tolerance: time.Minute, PublicKeys: []string{strings.Repeat("ab", 32)}}},
		{Provider: "github", Secrets: []string{sec}, Verify: &Verify{TimestampHeader: "X-Ts", Signed: "{timestamp}.{body}"}},
		{Provider: "custom", Secrets: []string{sec}, Map: map[string]string{"eventType": "body.type"},
			Verify: &Verify{Type: "hmac", Header: "X-Sig", TimestampHeader: "X-Ts", IDHeader: "X-Id", Signed: "{id}.{timestamp}.{body}", Tolerance: time.Minute}},
	} {
		if _, err := Build(s); err != nil {
			t.Errorf("Build(%s %+v): %v", s.Provider, *s.Verify, err)
		}
	}
}

// TestUnsignedTimestampWouldReplay shows what the refusal prevents: a
// scheme that read a timestamp it does not sign would accept a day-old
// signed body under a fresh timestamp. The same body signed with the
// timestamp (slack's own scheme) is refused as stale.
func TestUnsignedTimestampWouldReplay(t *testing.T) {
	t.Parallel()
	const sec = "0123456789abcdef0123"
	body := []byte(`{"type":"event_callback","event_id":"Ev1","event":{"type":"message"}}`)
	dayOld := now.Add(-24 * time.Hour)
	slack := build(t, Settings{Provider: "slack", Secrets: []string{sec}})
	old, err := Sign("slack", sec, body, verify.Signed{Timestamp: dayOld})
	if err != nil {
		t.Fatal(err)
	}
	replayed := old.Clone()
	replayed.Set("X-Slack-Request-Timestamp", strconv.FormatInt(now.Unix(), 10))
	for _, h := range []http.Header{old, replayed} {
		if err := slack.Verifier.Verify(request(t, "POST", "https://h.example/hooks/slack", body, h, now)); err == nil {
			t.Errorf("a day-old request verified (timestamp %s)", h.Get("X-Slack-Request-Timestamp"))
		}
	}
	weak, err := Build(Settings{Provider: "slack", Secrets: []string{sec}, Verify: &Verify{Signed: "{body}"}})
	if err == nil {
		// The replay this refusal prevents: the signature of the body
		// alone, captured a day ago, under a fresh timestamp.
		mac := hmac.New(sha256.New, []byte(sec))
		mac.Write(body)
		h := http.Header{"X-Slack-Signature": {"v0=" + hex.EncodeToString(mac.Sum(nil))}, "X-Slack-Request-Timestamp": {strconv.FormatInt(now.Unix(), 10)}}
		verr := weak.Verifier.Verify(request(t, "POST", "https://h.example/hooks/slack", body, h, now))
		t.Fatalf(`slack with signed "{body}" built; a day-old body under a fresh timestamp: %v`, verr)
	}
}
