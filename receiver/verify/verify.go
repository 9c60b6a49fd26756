// Package verify authenticates webhook requests: HMAC signatures in any
// of the usual layouts, shared tokens, HTTP Basic credentials, Ed25519
// signatures, and source-address allow lists. Verifiers are built once
// from a configuration and are safe for concurrent use. Every comparison
// of a secret-derived value is constant-time, and signatures are checked
// over the exact bytes received.
package verify

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/receiver/inbound"
)

// Verifier checks that a request is authentic.
type Verifier interface {
	Verify(r *inbound.Request) error
}

// Verification failures. ErrForbidden is about where the request came
// from; the others about what it carries.
var (
	ErrMissing   = errors.New("missing signature or credential")
	ErrMalformed = errors.New("malformed signature or credential")
	ErrMismatch  = errors.New("signature or credential does not match")
	ErrDuplicate = errors.New("verification header sent more than once")
	ErrStale     = errors.New("timestamp outside the tolerance")
	ErrForbidden = errors.New("source address not allowed")
)

// DefaultTolerance is how far a signed timestamp may be from the receive
// time, in either direction, unless configured otherwise.
const DefaultTolerance = 5 * time.Minute

// ConfigError is a verifier setting that cannot work; Field names it as
// in the configuration (algorithm, header, ...).
type ConfigError struct {
	Field string
	Msg   string
	// Err, when set, is the kind of problem (ErrUnsigned), for errors.Is.
	Err error
}

func (e *ConfigError) Unwrap() error { return e.Err }

func (e *ConfigError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// checkHeaders reports the first of the named header settings whose
// value cannot be an HTTP header name (RFC 9110 token characters): a
// request could never carry it, so every request would be refused.
// Empty values are left to the caller.
func checkHeaders(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		field, name := fields[i], fields[i+1]
		if name == "" || ValidHeaderName(name) {
			continue
		}
		msg := fmt.Sprintf("%q is not a header name a request can carry (letters, digits and !#$%%&'*+-.^_`|~ only)", name)
		if fixed := strings.Join(strings.Fields(name), "-"); fixed != name && ValidHeaderName(fixed) {
			msg += fmt.Sprintf("; the header sent is most likely %s: look at a delivered request's headers", fixed)
		}
		return configErr(field, "%s", msg)
	}
	return nil
}

// ValidHeaderName reports whether s is a valid HTTP header name.
func ValidHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ErrUnsigned marks a *ConfigError about a timestamp or an id that a
// scheme would read but not authenticate: the signed content leaves it
// out, so a request signed once could be sent again under a fresh
// timestamp (defeating the tolerance) or a fresh id (defeating
// deduplication). Protection that is only apparent is refused.
var ErrUnsigned = errors.New("read but not signed")

// All runs verifiers in order; the first failure is the answer.
func All(vs ...Verifier) Verifier { return all(vs) }

type all []Verifier

func (a all) Verify(r *inbound.Request) error {
	for _, v := range a {
		if err := v.Verify(r); err != nil {
			return err
		}
	}
	return nil
}

// None accepts every request. It exists so that accepting unauthenticated
// requests is written down; the caller warns about it.
type None struct{}

// Verify implements Verifier.
func (None) Verify(*inbound.Request) error { return nil }

// single returns the one value of header name: ErrMissing when absent or
// blank, ErrDuplicate when sent more than once. A header that carries a
// signature or a credential must be unambiguous: with two, a proxy and
// Switchyard could each see a different one.
func single(r *inbound.Request, name string) (string, error) {
	vs := r.Values(name)
	switch {
	case len(vs) == 0:
		return "", fmt.Errorf("%w: no %s header", ErrMissing, name)
	case len(vs) > 1:
		return "", fmt.Errorf("%w: %s", ErrDuplicate, name)
	}
	v := strings.TrimSpace(vs[0])
	if v == "" {
		return "", fmt.Errorf("%w: empty %s header", ErrMissing, name)
	}
	return v, nil
}

// checkTime enforces tolerance around the receive time, both ways: a
// timestamp too far in the future is as suspect as an old one.
func checkTime(t, now time.Time, tolerance time.Duration) error {
	d := now.Sub(t)
	if d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s off (tolerance %s)", ErrStale, d.Round(time.Second), tolerance)
	}
	return nil
}
