package presets

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/receiver/inbound"
	"github.com/switchyard/switchyard/receiver/rawjson"
	"github.com/switchyard/switchyard/receiver/verify"
)

// Reply is a source's own answer to a platform's setup request, sent
// instead of storing an event.
type Reply struct {
	Status      int
	ContentType string
	Body        []byte
}

// ErrNoVerifyToken refuses Meta's subscription check on a source
// configured without verify.verify_token.
var ErrNoVerifyToken = errors.New("no verify.verify_token configured, so Meta's subscription check (GET hub.challenge) cannot be answered: set verify: {verify_token: ...} to the token entered in Meta's dashboard")

// maxChallenge bounds an echoed challenge. Slack's are about 50
// characters, Meta's a decimal number.
const maxChallenge = 256

// safeChallenge reports whether s may be echoed: short, and only the
// letters, digits and -._~ the platforms use.
func safeChallenge(s string) bool {
	if s == "" || len(s) > maxChallenge {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
		default:
			return false
		}
	}
	return true
}

const challengeRule = "missing, or not a token of at most 256 letters, digits and -._~"

// slackHandshake answers the Events API's url_verification request, sent
// (signed) when the request URL is entered: 200 {"challenge": ...}.
// Anything else is an event.
func slackHandshake(r *inbound.Request) (*Reply, error) {
	raw, ok, err := rawjson.Get(r.Body, "type")
	if err != nil || !ok {
		return nil, nil // not JSON or untyped: Normalize answers
	}
	if typ, _ := rawjson.String(raw); typ != "url_verification" {
		return nil, nil
	}
	raw, _, _ = rawjson.Get(r.Body, "challenge")
	challenge, err := rawjson.String(raw)
	if err != nil || !safeChallenge(challenge) {
		return nil, fieldErr("challenge", challengeRule)
	}
	body, err := json.Marshal(map[string]string{"challenge": challenge})
	if err != nil {
		return nil, err
	}
	return &Reply{Status: http.StatusOK, ContentType: "application/json", Body: body}, nil
}

// discordHandshake answers Discord's checks of an endpoint: an
// interaction PING ({"type": 1} without an event) wants {"type": 1}
// back, a webhook-events PING ({"type": 0} without an interaction
// token) an empty 204.
func discordHandshake(r *inbound.Request) (*Reply, error) {
	raw, ok, err := rawjson.Get(r.Body, "type")
	if err != nil || !ok {
		return nil, nil
	}
	switch string(raw) {
	case "1":
		if _, isEvent, _ := rawjson.Get(r.Body, "event"); isEvent {
			return nil, nil
		}
		return &Reply{Status: http.StatusOK, ContentType: "application/json", Body: []byte(`{"type":1}`)}, nil
	case "0":
		if _, isInteraction, _ := rawjson.Get(r.Body, "token"); isInteraction {
			return nil, nil
		}
		return &Reply{Status: http.StatusNoContent}, nil
	}
	return nil, nil
}

// metaChallenge answers Meta's subscription check, a GET with
// hub.mode=subscribe, hub.verify_token and hub.challenge: the challenge,
// as text, once the token matches (compared in constant time). allow is
// the source's ip_allow, nil when it has none; token is nil when no
// verify_token is configured.
func metaChallenge(allow, token verify.Verifier) func(r *inbound.Request) (*Reply, error) {
	return func(r *inbound.Request) (*Reply, error) {
		if allow != nil {
			if err := allow.Verify(r); err != nil {
				return nil, err
			}
		}
		if token == nil {
			return nil, ErrNoVerifyToken
		}
		if err := token.Verify(r); err != nil {
			return nil, err
		}
		q := r.Query()
		if mode := q["hub.mode"]; len(mode) != 1 || mode[0] != "subscribe" {
			return nil, fieldErr("hub.mode", "want subscribe")
		}
		challenge := q["hub.challenge"]
		if len(challenge) != 1 || !safeChallenge(challenge[0]) {
			return nil, fieldErr("hub.challenge", challengeRule)
		}
		return &Reply{Status: http.StatusOK, ContentType: "text/plain; charset=utf-8", Body: []byte(challenge[0])}, nil
	}
}

// bodyTime rejects a request whose body carries a timestamp (Unix
// milliseconds) outside tolerance, for platforms that put it in the
// signed body rather than a header (Linear's webhookTimestamp). A body
// without the member passes: the signature still holds, and a replay of
// it is no worse than before the check.
type bodyTime struct {
	member    string
	tolerance time.Duration
}

func (b bodyTime) Verify(r *inbound.Request) error {
	raw, ok, err := rawjson.Get(r.Body, b.member)
	if err != nil || !ok {
		return nil // not JSON: Normalize answers 400
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s is not Unix milliseconds", verify.ErrMalformed, b.member)
	}
	d := r.ReceivedAt.Sub(time.UnixMilli(ms))
	if d > b.tolerance || d < -b.tolerance {
		return fmt.Errorf("%w: %s %s off (tolerance %s)", verify.ErrStale, b.member, d.Round(time.Second), b.tolerance)
	}
	return nil
}
