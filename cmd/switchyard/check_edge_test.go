package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runSwitchyard runs this test binary as the switchyard command (see
// TestMain), a separate process, and returns its stdout, stderr and
// exit code.
func runSwitchyard(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SWITCHYARD_TEST_MAIN=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errOut.String(), 0
	case errors.As(err, &ee):
		return out.String(), errOut.String(), ee.ExitCode()
	}
	t.Fatalf("run switchyard %v: %v", args, err)
	return "", "", -1
}

// TestCheckRefusesShadowingAndUnsignedReplayProtection runs the real
// `switchyard check` on configurations that loaded before: a source
// whose path shadows another's (the receiver matches paths without
// regard to case or a trailing slash), and a timestamp header the
// signature does not cover. Each exits 1 with the problem placed in the
// file; serve and reload load configurations the same way.
func TestCheckRefusesShadowingAndUnsignedReplayProtection(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"colliding paths", `storage: {dir: ./data}
sources:
  - name: github
    provider: github
    secret: ${GH_SECRET:-0123456789abcdef0123}
    path: /hooks/GitHub
  - name: partner
    provider: custom
    verify: {type: none}
    map: {eventType: 'body.type'}
    path: /hooks/github/
sinks: [{name: log, type: stdout}]
routes: [{name: all, match: ["*"], to: [log]}]
`, []string{`:11:11: sources[1].path: "/hooks/github/" collides with sources[0].path "/hooks/GitHub" (`, `:6:11): paths match without regard to case or a trailing slash; give each source its own path`}},
		{"unsigned timestamp", `storage: {dir: ./data}
sources:
  - name: slack
    provider: slack
    secret: 0123456789abcdef0123
    verify: {signed: "{body}"}
  - name: acme
    provider: custom
    secret: 0123456789abcdef0123
    verify:
      type: hmac
      header: X-Acme-Signature
      timestamp_header: X-Acme-Timestamp
    map: {eventType: 'body.type'}
sinks: [{name: log, type: stdout}]
routes: [{name: all, match: ["*"], to: [log]}]
`, []string{
			`:6:22: sources[0].verify.signed: "{body}" leaves out {timestamp}, but the slack preset reads X-Slack-Request-Timestamp and checks it against the tolerance`,
			`:13:25: sources[1].verify.timestamp_header: X-Acme-Timestamp is not part of the signed content "{body}"`,
			"add {timestamp} to signed: where the sender signs it, or remove timestamp_header",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := runSwitchyard(t, "check", "--config", path)
			if code != 1 {
				t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if !strings.HasPrefix(out, path+":") || strings.Contains(out, "OK") {
				t.Errorf("stdout is not the positioned problems only:\n%s", out)
			}
			if !strings.Contains(errOut, "problem(s) in the configuration") {
				t.Errorf("stderr: %q", errOut)
			}
		})
	}
}
