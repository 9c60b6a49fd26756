package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchyard/switchyard/sinks"
)

// send delivers ev's escalated fixture through a sink with opts (its URL
// set to a test server) and returns the request the server got.
func sendOne(t *testing.T, opts Options) request {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rec.record(r) }))
	t.Cleanup(srv.Close)
	opts.URL = srv.URL + opts.URL
	s := mustNew(t, opts)
	ev, _ := escalated(t)
	if err := s.Send(t.Context(), &sinks.Delivery{ID: "dlv_1", Attempt: 1, Event: ev}); err != nil {
		t.Fatal(err)
	}
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("server got %d requests", len(reqs))
	}
	return reqs[0]
}

func TestCloudEventsStructured(t *testing.T) {
	t.Parallel()
	ev, fixtureData := escalated(t)
	r := sendOne(t, Options{URL: "/events", Format: FormatCloudEvents})

	if got := r.header.Get("Content-Type"); got != "application/cloudevents+json" {
		t.Errorf("Content-Type = %q", got)
	}
	for name := range r.header {
		if len(name) > 3 && name[:3] == "Ce-" {
			t.Errorf("structured mode sent the header %s", name)
		}
	}
	var ce map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &ce); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
	}
	str := func(name string) string {
		var s string
		if err := json.Unmarshal(ce[name], &s); err != nil {
			t.Errorf("%s = %s, want a string", name, ce[name])
		}
		return s
	}
	for name, want := range map[string]string{
		"specversion":     "1.0",
		"id":              ev.ID,
		"source":          "darwin-prod",
		"type":            "session.forwarded.escalated",
		"subject":         "6651a0e7c4b2f81d9a3e5c11",
		"datacontenttype": "application/json",
	} {
		if got := str(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	tm, err := time.Parse(time.RFC3339, str("time"))
	if err != nil || !tm.Equal(ev.Timestamp) {
		t.Errorf("time = %s (%v), want %s", ce["time"], err, ev.Timestamp)
	}
	if !bytes.Equal(ce["data"], fixtureData) {
		t.Errorf("data is not the fixture's data object:\n got %s\nwant %s", ce["data"], fixtureData)
	}
	if len(ce) != 8 {
		t.Errorf("%d members, want 8: %s", len(ce), r.body)
	}
}

func TestCloudEventsBinary(t *testing.T) {
	t.Parallel()
	ev, fixtureData := escalated(t)
	r := sendOne(t, Options{URL: "/events", Format: FormatCloudEventsBinary, Method: "PUT"})

	if r.method != http.MethodPut {
		t.Errorf("method = %s", r.method)
	}
	for name, want := range map[string]string{
		"ce-specversion": "1.0",
		"ce-id":          ev.ID,
		"ce-source":      "darwin-prod",
		"ce-type":        "session.forwarded.escalated",
		"ce-subject":     "6651a0e7c4b2f81d9a3e5c11",
		"ce-time":        "2026-11-21T14:32:08.512Z",
		"Content-Type":   "application/json",
	} {
		if got := r.header.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want [%q]", name, got, want)
		}
	}
	if v := r.header.Values("ce-datacontenttype"); len(v) != 0 {
		t.Errorf("ce-datacontenttype = %q; binary mode carries it in Content-Type only", v)
	}
	if !bytes.Equal(r.body, fixtureData) {
		t.Errorf("body is not the fixture's data object:\n got %s\nwant %s", r.body, fixtureData)
	}

	// A shaped body is the data, with its own content type.
	r = sendOne(t, Options{URL: "/events", Format: FormatCloudEventsBinary, ContentType: "text/plain", Body: "{{ data.forwardedToName }}"})
	if r.header.Get("Content-Type") != "text/plain" || string(r.body) != "Carla Mendes (Supervisora)" {
		t.Errorf("shaped binary event: %q %q", r.header.Get("Content-Type"), r.body)
	}
}

// Header values are percent-encoded as the HTTP binding asks, with its
// own example.
func TestCloudEventsHeaderEncoding(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Euro € 😀":           "Euro%20%E2%82%AC%20%F0%9F%98%80",
		`say "hi" 100%`:      "say%20%22hi%22%20100%25",
		"plain-ascii_1.2:3/": "plain-ascii_1.2:3/",
		"tab\tand\nnewline":  "tab%09and%0Anewline",
	} {
		if got := ceHeader(in); got != want {
			t.Errorf("ceHeader(%q) = %q, want %q", in, got, want)
		}
	}
}
