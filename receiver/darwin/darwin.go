// Package darwin verifies and normalizes webhooks from Darwin, the AI
// agent platform for WhatsApp conversations.
//
// Darwin signs each request with X-SIGNATURE: the hex HMAC-SHA256 of the
// body, keyed with the webhook's secret. Its documentation computes the
// HMAC over JSON.stringify(request.body), the compact serialization it
// sends, so the raw bytes received are what is verified.
package darwin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
)

// SignatureHeader carries the signature.
const SignatureHeader = "X-Signature"

// Verification failures; both answer 401.
var (
	ErrMissingSignature = errors.New("missing X-SIGNATURE header")
	ErrBadSignature     = errors.New("signature does not match")
)

// Sign returns the X-SIGNATURE value for body: lowercase hex HMAC-SHA256.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// Verify checks signature, the X-SIGNATURE header, against body under
// each secret (several while rotating). Hex is decoded before comparing,
// so upper- and lowercase digits are equally accepted: they encode the
// same bytes. The comparison is constant-time.
func Verify(secrets [][]byte, signature string, body []byte) error {
	signature = strings.TrimSpace(signature)
	if signature == "" {
		return ErrMissingSignature
	}
	var got [sha256.Size]byte
	if hex.DecodedLen(len(signature)) != len(got) {
		return ErrBadSignature
	}
	if _, err := hex.Decode(got[:], []byte(signature)); err != nil {
		return ErrBadSignature
	}
	ok := false
	for _, secret := range secrets {
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		// Check every secret: which one matched is not to be timed.
		if hmac.Equal(mac.Sum(nil), got[:]) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	return nil
}

// FieldError is a payload field that is missing or malformed; it
// answers 400 naming the field.
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

type payload struct {
	EventType json.RawMessage `json:"eventType"`
	Timestamp json.RawMessage `json:"timestamp"`
	AgentID   json.RawMessage `json:"agentId"`
	AgentName json.RawMessage `json:"agentName"`
	Data      json.RawMessage `json:"data"`
}

// Normalize maps a Darwin payload to the event model:
//
//   - eventType (required) → EventType
//   - timestamp (RFC 3339 text, or Unix seconds or milliseconds) →
//     Timestamp; when absent, receivedAt
//   - agentId, agentName → AgentID, AgentName (numbers kept as text)
//   - data → Data, as sent; data.sessionId → Subject
//
// The dedup key is the SHA-256 of the body: Darwin has no event id, and
// a retry repeats the same bytes. ID and Source are left to the caller.
func Normalize(body []byte, receivedAt time.Time) (*event.Event, error) {
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field == "" {
			return nil, &FieldError{Msg: "body must be a JSON object"}
		}
		return nil, &FieldError{Msg: "body is not valid JSON"}
	}
	ev := &event.Event{ReceivedAt: receivedAt}
	var err error
	if ev.EventType, err = text(p.EventType); err != nil || ev.EventType == "" {
		return nil, &FieldError{Field: "eventType", Msg: "missing; Darwin events name their type, such as session.opened"}
	}
	if ev.Timestamp, err = timestamp(p.Timestamp, receivedAt); err != nil {
		return nil, &FieldError{Field: "timestamp", Msg: err.Error()}
	}
	if ev.AgentID, err = text(p.AgentID); err != nil {
		return nil, &FieldError{Field: "agentId", Msg: err.Error()}
	}
	if ev.AgentName, err = text(p.AgentName); err != nil {
		return nil, &FieldError{Field: "agentName", Msg: err.Error()}
	}
	if len(p.Data) > 0 && string(p.Data) != "null" {
		if p.Data[0] != '{' {
			return nil, &FieldError{Field: "data", Msg: "must be a JSON object"}
		}
		var d struct {
			SessionID json.RawMessage `json:"sessionId"`
		}
		if err := json.Unmarshal(p.Data, &d); err != nil {
			return nil, &FieldError{Field: "data", Msg: "must be a JSON object"}
		}
		if ev.Subject, err = text(d.SessionID); err != nil {
			return nil, &FieldError{Field: "data.sessionId", Msg: err.Error()}
		}
		ev.Data = p.Data
	}
	sum := sha256.Sum256(body)
	ev.DedupKey = "sha256:" + hex.EncodeToString(sum[:])
	return ev, nil
}

// text reads a JSON string or number as text; null and absent are "".
func text(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", errors.New("invalid string")
		}
		return s, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), nil
	}
	return "", errors.New("must be a string or a number")
}

var layouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999", // no zone: UTC
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

// timestamp reads RFC 3339 text or a Unix time in seconds or, when it is
// too large to be seconds (after year 5138), milliseconds.
func timestamp(raw json.RawMessage, fallback time.Time) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return fallback, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, errors.New("invalid string")
		}
		for _, layout := range layouts {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("cannot read %q as a time: want RFC 3339, such as 2026-01-02T15:04:05Z", s)
	}
	n, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || n < 0 || n >= 1e15 {
		return time.Time{}, errors.New("must be RFC 3339 text or a Unix time in seconds or milliseconds")
	}
	if n >= 1e11 {
		return time.UnixMilli(int64(n)).UTC(), nil
	}
	sec := int64(n)
	return time.Unix(sec, int64((n-float64(sec))*1e9)).UTC(), nil
}
