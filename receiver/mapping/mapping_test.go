package mapping

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/receiver/inbound"
)

var now = time.Date(2026, 11, 21, 14, 32, 9, 0, time.UTC)

func req(body string, h http.Header) *inbound.Request {
	u, _ := url.Parse("https://x/hooks/acme?tenant=t1")
	return &inbound.Request{Body: []byte(body), Header: h, Method: "POST", URL: u, ReceivedAt: now}
}

var issueMap = map[string]string{
	"eventType": `headers["X-Event"]`,
	"id":        `body.id`,
	"subject":   `body.conversation?.id`,
	"timestamp": `body.created_at`,
	"data":      `body.payload`,
	"agentId":   `query.tenant`,
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	m, err := Compile(issueMap)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := m.Normalize(req(`{"id":12345678901234567890,"conversation":{"id":"c1"},"created_at":1763735528,"payload":{"b":1,"a":"é<>"}}`,
		http.Header{"X-Event": {"conversation.updated"}}))
	if err != nil {
		t.Fatal(err)
	}
	if ev.EventType != "conversation.updated" || ev.DedupKey != "id:12345678901234567890" || ev.Subject != "c1" ||
		ev.AgentID != "t1" || !ev.Timestamp.Equal(time.Unix(1763735528, 0)) || string(ev.Data) != `{"a":"é<>","b":1}` {
		t.Fatalf("event = %+v data %s", ev, ev.Data)
	}
	// lower-case header names work too; an absent optional path is empty.
	ev, err = m.Normalize(req(`{"id":"x"}`, http.Header{"X-Event": {"a"}}))
	if err != nil || ev.Subject != "" || ev.Data != nil {
		t.Fatalf("optional fields: %+v, %v", ev, err)
	}
	for _, tc := range []struct {
		body  string
		h     http.Header
		field string
	}{
		{`{"id":"x"}`, http.Header{}, "eventType"},
		{`{"id":"x","payload":[1]}`, http.Header{"X-Event": {"a"}}, "data"},
		{`{"id":{"n":1}}`, http.Header{"X-Event": {"a"}}, "id"},
		{`{"created_at":"soon"}`, http.Header{"X-Event": {"a"}}, "timestamp"},
		{`{"id":`, http.Header{"X-Event": {"a"}}, ""},
	} {
		_, err := m.Normalize(req(tc.body, tc.h))
		var ferr *inbound.FieldError
		if !errors.As(err, &ferr) || ferr.Field != tc.field {
			t.Errorf("%s: err = %v, want a 400 naming %q", tc.body, err, tc.field)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	_, err := Compile(map[string]string{"eventTyp": "body.type", "id": "body.id +", "data": ""})
	for _, want := range []string{`eventTyp: unknown field`, "id: unexpected token EOF", "data: empty", "eventType: missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	var merr *Error
	if !errors.As(err, &merr) {
		t.Fatalf("not an *Error: %v", err)
	}
}

func FuzzNormalize(f *testing.F) {
	f.Add([]byte(`{"id":1,"conversation":{"id":"c"},"created_at":"2026-01-01T00:00:00Z","payload":{}}`), "x")
	f.Add([]byte(`[]`), "")
	f.Add([]byte(`{"payload":null,"created_at":-1}`), "e")
	m, err := Compile(issueMap)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, event string) {
		ev, err := m.Normalize(req(string(body), http.Header{"X-Event": {event}}))
		if err != nil {
			return
		}
		if ev.EventType == "" || ev.DedupKey == "" {
			t.Fatalf("event without type or dedup key: %+v", ev)
		}
		if _, err := ev.Env(); err != nil {
			t.Fatalf("data does not decode: %v", err)
		}
	})
}

// TestHelpers: lang's helper functions work in map: too.
func TestHelpers(t *testing.T) {
	t.Parallel()
	m, err := Compile(map[string]string{
		"eventType": `matchType(lookup(body, "meta.kind", ""), "ticket.*") ? body.meta.kind : "other"`,
		"subject":   `lookup(body, "items.0.id", "none")`,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ body, typ, subject string }{
		{`{"meta":{"kind":"ticket.created"},"items":[{"id":"t1"}]}`, "ticket.created", "t1"},
		{`{"meta":{"kind":"user.created"},"items":[]}`, "other", "none"},
		{`{"meta":"flat"}`, "other", "none"},
	} {
		ev, err := m.Normalize(req(tc.body, http.Header{}))
		if err != nil || ev.EventType != tc.typ || ev.Subject != tc.subject {
			t.Errorf("%s: %+v, %v; want %s %s", tc.body, ev, err, tc.typ, tc.subject)
		}
	}
}
