package slack

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/switchyard/switchyard/sinks"
)

// APIError is Slack's refusal of a Web API call: an HTTP 200 with
// {"ok": false, "error": Code}.
type APIError struct {
	Code string
}

func (e *APIError) Error() string { return "slack: " + e.Code }

// Retryable reports whether the code is transient: Slack is rate
// limiting or unavailable. Every other code (channel_not_found,
// invalid_auth, not_in_channel, invalid_blocks, …) will not change by
// repeating the request.
func (e *APIError) Retryable() bool { return transientCodes[e.Code] }

// RetryAfter is how long to wait after a rate-limit code, which Slack
// sends without a Retry-After; zero for other codes.
func (e *APIError) RetryAfter() time.Duration {
	if e.Code == "ratelimited" || e.Code == "rate_limited" {
		return rateLimitWait
	}
	return 0
}

// rateLimitWait is the wait after a rate limit that names none.
const rateLimitWait = time.Second

// HTTPStatus is the status Slack answered with: 200.
func (e *APIError) HTTPStatus() int { return http.StatusOK }

// transientCodes are the ok:false codes worth retrying.
var transientCodes = map[string]bool{
	"ratelimited":         true,
	"rate_limited":        true,
	"service_unavailable": true,
	"internal_error":      true,
	"fatal_error":         true,
	"request_timeout":     true,
	"team_added_to_org":   true, // a workspace migration in progress
}

// threadGone reports an error saying the thread to reply in is gone.
func threadGone(err error) bool {
	var api *APIError
	return errors.As(err, &api) && (api.Code == "thread_not_found" || api.Code == "invalid_thread_ts")
}

// paceError is returned when a channel's pace does not allow a post
// before the attempt's deadline: the delivery is retried, not dropped.
type paceError struct {
	channel string
	after   time.Duration
}

func (e *paceError) Error() string {
	return fmt.Sprintf("channel %s is at its pace (channel_rate); next post possible in %s", e.channel, e.after.Round(time.Millisecond))
}
func (e *paceError) Retryable() bool           { return true }
func (e *paceError) RetryAfter() time.Duration { return e.after }

// classify maps slack-go's errors to errors delivery classifies (see
// sinks.HTTPError), with the credentials removed from their text.
func classify(err error, secrets ...string) error {
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
	var resp slackapi.SlackErrorResponse
	if errors.As(err, &resp) {
		return &APIError{Code: resp.Err}
	}
	// Network errors name the URL, which for a webhook is the credential.
	return sinks.Redact(err, secrets...)
}
