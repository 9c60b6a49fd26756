package verify

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/receiver/inbound"
)

// Ed25519Config is a public-key signature scheme (Discord's).
type Ed25519Config struct {
	// Header carries the signature, hex (the default) or base64.
	Header   string
	Encoding string
	// Signed is the signed-content template; "{timestamp}{body}" when a
	// TimestampHeader is set, "{body}" otherwise.
	Signed          string
	TimestampHeader string
	Tolerance       time.Duration
	// PublicKeys, hex or base64; any one that verifies passes.
	PublicKeys []string
}

// Ed25519 verifies Ed25519 signatures.
type Ed25519 struct {
	c    Ed25519Config
	tmpl *template
	keys []ed25519.PublicKey
}

// NewEd25519 validates c and builds its verifier.
func NewEd25519(c Ed25519Config) (*Ed25519, error) {
	if c.Header == "" {
		return nil, configErr("header", "missing: name the header that carries the signature")
	}
	if err := checkHeaders("header", c.Header, "timestamp_header", c.TimestampHeader); err != nil {
		return nil, err
	}
	switch c.Encoding {
	case "", "hex", "base64":
	default:
		return nil, configErr("encoding", "unknown encoding %q: hex or base64", c.Encoding)
	}
	if c.Signed == "" {
		c.Signed = "{body}"
		if c.TimestampHeader != "" {
			c.Signed = "{timestamp}{body}"
		}
	}
	t, err := parseTemplate(c.Signed)
	if err != nil {
		return nil, err
	}
	if t.uses["timestamp"] && c.TimestampHeader == "" {
		return nil, configErr("timestamp_header", "the signed content uses {timestamp}: name the header that carries it")
	}
	if t.uses["id"] || t.uses["url"] || t.uses["form"] {
		return nil, configErr("signed", "ed25519 signs {timestamp} and {body} only")
	}
	if err := t.checkSigned(c.Signed, c.TimestampHeader, "", false); err != nil {
		return nil, err
	}
	if c.Tolerance < 0 {
		return nil, configErr("tolerance", "must not be negative")
	}
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	if len(c.PublicKeys) == 0 {
		return nil, configErr("public_key", "missing: set public_key: to the sender's Ed25519 public key (hex)")
	}
	v := &Ed25519{c: c, tmpl: t}
	for _, k := range c.PublicKeys {
		k = strings.TrimSpace(k)
		key, err := hex.DecodeString(k)
		if err != nil {
			key, err = base64.StdEncoding.DecodeString(k)
		}
		if err != nil || len(key) != ed25519.PublicKeySize {
			return nil, configErr("public_key", "not a %d-byte Ed25519 public key in hex or base64", ed25519.PublicKeySize)
		}
		v.keys = append(v.keys, ed25519.PublicKey(key))
	}
	return v, nil
}

// Verify implements Verifier.
func (v *Ed25519) Verify(r *inbound.Request) error {
	enc, err := single(r, v.c.Header)
	if err != nil {
		return err
	}
	var sig []byte
	if v.c.Encoding == "base64" {
		sig, err = base64.StdEncoding.DecodeString(enc)
	} else {
		sig, err = hex.DecodeString(enc)
	}
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: not a %s Ed25519 signature", ErrMalformed, v.encoding())
	}
	vals := values{body: r.Body}
	if v.c.TimestampHeader != "" {
		if vals.timestamp, err = single(r, v.c.TimestampHeader); err != nil {
			return err
		}
		t, err := parseTimestamp(vals.timestamp)
		if err != nil {
			return err
		}
		if err := checkTime(t, r.ReceivedAt, v.c.Tolerance); err != nil {
			return err
		}
	}
	var msg bytes.Buffer
	msg.Grow(len(r.Body) + 32)
	v.tmpl.write(&msg, &vals)
	for _, k := range v.keys {
		if ed25519.Verify(k, msg.Bytes(), sig) {
			return nil
		}
	}
	return ErrMismatch
}

func (v *Ed25519) encoding() string {
	if v.c.Encoding == "" {
		return "hex"
	}
	return v.c.Encoding
}

// HasKey reports whether pub is one of the keys v verifies with.
func (v *Ed25519) HasKey(pub ed25519.PublicKey) bool {
	for _, k := range v.keys {
		if k.Equal(pub) {
			return true
		}
	}
	return false
}

// Sign returns the headers a sender holding priv would send.
func (v *Ed25519) Sign(priv ed25519.PrivateKey, body []byte, ts time.Time) map[string]string {
	vals := values{body: body, timestamp: fmt.Sprint(ts.Unix())}
	var msg bytes.Buffer
	v.tmpl.write(&msg, &vals)
	sig := ed25519.Sign(priv, msg.Bytes())
	out := map[string]string{}
	if v.c.Encoding == "base64" {
		out[v.c.Header] = base64.StdEncoding.EncodeToString(sig)
	} else {
		out[v.c.Header] = hex.EncodeToString(sig)
	}
	if v.c.TimestampHeader != "" {
		out[v.c.TimestampHeader] = vals.timestamp
	}
	return out
}
