package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/receiver/inbound"
)

// A signed-content template names what a sender signs: literal text and
// {body}, {timestamp}, {id}, {url}, {method} and {form} (form-encoded
// parameters sorted by name, each name followed by its value, as Twilio
// signs them). "{timestamp}.{body}" is Stripe's; "{body}" the common one.
type template struct {
	parts []part
	uses  map[string]bool
}

type part struct {
	lit  []byte
	kind string // "" for literal text
}

var placeholders = []string{"body", "timestamp", "id", "url", "method", "form"}

func parseTemplate(s string) (*template, error) {
	t := &template{uses: map[string]bool{}}
	rest := s
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			t.parts = append(t.parts, part{lit: []byte(rest)})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: []byte(rest[:i])})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, configErr("signed", "unclosed { in %q", s)
		}
		name := rest[i+1 : i+j]
		if !slices.Contains(placeholders, name) {
			return nil, configErr("signed", "unknown placeholder {%s} in %q: use {%s}", name, s, strings.Join(placeholders, "}, {"))
		}
		t.parts = append(t.parts, part{kind: name})
		t.uses[name] = true
		rest = rest[i+j+1:]
	}
	if !t.uses["body"] && !t.uses["form"] {
		return nil, configErr("signed", "%q does not include {body}: the payload would not be authenticated", s)
	}
	return t, nil
}

// checkSigned refuses a timestamp or an id the verifier would read
// without the signature covering it (see ErrUnsigned). stripe is set
// when the timestamp comes from the signature header's t=, which
// timestampHeader cannot replace.
func (t *template) checkSigned(signed, timestampHeader, idHeader string, stripe bool) error {
	unsigned := func(field, format string, args ...any) error {
		return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...), Err: ErrUnsigned}
	}
	switch {
	case stripe && timestampHeader != "":
		return configErr("timestamp_header", "this scheme reads its timestamp from the t= of its signature header, so %s would be ignored: remove timestamp_header", timestampHeader)
	case stripe && !t.uses["timestamp"]:
		return unsigned("signed", "%q leaves out {timestamp}, but the t= timestamp of the signature header is checked against the tolerance: unsigned, it can be replaced, and a request signed once would verify again later; put {timestamp} where the sender signs it", signed)
	case timestampHeader != "" && !t.uses["timestamp"]:
		return unsigned("timestamp_header", "%s is not part of the signed content %q: a request signed once would verify again later under a fresh %s, so the tolerance stops no replay; add {timestamp} to signed: where the sender signs it, or remove timestamp_header", timestampHeader, signed, timestampHeader)
	case idHeader != "" && !t.uses["id"]:
		return unsigned("id_header", "%s is not part of the signed content %q: a request signed once could be sent again under a fresh %s and be taken for a new event; add {id} to signed: where the sender signs it, or remove id_header", idHeader, signed, idHeader)
	}
	return nil
}

// values are the request-derived parts of the signed content.
type values struct {
	body      []byte
	timestamp string
	id        string
	url       string
	method    string
	form      []byte
}

func (t *template) write(w io.Writer, v *values) {
	for _, p := range t.parts {
		switch p.kind {
		case "":
			w.Write(p.lit)
		case "body":
			w.Write(v.body)
		case "timestamp":
			io.WriteString(w, v.timestamp)
		case "id":
			io.WriteString(w, v.id)
		case "url":
			io.WriteString(w, v.url)
		case "method":
			io.WriteString(w, v.method)
		case "form":
			w.Write(v.form)
		}
	}
}

// requestURL is the URL a sender signed: the request's, with scheme and
// host replaced by public (a URL such as https://hooks.example.com) when
// configured, since behind a proxy the server sees neither as sent.
func requestURL(r *inbound.Request, public *url.URL) string {
	if r.URL == nil {
		return ""
	}
	u := *r.URL
	if public != nil {
		u.Scheme, u.Host = public.Scheme, public.Host
		if p := strings.TrimSuffix(public.Path, "/"); p != "" {
			u.Path = p + u.Path
			u.RawPath = ""
		}
	}
	return u.String()
}

// toggleDefaultPort returns rawURL with its scheme's default port (443
// for https, 80 for http) added when it has none, or removed when it is
// there; the rest of the text is kept as it is. ok is false for another
// port or scheme.
func toggleDefaultPort(rawURL string) (string, bool) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return "", false
	}
	def := map[string]string{"https": "443", "http": "80"}[strings.ToLower(scheme)]
	if def == "" {
		return "", false
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if strings.Contains(authority, "@") || authority == "" {
		return "", false
	}
	host, port, err := net.SplitHostPort(authority)
	switch {
	case err != nil: // no port
		return scheme + "://" + authority + ":" + def + tail, true
	case port == def:
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		return scheme + "://" + host + tail, true
	}
	return "", false
}

// sortedForm is Twilio's rendering of a form-encoded body: parameters
// sorted by name, each name followed by its values, no delimiters. It is
// empty for other bodies.
func sortedForm(r *inbound.Request) ([]byte, error) {
	ct := r.Get("Content-Type")
	if !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		return nil, nil
	}
	vals, err := url.ParseQuery(string(r.Body))
	if err != nil {
		return nil, fmt.Errorf("%w: form body: %v", ErrMalformed, err)
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := []byte{} // not nil: a form, even an empty one
	for _, k := range keys {
		for _, v := range vals[k] {
			b = append(b, k...)
			b = append(b, v...)
		}
	}
	return b, nil
}

// bodyHashMatches checks Twilio's bodySHA256 query parameter: the hex
// SHA-256 of a non-form body, which the URL signature then covers.
func bodyHashMatches(body []byte, param string) bool {
	want, err := hex.DecodeString(param)
	if err != nil || len(want) != sha256.Size {
		return false
	}
	sum := sha256.Sum256(body)
	return hmacEqual(sum[:], want)
}
