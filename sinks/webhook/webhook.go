// Package webhook is the http sink: it POSTs each event, as normalized
// JSON, to a URL.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/sinks"
)

// Headers set on every request. DeliveryHeader and IdempotencyHeader
// carry the delivery id, the same on every attempt and replay of a
// delivery, so receivers can drop repeats.
const (
	DeliveryHeader    = "X-Switchyard-Delivery"
	IdempotencyHeader = "Idempotency-Key"
	EventHeader       = "X-Switchyard-Event"
	AttemptHeader     = "X-Switchyard-Attempt"
)

// Options configures a sink.
type Options struct {
	URL string
	// Headers are added to each request (for example Authorization).
	Headers map[string]string
	// Client sends the requests; sinks.NewHTTPClient() when nil.
	Client *http.Client
	// UserAgent identifies Switchyard to the receiver.
	UserAgent string
}

// Sink posts events to a URL.
type Sink struct {
	url     string
	headers http.Header
	client  *http.Client
	secrets []string
}

var _ sinks.Sink = (*Sink)(nil)

// New returns a sink for opts.
func New(opts Options) *Sink {
	s := &Sink{url: opts.URL, headers: http.Header{}, client: opts.Client}
	if s.client == nil {
		s.client = sinks.NewHTTPClient()
	}
	for k, v := range opts.Headers {
		s.headers.Set(k, v)
		s.secrets = append(s.secrets, v)
	}
	s.secrets = append(s.secrets, opts.URL) // may carry a token in its query
	s.headers.Set("Content-Type", "application/json")
	if opts.UserAgent != "" {
		s.headers.Set("User-Agent", opts.UserAgent)
	}
	return s
}

// Preview returns the body Send would POST for ev: the normalized event
// as JSON.
func (s *Sink) Preview(ev *event.Event) (any, error) {
	body, err := ev.JSON()
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return json.RawMessage(body), nil
}

// maxErrorBody is how much of an error response is kept for the
// delivery record.
const maxErrorBody = 512

// Send POSTs the event. 2xx is delivered; see sinks.HTTPError for how
// other statuses are classified.
func (s *Sink) Send(ctx context.Context, d *sinks.Delivery) error {
	body, err := d.Event.JSON()
	if err != nil {
		return sinks.Permanent(fmt.Errorf("encode event: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return sinks.Permanent(sinks.Redact(fmt.Errorf("build request: %w", err), s.secrets...))
	}
	req.Header = s.headers.Clone()
	req.Header.Set(DeliveryHeader, d.ID)
	req.Header.Set(IdempotencyHeader, d.ID)
	req.Header.Set(EventHeader, d.Event.ID)
	req.Header.Set(AttemptHeader, fmt.Sprint(d.Attempt))
	resp, err := s.client.Do(req)
	if err != nil {
		return sinks.Redact(fmt.Errorf("post to %s: %w", sinks.SafeURL(s.url), err), s.secrets...)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection reusable
		return nil
	}
	// Read past the cut by the longest secret, so a secret the receiver
	// echoes across the cut is still whole when it is redacted.
	longest := 0
	for _, secret := range s.secrets {
		longest = max(longest, len(secret))
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, int64(maxErrorBody+longest)))
	text := string(bytes.ToValidUTF8(bytes.TrimSpace(snippet), []byte("?")))
	for _, secret := range s.secrets {
		if secret != "" {
			text = strings.ReplaceAll(text, secret, "<redacted>")
		}
	}
	text = truncate(text, maxErrorBody)
	return &sinks.HTTPError{
		Status: resp.StatusCode,
		After:  sinks.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Body:   text,
	}
}

// Close releases idle connections.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
