package receiver

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/receiver/inbound"
	"github.com/switchyard/switchyard/receiver/presets"
	"github.com/switchyard/switchyard/receiver/verify"
)

// Request is what a source sees of an HTTP request: the exact bytes
// received, every header value, the URL and the peer address. No Fiber
// types cross this line.
type Request = inbound.Request

// NewRequest builds a Request from a body and headers, for tests and for
// tools that run a source's verification outside the server.
func NewRequest(body []byte, header http.Header, receivedAt time.Time) *Request {
	return &Request{Body: body, Header: header, Method: http.MethodPost, ReceivedAt: receivedAt}
}

// Source is one configured sender: where it is served, how its requests
// are verified and how its payloads become events.
type Source struct {
	Name string
	Path string
	// Verify returns ErrUnauthorized or ErrForbidden (wrapped) when the
	// request is not authentic or not from an allowed address.
	Verify func(r *Request) error
	// Normalize returns a *BadRequestError for payloads it cannot map.
	Normalize func(r *Request) (*event.Event, error)
	// Unauthenticated is set when the source was configured to accept
	// requests without verification (verify: {type: none}).
	Unauthenticated bool
	// Renamed is the provider's name now, when the configuration named
	// it by the name it had before (still accepted, with a warning).
	Renamed string
	// Handshake, when set, runs after Verify and before Normalize: a
	// non-nil Reply is the answer to a platform's setup request (Slack's
	// url_verification, Discord's PING), sent instead of storing an
	// event. It returns a *BadRequestError for a malformed handshake.
	Handshake func(r *Request) (*Reply, error)
	// Challenge, when set, answers GET requests on Path (Meta's
	// subscription check). It returns ErrChallengeRefused or
	// ErrForbidden (wrapped), or a *BadRequestError.
	Challenge func(r *Request) (*Reply, error)
	// SecretHeaders are headers of this source's requests that carry a
	// secret besides those SecretHeader knows (a custom verify.header):
	// they are not stored with the event.
	SecretHeaders []string

	sign func([]byte, presets.SignOptions) (*presets.Outgoing, error)
}

// ErrCannotSign is a source Sign cannot sign for; the error wrapping it
// says why.
var ErrCannotSign = presets.ErrCannotSign

// Sign returns how the source's sender would post body to url with
// contentType, signed now with a fresh message id: the headers to add
// and the URL to post to (a token or a body hash may travel in its
// query). An unsigned source gets no headers. An ed25519 source needs
// the sender's private key (ed25519Key); without it, and for a source
// built another way, the error wraps ErrCannotSign.
func (s Source) Sign(body []byte, url, contentType string, ed25519Key ed25519.PrivateKey) (http.Header, string, error) {
	if s.sign == nil {
		return nil, "", fmt.Errorf("%w: the source was not built from a configuration", ErrCannotSign)
	}
	now := time.Now()
	out, err := s.sign(body, presets.SignOptions{
		Signed:     verify.Signed{ID: event.NewID("msg_", now), Timestamp: now, Method: http.MethodPost, URL: url, ContentType: contentType},
		Ed25519Key: ed25519Key,
	})
	if err != nil {
		return nil, "", err
	}
	return out.Header, out.URL, nil
}

// ParseEd25519Key reads an Ed25519 private key in hex or base64: a
// 32-byte seed or a 64-byte private key.
func ParseEd25519Key(text string) (ed25519.PrivateKey, error) { return presets.ParseEd25519Key(text) }

// Reply is a source's answer to a platform's setup request.
type Reply = presets.Reply

// SourceConfig is what building a source needs from the configuration.
type SourceConfig struct {
	Name     string
	Path     string
	Provider string
	Secrets  []string
	// Verify is the source's verify: block; nil keeps the preset's.
	Verify *VerifyConfig
	Map    map[string]string
	// Subject is an expression giving the events' subject in place of
	// the provider's; empty keeps the provider's.
	Subject        string
	CanonicalJSON  bool
	IPAllow        []string
	TrustedProxies []string
}

