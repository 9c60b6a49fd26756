package webhook

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/sinks"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.http")

// signedAt is the clock of signed requests in tests.
var signedAt = time.Unix(1764000000, 0)

// dump writes r as an HTTP request: method and URL, the headers sorted,
// a blank line, the body byte for byte.
func dump(r *Request) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s\n", r.Method, r.URL)
	names := make([]string, 0, len(r.Header))
	for name := range r.Header {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range r.Header[name] {
			fmt.Fprintf(&b, "%s: %s\n", name, v)
		}
	}
	b.WriteString("\n")
	b.Write(r.Body)
	b.WriteString("\n")
	return b.Bytes()
}

// golden compares got with testdata/name.golden.http; -update rewrites it.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden.http")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered request (go test -update rewrites it):\n%s", path, got)
	}
}

// TestRenderGolden renders the escalated forward with each way of
// shaping a request, as it would be sent.
func TestRenderGolden(t *testing.T) {
	t.Parallel()
	const whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"default", Options{URL: "https://crm.example.com/hooks/darwin", Headers: map[string]string{"Authorization": "Bearer tok-1"}}},
		{"object_body", Options{
			Method: "put",
			URL:    "https://crm.example.com/v2/contacts/{{ data.sessionId }}/notes?agent={{ agentName }}&kind={{ eventType }}",
			Headers: map[string]string{
				"Authorization": "Bearer tok-1",
				"X-Tenant":      "{{ source }}",
				"X-Title":       "{{ data.conversationTitle }}",
			},
			Body: `{"contact": {"phone": data.sessionId, "note": data.summary}, "source": "darwin", "tags": [eventType, agentName], "at": timestamp, "seen": len(data)}`,
		}},
		{"string_body_text", Options{
			URL:         "https://crm.example.com/notes",
			ContentType: "text/plain; charset=utf-8",
			Body:        "{{ data.forwardedToName }} took over {{ data.conversationTitle }}: {{ data.summary }}",
		}},
		{"string_body_json", Options{
			URL:         "https://crm.example.com/notes",
			ContentType: "application/json",
			Body:        `{"text": "{{ data.conversationTitle }}: {{ data.summary }}", "n": {{ len(data) }}}`,
		}},
		{"string_body_form", Options{
			URL:         "https://crm.example.com/notes",
			ContentType: "application/x-www-form-urlencoded",
			Body:        "session={{ data.sessionId }}&note={{ data.summary }}&by={{ data.forwardedToName }}",
		}},
		{"cloudevents", Options{URL: "https://bus.example.com/events", Format: FormatCloudEvents}},
		{"cloudevents_object_body", Options{URL: "https://bus.example.com/events", Format: FormatCloudEvents, Body: `{"session": data.sessionId, "to": data.forwardedToName}`}},
		{"cloudevents_text_body", Options{URL: "https://bus.example.com/events", Format: FormatCloudEvents, ContentType: "text/plain", Body: `{{ data.summary }}`}},
		{"cloudevents_binary", Options{URL: "https://bus.example.com/events", Format: FormatCloudEventsBinary, Method: "PATCH"}},
		{"signed_standard_webhooks", Options{URL: "https://crm.example.com/in", Sign: &Sign{Scheme: SchemeStandardWebhooks, Secrets: []string{whsec}}}},
		{"signed_hmac", Options{URL: "https://crm.example.com/in", Body: `{"session": data.sessionId}`,
			Sign: &Sign{Scheme: SchemeHMAC, Header: "x-signature", Secrets: []string{"darwin-secret"}}}},
		{"signed_hmac_sha512_base64", Options{URL: "https://crm.example.com/in", Format: FormatCloudEvents,
			Sign: &Sign{Scheme: SchemeHMAC, Header: "X-Hub-Signature", Algorithm: "sha512", Encoding: "base64", Prefix: "sha512=", Secrets: []string{"s3cret"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, _ := escalated(t)
			opts := tc.opts
			opts.UserAgent = "switchyard/test"
			opts.Now = func() time.Time { return signedAt }
			s := mustNew(t, opts)
			r, err := s.Render(&sinks.Delivery{ID: "dlv_01JDELIVERY00000000000042", Attempt: 1, Event: ev})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, dump(r))
		})
	}
}

