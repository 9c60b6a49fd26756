package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/receiver/darwin"
	"github.com/switchyard/switchyard/sinks"
)

// The Standard Webhooks specification's published example (also its
// reference libraries' sign test).
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specPayload   = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// verifyStandardWebhook is a receiver written from the Standard Webhooks
// specification, sharing no code with the sink: the key is the base64
// after "whsec_"; the signed content is "{webhook-id}.{webhook-timestamp}.
// {body}"; webhook-signature is a space-separated list of
// "<version>,<base64 HMAC-SHA256>", any v1 of which may match, compared in
// constant time; the timestamp must be within the tolerance of now.
func verifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q: %v", ts, err)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("webhook-timestamp %s is %v from now", ts, d)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, sig := range strings.Split(sigs, " ") {
		version, enc, _ := strings.Cut(sig, ",")
		if version != "v1" {
			continue
		}
		if got, err := base64.StdEncoding.DecodeString(enc); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no v1 signature matches")
}

// The verifier itself must accept the specification's example, or it
// proves nothing about the sink.
func TestVerifierAcceptsTheSpecExample(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set("webhook-id", specID)
	h.Set("webhook-timestamp", strconv.Itoa(specTimestamp))
	h.Set("webhook-signature", specSignature)
	if err := verifyStandardWebhook(specSecret, h, []byte(specPayload), time.Unix(specTimestamp, 0)); err != nil {
		t.Fatalf("the spec's example does not verify: %v", err)
	}
	if err := verifyStandardWebhook(specSecret, h, []byte(`{"test": 2432232315}`), time.Unix(specTimestamp, 0)); err == nil {
		t.Fatal("a changed payload verifies")
	}
}

// Given the example's inputs, the sink writes the example's signature.
func TestStandardWebhooksMatchesTheSpecExample(t *testing.T) {
	t.Parallel()
	s := mustNew(t, Options{
		URL:         "https://x.test/in",
		ContentType: "application/json",
		Body:        specPayload,
		Sign:        &Sign{Scheme: SchemeStandardWebhooks, Secrets: []string{specSecret}},
		Now:         func() time.Time { return time.Unix(specTimestamp, 0) },
	})
	ev, _ := escalated(t)
	r, err := s.Render(&sinks.Delivery{ID: specID, Attempt: 1, Event: ev})
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Body) != specPayload {
		t.Fatalf("body = %s", r.Body)
	}
	for name, want := range map[string]string{
		"webhook-id":        specID,
		"webhook-timestamp": "1614265330",
		"webhook-signature": specSignature,
	} {
		if got := r.Header.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

// Signed requests, as received, verify with the independent receiver:
// under each secret while rotating, with the delivery id as webhook-id on
// every attempt and the attempt's own timestamp.
func TestStandardWebhooksVerifiesAtTheReceiver(t *testing.T) {
	t.Parallel()
	const rotated = "whsec_c2VjcmV0LW9mLWEtcm90YXRlZC1lbmRwb2ludA=="
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rec.record(r) }))
	defer srv.Close()
	var clock atomic.Int64
	clock.Store(time.Now().Unix())
	s := mustNew(t, Options{
		URL:    srv.URL + "/in/{{ subject }}",
		Format: FormatCloudEvents,
		Sign:   &Sign{Scheme: SchemeStandardWebhooks, Secrets: []string{specSecret, rotated}},
		Now:    func() time.Time { return time.Unix(clock.Add(7), 0) },
	})
	ev, _ := escalated(t)
	for attempt := 1; attempt <= 2; attempt++ {
		if err := s.Send(t.Context(), &sinks.Delivery{ID: "dlv_01JDELIVERY00000000000042", Attempt: attempt, Event: ev}); err != nil {
			t.Fatal(err)
		}
	}
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("got %d requests", len(reqs))
	}
	now := time.Unix(clock.Load(), 0)
	for i, r := range reqs {
		for _, secret := range []string{specSecret, rotated} {
			if err := verifyStandardWebhook(secret, r.header, r.body, now); err != nil {
				t.Errorf("attempt %d, secret %.12s…: %v", i+1, secret, err)
			}
		}
		if err := verifyStandardWebhook("whsec_d3JvbmctZW5kcG9pbnQtc2VjcmV0LXh4eA==", r.header, r.body, now); err == nil {
			t.Errorf("attempt %d verifies with a wrong secret", i+1)
		}
		tampered := append([]byte(nil), r.body...)
		tampered[len(tampered)-2] ^= 1
		if err := verifyStandardWebhook(specSecret, r.header, tampered, now); err == nil {
			t.Errorf("attempt %d verifies with a changed body", i+1)
		}
		if got := r.header.Get("webhook-id"); got != "dlv_01JDELIVERY00000000000042" {
			t.Errorf("webhook-id = %q, want the delivery id", got)
		}
		if n := len(strings.Split(r.header.Get("webhook-signature"), " ")); n != 2 {
			t.Errorf("%d signatures, want one per secret", n)
		}
	}
	if reqs[0].header.Get("webhook-timestamp") == reqs[1].header.Get("webhook-timestamp") {
		t.Error("both attempts carry one timestamp; each attempt signs its own")
	}
}

