package presets

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/receiver/inbound"
	"github.com/switchyard/switchyard/receiver/verify"
)

// errField stands for an *inbound.FieldError naming a field.
type errField string

func checkReply(t *testing.T, name string, reply *Reply, err error, want *Reply, wantErr any) {
	t.Helper()
	switch we := wantErr.(type) {
	case nil:
		if err != nil {
			t.Errorf("%s: err = %v", name, err)
			return
		}
	case errField:
		var ferr *inbound.FieldError
		if !errors.As(err, &ferr) || ferr.Field != string(we) {
			t.Errorf("%s: err = %v, want a field error on %s", name, err, we)
		}
		return
	case error:
		if !errors.Is(err, we) {
			t.Errorf("%s: err = %v, want %v", name, err, we)
		}
		return
	}
	switch {
	case want == nil && reply != nil:
		t.Errorf("%s: answered %d %q, want an event", name, reply.Status, reply.Body)
	case want != nil && reply == nil:
		t.Errorf("%s: no reply, want %d %q", name, want.Status, want.Body)
	case want != nil && (reply.Status != want.Status || reply.ContentType != want.ContentType || string(reply.Body) != string(want.Body)):
		t.Errorf("%s: reply %d %s %q, want %d %s %q", name, reply.Status, reply.ContentType, reply.Body, want.Status, want.ContentType, want.Body)
	}
}

func TestSlackHandshake(t *testing.T) {
	t.Parallel()
	src := build(t, Settings{Provider: "slack", Secrets: []string{"s"}})
	if src.Handshake == nil {
		t.Fatal("slack has no handshake")
	}
	long := strings.Repeat("a", 257)
	for _, tc := range []struct {
		name, body string
		want       *Reply
		err        any
	}{
		{"url_verification (Slack's example)", `{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`,
			&Reply{Status: 200, ContentType: "application/json", Body: []byte(`{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}`)}, nil},
		{"longest challenge", `{"type":"url_verification","challenge":"` + long[1:] + `"}`,
			&Reply{Status: 200, ContentType: "application/json", Body: []byte(`{"challenge":"` + long[1:] + `"}`)}, nil},
		{"event callback", `{"type":"event_callback","event":{"type":"app_mention"}}`, nil, nil},
		{"form-encoded slash command", `token=x&command=%2Fhi`, nil, nil},
		{"not an object", `[1,2]`, nil, nil},
		{"challenge missing", `{"type":"url_verification"}`, nil, errField("challenge")},
		{"challenge a number", `{"type":"url_verification","challenge":12}`, nil, errField("challenge")},
		{"challenge with markup", `{"type":"url_verification","challenge":"<script>"}`, nil, errField("challenge")},
		{"challenge too long", `{"type":"url_verification","challenge":"` + long + `"}`, nil, errField("challenge")},
		{"challenge empty", `{"type":"url_verification","challenge":""}`, nil, errField("challenge")},
	} {
		reply, err := src.Handshake(request(t, "POST", "https://x/y", []byte(tc.body), nil, now))
		checkReply(t, tc.name, reply, err, tc.want, tc.err)
	}
}

func TestDiscordHandshake(t *testing.T) {
	t.Parallel()
	src := build(t, Settings{Provider: "discord", Verify: &Verify{PublicKeys: []string{strings.Repeat("ab", 32)}}})
	pong := &Reply{Status: 200, ContentType: "application/json", Body: []byte(`{"type":1}`)}
	for _, tc := range []struct {
		name, body string
		want       *Reply
	}{
		{"interaction PING", `{"app_permissions":"0","application_id":"2","id":"1","token":"t","type":1,"version":1}`, pong},
		{"bare PING", `{"type":1}`, pong},
		{"webhook-events PING", `{"version":1,"application_id":"2","type":0}`, &Reply{Status: 204}},
		{"webhook event", `{"version":1,"application_id":"1","type":1,"event":{"type":"APPLICATION_AUTHORIZED","data":{}}}`, nil},
		{"application command", `{"id":"1","type":2,"token":"t","data":{"name":"x"}}`, nil},
		{"type 0 with a token", `{"id":"1","type":0,"token":"t"}`, nil},
		{"type as text", `{"type":"1"}`, nil},
		{"not JSON", `type=1`, nil},
	} {
		reply, err := src.Handshake(request(t, "POST", "https://x/y", []byte(tc.body), nil, now))
		checkReply(t, tc.name, reply, err, tc.want, nil)
	}
}