// VerifyConfig is a source's verify: block.
type VerifyConfig = presets.Verify

// ConfigError is a source setting that cannot work: Field is its path
// inside the source ("provider", "verify.header", "map.eventType").
type ConfigError = presets.Error

// Providers lists the known provider names.
func Providers() []string { return presets.Names() }

// PlatformOf returns how provider's product calls itself ("Darwin"; ""
// when it has no name) and what its events' subject is ("session",
// "conversation"; "subject" when not known).
func PlatformOf(provider string) (name, subject string) {
	p := presets.PlatformOf(provider)
	return p.Name, p.Subject
}

// CanonicalProvider returns the current name of provider: itself, or the
// name that replaced an old one.
func CanonicalProvider(provider string) string { return presets.Canonical(provider) }

// NewSource builds a source. Its errors are *ConfigError values (joined
// when several), placed at the source's settings.
func NewSource(c SourceConfig) (Source, error) {
	built, err := presets.Build(presets.Settings{
		Provider: c.Provider, Secrets: c.Secrets, Verify: c.Verify, Map: c.Map, Subject: c.Subject,
		CanonicalJSON: c.CanonicalJSON, IPAllow: c.IPAllow, TrustedProxies: c.TrustedProxies,
	})
	if err != nil {
		return Source{}, err
	}
	s := Source{Name: c.Name, Path: c.Path, Unauthenticated: built.Unauthenticated, Renamed: built.Renamed, sign: built.Sign}
	if c.Verify != nil && c.Verify.Header != "" {
		s.SecretHeaders = []string{c.Verify.Header}
	}
	v := built.Verifier
	s.Verify = func(r *Request) error {
		err := v.Verify(r)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, verify.ErrForbidden):
			return fmt.Errorf("%w: %w", ErrForbidden, err)
		default:
			return fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
	}
	normalize := built.Normalize
	s.Normalize = func(r *Request) (*event.Event, error) {
		ev, err := normalize(r)
		if err != nil {
			// A mapping failure, by source and field: the hook for metrics.
			return nil, badRequest(err)
		}
		return ev, nil
	}
	if hs := built.Handshake; hs != nil {
		s.Handshake = func(r *Request) (*Reply, error) {
			reply, err := hs(r)
			return reply, badRequest(err)
		}
	}
	if ch := built.Challenge; ch != nil {
		s.Challenge = func(r *Request) (*Reply, error) {
			reply, err := ch(r)
			var ferr *inbound.FieldError
			switch {
			case err == nil:
				return reply, nil
			case errors.Is(err, verify.ErrForbidden):
				return nil, fmt.Errorf("%w: %w", ErrForbidden, err)
			case errors.As(err, &ferr):
				return nil, badRequest(err)
			default:
				return nil, fmt.Errorf("%w: %w", ErrChallengeRefused, err)
			}
		}
	}
	return s, nil
}

// badRequest turns a source's *inbound.FieldError into the
// *BadRequestError the server answers 400 with.
func badRequest(err error) error {
	var ferr *inbound.FieldError
	if errors.As(err, &ferr) {
		return &BadRequestError{Msg: ferr.Error(), Field: ferr.Field}
	}
	return err
}

// Sign returns the headers with which provider would sign body, for the
// send command and tests. Schemes with a timestamp or an id are signed
// now with a fresh id; schemes that sign the URL need SignRequest.
func Sign(providerName, secret string, body []byte) (http.Header, error) {
	return presets.Sign(providerName, secret, body, verify.Signed{
		ID: event.NewID("msg_", time.Now()), Timestamp: time.Now(), Method: http.MethodPost,
	})
}

// SignRequest is Sign for a request to url with contentType, for schemes
// that sign the URL (twilio, hubspot) or form parameters.
func SignRequest(providerName, secret, url, contentType string, body []byte) (http.Header, error) {
	return presets.Sign(providerName, secret, body, verify.Signed{
		ID: event.NewID("msg_", time.Now()), Timestamp: time.Now(), Method: http.MethodPost, URL: url, ContentType: contentType,
	})
}
