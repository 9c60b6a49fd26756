package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/app"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/receiver/darwin"
	"github.com/switchyard/switchyard/sinks"
)

// archiveConfig writes a configuration with a sqlite sink and fills its
// archive through the sink the gateway would build from it.
func archiveConfig(t *testing.T) (cfgPath, dbPath string) {
	t.Helper()
	dbPath = filepath.Join(t.TempDir(), "archive.db")
	return fillArchive(t, fmt.Sprintf("    type: sqlite\n    path: %q", dbPath)), dbPath
}

// fillArchive writes a configuration with one archive sink (sinkYAML)
// and fills the archive through the sink the gateway builds from it.
func fillArchive(t *testing.T, sinkYAML string) string {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`storage: {dir: %q}
sources: [{name: darwin, provider: darwin, secret: x}]
sinks:
  - name: archive
%s
    retention: 3650d
    columns:
      lead_score: data.smartFields.leadScore
      city: data.smartFields.city
routes: [{name: all, match: ["*"], to: [archive]}]
`, filepath.Join(dir, "state"), sinkYAML)), 0o600)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := app.Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	sink := plan.Sinks[0].Sink
	if err := sink.(sinks.Opener).Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC)
	for i, name := range []string{"session_opened", "session_forwarded_escalated", "session_analyzed", "session_closed_unforwarded"} {
		body, err := os.ReadFile(filepath.Join("..", "..", "testdata", "darwin", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := darwin.Normalize(body, at)
		if err != nil {
			t.Fatal(err)
		}
		ev.ID, ev.Source = fmt.Sprintf("evt_%d", i), "darwin"
		if name == "session_closed_unforwarded" {
			ev.Subject = "other-session"
		}
		if err := sink.Send(context.Background(), &sinks.Delivery{ID: ev.ID, Attempt: 1, Event: ev}); err != nil {
			t.Fatal(err)
		}
	}
	return cfgPath
}

func TestArchiveSearch(t *testing.T) {
	t.Parallel()
	cfg, db := archiveConfig(t)
	for _, args := range [][]string{
		{"archive", "search", "--config", cfg, "reembolso OR refund"},
		{"archive", "search", "reembolso", "OR", "refund", "--db", db}, // flags after the query
	} {
		out, _, err := runCmd(t, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.Contains(out, "6651a0e7c4b2f81d9a3e5c11") || !strings.Contains(out, "WhatsApp Vendas") || !strings.Contains(out, "[reembolso]") {
			t.Errorf("%v printed:\n%s", args, out)
		}
		if strings.Contains(out, "other-session") {
			t.Errorf("%v found a session without refunds:\n%s", args, out)
		}
	}
	out, _, err := runCmd(t, "archive", "search", "--db", db, "sessao")
	if err != nil || !strings.Contains(out, "6651a0e7c4b2f81d9a3e5c11") {
		t.Errorf("accent-free search: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, "archive", "search", "--db", db, "nothing-like-this")
	if err != nil || !strings.Contains(out, "(no sessions match)") {
		t.Errorf("no match: %v\n%s", err, out)
	}
}

func TestArchiveExport(t *testing.T) {
	t.Parallel()
	cfg, _ := archiveConfig(t)
	out, errOut, err := runCmd(t, "archive", "export", "--config", cfg, "--format", "csv", "--where", `lead_score >= 80`)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 2 || records[0][0] != "session_id" || records[1][0] != "6651a0e7c4b2f81d9a3e5c11" {
		t.Fatalf("export:\n%s", out)
	}
	header := strings.Join(records[0], ",")
	if !strings.HasSuffix(header, ",city,lead_score") || strings.Contains(header, "_versions") {
		t.Errorf("header = %s", header)
	}
	if !strings.Contains(errOut, "exported 1 rows") {
		t.Errorf("stderr = %q", errOut)
	}

	out, _, err = runCmd(t, "archive", "export", "--config", cfg, "--format", "jsonl", "--table", "events", "--since", "3650d", "--where", `event_type startsWith "session.forwarded"`)
	if err != nil {
		t.Fatal(err)
	}
	var row struct {
		ID   string         `json:"id"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &row); err != nil || row.ID != "evt_1" || row.Data["forwardType"] != "escalated" {
		t.Errorf("jsonl export = %+v, %v:\n%s", row, err, out)
	}

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--format", "xml"}, "csv or jsonl"},
		{[]string{"--format", "csv", "--table", "deliveries"}, "sessions or events"},
		{[]string{"--format", "csv", "--where", "lead_scor > 1"}, "--where 1:1: unknown name lead_scor"},
		{[]string{"--format", "csv", "--sink", "nope"}, `no archive sink "nope"`},
	} {
		_, _, err := runCmd(t, append([]string{"archive", "export", "--config", cfg}, tc.args...)...)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: exit %d, %v; want 2 and %q", tc.args, exitCode(err), err, tc.msg)
		}
	}
}

func TestArchiveMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "none.db")
	if _, _, err := runCmd(t, "archive", "search", "--db", path, "x"); err == nil {
		t.Error("search of a missing archive succeeded")
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("search created the archive")
	}
}

func TestCheckReportsArchiveColumnProblems(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte(`sources: [{name: darwin, provider: darwin, secret: x}]
sinks:
  - name: a
    type: sqlite
    path: a.db
    retention: 10m
    columns:
      Lead-Score: data.smartFields.leadScore
routes: [{name: r, match: ["*"], to: [a]}]
`), 0o600)
	out, _, err := runCmd(t, "check", "--config", path)
	for _, want := range []string{
		path + `:6:16: sinks[0].retention: must be 0 (keep everything) or at least 1h`,
		path + `:8:19: sinks[0].columns.Lead-Score: invalid column name "Lead-Score"`,
	} {
		if exitCode(err) != 1 || !strings.Contains(out, want) {
			t.Errorf("exit %d; missing %q in:\n%s", exitCode(err), want, out)
		}
	}

	// Names and expressions the config accepts, Build may not.
	os.WriteFile(path, []byte(`sources: [{name: darwin, provider: darwin, secret: x}]
sinks:
  - name: a
    type: sqlite
    path: a.db
    columns:
      summary: data.summary
      score: data.smartFields.leadScore +
routes: [{name: r, match: ["*"], to: [a]}]
`), 0o600)
	out, _, err = runCmd(t, "check", "--config", path)
	for _, want := range []string{
		path + `:7:16: sinks[0].columns.summary: column "summary" is built in`,
		path + `:8:41: sinks[0].columns.score: unexpected token EOF`,
	} {
		if exitCode(err) != 1 || !strings.Contains(out, want) {
			t.Errorf("exit %d; missing %q in:\n%s", exitCode(err), want, out)
		}
	}
}
