// Package event defines Switchyard's common event model: what every
// source normalizes into, what rules see, and what sinks deliver.
package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Event is one webhook event after verification and normalization.
//
// Data holds the payload's data object exactly as the sender wrote it, so
// sinks can forward it without re-encoding numbers or unicode.
type Event struct {
	ID         string          `json:"id"`
	Source     string          `json:"source"`
	EventType  string          `json:"eventType"`
	Timestamp  time.Time       `json:"timestamp"`
	AgentID    string          `json:"agentId,omitempty"`
	AgentName  string          `json:"agentName,omitempty"`
	Subject    string          `json:"subject,omitempty"`
	ReceivedAt time.Time       `json:"receivedAt"`
	Data       json.RawMessage `json:"data"`

	// DedupKey identifies a repeated delivery of the same event by its
	// sender (the provider's event id, or a hash of the raw body). It is
	// stored with the event but is not part of the public model.
	DedupKey string `json:"-"`
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
// downstream services byte for byte as the sender wrote it (json.Marshal
// would turn "<" into "\u003c", even inside Data). Use it, not
// json.Marshal, wherever an event leaves the process.
func (e *Event) JSON() ([]byte, error) {
	var buf bytes.Buffer
	if err := e.WriteJSON(&buf); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// WriteJSON writes the event as one line of JSON, as JSON does.
func (e *Event) WriteJSON(w io.Writer) error {
	p := *e
	if len(bytes.TrimSpace(p.Data)) == 0 {
		p.Data = json.RawMessage("null")
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(p)
}
