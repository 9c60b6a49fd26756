package delivery

import (
	"errors"
	"math/rand/v2"
	"time"
)

// Policy is a sink's retry policy.
type Policy struct {
	// MaxAttempts dead-letters a delivery after this many attempts; 0 is
	// no limit.
	MaxAttempts    int
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxAge dead-letters a delivery this long after it was accepted.
	MaxAge time.Duration
}

// minBackoff keeps full jitter from retrying in a tight loop.
const minBackoff = 50 * time.Millisecond

// Backoff returns the wait before the attempt after attempt (1-based):
// exponential, capped at MaxBackoff, with full jitter (uniform between 0
// and the cap) so that many failing deliveries do not retry in step.
func (p Policy) Backoff(attempt int) time.Duration {
	ceiling := p.InitialBackoff
	for i := 1; i < attempt && ceiling < p.MaxBackoff; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, p.MaxBackoff)
	if ceiling <= minBackoff {
		return minBackoff
	}
	return minBackoff + rand.N(ceiling-minBackoff)
}

// retryable reports whether err may succeed if tried again. Errors say
// so with Retryable() bool (sinks.HTTPError, slack-go's errors,
// sinks.Permanent); any other error, such as a network failure or a
// timeout, is transient.
func retryable(err error) bool {
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	return true
}

// retryAfter is the wait the destination asked for, if any.
func retryAfter(err error) time.Duration {
	var r interface{ RetryAfter() time.Duration }
	if errors.As(err, &r) {
		return r.RetryAfter()
	}
	return 0
}

// status is the HTTP status behind err, if any.
func status(err error) int {
	var s interface{ HTTPStatus() int }
	if errors.As(err, &s) {
		return s.HTTPStatus()
	}
	return 0
}
