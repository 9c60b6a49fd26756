package receiver

import (
	"crypto/ed25519"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/logbuf"
	"github.com/switchyard/switchyard/receiver/presets"
	"github.com/switchyard/switchyard/receiver/verify"
)

// handshakeCase is one request to a source with a handshake, and the
// answer it should get.
type handshakeCase struct {
	name   string
	method string
	path   string
	body   []byte
	header http.Header
	status int
	ctype  string // the answer's Content-Type prefix
	answer string // the exact body, when set
	errMsg string // part of the JSON error, when set
}

func runHandshakes(t *testing.T, s *Server, ing *fakeIngester, cases []handshakeCase) {
	t.Helper()
	for _, tc := range cases {
		before := ing.Calls()
		res := do(t, s, tc.method, tc.path, tc.body, tc.header)
		if res.status != tc.status {
			t.Errorf("%s: status %d, want %d (body %q)", tc.name, res.status, tc.status, res.body)
			continue
		}
		if ct := res.header.Get("Content-Type"); tc.ctype != "" && !strings.HasPrefix(ct, tc.ctype) {
			t.Errorf("%s: Content-Type %q, want %q", tc.name, ct, tc.ctype)
		}
		if tc.answer != "" && string(res.body) != tc.answer {
			t.Errorf("%s: body %q, want %q", tc.name, res.body, tc.answer)
		}
		if tc.errMsg != "" && !strings.Contains(res.errorMsg(t), tc.errMsg) {
			t.Errorf("%s: error %q, want it to contain %q", tc.name, res.errorMsg(t), tc.errMsg)
		}
		if got := ing.Calls(); got != before {
			t.Errorf("%s: %d event(s) ingested; a handshake or a rejection stores nothing", tc.name, got-before)
		}
	}
}

func newSource(t *testing.T, c SourceConfig) Source {
	t.Helper()
	src, err := NewSource(c)
	if err != nil {
		t.Fatalf("NewSource(%s): %v", c.Provider, err)
	}
	return src
}

