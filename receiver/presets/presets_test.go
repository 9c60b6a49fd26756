package presets

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/receiver/inbound"
	"github.com/switchyard/switchyard/receiver/verify"
)

var now = time.Date(2026, 11, 21, 14, 32, 9, 0, time.UTC)

func request(t testing.TB, method, rawURL string, body []byte, h http.Header, at time.Time) *inbound.Request {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = http.Header{}
	}
	return &inbound.Request{Body: body, Header: h, Method: method, URL: u, ReceivedAt: at}
}

func build(t testing.TB, s Settings) *Source {
	t.Helper()
	src, err := Build(s)
	if err != nil {
		t.Fatalf("Build(%+v): %v", s, err)
	}
	return src
}

// TestPublishedVectors checks each preset against the example its
// provider publishes (or its official library tests), verbatim.
func TestPublishedVectors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, provider, secret string
		method, url, ctype     string
		body                   string
		header                 http.Header
		at                     time.Time
	}{
		{
			// docs.github.com: "Testing the webhook payload validation".
			name: "github docs", provider: "github", secret: "It's a Secret to Everybody", body: "Hello, World!",
			header: http.Header{"X-Hub-Signature-256": {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}},
			at:     now,
		},
		{
			// Standard Webhooks' reference library test (libraries/go
			// TestWebhookSign), also Svix's documented example.
			name: "standard webhooks spec", provider: "standard-webhooks", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			body: `{"test": 2432232314}`,
			header: http.Header{"Webhook-Id": {"msg_p5jXN8AQM9LWM0D4loKWxJek"}, "Webhook-Timestamp": {"1614265330"},
				"Webhook-Signature": {"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}},
			at: time.Unix(1614265330, 0).Add(time.Minute),
		},
		{
			name: "svix docs", provider: "svix", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			body: `{"test": 2432232314}`,
			header: http.Header{"Svix-Id": {"msg_p5jXN8AQM9LWM0D4loKWxJek"}, "Svix-Timestamp": {"1614265330"},
				"Svix-Signature": {"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}},
			at: time.Unix(1614265330, 0),
		},
		{
			// Slack's "Verifying requests" walk-through, as in
			// python-slack-sdk's tests.
			name: "slack docs", provider: "slack", secret: "8f742231b10e8888abcd99yyyzzz85a5",
			body: "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
			header: http.Header{"X-Slack-Request-Timestamp": {"1531420618"},
				"X-Slack-Signature": {"v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"}},
			at: time.Unix(1531420618, 0),
		},
		{
			// twilio-go's request validator tests (the docs' example URL
			// and parameters).
			name: "twilio form", provider: "twilio", secret: "12345", method: "POST",
			url: "https://mycompany.com/myapp.php?foo=1&bar=2", ctype: "application/x-www-form-urlencoded",
			body:   "Digits=1234&CallSid=CA1234567890ABCDE&To=%2B18005551212&Caller=%2B14158675309&From=%2B14158675309",
			header: http.Header{"X-Twilio-Signature": {"RSOYDt4T1cUTdK1PDd93/VVr8B8="}},
			at:     now,
		},
		{
			name: "twilio json body hash", provider: "twilio", secret: "12345", method: "POST",
			url:    "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620",
			ctype:  "application/json",
			body:   `{"property": "value", "boolean": true}`,
			header: http.Header{"X-Twilio-Signature": {"a9nBmqA0ju/hNViExpshrM61xv4="}},
			at:     now,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := build(t, Settings{Provider: tc.provider, Secrets: []string{tc.secret}})
			if tc.url == "" {
				tc.url = "https://switchyard.test/hooks/x"
			}
			if tc.ctype != "" {
				tc.header.Set("Content-Type", tc.ctype)
			}
			r := request(t, "POST", tc.url, []byte(tc.body), tc.header, tc.at)
			if err := src.Verifier.Verify(r); err != nil {
				t.Fatalf("published example rejected: %v", err)
			}
			r.Body = append(bytes.Clone(r.Body), ' ')
			if err := src.Verifier.Verify(r); err == nil {
				t.Fatal("published example with a byte added accepted")
			}
		})
	}
}

// signer describes how to sign a request for a preset in tests.
type signer struct {
	provider string
	secret   string
	url      string
	ctype    string
	// ts is the header carrying the timestamp, when the scheme has one.
	ts string
	// sigHeader and prefix, to forge negatives.
	sigHeader, prefix string
}

var hmacPresets = []signer{
	{provider: "darwin", secret: "ouismdnv8329r27dsvs_2389svkjs", sigHeader: "X-Signature"},
	{provider: "standard-webhooks", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", ts: "Webhook-Timestamp", sigHeader: "Webhook-Signature", prefix: "v1,"},
	{provider: "svix", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", ts: "Svix-Timestamp", sigHeader: "Svix-Signature", prefix: "v1,"},
	{provider: "github", secret: "It's a Secret to Everybody", sigHeader: "X-Hub-Signature-256", prefix: "sha256="},
	{provider: "stripe", secret: "whsec_test_stripe", ts: "stripe", sigHeader: "Stripe-Signature"},
	{provider: "slack", secret: "8f742231b10e8888abcd99yyyzzz85a5", ts: "X-Slack-Request-Timestamp", sigHeader: "X-Slack-Signature", prefix: "v0="},
	{provider: "shopify", secret: "shpss_test", sigHeader: "X-Shopify-Hmac-Sha256"},
	{provider: "meta", secret: "app-secret", sigHeader: "X-Hub-Signature-256", prefix: "sha256="},
	{provider: "twilio", secret: "12345", url: "https://hooks.example.com/hooks/twilio?x=1", ctype: "application/x-www-form-urlencoded", sigHeader: "X-Twilio-Signature"},
	{provider: "zendesk", secret: "dGhpc19zZWNyZXQ=", ts: "X-Zendesk-Webhook-Signature-Timestamp", sigHeader: "X-Zendesk-Webhook-Signature"},
	{provider: "intercom", secret: "client-secret", sigHeader: "X-Hub-Signature", prefix: "sha1="},
	{provider: "hubspot", secret: "app-client-secret", url: "https://hooks.example.com/hooks/hubspot", ts: "X-HubSpot-Request-Timestamp", sigHeader: "X-HubSpot-Signature-v3"},
	{provider: "linear", secret: "lin_wh_secret", sigHeader: "Linear-Signature"},
}

func (s signer) url_() string {
	if s.url != "" {
		return s.url
	}
	return "https://hooks.example.com/hooks/" + s.provider
}

func (s signer) sign(t testing.TB, secret string, body []byte, at time.Time) http.Header {
	t.Helper()
	h, err := Sign(s.provider, secret, body, verify.Signed{ID: "msg_1", Timestamp: at, URL: s.url_(), Method: "POST", ContentType: s.ctype})
	if err != nil {
		t.Fatalf("Sign(%s): %v", s.provider, err)
	}
	if s.ctype != "" {
		h.Set("Content-Type", s.ctype)
	}
	return h
}

func (s signer) body(big bool) []byte {
	text := "Sessão reembolso ✓ <urgente> & \"aspas\""
	if big {
		text = strings.Repeat(text+" ", 5500)
	}
	if s.ctype == "application/x-www-form-urlencoded" {
		return []byte("MessageSid=SM1&MessageStatus=delivered&Body=" + url.QueryEscape(text))
	}
	return []byte(`{"type":"x","text":"` + text + `"}`)
}

// TestHMACPresets runs every HMAC preset through the same negatives,
// signing with the preset's own Sign.
func TestHMACPresets(t *testing.T) {
	t.Parallel()
	for _, s := range hmacPresets {
		t.Run(s.provider, func(t *testing.T) {
			t.Parallel()
			oldSecret := s.secret
			newSecret, wrongSecret := s.secret+"-new", "wrong"
			if strings.HasPrefix(s.secret, "whsec_") {
				newSecret, wrongSecret = "whsec_bmV3LXNlY3JldC1mb3Itcm90YXRpb24=", "whsec_d3Jvbmc="
			}
			src := build(t, Settings{Provider: s.provider, Secrets: []string{oldSecret, newSecret}})
			only := build(t, Settings{Provider: s.provider, Secrets: []string{newSecret}})
			body := s.body(false)
			verifyWith := func(v verify.Verifier, body []byte, h http.Header, at time.Time) error {
				return v.Verify(request(t, "POST", s.url_(), body, h, at))
			}
			good := s.sign(t, oldSecret, body, now)

			type tc struct {
				name string
				v    verify.Verifier
				body []byte
				h    http.Header
				at   time.Time
				want error
			}
			cases := []tc{
				{"signed with the old secret", src.Verifier, body, good, now, nil},
				{"signed with the new secret", src.Verifier, body, s.sign(t, newSecret, body, now), now, nil},
				{"old secret after rotation", only.Verifier, body, good, now, verify.ErrMismatch},
				{"wrong secret", src.Verifier, body, s.sign(t, wrongSecret, body, now), now, verify.ErrMismatch},
				{"tampered byte", src.Verifier, flip(body), good, now, errAny},
				{"trailing newline added", src.Verifier, append(bytes.Clone(body), '\n'), good, now, verify.ErrMismatch},
				{"missing header", src.Verifier, body, without(good, s.sigHeader), now, verify.ErrMissing},
				{"duplicated header", src.Verifier, body, duplicated(good, s.sigHeader), now, verify.ErrDuplicate},
				{"truncated header", src.Verifier, body, edit(good, s.sigHeader, func(v string) string { return v[:len(v)-4] }), now, errAny},
			}
			if s.prefix != "" {
				cases = append(cases, tc{"wrong prefix", src.Verifier, body, edit(good, s.sigHeader, func(v string) string {
					return "sha512=" + strings.TrimPrefix(v, s.prefix)
				}), now, errAny})
			}
			if s.ts != "" {
				tol := verify.DefaultTolerance
				cases = append(cases,
					tc{"expired", src.Verifier, body, s.sign(t, oldSecret, body, now.Add(-tol-time.Second)), now, verify.ErrStale},
					tc{"from the future", src.Verifier, body, s.sign(t, oldSecret, body, now.Add(tol+time.Second)), now, verify.ErrStale},
					tc{"at the edge of tolerance", src.Verifier, body, s.sign(t, oldSecret, body, now.Add(-tol)), now, nil},
				)
			}
			big := s.body(true)
			if len(big) < 200<<10 {
				t.Fatalf("big body is %d bytes", len(big))
			}
			cases = append(cases,
				tc{"200 KB non-ASCII body", src.Verifier, big, s.sign(t, oldSecret, big, now), now, nil},
				tc{"200 KB body, last byte changed", src.Verifier, flipAt(big, len(big)-2), s.sign(t, oldSecret, big, now), now, verify.ErrMismatch},
			)
			for _, c := range cases {
				err := verifyWith(c.v, c.body, c.h, c.at)
				switch {
				case c.want == nil:
					if err != nil {
						t.Errorf("%s: %v", c.name, err)
					}
				case c.want == errAny:
					if err == nil {
						t.Errorf("%s: accepted", c.name)
					}
				case !errors.Is(err, c.want):
					t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
				}
			}
		})
	}
}

// errAny stands for any rejection.
var errAny = errors.New("any error")

func flip(b []byte) []byte { return flipAt(b, len(b)/2) }

func flipAt(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x01
	return out
}

func without(h http.Header, name string) http.Header {
	out := h.Clone()
	out.Del(name)
	return out
}

func duplicated(h http.Header, name string) http.Header {
	out := h.Clone()
	out.Add(name, out.Get(name))
	return out
}

func edit(h http.Header, name string, f func(string) string) http.Header {
	out := h.Clone()
	out.Set(name, f(out.Get(name)))
	return out
}

func TestStripeMultipleSignatures(t *testing.T) {
	t.Parallel()
	src := build(t, Settings{Provider: "stripe", Secrets: []string{"whsec_a"}})
	body := []byte(`{"id":"evt_1","type":"invoice.paid","created":1763735528,"data":{"object":{"id":"in_1"}}}`)
	h := hmacPresets[4].sign(t, "whsec_a", body, now)
	sig := h.Get("Stripe-Signature") // t=…,v1=…
	ts, v1, _ := strings.Cut(sig, ",")
	bogus := "v1=" + strings.Repeat("ab", 32)
	for name, header := range map[string]string{
		"valid second of two v1":  ts + "," + bogus + "," + v1,
		"valid first, then a v0":  sig + ",v0=" + strings.Repeat("cd", 32),
		"spaces after commas":     ts + ", " + v1,
		"unknown schemes ignored": ts + ",v9=zz," + v1,
	} {
		if err := src.Verifier.Verify(request(t, "POST", "https://x/y", body, http.Header{"Stripe-Signature": {header}}, now)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, header := range map[string]string{
		"only a bogus v1":     ts + "," + bogus,
		"no timestamp":        v1,
		"two timestamps":      ts + "," + ts + "," + v1,
		"only v0 (downgrade)": ts + ",v0=" + strings.TrimPrefix(v1, "v1="),
	} {
		if err := src.Verifier.Verify(request(t, "POST", "https://x/y", body, http.Header{"Stripe-Signature": {header}}, now)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestStandardWebhooksMultipleSignatures(t *testing.T) {
	t.Parallel()
	src := build(t, Settings{Provider: "standard-webhooks", Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}})
	body := []byte(`{"test": 2432232314}`)
	h := http.Header{"Webhook-Id": {"msg_p5jXN8AQM9LWM0D4loKWxJek"}, "Webhook-Timestamp": {"1614265330"}}
	at := time.Unix(1614265330, 0)
	valid := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	other := "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
	h.Set("Webhook-Signature", other+" v2,"+strings.TrimPrefix(valid, "v1,")+" "+valid)
	if err := src.Verifier.Verify(request(t, "POST", "https://x/y", body, h, at)); err != nil {
		t.Errorf("list with a valid v1: %v", err)
	}
	h.Set("Webhook-Signature", other+" v2,"+strings.TrimPrefix(valid, "v1,"))
	if err := src.Verifier.Verify(request(t, "POST", "https://x/y", body, h, at)); !errors.Is(err, verify.ErrMismatch) {
		t.Errorf("valid digest under v2 only: err = %v", err)
	}
	h.Set("Webhook-Signature", valid)
	h.Set("Webhook-Id", "msg_other")
	if err := src.Verifier.Verify(request(t, "POST", "https://x/y", body, h, at)); !errors.Is(err, verify.ErrMismatch) {
		t.Errorf("changed id: err = %v", err)
	}
}

func TestTelegramToken(t *testing.T) {
	t.Parallel()
	src := build(t, Settings{Provider: "telegram", Secrets: []string{"tg-secret_1"}})
	body := []byte(`{"update_id":10000,"message":{"message_id":1365,"date":1441645532,"chat":{"id":1111111,"type":"private"},"text":"/start"}}`)
	for name, tc := range map[string]struct {
		h    http.Header
		want error
	}{
		"right token": {http.Header{"X-Telegram-Bot-Api-Secret-Token": {"tg-secret_1"}}, nil},
		"wrong token": {http.Header{"X-Telegram-Bot-Api-Secret-Token": {"tg-secret_2"}}, verify.ErrMismatch},
		"prefix only": {http.Header{"X-Telegram-Bot-Api-Secret-Token": {"tg-secret"}}, verify.ErrMismatch},
		"missing":     {http.Header{}, verify.ErrMissing},
		"duplicated":  {http.Header{"X-Telegram-Bot-Api-Secret-Token": {"tg-secret_1", "tg-secret_1"}}, verify.ErrDuplicate},
	} {
		if err := src.Verifier.Verify(request(t, "POST", "https://x/y", body, tc.h, now)); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
	ev, err := src.Normalize(request(t, "POST", "https://x/y", body, nil, now))
	if err != nil || ev.EventType != "message" || ev.Subject != "1111111" || ev.DedupKey != "id:10000" ||
		!ev.Timestamp.Equal(time.Unix(1441645532, 0)) {
		t.Fatalf("normalized %+v, %v", ev, err)
	}
}

func TestDiscordEd25519(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, otherPriv, _ := ed25519.GenerateKey(nil)
	if _, err := Build(Settings{Provider: "discord"}); err == nil || !strings.Contains(err.Error(), "verify.public_keys") {
		t.Fatalf("discord without a public key: %v", err)
	}
	src := build(t, Settings{Provider: "discord", Verify: &Verify{PublicKeys: []string{hex.EncodeToString(otherPub), hex.EncodeToString(pub)}}})
	body := []byte(`{"id":"1","application_id":"2","type":2,"data":{"name":"ping"},"guild_id":"g1","token":"t"}`)
	sign := func(priv ed25519.PrivateKey, body []byte, at time.Time) http.Header {
		ts := at.Unix()
		msg := append([]byte(itoa(ts)), body...)
		return http.Header{"X-Signature-Ed25519": {hex.EncodeToString(ed25519.Sign(priv, msg))}, "X-Signature-Timestamp": {itoa(ts)}}
	}
	for name, tc := range map[string]struct {
		body []byte
		h    http.Header
		want error
	}{
		"signed":            {body, sign(priv, body, now), nil},
		"rotated key":       {body, sign(otherPriv, body, now), nil},
		"tampered":          {flip(body), sign(priv, body, now), verify.ErrMismatch},
		"expired":           {body, sign(priv, body, now.Add(-6*time.Minute)), verify.ErrStale},
		"future":            {body, sign(priv, body, now.Add(6*time.Minute)), verify.ErrStale},
		"truncated":         {body, edit(sign(priv, body, now), "X-Signature-Ed25519", func(v string) string { return v[:100] }), verify.ErrMalformed},
		"missing timestamp": {body, without(sign(priv, body, now), "X-Signature-Timestamp"), verify.ErrMissing},
	} {
		if err := src.Verifier.Verify(request(t, "POST", "https://x/y", tc.body, tc.h, now)); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
	ev, err := src.Normalize(request(t, "POST", "https://x/y", body, nil, now))
	if err != nil || ev.EventType != "interaction.application_command" || ev.Subject != "g1" || ev.DedupKey != "id:1" {
		t.Fatalf("normalized %+v, %v", ev, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRenamedProviders: the old names of the chat inbox and DocsSmith
// Demo2 still build the same source, and say which name replaces them;
// the catalogue lists only the names in use.
func TestRenamedProviders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ old, now string }{{"chat", "chat-inbox"}, {"envelope", "docssmith"}} {
		names := Names()
		if slices.Contains(names, tc.old) || !slices.Contains(names, tc.now) {
			t.Errorf("Names() = %v: want %s listed and %s not", names, tc.now, tc.old)
		}
		src := build(t, Settings{Provider: tc.old, Secrets: secretsFor(tc.now), Verify: verifyFor(tc.now)})
		if src.Renamed != tc.now {
			t.Errorf("%s: Renamed = %q, want %q", tc.old, src.Renamed, tc.now)
		}
		if src := build(t, Settings{Provider: tc.now, Secrets: secretsFor(tc.now), Verify: verifyFor(tc.now)}); src.Renamed != "" {
			t.Errorf("%s: Renamed = %q, want none", tc.now, src.Renamed)
		}
		if PlatformOf(tc.old) != PlatformOf(tc.now) || PlatformOf(tc.now).Name == "" {
			t.Errorf("%s: platform %+v, %s: %+v", tc.old, PlatformOf(tc.old), tc.now, PlatformOf(tc.now))
		}
	}
	if p := PlatformOf("custom"); p.Name != "" || p.Subject != "subject" {
		t.Errorf("custom platform = %+v", p)
	}
}

// TestSubjectExpression: a source's subject: replaces the provider's
// subject; when it gives nothing or fails, the provider's stays.
func TestSubjectExpression(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"e1","type":"message.updated","payload":{"conversation_id":"c1","contact":{"id":"k1"}}}`)
	for _, tc := range []struct{ expr, want string }{
		{"data.contact.id", "k1"},
		{`"conversation:" + subject`, "conversation:c1"},
		{"data.nothing?.id", "c1"}, // nil: the provider's
		{"data.nothing.id", "c1"},  // fails: the provider's
		{`data.contact.id == "k1"`, "true"},
	} {
		src := build(t, Settings{Provider: "docssmith", Secrets: []string{"s"}, Verify: &Verify{Header: "X-Sig"}, Subject: tc.expr})
		ev, err := src.Normalize(request(t, "POST", "https://x/y", body, nil, now))
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if ev.Subject != tc.want {
			t.Errorf("subject: %s gave %q, want %q", tc.expr, ev.Subject, tc.want)
		}
	}
	_, err := Build(Settings{Provider: "darwin", Secrets: []string{"s"}, Subject: "data.sessionId +"})
	var perr *Error
	if !errors.As(err, &perr) || perr.Field != "subject" || perr.Line != 1 || perr.Column == 0 {
		t.Fatalf("a subject that does not compile: %#v", err)
	}
}

// TestHubSpotTimestampIsMilliseconds: HubSpot signs its timestamp in
// milliseconds; a fresh value in seconds (10 digits) is a time in 1970
// read that way, and refused, however the signature came about.
func TestHubSpotTimestampIsMilliseconds(t *testing.T) {
	t.Parallel()
	secret, target := "app-client-secret", "https://hooks.example.com/hooks/hubspot"
	src := build(t, Settings{Provider: "hubspot", Secrets: []string{secret}})
	body := []byte(`[{"subscriptionType":"contact.creation","objectId":1}]`)
	sign := func(ts string) http.Header {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte("POST" + target + string(body) + ts))
		return http.Header{"X-Hubspot-Signature-V3": {base64.StdEncoding.EncodeToString(m.Sum(nil))}, "X-Hubspot-Request-Timestamp": {ts}}
	}
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	if err := src.Verifier.Verify(request(t, "POST", target, body, sign(ms), now)); err != nil {
		t.Errorf("milliseconds: %v", err)
	}
	secs := strconv.FormatInt(now.Unix(), 10)
	if err := src.Verifier.Verify(request(t, "POST", target, body, sign(secs), now)); !errors.Is(err, verify.ErrStale) {
		t.Errorf("seconds: %v, want ErrStale", err)
	}
	h, err := Sign("hubspot", secret, body, verify.Signed{Timestamp: now, Method: "POST", URL: target})
	if err != nil || h.Get("X-HubSpot-Request-Timestamp") != ms {
		t.Errorf("Sign: timestamp %q (%v), want %s", h.Get("X-HubSpot-Request-Timestamp"), err, ms)
	}
}

// TestTwilioDefaultPort: as Twilio's libraries do, a signature over the
// URL with its default port (:443) verifies a request to the URL without
// it, and the other way round; another port does not.
func TestTwilioDefaultPort(t *testing.T) {
	t.Parallel()
	body := []byte("MessageSid=SM1&MessageStatus=sent")
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for _, tc := range []struct {
		publicURL, signedURL string
		ok                   bool
	}{
		{"https://hooks.example.com", "https://hooks.example.com:443/hooks/twilio?x=1", true},
		{"https://hooks.example.com:443", "https://hooks.example.com/hooks/twilio?x=1", true},
		{"http://hooks.example.com", "http://hooks.example.com:80/hooks/twilio?x=1", true},
		{"https://hooks.example.com", "https://hooks.example.com/hooks/twilio?x=1", true},
		{"https://hooks.example.com", "https://hooks.example.com:8443/hooks/twilio?x=1", false},
		{"https://hooks.example.com", "https://hooks.example.com:80/hooks/twilio?x=1", false},
	} {
		src := build(t, Settings{Provider: "twilio", Secrets: []string{"12345"}, Verify: &Verify{PublicURL: tc.publicURL}})
		sig, err := Sign("twilio", "12345", body, verify.Signed{URL: tc.signedURL, Method: "POST", ContentType: "application/x-www-form-urlencoded"})
		if err != nil {
			t.Fatal(err)
		}
		hh := h.Clone()
		hh.Set("X-Twilio-Signature", sig.Get("X-Twilio-Signature"))
		err = src.Verifier.Verify(request(t, "POST", "http://10.0.0.5:8080/hooks/twilio?x=1", body, hh, now))
		if (err == nil) != tc.ok {
			t.Errorf("public %s, signed %s: %v, want ok %v", tc.publicURL, tc.signedURL, err, tc.ok)
		}
	}
}
