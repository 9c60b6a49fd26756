package verify

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/receiver/inbound"
)

var now = time.Date(2026, 11, 21, 14, 32, 9, 0, time.UTC)

func req(body string, h http.Header, rawURL string) *inbound.Request {
	if h == nil {
		h = http.Header{}
	}
	u, _ := url.Parse(rawURL)
	return &inbound.Request{Body: []byte(body), Header: h, Method: "POST", URL: u, ReceivedAt: now}
}

func TestNewHMACConfigErrors(t *testing.T) {
	t.Parallel()
	key := [][]byte{[]byte("k")}
	for _, tc := range []struct {
		c     HMACConfig
		field string
	}{
		{HMACConfig{Header: "X", Algorithm: "md5", Secrets: key}, "algorithm"},
		{HMACConfig{Header: "X", Encoding: "base32", Secrets: key}, "encoding"},
		{HMACConfig{Secrets: key}, "header"},
		{HMACConfig{Header: "X"}, "secret"},
		{HMACConfig{Header: "X", Secrets: [][]byte{{}}}, "secret"},
		{HMACConfig{Header: "X", Signed: "{timestamp}", Secrets: key}, "signed"},
		{HMACConfig{Header: "X", Signed: "{nonce}.{body}", Secrets: key}, "signed"},
		{HMACConfig{Header: "X", Signed: "{timestamp}.{body}", Secrets: key}, "timestamp_header"},
		{HMACConfig{Header: "X", Signed: "{id}.{body}", Secrets: key}, "id_header"},
		{HMACConfig{Header: "X", PublicURL: "hooks.example.com", Secrets: key}, "public_url"},
		// A timestamp or id read but not signed: replays would pass.
		{HMACConfig{Header: "X", TimestampHeader: "X-Ts", Secrets: key}, "timestamp_header"},
		{HMACConfig{Header: "X", Signed: "{id}.{body}", TimestampHeader: "X-Ts", IDHeader: "X-Id", Secrets: key}, "timestamp_header"},
		{HMACConfig{Header: "X", IDHeader: "X-Id", Secrets: key}, "id_header"},
		{HMACConfig{Header: "X", Signed: "{timestamp}.{body}", TimestampHeader: "X-Ts", IDHeader: "X-Id", Secrets: key}, "id_header"},
		{HMACConfig{Header: "X", Format: Stripe, Signed: "{body}", Secrets: key}, "signed"},
		{HMACConfig{Header: "X", Format: Stripe, Signed: "{timestamp}.{body}", TimestampHeader: "X-Ts", Secrets: key}, "timestamp_header"},
	} {
		_, err := NewHMAC(tc.c)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("NewHMAC(%+v) = %v, want a problem with %s", tc.c, err, tc.field)
		}
	}
}

// TestUnsignedHeadersRefused: a verifier never reads a timestamp or an
// id that its signature does not cover, whatever builds it; the error
// is marked ErrUnsigned.
func TestUnsignedHeadersRefused(t *testing.T) {
	t.Parallel()
	key := [][]byte{[]byte("k")}
	_, err := NewHMAC(HMACConfig{Header: "X-Sig", TimestampHeader: "X-Ts", Secrets: key})
	if !errors.Is(err, ErrUnsigned) || !strings.Contains(err.Error(), `X-Ts is not part of the signed content "{body}"`) {
		t.Errorf("hmac: %v", err)
	}
	_, err = NewEd25519(Ed25519Config{Header: "X-Sig", TimestampHeader: "X-Ts", Signed: "{body}", PublicKeys: []string{strings.Repeat("ab", 32)}})
	var ce *ConfigError
	if !errors.Is(err, ErrUnsigned) || !errors.As(err, &ce) || ce.Field != "timestamp_header" {
		t.Errorf("ed25519: %v", err)
	}
	// Signed, they build.
	if _, err := NewHMAC(HMACConfig{Header: "X-Sig", TimestampHeader: "X-Ts", IDHeader: "X-Id", Signed: "{id}{timestamp}{body}", Secrets: key}); err != nil {
		t.Error(err)
	}
	if _, err := NewEd25519(Ed25519Config{Header: "X-Sig", TimestampHeader: "X-Ts", PublicKeys: []string{strings.Repeat("ab", 32)}}); err != nil {
		t.Error(err)
	}
}

