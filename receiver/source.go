package receiver

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/receiver/darwin"
)

// Request is what a source sees of an HTTP request: the exact bytes
// received and the headers. No Fiber types cross this line.
type Request struct {
	Body       []byte
	ReceivedAt time.Time
	header     func(name string) string
}

// Header returns the first value of a request header.
func (r *Request) Header(name string) string {
	if r.header == nil {
		return ""
	}
	return r.header(name)
}

// NewRequest builds a Request from a body and headers, for tests and for
// tools that run a source's verification outside the server.
func NewRequest(body []byte, header http.Header, receivedAt time.Time) *Request {
	return &Request{Body: body, ReceivedAt: receivedAt, header: header.Get}
}

// Source is one configured sender: where it is served, how its requests
// are verified and how its payloads become events.
type Source struct {
	Name string
	Path string
	// Verify returns ErrUnauthorized (wrapped) when the request is not
	// authentic.
	Verify func(r *Request) error
	// Normalize returns a *BadRequestError for payloads it cannot map.
	Normalize func(r *Request) (*event.Event, error)
}

// SourceConfig is what building a source needs from the configuration.
type SourceConfig struct {
	Name     string
	Path     string
	Provider string
	Secrets  []string
}

// provider builds a source's verification and normalization.
type provider struct {
	build func(c SourceConfig, s *Source) error
	sign  func(secret string, body []byte) http.Header
}

var providers = map[string]provider{
	"darwin": {
		build: func(c SourceConfig, s *Source) error {
			if len(c.Secrets) == 0 {
				return errors.New("darwin signs every webhook (X-SIGNATURE); set secret: to the webhook's secret")
			}
			secrets := make([][]byte, len(c.Secrets))
			for i, sec := range c.Secrets {
				secrets[i] = []byte(sec)
			}
			s.Verify = func(r *Request) error {
				if err := darwin.Verify(secrets, r.Header(darwin.SignatureHeader), r.Body); err != nil {
					return fmt.Errorf("%w: %w", ErrUnauthorized, err)
				}
				return nil
			}
			s.Normalize = func(r *Request) (*event.Event, error) {
				ev, err := darwin.Normalize(r.Body, r.ReceivedAt)
				var ferr *darwin.FieldError
				if errors.As(err, &ferr) {
					return nil, &BadRequestError{Msg: ferr.Error()}
				}
				return ev, err
			}
			return nil
		},
		sign: func(secret string, body []byte) http.Header {
			return http.Header{darwin.SignatureHeader: {darwin.Sign([]byte(secret), body)}}
		},
	},
}

// Providers lists the known provider names.
func Providers() []string {
	names := make([]string, 0, len(providers))
	for name := range providers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// NewSource builds a source. Its errors are meant for the provider and
// secret settings of the source's configuration.
func NewSource(c SourceConfig) (Source, error) {
	p, ok := providers[c.Provider]
	if !ok {
		return Source{}, fmt.Errorf("unknown provider %q: one of %s", c.Provider, strings.Join(Providers(), ", "))
	}
	s := Source{Name: c.Name, Path: c.Path}
	if err := p.build(c, &s); err != nil {
		return Source{}, err
	}
	return s, nil
}

// Sign returns the headers with which provider would sign body, for the
// send command and tests.
func Sign(providerName, secret string, body []byte) (http.Header, error) {
	p, ok := providers[providerName]
	if !ok || p.sign == nil {
		return nil, fmt.Errorf("cannot sign for provider %q", providerName)
	}
	return p.sign(secret, body), nil
}
