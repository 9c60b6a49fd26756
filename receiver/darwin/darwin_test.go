package darwin

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

var (
	secret   = []byte("ouismdnv8329r27dsvs_2389svkjs") // Darwin's documented example secret
	received = time.Date(2026, 11, 21, 14, 32, 9, 0, time.UTC)
)

func fixtures(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("../../testdata/darwin/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = b
	}
	return out
}

func TestSignKnownVector(t *testing.T) {
	t.Parallel()
	// Computed independently: printf '%s' '{"eventType":"session.opened"}' |
	//   openssl dgst -sha256 -hmac ouismdnv8329r27dsvs_2389svkjs
	const want = "e28ee9cf61bb7dde6b1782a71e4193010906aaf93f78233c54586382fc365aa2"
	if got := Sign(secret, []byte(`{"eventType":"session.opened"}`)); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := fixtures(t)["session_forwarded_escalated"]
	good := Sign(secret, body)
	tampered := bytes.Clone(body)
	tampered[len(tampered)/2] ^= 0x01
	oldSecret := []byte("old-secret")

	for _, tc := range []struct {
		name    string
		secrets [][]byte
		sig     string
		body    []byte
		want    error
	}{
		{"good", [][]byte{secret}, good, body, nil},
		{"uppercase hex is the same signature", [][]byte{secret}, strings.ToUpper(good), body, nil},
		{"surrounding spaces", [][]byte{secret}, " " + good + " ", body, nil},
		{"rotation: new secret second", [][]byte{oldSecret, secret}, good, body, nil},
		{"rotation: old secret still signs", [][]byte{oldSecret, secret}, Sign(oldSecret, body), body, nil},
		{"wrong secret", [][]byte{[]byte("nope")}, good, body, ErrBadSignature},
		{"tampered byte", [][]byte{secret}, good, tampered, ErrBadSignature},
		{"trailing newline added", [][]byte{secret}, good, append(bytes.Clone(body), '\n'), ErrBadSignature},
		{"missing header", [][]byte{secret}, "", body, ErrMissingSignature},
		{"truncated", [][]byte{secret}, good[:63], body, ErrBadSignature},
		{"prefixed", [][]byte{secret}, "sha256=" + good, body, ErrBadSignature},
		{"not hex", [][]byte{secret}, strings.Repeat("zz", 32), body, ErrBadSignature},
		{"sha1 length", [][]byte{secret}, good[:40], body, ErrBadSignature},
		{"no secrets", nil, good, body, ErrBadSignature},
		{"signature of the re-indented body", [][]byte{secret}, Sign(secret, indent(t, body)), body, ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := Verify(tc.secrets, tc.sig, tc.body); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func indent(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestVerifyLargeAndNonASCII(t *testing.T) {
	t.Parallel()
	big := []byte(`{"eventType":"session.analyzed","data":{"summary":"` + strings.Repeat("Sessão reembolso ✓ ", 12000) + `"}}`)
	if len(big) < 200<<10 {
		t.Fatalf("body is %d bytes, want 200 KB", len(big))
	}
	if err := Verify([][]byte{secret}, Sign(secret, big), big); err != nil {
		t.Fatal(err)
	}
	big[len(big)-5] = 'X'
	if err := Verify([][]byte{secret}, Sign(secret, big[:len(big)-1]), big); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify = %v", err)
	}
}

// TestNormalizeGolden normalizes every fixture and compares the event
// with testdata/<name>.golden.json; -update rewrites them.
func TestNormalizeGolden(t *testing.T) {
	t.Parallel()
	for name, body := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ev, err := Normalize(body, received)
			if err != nil {
				t.Fatal(err)
			}
			ev.ID, ev.Source = "evt_test", "darwin"
			got, err := ev.JSON()
			if err != nil {
				t.Fatal(err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, got, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("normalized %s differs from %s:\n%s", name, golden, pretty.Bytes())
			}
			if !strings.HasPrefix(ev.DedupKey, "sha256:") || ev.Subject == "" {
				t.Errorf("dedup key %q, subject %q", ev.DedupKey, ev.Subject)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		field, msg string
		check      func(t *testing.T, ev map[string]any)
	}{
		{name: "not json", body: `{"eventType":`, msg: "body is not valid JSON"},
		{name: "array", body: `[1,2]`, msg: "body must be a JSON object"},
		{name: "string", body: `"x"`, msg: "body must be a JSON object"},
		{name: "empty", body: ``, msg: "body is not valid JSON"},
		{name: "no type", body: `{"data":{}}`, field: "eventType"},
		{name: "empty type", body: `{"eventType":""}`, field: "eventType"},
		{name: "type not a string", body: `{"eventType":{}}`, field: "eventType"},
		{name: "bad time", body: `{"eventType":"a","timestamp":"yesterday"}`, field: "timestamp"},
		{name: "negative time", body: `{"eventType":"a","timestamp":-5}`, field: "timestamp"},
		{name: "data array", body: `{"eventType":"a","data":[1]}`, field: "data"},
		{name: "data string", body: `{"eventType":"a","data":"x"}`, field: "data"},
		{name: "agent object", body: `{"eventType":"a","agentId":{}}`, field: "agentId"},
		{name: "minimal", body: `{"eventType":"session.opened"}`, check: func(t *testing.T, ev map[string]any) {
			if ev["timestamp"] != "2026-11-21T14:32:09Z" || ev["data"] != nil {
				t.Errorf("event = %v", ev)
			}
		}},
		{name: "unix millis and numeric ids", body: `{"eventType":"a","timestamp":1763735528512,"agentId":42,"data":{"sessionId":7}}`, check: func(t *testing.T, ev map[string]any) {
			if ev["timestamp"] != "2025-11-21T14:32:08.512Z" || ev["agentId"] != "42" || ev["subject"] != "7" {
				t.Errorf("event = %v", ev)
			}
		}},
		{name: "unix seconds", body: `{"eventType":"a","timestamp":1763735528}`, check: func(t *testing.T, ev map[string]any) {
			if ev["timestamp"] != "2025-11-21T14:32:08Z" {
				t.Errorf("event = %v", ev)
			}
		}},
		{name: "offset time becomes UTC", body: `{"eventType":"a","timestamp":"2026-11-21T11:32:08-03:00"}`, check: func(t *testing.T, ev map[string]any) {
			if ev["timestamp"] != "2026-11-21T14:32:08Z" {
				t.Errorf("event = %v", ev)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, err := Normalize([]byte(tc.body), received)
			if tc.check != nil {
				if err != nil {
					t.Fatal(err)
				}
				b, _ := ev.JSON()
				var m map[string]any
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatal(err)
				}
				tc.check(t, m)
				return
			}
			var ferr *FieldError
			if !errors.As(err, &ferr) {
				t.Fatalf("err = %v, want *FieldError", err)
			}
			if ferr.Field != tc.field || (tc.msg != "" && ferr.Msg != tc.msg) {
				t.Fatalf("got %q / %q, want field %q msg %q", ferr.Field, ferr.Msg, tc.field, tc.msg)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	for _, body := range fixtures(f) {
		f.Add(body, 0, byte(1))
	}
	f.Add([]byte{}, 0, byte(0))
	f.Fuzz(func(t *testing.T, body []byte, pos int, flip byte) {
		sig := Sign(secret, body)
		if err := Verify([][]byte{secret}, sig, body); err != nil {
			t.Fatalf("own signature rejected: %v", err)
		}
		if len(body) == 0 || flip == 0 {
			return
		}
		if pos < 0 {
			pos = -pos
		}
		mutated := bytes.Clone(body)
		mutated[pos%len(body)] ^= flip
		if err := Verify([][]byte{secret}, sig, mutated); err == nil {
			t.Fatalf("mutated body accepted")
		}
	})
}

func FuzzNormalize(f *testing.F) {
	for _, body := range fixtures(f) {
		f.Add(body)
	}
	for _, s := range []string{`{}`, `[]`, `{"eventType":1}`, `{"eventType":"a","timestamp":1e300}`, `{"eventType":"a","data":{"sessionId":[]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Normalize(body, received)
		if err != nil {
			return
		}
		if ev.EventType == "" || ev.DedupKey == "" {
			t.Fatalf("accepted an event without type or dedup key: %+v", ev)
		}
		if _, err := ev.JSON(); err != nil {
			t.Fatalf("normalized event does not encode: %v", err)
		}
		if _, err := ev.Env(); err != nil {
			t.Fatalf("normalized data does not decode: %v", err)
		}
	})
}

func BenchmarkVerifyNormalize(b *testing.B) {
	body := fixtures(b)["session_forwarded_escalated"]
	sig := Sign(secret, body)
	secrets := [][]byte{secret}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(secrets, sig, body); err != nil {
			b.Fatal(err)
		}
		if _, err := Normalize(body, received); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	body := fixtures(b)["session_forwarded_escalated"]
	sig := Sign(secret, body)
	secrets := [][]byte{secret}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(secrets, sig, body); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDataFieldsCoverFixtures: every field of every fixture's data is
// one DataFields knows for its type.
func TestDataFieldsCoverFixtures(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "darwin", "*.json"))
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			EventType string         `json:"eventType"`
			Data      map[string]any `json:"data"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		known := DataFields(p.EventType)
		var walk func(prefix string, m map[string]any)
		walk = func(prefix string, m map[string]any) {
			for k, v := range m {
				path := prefix + k
				if slices.Contains(known, path+".*") {
					continue
				}
				if sub, ok := v.(map[string]any); ok {
					walk(path+".", sub)
					continue
				}
				if !slices.Contains(known, path) {
					t.Errorf("%s: data.%s is not in DataFields(%q)", filepath.Base(file), path, p.EventType)
				}
			}
		}
		walk("", p.Data)
	}
	for _, tc := range []struct {
		pattern string
		has     []string
		hasNot  string
	}{
		{"*", []string{"forwardType", "functionName"}, ""},
		{"session.*", []string{"forwardType", "smartFields.*"}, "functionName"},
		{"session.forwarded.escalated", []string{"forwardType"}, "inputs.*"},
		{"function.call.*", []string{"inputs.*", "app.agentAppId"}, "forwardType"},
		{"function.*", []string{"functionStatus"}, "summary"},
	} {
		got := DataFields(tc.pattern)
		for _, h := range tc.has {
			if !slices.Contains(got, h) {
				t.Errorf("DataFields(%q) lacks %s", tc.pattern, h)
			}
		}
		if tc.hasNot != "" && slices.Contains(got, tc.hasNot) {
			t.Errorf("DataFields(%q) has %s", tc.pattern, tc.hasNot)
		}
	}
	for _, p := range []string{"order.*", "session", "sessions.*", "github.push"} {
		if got := DataFields(p); got != nil {
			t.Errorf("DataFields(%q) = %v, want nil", p, got)
		}
	}
}