// signAt signs body for an HMAC preset at the test server's clock.
func signAt(t *testing.T, provider, sec string, body []byte) http.Header {
	t.Helper()
	h, err := presets.Sign(provider, sec, body, verify.Signed{Timestamp: fixedNow, Method: http.MethodPost})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSlackURLVerification(t *testing.T) {
	t.Parallel()
	const sec = "8f742231b10e8888abcd99yyyzzz85a5"
	ing := &fakeIngester{}
	s := newServer(t, ing, Options{}, newSource(t, SourceConfig{Name: "slack", Path: "/hooks/slack", Provider: "slack", Secrets: []string{sec}}))

	challenge := []byte(`{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`)
	unsafe := []byte(`{"type":"url_verification","challenge":"<img src=x>"}`)
	runHandshakes(t, s, ing, []handshakeCase{
		{name: "signed challenge", method: "POST", path: "/hooks/slack", body: challenge, header: signAt(t, "slack", sec, challenge),
			status: 200, ctype: "application/json", answer: `{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}`},
		{name: "wrong secret", method: "POST", path: "/hooks/slack", body: challenge, header: signAt(t, "slack", "wrong", challenge),
			status: 401, errMsg: "signature"},
		{name: "unsigned", method: "POST", path: "/hooks/slack", body: challenge, status: 401},
		{name: "unsafe challenge", method: "POST", path: "/hooks/slack", body: unsafe, header: signAt(t, "slack", sec, unsafe),
			status: 400, errMsg: "challenge"},
		{name: "GET (no challenge route)", method: "GET", path: "/hooks/slack?challenge=1", status: 405, errMsg: "POSTed"},
	})

	// An ordinary event is still stored.
	ev := []byte(`{"type":"event_callback","team_id":"T1","event_id":"Ev1","event_time":1763735528,"event":{"type":"app_mention","text":"hi"}}`)
	if res := do(t, s, "POST", "/hooks/slack", ev, signAt(t, "slack", sec, ev)); res.status != 200 || ing.Calls() != 1 {
		t.Fatalf("event after the handshake: %d %q, %d stored", res.status, res.body, ing.Calls())
	}
}

func TestDiscordPing(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	ing := &fakeIngester{}
	s := newServer(t, ing, Options{}, newSource(t, SourceConfig{Name: "discord", Path: "/hooks/discord", Provider: "discord",
		Verify: &VerifyConfig{PublicKeys: []string{hex.EncodeToString(pub)}}}))
	sign := func(key ed25519.PrivateKey, body []byte) http.Header {
		ts := strconv.FormatInt(fixedNow.Unix(), 10)
		return http.Header{"X-Signature-Ed25519": {hex.EncodeToString(ed25519.Sign(key, append([]byte(ts), body...)))}, "X-Signature-Timestamp": {ts}}
	}
	ping := []byte(`{"app_permissions":"0","application_id":"2","id":"1","token":"t","type":1,"user":{"id":"u"},"version":1}`)
	eventsPing := []byte(`{"version":1,"application_id":"2","type":0}`)
	runHandshakes(t, s, ing, []handshakeCase{
		{name: "signed PING", method: "POST", path: "/hooks/discord", body: ping, header: sign(priv, ping),
			status: 200, ctype: "application/json", answer: `{"type":1}`},
		{name: "PING signed with another key", method: "POST", path: "/hooks/discord", body: ping, header: sign(otherPriv, ping), status: 401},
		{name: "unsigned PING", method: "POST", path: "/hooks/discord", body: ping, status: 401},
		{name: "signed webhook-events PING", method: "POST", path: "/hooks/discord", body: eventsPing, header: sign(priv, eventsPing), status: 204, answer: ""},
	})

	cmd := []byte(`{"id":"9","application_id":"2","type":2,"data":{"name":"hi"},"guild_id":"g1","token":"t"}`)
	if res := do(t, s, "POST", "/hooks/discord", cmd, sign(priv, cmd)); res.status != 200 || ing.Calls() != 1 {
		t.Fatalf("a command after the PING: %d %q, %d stored", res.status, res.body, ing.Calls())
	}
}

func TestMetaSubscriptionChallenge(t *testing.T) {
	t.Parallel()
	const (
		appSecret = "app-secret"
		token     = "meta-verify-token"
	)
	var logs logbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	ing := &fakeIngester{}
	s := newServer(t, ing, Options{Logger: logger},
		newSource(t, SourceConfig{Name: "whatsapp", Path: "/hooks/whatsapp", Provider: "meta", Secrets: []string{appSecret},
			Verify: &VerifyConfig{VerifyToken: token}}),
		newSource(t, SourceConfig{Name: "bare", Path: "/hooks/bare", Provider: "meta", Secrets: []string{appSecret}}),
		newSource(t, SourceConfig{Name: "walled", Path: "/hooks/walled", Provider: "meta", Secrets: []string{appSecret},
			Verify: &VerifyConfig{VerifyToken: token}, IPAllow: []string{"192.0.2.0/24"}}),
	)
	q := func(mode, challenge, tok string) string {
		return "?hub.mode=" + mode + "&hub.challenge=" + challenge + "&hub.verify_token=" + tok
	}
	runHandshakes(t, s, ing, []handshakeCase{
		{name: "token matches", method: "GET", path: "/hooks/whatsapp" + q("subscribe", "1158201444", token),
			status: 200, ctype: "text/plain", answer: "1158201444"},
		{name: "wrong token", method: "GET", path: "/hooks/whatsapp" + q("subscribe", "1158201444", "guess"), status: 403, errMsg: "verify token"},
		{name: "no token", method: "GET", path: "/hooks/whatsapp?hub.mode=subscribe&hub.challenge=1", status: 403},
		{name: "no query", method: "GET", path: "/hooks/whatsapp", status: 403},
		{name: "no verify_token configured", method: "GET", path: "/hooks/bare" + q("subscribe", "1", token), status: 403},
		{name: "address not allowed", method: "GET", path: "/hooks/walled" + q("subscribe", "1", token), status: 403, errMsg: "address"},
		{name: "not subscribe", method: "GET", path: "/hooks/whatsapp" + q("unsubscribe", "1", token), status: 400, errMsg: "hub.mode"},
		{name: "unsafe challenge", method: "GET", path: "/hooks/whatsapp" + q("subscribe", "%3Cscript%3E", token), status: 400, errMsg: "hub.challenge"},
		{name: "POST unsigned", method: "POST", path: "/hooks/whatsapp" + q("subscribe", "1", token), body: []byte(`{}`), status: 401},
	})

	// Signed events are still stored, with or without a verify token.
	body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"WABA1","changes":[{"field":"messages","value":{}}]}]}`)
	for _, path := range []string{"/hooks/whatsapp", "/hooks/bare"} {
		if res := do(t, s, "POST", path, body, signAt(t, "meta", appSecret, body)); res.status != 200 {
			t.Errorf("POST %s: %d %q", path, res.status, res.body)
		}
	}
	if ing.Calls() != 2 {
		t.Errorf("%d events stored, want 2", ing.Calls())
	}

	out := logs.String()
	if !strings.Contains(out, "subscription challenge answered") || !strings.Contains(out, "no verify.verify_token configured") {
		t.Errorf("challenges not logged, or the missing verify_token not explained:\n%s", out)
	}
	if strings.Contains(out, token) {
		t.Errorf("log contains the verify token:\n%s", out)
	}
}