func TestMetaChallenge(t *testing.T) {
	t.Parallel()
	const token = "meta-verify-token"
	src := build(t, Settings{Provider: "meta", Secrets: []string{"app-secret"}, Verify: &Verify{VerifyToken: token}})
	bare := build(t, Settings{Provider: "meta", Secrets: []string{"app-secret"}})
	walled := build(t, Settings{Provider: "meta", Secrets: []string{"app-secret"}, Verify: &Verify{VerifyToken: token}, IPAllow: []string{"192.0.2.0/24"}})
	if src.Challenge == nil || bare.Challenge == nil {
		t.Fatal("meta has no challenge")
	}
	ok := "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=" + token
	answer := &Reply{Status: 200, ContentType: "text/plain; charset=utf-8", Body: []byte("1158201444")}
	for _, tc := range []struct {
		name  string
		src   *Source
		query string
		want  *Reply
		err   any
	}{
		{"token matches", src, ok, answer, nil},
		{"wrong token", src, "hub.mode=subscribe&hub.challenge=1&hub.verify_token=meta-verify-tokem", nil, verify.ErrMismatch},
		{"token prefix", src, "hub.mode=subscribe&hub.challenge=1&hub.verify_token=meta", nil, verify.ErrMismatch},
		{"no token", src, "hub.mode=subscribe&hub.challenge=1", nil, verify.ErrMissing},
		{"token twice", src, ok + "&hub.verify_token=" + token, nil, verify.ErrDuplicate},
		{"none configured", bare, ok, nil, ErrNoVerifyToken},
		{"address not allowed", walled, ok, nil, verify.ErrForbidden},
		{"mode unsubscribe", src, "hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=" + token, nil, errField("hub.mode")},
		{"no challenge", src, "hub.mode=subscribe&hub.verify_token=" + token, nil, errField("hub.challenge")},
		{"challenge with markup", src, "hub.mode=subscribe&hub.challenge=%3Cb%3E&hub.verify_token=" + token, nil, errField("hub.challenge")},
		{"challenge twice", src, ok + "&hub.challenge=2", nil, errField("hub.challenge")},
		{"challenge too long", src, "hub.mode=subscribe&hub.challenge=" + strings.Repeat("9", 257) + "&hub.verify_token=" + token, nil, errField("hub.challenge")},
	} {
		r := request(t, "GET", "https://x/hooks/meta?"+tc.query, nil, nil, now)
		reply, err := tc.src.Challenge(r)
		checkReply(t, tc.name, reply, err, tc.want, tc.err)
	}

	if _, err := Build(Settings{Provider: "github", Secrets: []string{"s"}, Verify: &Verify{VerifyToken: token}}); err == nil ||
		!strings.Contains(err.Error(), "verify.verify_token") {
		t.Errorf("verify_token on github: %v", err)
	}
	if s := build(t, Settings{Provider: "slack", Secrets: []string{"s"}}); s.Challenge != nil {
		t.Error("slack answers GET challenges")
	}
}

func TestLinearWebhookTimestamp(t *testing.T) {
	t.Parallel()
	const secret = "lin_wh_secret"
	src := build(t, Settings{Provider: "linear", Secrets: []string{secret}})
	lenient := build(t, Settings{Provider: "linear", Secrets: []string{secret}, Verify: &Verify{Tolerance: 5 * time.Minute}})
	at := func(ts time.Time) string {
		return `{"action":"create","type":"Issue","data":{"id":"iss1"},"webhookTimestamp":` + itoa(ts.UnixMilli()) + `}`
	}
	for _, tc := range []struct {
		name string
		src  *Source
		body string
		want error
	}{
		{"now", src, at(now), nil},
		{"a minute old", src, at(now.Add(-time.Minute)), nil},
		{"older than a minute", src, at(now.Add(-time.Minute - time.Second)), verify.ErrStale},
		{"from the future", src, at(now.Add(time.Minute + time.Second)), verify.ErrStale},
		{"older, with verify.tolerance 5m", lenient, at(now.Add(-4 * time.Minute)), nil},
		{"not a number", src, `{"type":"Issue","webhookTimestamp":"soon"}`, verify.ErrMalformed},
		{"absent", src, `{"type":"Issue","action":"create"}`, nil},
	} {
		h, err := Sign("linear", secret, []byte(tc.body), verify.Signed{})
		if err != nil {
			t.Fatal(err)
		}
		err = tc.src.Verifier.Verify(request(t, "POST", "https://x/y", []byte(tc.body), h, now))
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	// The signature is checked first: a stale body with a bad signature
	// is a mismatch, not a stale timestamp.
	h := http.Header{"Linear-Signature": {strings.Repeat("0", 64)}}
	if err := src.Verifier.Verify(request(t, "POST", "https://x/y", []byte(at(now.Add(-time.Hour))), h, now)); !errors.Is(err, verify.ErrMismatch) {
		t.Errorf("stale and unsigned: err = %v", err)
	}
}
