package presets

import (
	"bytes"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/receiver/verify"
)

// FuzzVerify signs arbitrary bodies with every HMAC preset's own Sign:
// the signature must verify, and no mutated body may.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"type":"x"}`), uint8(0), 3, byte(1))
	f.Add([]byte("MessageSid=SM1&MessageStatus=sent"), uint8(8), 0, byte(0x80))
	f.Add([]byte{}, uint8(4), 0, byte(1))
	sources := make([]*Source, len(hmacPresets))
	for i, s := range hmacPresets {
		sources[i] = build(f, Settings{Provider: s.provider, Secrets: []string{s.secret}})
	}
	f.Fuzz(func(t *testing.T, body []byte, which uint8, pos int, flip byte) {
		i := int(which) % len(hmacPresets)
		s, src := hmacPresets[i], sources[i]
		h, err := Sign(s.provider, s.secret, body, verify.Signed{ID: "msg_1", Timestamp: now, URL: s.url_(), Method: "POST", ContentType: s.ctype})
		if err != nil {
			if s.ctype != "" {
				t.Skip("not a form body: a form-signing sender cannot sign it") // twilio
			}
			t.Fatalf("%s: Sign: %v", s.provider, err)
		}
		if s.ctype != "" {
			h.Set("Content-Type", s.ctype)
		}
		if err := src.Verifier.Verify(request(t, "POST", s.url_(), body, h, now)); err != nil {
			t.Fatalf("%s: own signature rejected: %v", s.provider, err)
		}
		if len(body) == 0 || flip == 0 {
			return
		}
		if pos < 0 {
			pos = -pos
		}
		mutated := bytes.Clone(body)
		mutated[pos%len(body)] ^= flip
		if s.provider == "twilio" && twilioForm(mutated) == twilioForm(body) {
			// Twilio signs names and values run together, not the body:
			// "a=bc" and "ab=c" sign alike. A limit of its scheme (docs/platforms).
			return
		}
		if err := src.Verifier.Verify(request(t, "POST", s.url_(), mutated, h, now)); err == nil {
			t.Fatalf("%s: mutated body accepted", s.provider)
		}
	})
}

// FuzzNormalize runs every preset's normalizer on arbitrary bodies and
// event-type headers: no panic, and an accepted event has a type, a
// dedup key and data the rules can decode.
func FuzzNormalize(f *testing.F) {
	for _, tc := range normCases(f) {
		f.Add([]byte(tc.body), tc.header.Get("X-Github-Event"))
	}
	files, _ := filepath.Glob("../../testdata/darwin/*.json")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b, "")
	}
	names := Names()
	sources := map[string]*Source{}
	for _, name := range names {
		if name == "custom" {
			continue
		}
		sources[name] = build(f, Settings{Provider: name, Secrets: secretsFor(name), Verify: verifyFor(name)})
	}
	f.Fuzz(func(t *testing.T, body []byte, typeHeader string) {
		for name, src := range sources {
			if src.Handshake != nil {
				// A handshake reply echoes at most a short, safe token.
				reply, _ := src.Handshake(request(t, "POST", "https://x/y", body, nil, now))
				if reply != nil && (len(reply.Body) > maxChallenge+20 || bytes.ContainsAny(reply.Body, "<>&\\")) {
					t.Fatalf("%s: handshake reply %q", name, reply.Body)
				}
			}
			for _, ctype := range []string{"application/json", "application/x-www-form-urlencoded"} {
				h := http.Header{"Content-Type": {ctype}, "X-Github-Event": {typeHeader}, "X-Shopify-Topic": {typeHeader}}
				ev, err := src.Normalize(request(t, "POST", "https://x/y", body, h, now))
				if err != nil {
					continue
				}
				if ev.EventType == "" || ev.DedupKey == "" {
					t.Fatalf("%s: event without type or dedup key: %+v", name, ev)
				}
				if _, err := ev.JSON(); err != nil {
					t.Fatalf("%s: event does not encode: %v", name, err)
				}
				if _, err := ev.Env(); err != nil {
					t.Fatalf("%s: data does not decode: %v (%s)", name, err, ev.Data)
				}
			}
		}
	})
}

// BenchmarkPreset verifies and normalizes a signed ~1 KB event per preset.
func BenchmarkPreset(b *testing.B) {
	darwinBody, err := os.ReadFile("../../testdata/darwin/session_analyzed.json")
	if err != nil {
		b.Fatal(err)
	}
	bodies := map[string][]byte{"darwin": darwinBody}
	for _, tc := range normCases(b) {
		if tc.eventType != "" && bodies[tc.provider] == nil {
			bodies[tc.provider] = []byte(tc.body)
		}
	}
	headers := map[string]http.Header{}
	for _, tc := range normCases(b) {
		if tc.header != nil && headers[tc.provider] == nil {
			headers[tc.provider] = tc.header
		}
	}
	for _, s := range hmacPresets {
		body := bodies[s.provider]
		if body == nil {
			continue
		}
		b.Run(s.provider, func(b *testing.B) {
			src := build(b, Settings{Provider: s.provider, Secrets: []string{s.secret}})
			h := s.sign(b, s.secret, body, now)
			for k, v := range headers[s.provider] {
				h[k] = v
			}
			r := request(b, "POST", s.url_(), body, h, now)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := src.Verifier.Verify(r); err != nil {
					b.Fatal(err)
				}
				if _, err := src.Normalize(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// twilioForm renders a form body as Twilio signs it.
func twilioForm(body []byte) string {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return "\x00invalid"
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		for _, v := range vals[k] {
			b.WriteString(k + v)
		}
	}
	return b.String()
}
