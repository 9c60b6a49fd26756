// Package slack is the slack sink: it posts a message per event to a
// Slack incoming webhook, through slack-go.
package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	slackapi "github.com/slack-go/slack"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/sinks"
)

// Options configures a sink.
type Options struct {
	// WebhookURL is the incoming webhook; it is a credential and never
	// appears in errors.
	WebhookURL string
	// Text renders the message; DefaultText when nil. Values from the
	// event are escaped for Slack (see Escape).
	Text *lang.Template
	// Client sends the requests; sinks.NewHTTPClient() when nil.
	Client *http.Client
}

// Sink posts to a Slack incoming webhook.
type Sink struct {
	url    string
	text   *lang.Template
	client *http.Client
}

var _ sinks.Sink = (*Sink)(nil)

// New returns a sink for opts.
func New(opts Options) *Sink {
	s := &Sink{url: opts.WebhookURL, text: opts.Text, client: opts.Client}
	if s.client == nil {
		s.client = sinks.NewHTTPClient()
	}
	return s
}

// Render returns the message text for ev.
func (s *Sink) Render(ev *event.Event) (string, error) {
	env, err := ev.Env()
	if err != nil {
		return "", err
	}
	if s.text == nil {
		return DefaultText(env), nil
	}
	return s.text.Render(env, Escape)
}

// Send posts the event's message. Slack's 429 and 5xx are retried
// (honouring Retry-After); other refusals (a revoked webhook, an archived
// channel) are permanent.
func (s *Sink) Send(ctx context.Context, d *sinks.Delivery) error {
	text, err := s.Render(d.Event)
	if err != nil {
		return sinks.Permanent(fmt.Errorf("render text: %w", err))
	}
	err = slackapi.PostWebhookCustomHTTPContext(ctx, s.url, s.client, &slackapi.WebhookMessage{Text: text})
	return s.classify(err)
}

func (s *Sink) classify(err error) error {
	if err == nil {
		return nil
	}
	var rate *slackapi.RateLimitedError
	if errors.As(err, &rate) {
		return &sinks.HTTPError{Status: http.StatusTooManyRequests, After: rate.RetryAfter, Body: "rate limited"}
	}
	var status slackapi.StatusCodeError
	if errors.As(err, &status) {
		return &sinks.HTTPError{Status: status.Code}
	}
	// Network errors name the URL, which is the credential.
	return sinks.Redact(err, s.url, strings.TrimPrefix(s.url, "https://"))
}

// Close releases idle connections.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Escape makes text inert in Slack mrkdwn: "&", "<" and ">" are the
// characters Slack's control sequences (<!channel>, <url|label>) need.
func Escape(s string) string { return escaper.Replace(s) }

// DefaultText is the message when no text template is configured: what
// happened, to which conversation, and where it went.
func DefaultText(env *event.Env) string {
	str := func(key string) string {
		if v, ok := env.Data[key]; ok && v != nil {
			return Escape(lang.Text(v))
		}
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%s*", Escape(env.EventType))
	title := str("conversationTitle")
	if title == "" {
		title = Escape(env.Subject)
	}
	if title != "" {
		fmt.Fprintf(&b, ": %s", title)
	}
	if to := str("forwardedToName"); to != "" {
		fmt.Fprintf(&b, " → %s", to)
	}
	if fn := str("functionName"); fn != "" {
		fmt.Fprintf(&b, " `%s`", fn)
		if st := str("functionStatus"); st != "" {
			fmt.Fprintf(&b, " (%s)", st)
		}
	}
	var meta []string
	if ch := str("channelName"); ch != "" {
		meta = append(meta, ch)
	}
	if ft := str("forwardType"); ft != "" {
		meta = append(meta, ft)
	}
	if env.AgentName != "" {
		meta = append(meta, "agent "+Escape(env.AgentName))
	}
	if len(meta) > 0 {
		fmt.Fprintf(&b, "\n%s", strings.Join(meta, " · "))
	}
	if sum := str("summary"); sum != "" {
		fmt.Fprintf(&b, "\n> %s", strings.ReplaceAll(sum, "\n", "\n> "))
	}
	return b.String()
}