// Darwin's scheme (hex HMAC-SHA256 of the body in X-SIGNATURE) verifies
// with Darwin's own verifier, as a Switchyard darwin source would check it.
func TestHMACVerifiesAsDarwin(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rec.record(r) }))
	defer srv.Close()
	s := mustNew(t, Options{URL: srv.URL, Sign: &Sign{Scheme: SchemeHMAC, Header: darwin.SignatureHeader, Secrets: []string{"darwin-secret"}}})
	ev, _ := escalated(t)
	if err := s.Send(t.Context(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev}); err != nil {
		t.Fatal(err)
	}
	r := rec.requests()[0]
	if err := darwin.Verify([][]byte{[]byte("darwin-secret")}, r.header.Get("X-SIGNATURE"), r.body); err != nil {
		t.Fatalf("darwin.Verify: %v", err)
	}
	if err := darwin.Verify([][]byte{[]byte("other")}, r.header.Get("X-SIGNATURE"), r.body); err == nil {
		t.Fatal("verifies with another secret")
	}
}

func TestHMACAlgorithmsAndEncodings(t *testing.T) {
	t.Parallel()
	ev, _ := escalated(t)
	d := &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev}
	for _, tc := range []struct {
		sign Sign
		want func(body []byte) string
	}{
		{Sign{Header: "X-S"}, func(b []byte) string { return fmt.Sprintf("%x", hmacOf(sha256.New, b)) }},
		{Sign{Header: "X-S", Algorithm: "sha512", Encoding: "base64", Prefix: "sha512="}, func(b []byte) string {
			return "sha512=" + base64.StdEncoding.EncodeToString(hmacOf(sha512.New, b))
		}},
		{Sign{Header: "X-S", Algorithm: "sha1", Prefix: "sha1="}, func(b []byte) string {
			return "sha1=" + fmt.Sprintf("%x", hmacOf(sha1.New, b))
		}},
	} {
		sg := tc.sign
		sg.Scheme, sg.Secrets = SchemeHMAC, []string{"k"}
		s := mustNew(t, Options{URL: "https://x.test", Sign: &sg})
		r, err := s.Render(d)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := r.Header.Get("X-S"), tc.want(r.Body); got != want {
			t.Errorf("%+v: X-S = %s, want %s", tc.sign, got, want)
		}
	}
}

// hmacOf is the HMAC of body under the key "k".
func hmacOf(newHash func() hash.Hash, body []byte) []byte {
	mac := hmac.New(newHash, []byte("k"))
	mac.Write(body)
	return mac.Sum(nil)
}
