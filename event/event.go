// Package event defines Switchyard's common event model: what every
// source normalizes into, what rules see, and what sinks deliver.
package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// Event is one webhook event after verification and normalization.
//
// Data holds the payload's data object exactly as the sender wrote it, so
// sinks can forward it without re-encoding numbers or unicode.
type Event struct {
	ID        string    `json:"id"`
	Source    string    `json:"source"`
	EventType string    `json:"eventType"`
	Timestamp time.Time `json:"timestamp"`
	AgentID   string    `json:"agentId,omitempty"`
	AgentName string    `json:"agentName,omitempty"`
	Subject   string    `json:"subject,omitempty"`
	// ExternalID is the id the platform gave the event (Darwin's event
	// id when it sends one, the id of an {id, type, payload} envelope),
	// so it can be found in the platform's own logs. Empty when the
	// platform gives none.
	ExternalID string          `json:"externalId,omitempty"`
	ReceivedAt time.Time       `json:"receivedAt"`
	Data       json.RawMessage `json:"data"`

	// DedupKey identifies a repeated delivery of the same event by its
	// sender (the provider's event id, or a hash of the raw body). It is
	// stored with the event but is not part of the public model.
	DedupKey string `json:"-"`

	// Request is the HTTP request the event came in, as received, for
	// operators to inspect: stored with the event, never delivered. Nil
	// for an event that came in no request (a dry run).
	Request *Request `json:"-"`
}

// Request is an event's HTTP request as stored.
type Request struct {
	// Body is the body's exact bytes.
	Body []byte
	// Header is the request's headers, "Name: value" a line, by name;
	// headers that may carry a secret (signatures, authorization,
	// tokens, keys, cookies) are left out before the event is stored.
	Header string
}

// Env is the environment rule expressions and templates are evaluated
// against. Field names follow the JSON model.
type Env struct {
	ID         string         `expr:"id"`
	Source     string         `expr:"source"`
	EventType  string         `expr:"eventType"`
	Timestamp  time.Time      `expr:"timestamp"`
	AgentID    string         `expr:"agentId"`
	AgentName  string         `expr:"agentName"`
	Subject    string         `expr:"subject"`
	ExternalID string         `expr:"externalId"`
	Data       map[string]any `expr:"data"`
	ReceivedAt time.Time      `expr:"receivedAt"`
}

// Env decodes the event's data object and returns the expression
// environment. A missing or null data object gives an empty map, so
// `data.x` is nil rather than an error.
func (e *Event) Env() (*Env, error) {
	env := &Env{
		ID:         e.ID,
		Source:     e.Source,
		EventType:  e.EventType,
		Timestamp:  e.Timestamp,
		AgentID:    e.AgentID,
		AgentName:  e.AgentName,
		Subject:    e.Subject,
		ExternalID: e.ExternalID,
		ReceivedAt: e.ReceivedAt,
	}
	data, err := DecodeData(e.Data)
	if err != nil {
		return nil, err
	}
	env.Data = data
	return env, nil
}

// DecodeData decodes a data object for expression evaluation. Numbers
// become float64, as in JavaScript.
func DecodeData(raw json.RawMessage) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return map[string]any{}, nil
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		return nil, fmt.Errorf("decode data: %w", err)
	}
	if data == nil {
		data = map[string]any{}
	}
	return data, nil
}

// JSON encodes the event without HTML escaping, so payload text reaches
// downstream services as the sender wrote it (json.Marshal would turn
// "<" into "\u003c", even inside Data); Data is compacted, as
// encoding/json does with a json.RawMessage. Use it, not json.Marshal,
// wherever an event leaves the process.
func (e *Event) JSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 256+len(e.Data)))
}

// WriteJSON writes the event as one line of JSON, as JSON does.
func (e *Event) WriteJSON(w io.Writer) error {
	b, err := e.AppendJSON(make([]byte, 0, 256+len(e.Data)))
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// AppendJSON appends the event's JSON, as JSON gives it, to b. It writes
// what encoding/json would (TestAppendJSONMatchesEncodingJSON), without
// reflection and without re-validating Data, which every source
// produces from parsed JSON.
func (e *Event) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"source":`...)
	b = appendString(b, e.Source)
	b = append(b, `,"eventType":`...)
	b = appendString(b, e.EventType)
	b = append(b, `,"timestamp":`...)
	b, err := appendTime(b, e.Timestamp)
	if err != nil {
		return nil, fmt.Errorf("encode event timestamp: %w", err)
	}
	if e.AgentID != "" {
		b = append(b, `,"agentId":`...)
		b = appendString(b, e.AgentID)
	}
	if e.AgentName != "" {
		b = append(b, `,"agentName":`...)
		b = appendString(b, e.AgentName)
	}
	if e.Subject != "" {
		b = append(b, `,"subject":`...)
		b = appendString(b, e.Subject)
	}
	if e.ExternalID != "" {
		b = append(b, `,"externalId":`...)
		b = appendString(b, e.ExternalID)
	}
	b = append(b, `,"receivedAt":`...)
	if b, err = appendTime(b, e.ReceivedAt); err != nil {
		return nil, fmt.Errorf("encode event receivedAt: %w", err)
	}
	b = append(b, `,"data":`...)
	data := bytes.TrimSpace(e.Data)
	switch {
	case len(data) == 0:
		b = append(b, "null"...)
	case isCompact(data):
		b = append(b, data...)
	default:
		var buf bytes.Buffer
		if err := json.Compact(&buf, data); err != nil {
			return nil, fmt.Errorf("encode event data: %w", err)
		}
		b = append(b, buf.Bytes()...)
	}
	return append(b, '}'), nil
}

func appendTime(b []byte, t time.Time) ([]byte, error) {
	j, err := t.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return append(b, j...), nil
}

// isCompact reports whether JSON text has no whitespace outside its
// strings.
func isCompact(data []byte) bool {
	in, esc := false, false
	for _, c := range data {
		switch {
		case esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	return true
}

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it without HTML escaping.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return appendStringSlow(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendStringSlow(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