// TestURLDataStaysInThePath renders values that would move a request
// elsewhere if written into the URL as they are: each lands in its path
// segment or query value, and the scheme, host and path prefix stay.
func TestURLDataStaysInThePath(t *testing.T) {
	t.Parallel()
	s := mustNew(t, Options{URL: "https://crm.example.com/v1/contacts/{{ data.id }}?ref={{ data.id }}"})
	for _, tc := range []struct{ id, path, query string }{
		{"../../admin", "/v1/contacts/..%2F..%2Fadmin", "ref=..%2F..%2Fadmin"},
		{"..", "/v1/contacts/%2E%2E", "ref=.."},
		{".", "/v1/contacts/%2E", "ref=."},
		{"@evil.example.com", "/v1/contacts/@evil.example.com", "ref=%40evil.example.com"},
		{"//evil.example.com/x", "/v1/contacts/%2F%2Fevil.example.com%2Fx", "ref=%2F%2Fevil.example.com%2Fx"},
		{"x?admin=1#frag", "/v1/contacts/x%3Fadmin=1%23frag", "ref=x%3Fadmin%3D1%23frag"},
		{"%2e%2e%2f", "/v1/contacts/%252e%252e%252f", "ref=%252e%252e%252f"},
		{`a\..\b`, "/v1/contacts/a%5C..%5Cb", "ref=a%5C..%5Cb"},
		{"evil.example.com:443", "/v1/contacts/evil.example.com:443", "ref=evil.example.com%3A443"},
	} {
		ev, _ := escalated(t)
		ev.Data = []byte(fmt.Sprintf(`{"id": %q}`, tc.id))
		r, err := s.Render(&sinks.Delivery{ID: "d1", Attempt: 1, Event: ev})
		if err != nil {
			t.Fatalf("%q: %v", tc.id, err)
		}
		u, err := url.Parse(r.URL)
		if err != nil {
			t.Fatalf("%q: rendered %q: %v", tc.id, r.URL, err)
		}
		if u.Scheme != "https" || u.Host != "crm.example.com" || u.User != nil {
			t.Errorf("%q: rendered %q goes to %s://%s", tc.id, r.URL, u.Scheme, u.Host)
		}
		if u.EscapedPath() != tc.path || u.RawQuery != tc.query || u.Fragment != "" {
			t.Errorf("%q: path %q query %q, want %q %q", tc.id, u.EscapedPath(), u.RawQuery, tc.path, tc.query)
		}
		if got, _ := url.PathUnescape(strings.TrimPrefix(u.EscapedPath(), "/v1/contacts/")); got != tc.id {
			t.Errorf("%q: the path segment decodes to %q", tc.id, got)
		}
		if got := u.Query().Get("ref"); got != tc.id {
			t.Errorf("%q: the query value decodes to %q", tc.id, got)
		}
	}
}

// TestURLTemplateMayNotChooseTheHost: a placeholder anywhere before the
// path is rejected when the sink is built.
func TestURLTemplateMayNotChooseTheHost(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"https://{{ data.host }}/in",
		"https://crm.example.com{{ data.path }}",
		"https://crm.example.com.{{ data.tenant }}/in",
		"https://{{ data.user }}@crm.example.com/in",
		"https://crm.example.com:{{ data.port }}/in",
		"{{ data.scheme }}://crm.example.com/in",
		"{{ data.url }}",
		"https:{{ data.rest }}",
		"https:/{{ data.rest }}",
	} {
		_, err := New(Options{URL: u})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "url" || !strings.Contains(ce.Error(), "scheme and host must be written out") {
			t.Errorf("New(%q) = %v, want a url error about the host", u, err)
		}
	}
	for _, u := range []string{
		"https://crm.example.com/{{ data.path }}",
		"https://crm.example.com?{{ data.q }}",
		"http://127.0.0.1:8080/a/{{ subject }}?x={{ id }}",
		"https://user:pw@crm.example.com/{{ subject }}",
	} {
		if _, err := New(Options{URL: u}); err != nil {
			t.Errorf("New(%q) = %v", u, err)
		}
	}
}

