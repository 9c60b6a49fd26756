package receiver

import (
	"net/http"
	"strings"
	"testing"
)

// TestStoredRequest: an accepted event carries its body as received and
// its headers, without those that may carry a secret: the signature, a
// custom verify header, credentials and cookies never reach the store.
func TestStoredRequest(t *testing.T) {
	t.Parallel()
	body := loadFixture(t, "session_closed")
	custom, err := NewSource(SourceConfig{Name: "custom", Path: "/hooks/custom", Provider: "darwin", Secrets: []string{secret},
		Verify: &VerifyConfig{Header: "X-Check"}})
	if err != nil {
		t.Fatal(err)
	}
	ing := &fakeIngester{}
	s := newServer(t, ing, Options{}, darwinSource(t), custom)
	h := signed(t, secret, body)
	sig := h.Get("X-Signature")
	h.Set("Authorization", "Bearer hunter2-bearer")
	h.Set("X-Api-Key", "hunter2-key")
	h.Set("Cookie", "session=hunter2-cookie")
	h.Set("User-Agent", "Darwin-Webhooks/1.0")
	h.Add("X-Trace", "a")
	h.Add("X-Trace", "b")
	if r := post(t, s, body, h); r.status != http.StatusOK {
		t.Fatalf("post: %d %s", r.status, r.body)
	}
	h2 := http.Header{"X-Check": {sig}, "X-Request-Id": {"r-1"}}
	if r := do(t, s, http.MethodPost, "/hooks/custom", body, h2); r.status != http.StatusOK {
		t.Fatalf("post to custom: %d %s", r.status, r.body)
	}
	evs := ing.Events()
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	req := evs[0].Request
	if req == nil || string(req.Body) != string(body) {
		t.Fatalf("stored request = %+v, want the body as received", req)
	}
	for _, want := range []string{"Content-Type: application/json\n", "User-Agent: Darwin-Webhooks/1.0\n", "X-Trace: a\nX-Trace: b\n"} {
		if !strings.Contains(req.Header, want) {
			t.Errorf("stored headers lack %q:\n%s", want, req.Header)
		}
	}
	for _, secret := range []string{sig, "hunter2", "X-Signature", "Authorization", "Cookie"} {
		if strings.Contains(req.Header, secret) {
			t.Errorf("stored headers carry %q:\n%s", secret, req.Header)
		}
	}
	if h := evs[1].Request.Header; strings.Contains(h, sig) || !strings.Contains(h, "X-Request-Id: r-1") {
		t.Errorf("custom source's stored headers:\n%s", h)
	}
}

func TestSecretHeader(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"X-Signature", "X-Hub-Signature-256", "Stripe-Signature", "X-Shopify-Hmac-Sha256",
		"Authorization", "Proxy-Authorization", "X-Api-Key", "X-Gitlab-Token", "X-Telegram-Bot-Api-Secret-Token", "Cookie",
		"Webhook-Signature", "X-Signature-Ed25519"} {
		if !SecretHeader(name) {
			t.Errorf("%s is not secret", name)
		}
	}
	for _, name := range []string{"Content-Type", "User-Agent", "X-Request-Id", "X-Github-Event", "Webhook-Id", "X-Forwarded-For"} {
		if SecretHeader(name) {
			t.Errorf("%s is secret", name)
		}
	}
	if !SecretHeader("x-check", "X-Check") {
		t.Error("a configured verify header is not secret")
	}
}