func TestGenericHMACTemplate(t *testing.T) {
	t.Parallel()
	v, err := NewHMAC(HMACConfig{Header: "X-Sig", Algorithm: "sha512", Encoding: "base64", Prefix: "sha512=",
		Signed: "{id}|{timestamp}|{url}|{body}", TimestampHeader: "X-Ts", IDHeader: "X-Id",
		PublicURL: "https://hooks.example.com", Secrets: [][]byte{[]byte("k")}})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"a":"é"}`)
	h, err := v.Sign([]byte("k"), body, Signed{ID: "i1", Timestamp: now, URL: "https://hooks.example.com/hooks/x?q=1"})
	if err != nil {
		t.Fatal(err)
	}
	// Served behind a proxy: the server sees http and an internal host.
	if err := v.Verify(req(string(body), h, "http://10.0.0.5:8080/hooks/x?q=1")); err != nil {
		t.Fatalf("signed request rejected: %v", err)
	}
	if err := v.Verify(req(string(body), h, "http://10.0.0.5:8080/hooks/x?q=2")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("other query: %v", err)
	}
	h2 := h.Clone()
	h2.Set("X-Id", "i2")
	if err := v.Verify(req(string(body), h2, "http://10.0.0.5:8080/hooks/x?q=1")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("other id: %v", err)
	}
	h3 := h.Clone()
	h3.Add("X-Ts", h.Get("X-Ts"))
	if err := v.Verify(req(string(body), h3, "http://10.0.0.5:8080/hooks/x?q=1")); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicated timestamp header: %v", err)
	}
}

func TestCanonicalJSON(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"{ \"a\" : [1, 2.50, {\"b\": null}] ,\n \"c\":\"x y\" }": `{"a":[1,2.50,{"b":null}],"c":"x y"}`,
		`{"s":"Sess\u00e3o \u2713 \/ \"q\" \\ \u001f \n"}`:       `{"s":"Sessão ✓ / \"q\" \\ \u001f \n"}`,
		`{"e":"\ud83d\ude00","lone":"\ud800"}`:                   `{"e":"😀","lone":"\ud800"}`,
		`{"z":1,"a":2}`:                                          `{"z":1,"a":2}`,
	} {
		got, ok := Canonical([]byte(in))
		if !ok || string(got) != want {
			t.Errorf("Canonical(%s) = %s, %v; want %s", in, got, ok, want)
		}
	}
	if _, ok := Canonical([]byte(`{"a":`)); ok {
		t.Error("invalid JSON canonicalized")
	}

	// Off: only the bytes as sent verify. On: the compact form's
	// signature passes too, but a changed value still fails.
	sent := "{\n  \"eventType\": \"session.opened\",\n  \"agentName\": \"Jo\\u00e3o\"\n}"
	compact := `{"eventType":"session.opened","agentName":"João"}`
	sign := func(b string) http.Header {
		v, _ := NewHMAC(HMACConfig{Header: "X-Signature", Secrets: [][]byte{[]byte("k")}})
		h, _ := v.Sign([]byte("k"), []byte(b), Signed{})
		return h
	}
	strict, _ := NewHMAC(HMACConfig{Header: "X-Signature", Secrets: [][]byte{[]byte("k")}})
	lenient, _ := NewHMAC(HMACConfig{Header: "X-Signature", CanonicalJSON: true, Secrets: [][]byte{[]byte("k")}})
	if err := strict.Verify(req(sent, sign(compact), "http://x/")); !errors.Is(err, ErrMismatch) {
		t.Errorf("canonical_json off: %v", err)
	}
	if err := lenient.Verify(req(sent, sign(compact), "http://x/")); err != nil {
		t.Errorf("canonical_json on: %v", err)
	}
	if err := lenient.Verify(req(strings.Replace(sent, "Jo", "Ja", 1), sign(compact), "http://x/")); !errors.Is(err, ErrMismatch) {
		t.Errorf("canonical_json on, changed value: %v", err)
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	hdr, err := NewToken(TokenConfig{Header: "Authorization", Prefix: "Bearer ", Secrets: [][]byte{[]byte("old"), []byte("new")}})
	if err != nil {
		t.Fatal(err)
	}
	query, err := NewToken(TokenConfig{Query: "token", Secrets: [][]byte{[]byte("t0k")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		v    Verifier
		r    *inbound.Request
		want error
	}{
		{"bearer new", hdr, req("", http.Header{"Authorization": {"Bearer new"}}, "http://x/"), nil},
		{"bearer old, other case", hdr, req("", http.Header{"Authorization": {"bearer old"}}, "http://x/"), nil},
		{"wrong", hdr, req("", http.Header{"Authorization": {"Bearer nex"}}, "http://x/"), ErrMismatch},
		{"longer", hdr, req("", http.Header{"Authorization": {"Bearer new1"}}, "http://x/"), ErrMismatch},
		{"no prefix", hdr, req("", http.Header{"Authorization": {"new"}}, "http://x/"), ErrMalformed},
		{"missing", hdr, req("", nil, "http://x/"), ErrMissing},
		{"duplicated", hdr, req("", http.Header{"Authorization": {"Bearer new", "Bearer new"}}, "http://x/"), ErrDuplicate},
		{"query", query, req("", nil, "http://x/?token=t0k"), nil},
		{"query wrong", query, req("", nil, "http://x/?token=t0K"), ErrMismatch},
		{"query twice", query, req("", nil, "http://x/?token=t0k&token=t0k"), ErrDuplicate},
		{"query missing", query, req("", nil, "http://x/"), ErrMissing},
	} {
		if err := tc.v.Verify(tc.r); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := NewToken(TokenConfig{Header: "A", Query: "b", Secrets: [][]byte{[]byte("x")}}); err == nil {
		t.Error("header and query both accepted")
	}
}

func TestBasic(t *testing.T) {
	t.Parallel()
	v, err := NewBasic("twilio", [][]byte{[]byte("pässword"), []byte("next")})
	if err != nil {
		t.Fatal(err)
	}
	basic := func(s string) http.Header {
		return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(s))}}
	}
	for _, tc := range []struct {
		name string
		h    http.Header
		want error
	}{
		{"right", basic("twilio:pässword"), nil},
		{"rotated", basic("twilio:next"), nil},
		{"wrong password", basic("twilio:pässwort"), ErrMismatch},
		{"wrong user", basic("twilia:pässword"), ErrMismatch},
		{"no colon", basic("twiliopässword"), ErrMismatch},
		{"bearer", http.Header{"Authorization": {"Bearer x"}}, ErrMalformed},
		{"not base64", http.Header{"Authorization": {"Basic %%%"}}, ErrMalformed},
		{"missing", nil, ErrMissing},
	} {
		if err := v.Verify(req("", tc.h, "http://x/")); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestIPAllow(t *testing.T) {
	t.Parallel()
	a, err := NewIPAllow([]string{"192.0.2.0/24", "2001:db8::/32", "198.51.100.7"}, []string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       error
	}{
		{"direct, allowed", "192.0.2.9", nil, nil},
		{"direct, bare address", "198.51.100.7", nil, nil},
		{"direct v6", "2001:db8::1", nil, nil},
		{"ipv4-mapped", "::ffff:192.0.2.9", nil, nil},
		{"direct, other", "203.0.113.1", nil, ErrForbidden},
		{"direct, XFF ignored from an untrusted peer", "203.0.113.1", []string{"192.0.2.9"}, ErrForbidden},
		{"via trusted proxy", "10.1.2.3", []string{"192.0.2.9"}, nil},
		{"via two trusted proxies", "10.1.2.3", []string{"192.0.2.9, 10.9.9.9"}, nil},
		{"client spoofs a left entry", "10.1.2.3", []string{"192.0.2.9, 203.0.113.1"}, ErrForbidden},
		{"split across headers", "10.1.2.3", []string{"192.0.2.9", "10.9.9.9"}, nil},
		{"proxy itself, no XFF", "10.1.2.3", nil, ErrForbidden},
		{"garbage XFF", "10.1.2.3", []string{"not-an-ip"}, ErrForbidden},
	} {
		r := req("", http.Header{"X-Forwarded-For": tc.xff}, "http://x/")
		r.RemoteIP = netip.MustParseAddr(tc.peer)
		if err := a.Verify(r); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, bad := range [][]string{{"192.0.2.1/24"}, {"nope"}, {}} {
		if _, err := NewIPAllow(bad, nil); err == nil {
			t.Errorf("NewIPAllow(%q) accepted", bad)
		}
	}
}

// FuzzHMAC signs arbitrary bodies under a scheme with a timestamp and an
// id and checks the signature verifies and no mutation of body does.
func FuzzHMAC(f *testing.F) {
	f.Add([]byte(`{"a":1}`), 0, byte(1), true)
	f.Add([]byte("Sessão\n"), 3, byte(0x80), false)
	v, err := NewHMAC(HMACConfig{Header: "X-Sig", Signed: "{id}.{timestamp}.{body}", TimestampHeader: "X-Ts", IDHeader: "X-Id",
		Format: List, Encoding: "base64", CanonicalJSON: true, Secrets: [][]byte{[]byte("a"), []byte("b")}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, pos int, flip byte, second bool) {
		secret := []byte("a")
		if second {
			secret = []byte("b")
		}
		h, err := v.Sign(secret, body, Signed{ID: "m", Timestamp: now})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(req(string(body), h, "http://x/")); err != nil {
			t.Fatalf("own signature rejected: %v", err)
		}
		if len(body) == 0 || flip == 0 {
			return
		}
		if pos < 0 {
			pos = -pos
		}
		mutated := bytes.Clone(body)
		mutated[pos%len(body)] ^= flip
		if c1, ok1 := Canonical(body); ok1 {
			if c2, ok2 := Canonical(mutated); ok2 && bytes.Equal(c1, c2) {
				return // only whitespace changed: canonical_json accepts that by design
			}
		}
		if err := v.Verify(req(string(mutated), h, "http://x/")); err == nil {
			t.Fatalf("mutated body accepted")
		}
	})
}

// FuzzHeaders feeds arbitrary signature, token and forwarding headers to
// every verifier: no panic, and nothing forged passes.
func FuzzHeaders(f *testing.F) {
	f.Add("t=1,v1=00", "v1,AAAA", "Basic dTpw", "1.2.3.4, 10.0.0.1")
	f.Add("", "", "", "")
	stripe, _ := NewHMAC(HMACConfig{Header: "S", Format: Stripe, Signed: "{timestamp}.{body}", Secrets: [][]byte{[]byte("k")}})
	list, _ := NewHMAC(HMACConfig{Header: "L", Format: List, Encoding: "base64", Secrets: [][]byte{[]byte("k")}})
	basic, _ := NewBasic("u", [][]byte{[]byte("p")})
	allow, _ := NewIPAllow([]string{"192.0.2.0/24"}, []string{"10.0.0.0/8"})
	f.Fuzz(func(t *testing.T, s, l, auth, xff string) {
		r := req("{}", http.Header{"S": {s}, "L": {l}, "Authorization": {auth}, "X-Forwarded-For": {xff}}, "http://x/")
		r.RemoteIP = netip.MustParseAddr("10.0.0.1")
		if stripe.Verify(r) == nil || list.Verify(r) == nil {
			t.Fatalf("forged HMAC accepted: %q %q", s, l)
		}
		if basic.Verify(r) == nil && auth != "Basic dTpw" && !strings.EqualFold(strings.Fields(auth + " x")[0], "basic") {
			t.Fatalf("basic accepted %q", auth)
		}
		_ = allow.Verify(r)
	})
}

// TestHeaderNamesAreChecked: a header name no request can carry (the
// space DocsSmith Demo2's documentation prints) is a configuration
// error naming the setting, not a source that refuses every request.
func TestHeaderNamesAreChecked(t *testing.T) {
	t.Parallel()
	key := [][]byte{[]byte("s")}
	for _, tc := range []struct {
		name  string
		build func() error
		field string
		hint  string
	}{
		{"hmac header with a space", func() error {
			_, err := NewHMAC(HMACConfig{Header: "x-DocsSmith Demo2-signature", Secrets: key})
			return err
		}, "header", "x-DocsSmith-Demo2-signature"},
		{"hmac timestamp header with a colon", func() error {
			_, err := NewHMAC(HMACConfig{Header: "X-Sig", Signed: "{timestamp}.{body}", TimestampHeader: "X-Ts:", Secrets: key})
			return err
		}, "timestamp_header", ""},
		{"hmac id header with non-ASCII", func() error {
			_, err := NewHMAC(HMACConfig{Header: "X-Sig", Signed: "{id}.{body}", IDHeader: "X-Idé", Secrets: key})
			return err
		}, "id_header", ""},
		{"token header", func() error {
			_, err := NewToken(TokenConfig{Header: "X Token", Secrets: key})
			return err
		}, "header", "X-Token"},
		{"ed25519 header", func() error {
			_, err := NewEd25519(Ed25519Config{Header: "X-Signature(Ed25519)", PublicKeys: []string{strings.Repeat("ab", 32)}})
			return err
		}, "header", ""},
	} {
		err := tc.build()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || !strings.Contains(ce.Msg, "not a header name") || !strings.Contains(ce.Msg, tc.hint) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	for _, ok := range []string{"X-Signature", "x-docssmith-demo2-signature", "Stripe-Signature", "X-Hub-Signature-256", "webhook-id", "X_Odd.Name~1"} {
		if !ValidHeaderName(ok) {
			t.Errorf("ValidHeaderName(%q) = false", ok)
		}
	}
}

func TestToggleDefaultPort(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://h.example/p?q=%7E":     "https://h.example:443/p?q=%7E",
		"https://h.example:443/p":       "https://h.example/p",
		"http://h.example":              "http://h.example:80",
		"HTTPS://h.example:443":         "HTTPS://h.example",
		"https://[2001:db8::1]/x":       "https://[2001:db8::1]:443/x",
		"https://[2001:db8::1]:443/x#f": "https://[2001:db8::1]/x#f",
		"https://h.example:8443/p":      "",
		"ftp://h.example/p":             "",
		"https://user:pw@h.example/p":   "",
		"not a url":                     "",
	} {
		got, ok := toggleDefaultPort(in)
		if got != want || ok != (want != "") {
			t.Errorf("toggleDefaultPort(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
