package webhook

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/sinks"
)

// CloudEvents 1.0 (https://cloudevents.io): the JSON event format for
// the structured mode, the HTTP binding's ce-* headers for the binary one.
const (
	cloudEventsType    = "application/cloudevents+json"
	cloudEventsVersion = "1.0"
)

// cloudEvent is a structured CloudEvent, its attributes in the order the
// specification lists them.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            string          `json:"time,omitempty"`
	Subject         string          `json:"subject,omitempty"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// attributes maps the normalized event to CloudEvents attributes: the
// event id (the same for every sink and attempt, as CloudEvents asks of
// one occurrence), its source's name, its type, when it happened (UTC)
// and its subject.
func attributes(ev *event.Event) cloudEvent {
	ce := cloudEvent{
		SpecVersion: cloudEventsVersion,
		ID:          ev.ID,
		Source:      ev.Source,
		Type:        ev.EventType,
		Subject:     ev.Subject,
	}
	if !ev.Timestamp.IsZero() {
		ce.Time = ev.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	return ce
}

// structured wraps payload, of contentType, in a JSON CloudEvent: JSON
// payloads as the data value, others as a string.
func structured(ev *event.Event, payload []byte, contentType string) ([]byte, error) {
	ce := attributes(ev)
	if len(payload) > 0 {
		ce.DataContentType = contentType
		mt, _, _ := mime.ParseMediaType(contentType)
		if isJSON(mt) {
			if !json.Valid(payload) {
				return nil, errors.New("body: the template did not write valid JSON, which a CloudEvent's data must be with a JSON content_type")
			}
			ce.Data = payload
		} else {
			s, err := sinks.MarshalJSON(string(payload))
			if err != nil {
				return nil, err
			}
			ce.Data = s
		}
	}
	return sinks.MarshalJSON(ce)
}

// binary sets the ce-* headers; the payload is the body and its content
// type the datacontenttype.
func binary(h http.Header, ev *event.Event) {
	ce := attributes(ev)
	h.Set("Ce-Specversion", ce.SpecVersion)
	h.Set("Ce-Id", ceHeader(ce.ID))
	h.Set("Ce-Source", ceHeader(ce.Source))
	h.Set("Ce-Type", ceHeader(ce.Type))
	if ce.Time != "" {
		h.Set("Ce-Time", ce.Time)
	}
	if ce.Subject != "" {
		h.Set("Ce-Subject", ceHeader(ce.Subject))
	}
}

// ceHeader percent-encodes a string attribute for a header, as the HTTP
// binding requires: space, '"', '%' and every byte outside printable
// ASCII.
func ceHeader(v string) string {
	n := 0
	for i := 0; i < len(v); i++ {
		if ceEscaped(v[i]) {
			n++
		}
	}
	if n == 0 {
		return v
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(v) + 2*n)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if ceEscaped(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func ceEscaped(c byte) bool { return c <= ' ' || c >= 0x7f || c == '"' || c == '%' }
