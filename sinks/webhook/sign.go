package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Signature schemes.
const (
	// SchemeStandardWebhooks signs as Standard Webhooks
	// (https://www.standardwebhooks.com): webhook-id (the delivery id),
	// webhook-timestamp (Unix seconds of the attempt) and
	// webhook-signature, "v1,<base64 HMAC-SHA256 of id.timestamp.body>",
	// one per secret, space-separated.
	SchemeStandardWebhooks = "standard-webhooks"
	// SchemeHMAC puts Prefix and the encoded HMAC of the body in Header,
	// as Darwin's X-SIGNATURE or GitHub's X-Hub-Signature-256.
	SchemeHMAC = "hmac"
)

// Standard Webhooks headers.
const (
	WebhookIDHeader        = "Webhook-Id"
	WebhookTimestampHeader = "Webhook-Timestamp"
	WebhookSignatureHeader = "Webhook-Signature"
)

// MinStandardWebhooksKey is the shortest key Standard Webhooks allows
// (24 bytes).
const MinStandardWebhooksKey = 24

// Sign is how requests are signed.
type Sign struct {
	Scheme string
	// Secrets are the keys. Standard Webhooks: "whsec_" and the base64
	// key, as its libraries take it; every one signs (several while the
	// receiver rotates). HMAC: one secret, its text the key.
	Secrets []string
	// HMAC only: the header, the algorithm (sha256 when empty, sha1,
	// sha512), the encoding (hex when empty, base64) and a prefix before
	// the digest ("sha256=").
	Header, Algorithm, Encoding, Prefix string
}

// A signer sets its headers on h and returns the signatures it wrote
// (each alone, and the header values), for redaction: a receiver echoing
// one into its error response must not put a replayable signature on the
// delivery record.
type signer interface {
	sign(h http.Header, id string, now time.Time, body []byte) []string
}

func newSigner(o *Sign) (signer, error) {
	fail := func(field, format string, args ...any) error {
		return &ConfigError{Field: "sign." + field, Err: fmt.Errorf(format, args...)}
	}
	if len(o.Secrets) == 0 {
		return nil, fail("secret", "missing: the key requests are signed with")
	}
	switch o.Scheme {
	case SchemeStandardWebhooks:
		s := &standardWebhooks{}
		for i, secret := range o.Secrets {
			key, err := decodeWhsec(secret)
			if err != nil {
				field := "secret"
				if i > 0 {
					field = fmt.Sprintf("secrets[%d]", i-1)
				}
				return nil, fail(field, "%v", err)
			}
			s.keys = append(s.keys, key)
		}
		return s, nil
	case SchemeHMAC:
		if len(o.Secrets) > 1 {
			return nil, fail("secrets", "an hmac header carries one signature: remove secrets, or use scheme standard-webhooks")
		}
		if o.Header == "" {
			return nil, fail("header", "missing: the header carrying the signature, such as X-Signature")
		}
		newHash, err := hashFor(o.Algorithm)
		if err != nil {
			return nil, fail("algorithm", "%v", err)
		}
		var encode func([]byte) string
		switch o.Encoding {
		case "", "hex":
			encode = hex.EncodeToString
		case "base64":
			encode = base64.StdEncoding.EncodeToString
		default:
			return nil, fail("encoding", "unknown encoding %q: hex or base64", o.Encoding)
		}
		return &hmacSigner{header: http.CanonicalHeaderKey(o.Header), prefix: o.Prefix, key: []byte(o.Secrets[0]), newHash: newHash, encode: encode}, nil
	}
	return nil, fail("scheme", "unknown scheme %q: standard-webhooks or hmac", o.Scheme)
}

func hashFor(alg string) (func() hash.Hash, error) {
	switch alg {
	case "", "sha256":
		return sha256.New, nil
	case "sha1":
		return sha1.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("unknown algorithm %q: sha256, sha1 or sha512", alg)
}

// decodeWhsec returns the key of a Standard Webhooks
// secret: base64 after "whsec_". The prefix is required, so that a raw
// secret (which receivers' libraries would base64-decode into another
// key) fails here rather than at every receiver.
func decodeWhsec(s string) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, errors.New(`a Standard Webhooks secret is "whsec_" followed by base64 (at least 24 bytes), such as whsec_$(openssl rand -base64 32)`)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, errors.New(`after "whsec_" a Standard Webhooks secret is base64 (standard alphabet, padded)`)
	}
	if len(key) < MinStandardWebhooksKey {
		return nil, fmt.Errorf("the key is %d bytes; Standard Webhooks asks for at least %d", len(key), MinStandardWebhooksKey)
	}
	return key, nil
}

type standardWebhooks struct{ keys [][]byte }

func (s *standardWebhooks) sign(h http.Header, id string, now time.Time, body []byte) []string {
	ts := strconv.FormatInt(now.Unix(), 10)
	var sig []byte
	macs := make([]string, 0, len(s.keys)+1)
	for i, key := range s.keys {
		if i > 0 {
			sig = append(sig, ' ')
		}
		sig = append(sig, "v1,"...)
		mac := base64.StdEncoding.EncodeToString(standardWebhooksMAC(key, id, ts, body))
		sig = append(sig, mac...)
		macs = append(macs, mac)
	}
	h.Set(WebhookIDHeader, id)
	h.Set(WebhookTimestampHeader, ts)
	h.Set(WebhookSignatureHeader, string(sig))
	return append(macs, string(sig))
}

// standardWebhooksMAC is the HMAC-SHA256 of "id.timestamp.body" under
// key.
func standardWebhooksMAC(key []byte, id, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

type hmacSigner struct {
	header, prefix string
	key            []byte
	newHash        func() hash.Hash
	encode         func([]byte) string
}

func (s *hmacSigner) sign(h http.Header, _ string, _ time.Time, body []byte) []string {
	mac := hmac.New(s.newHash, s.key)
	mac.Write(body)
	sig := s.encode(mac.Sum(nil))
	h.Set(s.header, s.prefix+sig)
	return []string{sig}
}