func TestNewReportsEachOption(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		opts  Options
		field string
		msg   string
		line  int // of the *lang.SyntaxError, when > 0
		col   int
	}{
		{"unknown name in url", Options{URL: "https://x.test/{{ subjct }}"}, "url", "unknown name subjct", 1, 19},
		{"unknown name in header", Options{URL: "https://x.test", Headers: map[string]string{"X-A": "v {{ dta.x }}"}}, "headers.X-A", "unknown name dta", 1, 6},
		{"unknown name in body", Options{URL: "https://x.test", Body: `{"a": data.x, "b": agnetName}`}, "body", "unknown name agnetName", 1, 20},
		{"unknown name in body template", Options{URL: "https://x.test", ContentType: "text/plain", Body: "a\n{{ sbject }}"}, "body", "unknown name sbject", 2, 4},
		{"body gives text", Options{URL: "https://x.test", Body: `subject + "!"`}, "body", "gives a string, want an object", 1, 1},
		{"template without content_type", Options{URL: "https://x.test", Body: `note={{ subject }}`}, "body", "set content_type", 0, 0},
		{"content_type without body", Options{URL: "https://x.test", ContentType: "text/plain"}, "content_type", "content_type without body", 0, 0},
		{"bad content_type", Options{URL: "https://x.test", ContentType: "text plain", Body: "x"}, "body", "invalid media type", 0, 0},
		{"method", Options{URL: "https://x.test", Method: "GET"}, "method", `unsupported method "GET"`, 0, 0},
		{"format", Options{URL: "https://x.test", Format: "xml"}, "format", `unknown format "xml"`, 0, 0},
		{"scheme", Options{URL: "https://x.test", Sign: &Sign{Scheme: "jwt", Secrets: []string{"x"}}}, "sign.scheme", `unknown scheme "jwt"`, 0, 0},
		{"raw standard webhooks secret", Options{URL: "https://x.test", Sign: &Sign{Scheme: SchemeStandardWebhooks, Secrets: []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}}, "sign.secret", `"whsec_" followed by base64`, 0, 0},
		{"short standard webhooks key", Options{URL: "https://x.test", Sign: &Sign{Scheme: SchemeStandardWebhooks, Secrets: []string{"whsec_c2hvcnQ="}}}, "sign.secret", "the key is 5 bytes", 0, 0},
		{"bad rotated secret", Options{URL: "https://x.test", Sign: &Sign{Scheme: SchemeStandardWebhooks, Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!"}}}, "sign.secrets[0]", "base64", 0, 0},
		{"hmac without header", Options{URL: "https://x.test", Sign: &Sign{Scheme: SchemeHMAC, Secrets: []string{"x"}}}, "sign.header", "missing", 0, 0},
		{"hmac algorithm", Options{URL: "https://x.test", Sign: &Sign{Scheme: SchemeHMAC, Header: "X-S", Algorithm: "md5", Secrets: []string{"x"}}}, "sign.algorithm", `unknown algorithm "md5"`, 0, 0},
		{"hmac encoding", Options{URL: "https://x.test", Sign: &Sign{Scheme: SchemeHMAC, Header: "X-S", Encoding: "base32", Secrets: []string{"x"}}}, "sign.encoding", `unknown encoding "base32"`, 0, 0},
		{"hmac with two secrets", Options{URL: "https://x.test", Sign: &Sign{Scheme: SchemeHMAC, Header: "X-S", Secrets: []string{"x", "y"}}}, "sign.secrets", "one signature", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.opts)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("New = %v, want a *ConfigError", err)
			}
			if ce.Field != tc.field || !strings.Contains(ce.Err.Error(), tc.msg) {
				t.Errorf("New = %s: %v; want %s: …%s…", ce.Field, ce.Err, tc.field, tc.msg)
			}
			if tc.line > 0 {
				var se *lang.SyntaxError
				if !errors.As(ce.Err, &se) || se.Line != tc.line || se.Column != tc.col {
					t.Errorf("position = %+v, want %d:%d", se, tc.line, tc.col)
				}
			}
		})
	}
}

