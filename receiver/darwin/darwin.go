// Package darwin verifies and normalizes webhooks from Darwin, the AI
// agent platform for WhatsApp conversations.
//
// Darwin signs each request with X-SIGNATURE: the hex HMAC-SHA256 of the
// body, keyed with the webhook's secret. Its documentation computes the
// HMAC over JSON.stringify(request.body), the compact serialization it
// sends, so the raw bytes received are what is verified.
package darwin

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/receiver/rawjson"
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

// Normalize maps a Darwin payload to the event model:
//
//   - eventType (required) → EventType
//   - timestamp (RFC 3339 text, or Unix seconds or milliseconds) →
//     Timestamp; when absent, receivedAt
//   - agentId, agentName → AgentID, AgentName (numbers kept as text)
//   - data → Data, as sent; data.sessionId → Subject
//   - id, which Darwin does not document, → ExternalID when present
//
// Only those top-level members are decoded; data is kept as the slice of
// body it occupies, so it is neither copied nor re-encoded (the event
// aliases body). Keys match exactly; when one repeats, the last wins (for
// data.sessionId, the first).
//
// The dedup key is the SHA-256 of the body: Darwin has no event id, and
// a retry repeats the same bytes. ID and Source are left to the caller.
func Normalize(body []byte, receivedAt time.Time) (*event.Event, error) {
	var eventType, ts, agentID, agentName, data, id []byte
	it := rawjson.Members(body)
	for it.Next() {
		switch string(it.Key()) {
		case "eventType":
			eventType = it.Value()
		case "id":
			id = it.Value()
		case "timestamp":
			ts = it.Value()
		case "agentId":
			agentID = it.Value()
		case "agentName":
			agentName = it.Value()
		case "data":
			data = it.Value()
		default:
			// Escaped keys ("event\u0054ype") are rare; decode them only here.
			if bytes.IndexByte(it.Key(), '\\') >= 0 {
				for _, f := range []struct {
					name string
					dst  *[]byte
				}{{"eventType", &eventType}, {"timestamp", &ts}, {"agentId", &agentID}, {"agentName", &agentName}, {"data", &data}} {
					if it.KeyIs(f.name) {
						*f.dst = it.Value()
					}
				}
			}
		}
	}
	if err := it.Err(); err != nil {
		return nil, &FieldError{Msg: err.Error()}
	}
	ev := &event.Event{ReceivedAt: receivedAt}
	var err error
	if ev.EventType, err = rawjson.Text(eventType); err != nil || ev.EventType == "" {
		return nil, &FieldError{Field: "eventType", Msg: "missing; Darwin events name their type, such as session.opened"}
	}
	if ev.Timestamp, err = rawjson.Time(ts, receivedAt); err != nil {
		return nil, &FieldError{Field: "timestamp", Msg: err.Error()}
	}
	if ev.AgentID, err = rawjson.Text(agentID); err != nil {
		return nil, &FieldError{Field: "agentId", Msg: err.Error()}
	}
	if ev.AgentName, err = rawjson.Text(agentName); err != nil {
		return nil, &FieldError{Field: "agentName", Msg: err.Error()}
	}
	if !rawjson.IsNull(data) {
		if data[0] != '{' {
			return nil, &FieldError{Field: "data", Msg: "must be a JSON object"}
		}
		// data was validated with the body: stop at the first sessionId
		// rather than scan the rest again.
		var sessionID []byte
		d := rawjson.Members(data)
		for d.Next() {
			if d.KeyIs("sessionId") {
				sessionID = d.Value()
				break
			}
		}
		if ev.Subject, err = rawjson.Text(sessionID); err != nil {
			return nil, &FieldError{Field: "data.sessionId", Msg: err.Error()}
		}
		ev.Data = data
	}
	// Darwin's documented payload has no id; one sent anyway is shown as
	// the platform's id, but retries are still recognized by the body.
	ev.ExternalID, _ = rawjson.Text(id)
	ev.DedupKey = DedupKey(body)
	return ev, nil
}

// DedupKey is "sha256:" and the hex SHA-256 of body: how a sender's retry
// of the same bytes is recognized when it carries no event id.
func DedupKey(body []byte) string {
	sum := sha256.Sum256(body)
	var buf [len("sha256:") + 2*sha256.Size]byte
	n := copy(buf[:], "sha256:")
	hex.Encode(buf[n:], sum[:])
	return string(buf[:])
}
