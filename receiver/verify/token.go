package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/switchyard/switchyard/receiver/inbound"
)

// hmacEqual compares two digests in constant time.
func hmacEqual(a, b []byte) bool { return hmac.Equal(a, b) }

// digests hashes each secret, so a presented value can be compared with
// fixed-length digests in constant time whatever its length.
func digests(secrets [][]byte) [][sha256.Size]byte {
	out := make([][sha256.Size]byte, len(secrets))
	for i, s := range secrets {
		out[i] = sha256.Sum256(s)
	}
	return out
}

// anyEqual compares got with every digest, each in constant time.
func anyEqual(got []byte, want [][sha256.Size]byte) bool {
	sum := sha256.Sum256(got)
	ok := 0
	for i := range want {
		ok |= subtle.ConstantTimeCompare(sum[:], want[i][:])
	}
	return ok == 1
}

// TokenConfig is a shared secret sent as is, in a header or a query
// parameter.
type TokenConfig struct {
	// Header carries the token (X-Telegram-Bot-Api-Secret-Token,
	// Authorization); Prefix, if set, precedes it ("Bearer ", compared
	// without regard to case).
	Header string
	Prefix string
	// Query is the query parameter carrying the token, when not a header.
	Query   string
	Secrets [][]byte
}

// Token verifies a shared token.
type Token struct {
	c    TokenConfig
	want [][sha256.Size]byte
}

// NewToken validates c and builds its verifier.
func NewToken(c TokenConfig) (*Token, error) {
	if (c.Header == "") == (c.Query == "") {
		return nil, configErr("header", "set header: (the header carrying the token) or query: (the query parameter), one of them")
	}
	if err := checkHeaders("header", c.Header); err != nil {
		return nil, err
	}
	if len(c.Secrets) == 0 {
		return nil, configErr("secret", "missing: set secret: (or secret_file:) to the token")
	}
	for _, s := range c.Secrets {
		if len(s) == 0 {
			return nil, configErr("secret", "is empty")
		}
	}
	return &Token{c: c, want: digests(c.Secrets)}, nil
}

// Verify implements Verifier.
func (t *Token) Verify(r *inbound.Request) error {
	var got string
	if t.c.Query != "" {
		vs := r.Query()[t.c.Query]
		switch {
		case len(vs) == 0 || vs[0] == "":
			return fmt.Errorf("%w: no %s query parameter", ErrMissing, t.c.Query)
		case len(vs) > 1:
			return fmt.Errorf("%w: query parameter %s", ErrDuplicate, t.c.Query)
		}
		got = vs[0]
	} else {
		v, err := single(r, t.c.Header)
		if err != nil {
			return err
		}
		if t.c.Prefix != "" {
			if len(v) < len(t.c.Prefix) || !strings.EqualFold(v[:len(t.c.Prefix)], t.c.Prefix) {
				return fmt.Errorf("%w: want the prefix %q", ErrMalformed, t.c.Prefix)
			}
			v = strings.TrimSpace(v[len(t.c.Prefix):])
		}
		got = v
	}
	if !anyEqual([]byte(got), t.want) {
		return ErrMismatch
	}
	return nil
}

// Basic verifies HTTP Basic credentials: one username, any of the
// passwords (several while rotating).
type Basic struct {
	want [][sha256.Size]byte
}

// NewBasic builds a Basic verifier.
func NewBasic(username string, passwords [][]byte) (*Basic, error) {
	if username == "" {
		return nil, configErr("username", "missing: basic authentication needs a username")
	}
	if strings.Contains(username, ":") {
		return nil, configErr("username", "must not contain ':'")
	}
	if len(passwords) == 0 {
		return nil, configErr("secret", "missing: set secret: (or secret_file:) to the password")
	}
	creds := make([][]byte, len(passwords))
	for i, p := range passwords {
		if len(p) == 0 {
			return nil, configErr("secret", "is empty")
		}
		creds[i] = append([]byte(username+":"), p...)
	}
	return &Basic{want: digests(creds)}, nil
}

// Verify implements Verifier.
func (b *Basic) Verify(r *inbound.Request) error {
	v, err := single(r, "Authorization")
	if err != nil {
		return err
	}
	scheme, enc, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return fmt.Errorf("%w: want Authorization: Basic", ErrMalformed)
	}
	creds, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return fmt.Errorf("%w: Basic credentials are not base64", ErrMalformed)
	}
	if !anyEqual(creds, b.want) {
		return ErrMismatch
	}
	return nil
}
