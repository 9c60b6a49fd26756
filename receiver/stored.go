package receiver

import (
	"net/http"
	"slices"
	"strings"
)

// secretHeaderWords are parts of header names that may carry a secret:
// signatures (X-Signature, X-Hub-Signature-256, Stripe-Signature,
// X-Shopify-Hmac-Sha256), credentials (Authorization, X-Api-Key,
// X-Gitlab-Token, X-Telegram-Bot-Api-Secret-Token) and cookies.
var secretHeaderWords = []string{"sig", "auth", "token", "secret", "key", "hmac", "cookie", "password", "credential"}

// SecretHeader reports whether a header may carry a secret, so that it
// is never stored: its name contains one of secretHeaderWords, or it is
// the header the source was configured to verify (extra).
func SecretHeader(name string, extra ...string) bool {
	lower := strings.ToLower(name)
	for _, w := range secretHeaderWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	for _, e := range extra {
		if strings.EqualFold(name, e) {
			return true
		}
	}
	return false
}

// storedHeader writes the headers kept with an event: "Name: value" a
// line, by name, without those that may carry a secret.
func storedHeader(h http.Header, extra []string) string {
	names := make([]string, 0, len(h))
	size := 0
	for name, vs := range h {
		if SecretHeader(name, extra...) {
			continue
		}
		names = append(names, name)
		for _, v := range vs {
			size += len(name) + len(v) + 3
		}
	}
	slices.Sort(names)
	var b strings.Builder
	b.Grow(size)
	for _, name := range names {
		for _, v := range h[name] {
			b.WriteString(name)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
