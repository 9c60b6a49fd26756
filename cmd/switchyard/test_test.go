package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/test/*.golden.txt")

// testClock is the receive time of golden events.
var testClock = func() time.Time { return time.Date(2026, 11, 21, 14, 32, 9, 0, time.UTC) }

const testConfig = "testdata/test/config.yaml"

// runTest runs switchyard test with the golden clock.
func runTest(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := testAt(args, &out, &errOut, testClock)
	if err != nil && err.Error() != "" {
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), exitCode(err)
}

// goldenText compares got with testdata/test/name.golden.txt.
func goldenText(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "test", name+".golden.txt")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}

// TestTestGolden: the dry run's output for an event that matches, one
// that no pattern matches, one a condition turns away, several events
// in one file, and a body the source rejects.
func TestTestGolden(t *testing.T) {
	t.Parallel()
	t.Cleanup(func() { // after the parallel subtests
		if _, err := os.Stat("testdata/test/storage-never-created"); !os.IsNotExist(err) {
			t.Errorf("test touched storage: %v", err)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"matched", []string{"../../testdata/darwin/session_forwarded_escalated.json"}, 0},
		{"matched_or", []string{"../../testdata/darwin/session_analyzed.json"}, 0},
		{"missed_pattern", []string{"../../testdata/darwin/function_call.json"}, 0},
		{"missed_condition", []string{"../../testdata/darwin/session_forwarded_qualified.json"}, 0},
		{"missed_condition_json", []string{"--json", "../../testdata/darwin/session_forwarded_qualified.json"}, 0},
		{"several", []string{"testdata/test/events.jsonl"}, 0},
		{"rejected", []string{"testdata/test/truncated.json", "../../testdata/darwin/session_closed.json"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runTest(t, append([]string{"--config", testConfig}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, errOut)
			}
			goldenText(t, tc.name, out)
		})
	}
}

// TestTestCases: a file whose cases pass (exit 0), one whose cases fail
// (exit 1, with a diff per case), and files the test cannot run (exit
// 2, every problem at its line and column).
func TestTestCases(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		code   int
		stderr string
	}{
		{"cases_pass", 0, ""},
		{"cases_fail", 1, ""},
		{"cases_bad", 2, "7 problem(s) in testdata/test/cases_bad.yaml"},
		{"cases_unknown", 2, "4 problem(s) in testdata/test/cases_unknown.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runTest(t, "--config", testConfig, "--cases", "testdata/test/"+tc.name+".yaml")
			if code != tc.code || errOut != tc.stderr {
				t.Fatalf("exit %d, stderr %q; want %d, %q\n%s", code, errOut, tc.code, tc.stderr, out)
			}
			goldenText(t, tc.name, out)
		})
	}
}

// TestExampleRuleCases: examples/rules_test.yaml passes against
// config.example.yaml, as docs/rules.md says.
func TestExampleRuleCases(t *testing.T) {
	t.Setenv("SLACK_WEBHOOK_URL", "")
	t.Setenv("CRM_URL", "")
	out, errOut, err := runCmd(t, "test", "--config", "../../config.example.yaml", "--cases", "../../examples/rules_test.yaml")
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, errOut)
	}
	if !strings.HasSuffix(out, "cases: 6 passed, 0 failed\n") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestTestUsage(t *testing.T) {
	t.Parallel()
	twoSources := filepath.Join(t.TempDir(), "two.yaml")
	os.WriteFile(twoSources, []byte(`sources:
  - {name: a, provider: darwin, secret: x}
  - {name: b, provider: github, secret: y}
sinks: [{name: s, type: http, url: "https://x.example"}]
routes: [{name: r, match: ["*"], to: [s]}]
`), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"nothing to run", []string{"--config", testConfig}, "test needs EVENT.json files or --cases, not both"},
		{"both", []string{"--config", testConfig, "--cases", "x.yaml", "e.json"}, "test needs EVENT.json files or --cases, not both"},
		{"missing file", []string{"--config", testConfig, "nope.json"}, "open nope.json: no such file or directory"},
		{"unknown source", []string{"--config", testConfig, "--source", "darwn", "testdata/test/truncated.json"}, `no source "darwn" (sources: darwin)`},
		{"which source", []string{"--config", twoSources, "testdata/test/truncated.json"}, "the configuration has 2 sources: pick one with --source (a, b)"},
		{"bad config", []string{"--config", "testdata/test/cases_pass.yaml", "e.json"}, "problem(s) in testdata/test/cases_pass.yaml"},
		{"bad header", []string{"--config", testConfig, "--header", "nocolon", "e.json"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, errOut, code := runTest(t, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errOut, tc.msg)
			}
		})
	}
}

// TestTestHeaders: --header reaches the source's normalizer (GitHub
// names the event in a header).
func TestTestHeaders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gh.yaml")
	os.WriteFile(cfg, []byte(`sources: [{name: gh, provider: github, secret: x}]
sinks: [{name: s, type: http, url: "https://x.example"}]
routes: [{name: prs, match: ["pull_request.*"], to: [s]}]
`), 0o600)
	body := filepath.Join(dir, "pr.json")
	os.WriteFile(body, []byte(`{"action":"opened","repository":{"full_name":"a/b"}}`), 0o600)
	out, errOut, code := runTest(t, "--config", cfg, "--header", "X-GitHub-Event: pull_request", body)
	if code != 0 || !strings.Contains(out, "event pull_request.opened, subject a/b") || !strings.Contains(out, "prs  matched: pull_request.*") {
		t.Fatalf("exit %d %s\n%s", code, errOut, out)
	}
}

func TestTestIsACommand(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"test", "-h"}, &out, &errOut)
	if exitCode(err) != 0 || !strings.Contains(errOut.String(), "--cases") {
		t.Fatalf("test -h: %v\n%s", err, errOut.String())
	}
}
