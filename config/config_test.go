package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

const valid = `server:
  listen: ":9090"
  body_limit: 512KiB
storage:
  dir: /tmp/sy
sources:
  - name: darwin
    provider: darwin
    secret: ${DARWIN_SECRET}
sinks:
  - name: ops-slack
    type: slack
    webhook_url: ${SLACK_URL:-}
    text: "Escalated: {{ data.conversationTitle }}"
  - name: archive
    type: sqlite
    path: ./archive.db
  - name: crm
    type: http
    url: https://crm.example.com/hooks
    headers: {Authorization: "Bearer ${CRM_TOKEN:-none}"}
    retry: {max_attempts: 5, initial_backoff: 2s, max_backoff: 1m, max_age: 2d}
routes:
  - name: escalations
    match: ["session.forwarded.*"]
    when: 'data.forwardType == "escalated"'
    to: [ops-slack]
  - name: everything
    match: ["*"]
    to: [archive, crm]
`

func TestParseValid(t *testing.T) {
	t.Parallel()
	c, err := Parse("c.yaml", []byte(valid), env(map[string]string{"DARWIN_SECRET": "s3cr3t-darwin-webhook"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != ":9090" || c.Server.BodyLimit != 512<<10 {
		t.Errorf("server = %+v", c.Server)
	}
	if c.Server.ReadTimeout != DefaultReadTimeout || c.Server.ShutdownTimeout != DefaultShutdownTimeout {
		t.Errorf("server defaults not applied: %+v", c.Server)
	}
	src := c.Sources[0]
	if src.Path != "/hooks/darwin" || src.Secret.Reveal() != "s3cr3t-darwin-webhook" {
		t.Errorf("source = %+v", src)
	}
	slack, archive, crm := c.Sinks[0], c.Sinks[1], c.Sinks[2]
	if slack.Slack == nil || !slack.Held() || slack.Concurrency != 1 {
		t.Errorf("slack sink = %+v", slack)
	}
	if archive.SQLite == nil || archive.SQLite.Path != "./archive.db" || archive.Held() {
		t.Errorf("archive sink = %+v", archive)
	}
	if crm.HTTP == nil || crm.HTTP.Headers["Authorization"].Reveal() != "Bearer none" {
		t.Errorf("crm sink = %+v", crm)
	}
	want := Retry{MaxAttempts: 5, InitialBackoff: Duration(2 * time.Second), MaxBackoff: Duration(time.Minute), MaxAge: Duration(48 * time.Hour)}
	if crm.Retry != want {
		t.Errorf("crm retry = %+v, want %+v", crm.Retry, want)
	}
	if archive.Retry.MaxAge != DefaultMaxAge || archive.Timeout != DefaultSinkTimeout || archive.Concurrency != DefaultSQLiteConcurrency {
		t.Errorf("sink defaults not applied: %+v", archive)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0].String(), "c.yaml:13:18: warning: sinks[0].webhook_url: empty") {
		t.Errorf("warnings = %v", c.Warnings)
	}
}

func TestParseProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "unknown key with suggestion",
			yaml: valid + "  - name: typo\n    matches: [\"*\"]\n    to: [archive]\n",
			want: []string{`c.yaml:32:5: routes[2].matches: unknown key "matches" in routes[2]; did you mean "match"?`, `c.yaml:31:5: routes[2].match: missing match`},
		},
		{
			name: "unset variable",
			yaml: strings.Replace(valid, "${DARWIN_SECRET}", "${NOPE}", 1),
			want: []string{"c.yaml:9:13: environment variable NOPE is not set"},
		},
		{
			name: "duplicate names and unknown sink",
			yaml: strings.Replace(strings.Replace(valid, "name: crm", "name: archive", 1), "to: [ops-slack]", "to: [ops-slak]", 1),
			want: []string{
				`c.yaml:18:11: sinks[2].name: duplicate sink name "archive" (also sinks[1])`,
				`c.yaml:27:10: routes[0].to[0]: unknown sink "ops-slak"; did you mean "ops-slack"?`,
				`c.yaml:30:19: routes[1].to[1]: unknown sink "crm"; defined: archive, ops-slack`,
			},
		},
		{
			name: "key of another sink type",
			yaml: strings.Replace(valid, "path: ./archive.db", "path: ./archive.db\n    webhook_url: x", 1),
			want: []string{`c.yaml:18:5: sinks[1].webhook_url: unknown key "webhook_url" in a sink of type sqlite`},
		},
		{
			name: "bad values",
			yaml: strings.Replace(strings.Replace(valid, "512KiB", "lots", 1), "max_age: 2d", "max_age: soon", 1),
			want: []string{
				`c.yaml:3:15: server.body_limit: invalid size "lots"`,
				`sinks[2].retry.max_age: invalid duration "soon"`,
			},
		},
		{
			name: "unknown sink type",
			yaml: strings.Replace(valid, "type: sqlite", "type: sqlit", 1),
			want: []string{`c.yaml:16:11: sinks[1].type: unknown sink type "sqlit"; did you mean "sqlite"?`},
		},
		{
			name: "wrong shape",
			yaml: strings.Replace(valid, `match: ["*"]`, `match: "*"`, 1),
			want: []string{`c.yaml:29:12: routes[1].match: want a list, got "*"`},
		},
		{
			name: "syntax error",
			yaml: "server:\n  listen: [\n",
			want: []string{"c.yaml:2:1: YAML syntax:"},
		},
		{
			name: "empty",
			yaml: "",
			want: []string{"c.yaml: the file is empty"},
		},
		{
			name: "no sources",
			yaml: "sinks: []\n",
			want: []string{"sources: no sources"},
		},
		{
			name: "bad url and path",
			yaml: strings.Replace(strings.Replace(valid, "https://crm.example.com/hooks", "crm.example.com", 1), "provider: darwin", "provider: darwin\n    path: hooks", 1),
			want: []string{`sinks[2].url: must be an absolute http:// or https:// URL`, `sources[0].path: must start with /`},
		},
		{
			name: "duplicate key",
			yaml: strings.Replace(valid, "    provider: darwin\n", "    provider: darwin\n    provider: x\n", 1),
			want: []string{`c.yaml:9:5: sources[0].provider: duplicate key "provider" (first at line 8)`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("c.yaml", []byte(tc.yaml), env(map[string]string{"DARWIN_SECRET": "x"}))
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("err = %v, want *config.Error", err)
			}
			got := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
			if n := len(cerr.Problems); n != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%s", n, len(tc.want), got)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	t.Parallel()
	lookup := env(map[string]string{"A": "1", "EMPTY": ""})
	for _, tc := range []struct{ in, want, err string }{
		{in: "${A}", want: "1"},
		{in: "x${A}y${A}", want: "x1y1"},
		{in: "${B:-def}", want: "def"},
		{in: "${EMPTY:-def}", want: "def"},
		{in: "${EMPTY}", want: ""},
		{in: "$${A}", want: "${A}"},
		{in: "cost: $5", want: "cost: $5"},
		{in: "${B}", err: "environment variable B is not set"},
		{in: "${A", err: "unterminated"},
		{in: "${1A}", err: "invalid environment variable name"},
	} {
		got, err := expand(tc.in, lookup)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("expand(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestEnvCannotInjectStructure(t *testing.T) {
	t.Parallel()
	c, err := Parse("c.yaml", []byte(valid), env(map[string]string{"DARWIN_SECRET": "x\nsinks: []\n"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Sources[0].Secret.Reveal() != "x\nsinks: []\n" || len(c.Sinks) != 3 {
		t.Fatalf("a variable changed the document: %+v", c.Sinks)
	}
}

func TestSecretFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(valid, "secret: ${DARWIN_SECRET}", "secret_file: "+file, 1)
	c, err := Parse("c.yaml", []byte(y), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Sources[0].Secret.Reveal(); got != "from-file" {
		t.Fatalf("secret = %q", got)
	}

	both := strings.Replace(valid, "secret: ${DARWIN_SECRET}", "secret: a\n    secret_file: "+file, 1)
	if _, err := Parse("c.yaml", []byte(both), env(nil)); err == nil || !strings.Contains(err.Error(), "set secret or secret_file, not both") {
		t.Fatalf("both secret and secret_file: err = %v", err)
	}
	missing := strings.Replace(valid, "secret: ${DARWIN_SECRET}", "secret_file: "+filepath.Join(dir, "nope"), 1)
	if _, err := Parse("c.yaml", []byte(missing), env(nil)); err == nil || !strings.Contains(err.Error(), "sources[0].secret_file: read secret") {
		t.Fatalf("missing secret file: err = %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	s := Secret("hunter2")
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "secret", s)
	js, _ := json.Marshal(struct{ S Secret }{s})
	var back struct{ S string }
	if err := json.Unmarshal(js, &back); err != nil || back.S != "<secret>" {
		t.Errorf("json: %s", js)
	}
	for name, out := range map[string]string{
		"%v":   fmt.Sprintf("%v", s),
		"%s":   fmt.Sprintf("%s", s),
		"%#v":  fmt.Sprintf("%#v", s),
		"%+v":  fmt.Sprintf("%+v", struct{ S Secret }{s}),
		"slog": logged.String(),
	} {
		if strings.Contains(out, "hunter2") || !strings.Contains(out, "<secret>") {
			t.Errorf("%s printed %q", name, out)
		}
	}
}

func TestParseDurationAndSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "7d": 7 * 24 * time.Hour, "1h30m": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got.D() != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "5", "-1s", "1x"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) passed", bad)
		}
	}
	for in, want := range map[string]ByteSize{"1MiB": 1 << 20, "512KB": 512000, "100": 100, "2 GiB": 2 << 30, "10B": 10} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "1TB", "-1", "MiB", "99999999999999999GiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) passed", bad)
		}
	}
}

func TestSourceVerifyBlockAndSecretFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{"a": "first\n", "b": "second", "empty": "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	y := strings.Replace(valid, "secret: ${DARWIN_SECRET}", fmt.Sprintf(`secrets_file: [%s, %s]
    verify: {type: hmac, header: X-Sig, tolerance: 2m, public_key: abc}
    map: {eventType: 'body.type'}
    canonical_json: true
    ip_allow: [192.0.2.0/24]
    trusted_proxies: [10.0.0.0/8]`, filepath.Join(dir, "a"), filepath.Join(dir, "b")), 1)
	cfg, err := Parse("c.yaml", []byte(y), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Sources[0]
	if got := s.AllSecrets(); len(got) != 2 || got[0].Reveal() != "first" || got[1].Reveal() != "second" {
		t.Fatalf("secrets = %v", got)
	}
	if s.Verify == nil || s.Verify.Header != "X-Sig" || s.Verify.Tolerance.D() != 2*time.Minute || s.Map["eventType"] != "body.type" ||
		!s.CanonicalJSON || s.IPAllow[0] != "192.0.2.0/24" || s.TrustedProxies[0] != "10.0.0.0/8" {
		t.Fatalf("source = %+v", s)
	}
	for _, tc := range []struct{ replace, want string }{
		{"secrets_file: [" + filepath.Join(dir, "empty") + "]", "sources[0].secrets_file[0]: secret file"},
		{"secrets: [a, '']", "sources[0].secrets[1]: is empty"},
		{"secret: ''", "sources[0].secret: is empty"},
		{"verify: {tolerence: 5m}", `unknown key "tolerence" in sources[0].verify; did you mean "tolerance"?`},
		{"verify: {tolerance: soon}", "sources[0].verify.tolerance: invalid duration"},
	} {
		y := strings.Replace(valid, "secret: ${DARWIN_SECRET}", tc.replace, 1)
		if _, err := Parse("c.yaml", []byte(y), env(nil)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.replace, err, tc.want)
		}
	}
}

func TestVerifyToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	meta := func(verify string) string {
		return strings.Replace(valid, "secret: ${DARWIN_SECRET}", "secret: s\n    verify:\n      "+verify, 1)
	}
	for _, tc := range []struct {
		name, verify, want, err string
	}{
		{"inline", "verify_token: ${TOKEN}", "from-env", ""},
		{"from a file", "verify_token_file: " + file, "from-file", ""},
		{"empty", "verify_token: ${EMPTY:-}", "", "c.yaml:11:21: sources[0].verify.verify_token: is empty"},
		{"both", "verify_token: a\n      verify_token_file: " + file, "", "set verify_token or verify_token_file, not both"},
	} {
		c, err := Parse("c.yaml", []byte(meta(tc.verify)), env(map[string]string{"TOKEN": "from-env"}))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case c.Sources[0].Verify.VerifyToken.Reveal() != tc.want:
			t.Errorf("%s: verify_token = %q, want %q", tc.name, c.Sources[0].Verify.VerifyToken.Reveal(), tc.want)
		case strings.Contains(fmt.Sprintf("%v %+v", c.Sources[0].Verify, c.Sources[0].Verify), tc.want):
			t.Errorf("%s: the verify token prints", tc.name)
		}
	}
}

// A position inside a block scalar (text: |) is counted from the
// block's indentation, not from the indicator.
func TestProblemInBlockScalar(t *testing.T) {
	t.Parallel()
	y := `sources: [{name: d, provider: darwin, secret: x}]
sinks:
  - name: s
    type: slack
    webhook_url: https://hooks.slack.com/services/x
    text: |
      {{ data.x }}
         b: {{ subjct }}
routes: [{name: r, match: ["*"], to: [s]}]
`
	c, err := Parse("c.yaml", []byte(y), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	// "subjct" is at line 2, column 10 of the value: 8:16 in the file.
	if p := c.ProblemIn("sinks[0].text", 2, 10, "x"); p.Line != 8 || p.Column != 16 {
		t.Errorf("position %d:%d, want 8:16", p.Line, p.Column)
	}
}
