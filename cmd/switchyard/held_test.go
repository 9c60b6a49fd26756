package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeliveriesListShowsHeld: a delivery waiting for a held sink, or
// for a sink no longer configured, is listed as held with the reason,
// not as pending with 0 attempts; --state held lists only those.
func TestDeliveriesListShowsHeld(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	cfgText := fmt.Sprintf(`server: {listen: "127.0.0.1:0"}
storage: {dir: %[1]s/data}
sources: [{name: darwin, provider: darwin, secret: held-secret}]
sinks:
  - {name: ops-slack, type: slack, webhook_url: "${NO_SUCH_VARIABLE_HELD:-}"}
  - {name: archive, type: sqlite, path: %[1]s/archive.db}
routes: [{name: all, match: ["*"], to: [ops-slack, archive]}]
`, dir)
	os.WriteFile(path, []byte(cfgText), 0o600)
	a, _ := startGateway(t, path)
	event := "../../testdata/darwin/session_forwarded_escalated.json"
	if out, _, err := runCmd(t, "send", "--config", path, "--source", "darwin", "--url", "http://"+a.Addr()+"/hooks/darwin", event); err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	wait(t, "the archive delivered", func() bool {
		out, _, _ := runCmd(t, "deliveries", "list", "--config", path, "--state", "delivered")
		return strings.Contains(out, "archive")
	})

	out, _, err := runCmd(t, "deliveries", "list", "--config", path)
	if err != nil || !strings.Contains(out, "ops-slack  held") || !strings.Contains(out, "held: sink ops-slack has no destination") {
		t.Errorf("deliveries list: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, "deliveries", "list", "--config", path, "--state", "held")
	if err != nil || !strings.Contains(out, "ops-slack") || strings.Contains(out, "archive") {
		t.Errorf("--state held: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, "deliveries", "list", "--config", path, "--state", "held,delivered", "--json")
	if err != nil || !strings.Contains(out, `"state":"held"`) || !strings.Contains(out, `"state":"delivered"`) {
		t.Errorf("--state held,delivered: %v\n%s", err, out)
	}
	if _, _, err := runCmd(t, "deliveries", "list", "--dir", filepath.Join(dir, "data"), "--state", "held"); exitCode(err) != 2 || !strings.Contains(err.Error(), "needs --config") {
		t.Errorf("--dir --state held: %v", err)
	}
	// The sink removed from the configuration: still held, saying why.
	os.WriteFile(path, []byte(strings.Replace(strings.Replace(cfgText, "  - {name: ops-slack, type: slack, webhook_url: \"${NO_SUCH_VARIABLE_HELD:-}\"}\n", "", 1), "to: [ops-slack, archive]", "to: [archive]", 1)), 0o600)
	out, _, err = runCmd(t, "deliveries", "list", "--config", path, "--state", "held")
	if err != nil || !strings.Contains(out, "held: sink ops-slack is not in the configuration") {
		t.Errorf("removed sink: %v\n%s", err, out)
	}
}

// TestEventsListTypePatterns: --type takes the patterns routes take, not
// only exact types; a bad pattern is refused rather than finding nothing.
func TestEventsListTypePatterns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`server: {listen: "127.0.0.1:0"}
storage: {dir: %[1]s/data}
sources: [{name: darwin, provider: darwin, secret: s}]
sinks: [{name: archive, type: sqlite, path: %[1]s/archive.db}]
routes: [{name: all, match: ["*"], to: [archive]}]
`, dir)), 0o600)
	a, _ := startGateway(t, path)
	for _, f := range []string{"session_forwarded_escalated", "session_forwarded_qualified", "session_analyzed"} {
		if out, _, err := runCmd(t, "send", "--config", path, "--source", "darwin", "--url", "http://"+a.Addr()+"/hooks/darwin", "../../testdata/darwin/"+f+".json"); err != nil {
			t.Fatalf("send %s: %v\n%s", f, err, out)
		}
	}
	count := func(out string) int { return strings.Count(out, "evt_") }
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--type", "session.forwarded.*"}, 2},
		{[]string{"--type", "session.forwarded.escalated"}, 1},
		{[]string{"--type", "*"}, 3},
		{[]string{"--type", "session.*", "--limit", "1"}, 1},
	} {
		out, _, err := runCmd(t, append([]string{"events", "list", "--config", path}, tc.args...)...)
		if err != nil || count(out) != tc.want {
			t.Errorf("events list %v: %v, %d events, want %d:\n%s", tc.args, err, count(out), tc.want, out)
		}
	}
	if _, _, err := runCmd(t, "events", "list", "--config", path, "--type", "session*"); exitCode(err) != 2 {
		t.Errorf("a bad pattern: %v", err)
	}
}
