package presets

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/switchyard/switchyard/receiver/verify"
)

// Outgoing is how a sender would post a body: the headers to add and
// the URL to post to (a scheme may carry a token or a body hash in it).
type Outgoing struct {
	Header http.Header
	URL    string
}

// SignOptions are what signing a request needs beyond the source's
// configuration.
type SignOptions struct {
	// Signed gives the id, timestamp, method, URL and content type the
	// scheme may sign.
	Signed verify.Signed
	// Ed25519Key is the sender's private key, for an ed25519 source: the
	// configuration holds only public keys.
	Ed25519Key ed25519.PrivateKey
}

// ErrCannotSign is a source `switchyard send` cannot sign for; its
// message says why and what would help.
var ErrCannotSign = errors.New("cannot sign")

// signer returns how a request verified by v, with secrets (the keys as
// verified, decoded when the preset decodes them), is signed.
func (p preset) signer(v Verify, fromPreset bool, secrets [][]byte, hmacV *verify.HMAC, edV *verify.Ed25519) func([]byte, SignOptions) (*Outgoing, error) {
	return func(body []byte, o SignOptions) (*Outgoing, error) {
		out := &Outgoing{Header: http.Header{}, URL: o.Signed.URL}
		switch v.Type {
		case "none":
			return out, nil
		case "hmac":
			if fromPreset && p.bodyHash != "" && !isForm(o.Signed.ContentType) && len(body) > 0 {
				// Twilio signs a JSON body through its hash in the URL.
				u, err := url.Parse(out.URL)
				if err != nil {
					return nil, fmt.Errorf("url: %w", err)
				}
				sum := sha256.Sum256(body)
				q := u.Query()
				q.Set(p.bodyHash, hex.EncodeToString(sum[:]))
				u.RawQuery = q.Encode()
				out.URL = u.String()
			}
			s := o.Signed
			s.URL = out.URL
			h, err := hmacV.Sign(secrets[0], body, s)
			if err != nil {
				return nil, err
			}
			out.Header = h
			return out, nil
		case "token":
			if v.Query != "" {
				u, err := url.Parse(out.URL)
				if err != nil {
					return nil, fmt.Errorf("url: %w", err)
				}
				q := u.Query()
				q.Set(v.Query, string(secrets[0]))
				u.RawQuery = q.Encode()
				out.URL = u.String()
				return out, nil
			}
			out.Header.Set(v.Header, v.Prefix+string(secrets[0]))
			return out, nil
		case "basic":
			out.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(v.Username+":"+string(secrets[0]))))
			return out, nil
		case "ed25519":
			if len(o.Ed25519Key) != ed25519.PrivateKeySize {
				return nil, fmt.Errorf("%w: an ed25519 source is verified with the sender's public key, and only the sender holds the private key; to sign for a source whose keys you made, give the private key that matches one of verify.public_keys", ErrCannotSign)
			}
			if !edV.HasKey(o.Ed25519Key.Public().(ed25519.PublicKey)) {
				return nil, fmt.Errorf("%w: the private key given does not match any of the source's verify.public_keys", ErrCannotSign)
			}
			for k, val := range edV.Sign(o.Ed25519Key, body, o.Signed.Timestamp) {
				out.Header.Set(k, val)
			}
			return out, nil
		}
		return nil, fmt.Errorf("%w: verify type %q", ErrCannotSign, v.Type)
	}
}

func isForm(contentType string) bool {
	return strings.HasPrefix(strings.ToLower(contentType), "application/x-www-form-urlencoded")
}

// ParseEd25519Key reads an Ed25519 private key written in hex or base64:
// the 32-byte seed, or the 64-byte private key (seed and public key).
func ParseEd25519Key(text string) (ed25519.PrivateKey, error) {
	text = strings.TrimSpace(text)
	raw, err := hex.DecodeString(text)
	if err != nil {
		raw, err = base64.StdEncoding.DecodeString(text)
	}
	switch {
	case err != nil:
		return nil, errors.New("not hex or base64")
	case len(raw) == ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case len(raw) == ed25519.PrivateKeySize:
		key := ed25519.PrivateKey(raw)
		if !key.Public().(ed25519.PublicKey).Equal(ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize]).Public()) {
			return nil, errors.New("its second half is not the public key of its first")
		}
		return key, nil
	}
	return nil, fmt.Errorf("%d bytes: want a %d-byte seed or a %d-byte private key", len(raw), ed25519.SeedSize, ed25519.PrivateKeySize)
}