// Event text cannot add header lines or escape its place in a templated
// body.
func TestRenderEscapesEventValues(t *testing.T) {
	t.Parallel()
	ev, _ := escalated(t)
	ev.Data = []byte(`{"x": "a\r\nX-Injected: 1\n", "q": "\", \"admin\": true, \"y\": \"", "f": "a&b=c"}`)
	d := &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev}

	s := mustNew(t, Options{URL: "https://x.test/in", Headers: map[string]string{"X-Note": "n: {{ data.x }}"}})
	r, err := s.Render(d)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Header.Values("X-Note"); len(got) != 1 || got[0] != "n: a  X-Injected: 1 " {
		t.Errorf("X-Note = %q", got)
	}
	if r.Header.Get("X-Injected") != "" {
		t.Error("event text added a header")
	}

	s = mustNew(t, Options{URL: "https://x.test/in", ContentType: "application/json", Body: `{"note": "{{ data.q }}"}`})
	r, err = s.Render(d)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"note": "\", \"admin\": true, \"y\": \""}`; string(r.Body) != want {
		t.Errorf("JSON body = %s, want %s", r.Body, want)
	}

	s = mustNew(t, Options{URL: "https://x.test/in", ContentType: "application/x-www-form-urlencoded", Body: `note={{ data.f }}&k=1`})
	r, err = s.Render(d)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := url.ParseQuery(string(r.Body)); v.Get("note") != "a&b=c" || v.Get("k") != "1" || len(v) != 2 {
		t.Errorf("form body = %s", r.Body)
	}
}

// A body or URL that fails for an event is a permanent failure: the
// same event fails the same way on every attempt.
func TestRenderFailureIsPermanent(t *testing.T) {
	t.Parallel()
	ev, _ := escalated(t)
	for _, opts := range []Options{
		{URL: "https://x.test/in", Body: `data.conversationTitle.nope.x`},
		{URL: "https://x.test/in", Body: `data.forwardType`}, // a string at run time
		{URL: "https://x.test/in", Body: `data.nope`},        // nil
		{URL: "https://x.test/{{ data.nope.x }}"},
		{URL: "https://x.test/in", Format: FormatCloudEvents, ContentType: "application/json", Body: `{"a": {{ data.summary }}}`}, // not JSON
	} {
		s := mustNew(t, opts)
		err := s.Send(t.Context(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev})
		if err == nil || retryable(err) {
			t.Errorf("%+v: Send = %v, want a permanent error", opts, err)
		}
	}
}

func TestMethods(t *testing.T) {
	t.Parallel()
	for _, m := range []string{"", "post", "PUT", "patch"} {
		s := mustNew(t, Options{URL: "https://x.test/in", Method: m})
		ev, _ := escalated(t)
		r, err := s.Render(&sinks.Delivery{ID: "d1", Attempt: 1, Event: ev})
		if err != nil {
			t.Fatal(err)
		}
		want := strings.ToUpper(m)
		if want == "" {
			want = http.MethodPost
		}
		if r.Method != want {
			t.Errorf("Method %q renders %s", m, r.Method)
		}
	}
}

// FuzzURLKeepsItsHost: whatever an event holds, the rendered URL goes to
// the configured host, the value decodes back from its one path segment
// and its query value.
func FuzzURLKeepsItsHost(f *testing.F) {
	for _, s := range []string{"", "..", "../x", "@evil.test", "//evil.test", "a?b#c", "%2e%2E/", "\\\\evil", "x\x00y", "é/ü", " :443"} {
		f.Add(s)
	}
	s, err := New(Options{URL: "https://crm.example.com:8443/v1/c/{{ data.v }}/n?ref={{ data.v }}&k=1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !utf8.ValidString(v) {
			return // data comes from JSON: valid UTF-8
		}
		u, err := s.renderURL(&event.Env{Data: map[string]any{"v": v}})
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		p, err := url.Parse(u)
		if err != nil || p.Scheme != "https" || p.Host != "crm.example.com:8443" || p.User != nil || p.Fragment != "" {
			t.Fatalf("%q renders %q (%v)", v, u, err)
		}
		seg, ok := strings.CutPrefix(p.EscapedPath(), "/v1/c/")
		seg, ok2 := strings.CutSuffix(seg, "/n")
		if !ok || !ok2 || strings.Contains(seg, "/") {
			t.Fatalf("%q: path %q", v, p.EscapedPath())
		}
		if got, err := url.PathUnescape(seg); err != nil || got != v {
			t.Fatalf("%q: segment %q decodes to %q (%v)", v, seg, got, err)
		}
		if q := p.Query(); q.Get("ref") != v || q.Get("k") != "1" || len(q) != 2 {
			t.Fatalf("%q: query %q", v, p.RawQuery)
		}
	})
}
