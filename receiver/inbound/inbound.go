// Package inbound is a received webhook request as verifiers and
// normalizers see it: plain values copied out of the HTTP server, so no
// server type (and none of its reused buffers) crosses this line.
package inbound

import (
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// Request is one received webhook request.
type Request struct {
	// Body is the exact bytes received; signatures are checked over it.
	Body []byte
	// Header holds every value of every header, keys in canonical form
	// (X-Signature), values in the order received.
	Header http.Header
	Method string
	// URL is the request as the server saw it: scheme, Host header, path
	// and raw query. Behind a proxy the scheme and host may differ from
	// what the sender used; verifiers that sign the URL take the public
	// URL from configuration.
	URL *url.URL
	// RemoteIP is the TCP peer's address (a proxy, when there is one).
	RemoteIP   netip.Addr
	ReceivedAt time.Time
}

// Get returns the first value of a header, or "".
func (r *Request) Get(name string) string {
	if r.Header == nil {
		return ""
	}
	return r.Header.Get(name)
}

// Values returns every value of a header, in the order received.
func (r *Request) Values(name string) []string {
	if r.Header == nil {
		return nil
	}
	return r.Header.Values(name)
}

// Query returns the URL's query parameters.
func (r *Request) Query() url.Values {
	if r.URL == nil {
		return url.Values{}
	}
	return r.URL.Query()
}

// FieldError is a payload a normalizer cannot map: a required field
// missing, or a field of the wrong type. It answers 400, naming Field.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}
