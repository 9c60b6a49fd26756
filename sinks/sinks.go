// Package sinks defines what a destination is (Sink) and the helpers
// every destination shares: error classification for retries, Retry-After
// parsing, an HTTP client, and redaction of credentials from errors.
package sinks

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
)

// Delivery is one attempt to deliver an event to a sink.
type Delivery struct {
	// ID is stable across the attempts of a delivery, for receivers to
	// deduplicate.
	ID      string
	Attempt int
	Event   *event.Event
}

// Sink is a destination. Send returns nil once the destination has the
// event. Errors are retried unless they are permanent: see Permanent and
// HTTPError. Close releases the sink's resources.
type Sink interface {
	Send(ctx context.Context, d *Delivery) error
	Close() error
}

// Opener is implemented by sinks that must open a resource (a file, a
// database) before the first Send.
type Opener interface {
	Open(ctx context.Context) error
}

// Permanent marks err as not worth retrying: the delivery is
// dead-lettered at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Retryable() bool { return false }

// HTTPError is a response outside 2xx.
type HTTPError struct {
	Status int
	// After is the wait the response asked for (Retry-After), if any.
	After time.Duration
	// Body is the start of the response body, for the delivery record.
	Body string
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("HTTP %d", e.Status)
	if text := http.StatusText(e.Status); text != "" {
		msg += " " + text
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Retryable reports whether the status is worth retrying: 408, 425,
// 429 and 5xx are; other statuses will not change on their own.
func (e *HTTPError) Retryable() bool { return RetryableStatus(e.Status) }

// RetryAfter is the wait the response asked for.
func (e *HTTPError) RetryAfter() time.Duration { return e.After }

// HTTPStatus is the response's status.
func (e *HTTPError) HTTPStatus() int { return e.Status }

// RetryableStatus reports whether an HTTP status is transient.
func RetryableStatus(status int) bool {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return true
	case status >= 500:
		return true
	}
	return false
}

// maxRetryAfter caps the wait a destination can ask for.
const maxRetryAfter = 7 * 24 * time.Hour

// ParseRetryAfter reads a Retry-After value: seconds or an HTTP date.
// Unparseable or past values give 0; waits are capped at 7 days.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return min(time.Duration(min(secs, int64(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}

// Redact returns err with every occurrence of the secrets replaced by
// "<redacted>" in its message. The original stays reachable with
// errors.As for classification (timeouts, statuses), but printing the
// returned error never shows the secrets.
func Redact(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "<redacted>")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// SafeURL returns u without credentials, query or fragment, for messages.
func SafeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid URL>"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// NewHTTPClient returns a client for deliveries: connections are reused,
// the proxy comes from the environment (HTTPS_PROXY, NO_PROXY), TLS is
// 1.2 or newer, and redirects are not followed (a POST must not be
// silently re-sent elsewhere; a 3xx is reported as an error). Each
// attempt's deadline comes from its context.
func NewHTTPClient() *http.Client {
	c, _ := NewHTTPClientWith(HTTPOptions{}) // nothing to load: cannot fail
	return c
}

// HTTPOptions adjusts the client NewHTTPClientWith returns.
type HTTPOptions struct {
	// CAFile is a PEM file of the certificate authorities to trust
	// instead of the system's (a private CA).
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key,
	// presented to servers that ask for one (mutual TLS).
	CertFile, KeyFile string
	// InsecureSkipVerify accepts any server certificate. Anyone on the
	// path can then read and change deliveries: for tests only.
	InsecureSkipVerify bool
	// FollowRedirects follows up to MaxRedirects redirects that keep the
	// method and body (307, 308) on the same host, never from https to
	// http. Others are reported as the 3xx they are.
	FollowRedirects bool
}

// MaxRedirects bounds the redirects a client with FollowRedirects takes
// for one request.
const MaxRedirects = 5

// NewHTTPClientWith is NewHTTPClient with TLS and redirect options. It
// reads the files now, so a missing or malformed one fails at load.
func NewHTTPClientWith(o HTTPOptions) (*http.Client, error) {
	tlsc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, &OptionError{Field: "ca_file", Err: fmt.Errorf("read CA file: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &OptionError{Field: "ca_file", Err: fmt.Errorf("no PEM certificate in %s", o.CAFile)}
		}
		tlsc.RootCAs = pool
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, &OptionError{Field: "client_cert_file", Err: fmt.Errorf("load client certificate: %w", err)}
		}
		tlsc.Certificates = []tls.Certificate{cert}
	case o.CertFile != "":
		return nil, &OptionError{Field: "client_key_file", Err: errors.New("missing: a client certificate needs its key")}
	case o.KeyFile != "":
		return nil, &OptionError{Field: "client_cert_file", Err: errors.New("missing: a client key needs its certificate")}
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       tlsc,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   64, // up to a sink's concurrency, kept open
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}
	c := &http.Client{Transport: tr, CheckRedirect: noRedirects}
	if o.FollowRedirects {
		c.CheckRedirect = sameMethodRedirects
	}
	return c, nil
}

// OptionError is an HTTPOptions setting that cannot be used; Field names
// its configuration key.
type OptionError struct {
	Field string
	Err   error
}

func (e *OptionError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// sameMethodRedirects follows a redirect only if it re-sends the same
// request to the same host: a 301, 302 or 303 turns a POST into a
// bodyless GET, which would count as delivered without delivering
// anything; and a redirect carries the configured headers (an API key)
// and the signature along, which another host must not receive (Go's
// client drops only Authorization and Cookie).
func sameMethodRedirects(req *http.Request, via []*http.Request) error {
	first := via[0]
	switch {
	case len(via) > MaxRedirects,
		req.Method != first.Method,
		!strings.EqualFold(req.URL.Host, first.URL.Host),
		first.URL.Scheme == "https" && req.URL.Scheme != "https":
		return http.ErrUseLastResponse
	}
	return nil
}

// MarshalJSON is json.Marshal without HTML escaping, as event.JSON:
// text from events reaches destinations as its sender wrote it ("<",
// "&" and "Ω" as they are, not \u003c).
func MarshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// IsTimeout reports whether err is a timeout (an attempt's deadline or a
// network timeout).
func IsTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
