package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostgresSink: type postgres takes dsn (or dsn_file, and ${VARS}),
// columns and retention, and defaults to the archive's concurrency.
func TestPostgresSink(t *testing.T) {
	t.Parallel()
	dsnFile := filepath.Join(t.TempDir(), "dsn")
	os.WriteFile(dsnFile, []byte("postgres://u:filepw@db/archive\n"), 0o600)
	env := map[string]string{"ARCHIVE_DSN": "postgres://u:envpw@db/archive"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	y := `sources: [{name: darwin, provider: darwin, secret: 0123456789abcdef0123456789abcdef}]
sinks:
  - name: a
    type: postgres
    dsn: ${ARCHIVE_DSN}
    retention: 180d
    columns: {lead_score: data.smartFields.leadScore}
  - name: b
    type: postgres
    dsn_file: ` + dsnFile + `
routes: [{name: r, match: ["*"], to: [a, b]}]
`
	c, err := Parse("c.yaml", []byte(y), lookup)
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Sinks[0], c.Sinks[1]
	if a.Postgres == nil || a.Postgres.DSN.Reveal() != env["ARCHIVE_DSN"] || a.Postgres.Retention.D().Hours() != 180*24 ||
		a.Postgres.Columns["lead_score"] != "data.smartFields.leadScore" || a.Concurrency != DefaultSQLiteConcurrency {
		t.Errorf("sink a = %+v %+v", a, a.Postgres)
	}
	if b.Postgres == nil || b.Postgres.DSN.Reveal() != "postgres://u:filepw@db/archive" {
		t.Errorf("sink b = %+v", b.Postgres)
	}
	if s := a.Postgres.DSN.String(); strings.Contains(s, "envpw") {
		t.Errorf("the dsn prints as %q", s)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings = %v", c.Warnings)
	}
}

func TestPostgresSinkProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, sink, want string }{
		{"missing dsn", "type: postgres", "c.yaml:3:5: sinks[0].dsn: missing dsn (or dsn_file)"},
		{"empty dsn", "type: postgres\n    dsn: ${UNSET:-}", "c.yaml:5:10: sinks[0].dsn: is empty (an unset ${VAR:-}?)"},
		{"short retention", "type: postgres\n    dsn: x\n    retention: 10m", "c.yaml:6:16: sinks[0].retention: must be 0 (keep everything) or at least 1h"},
		{"bad column", "type: postgres\n    dsn: x\n    columns: {Lead: data.x}", "c.yaml:6:21: sinks[0].columns.Lead: invalid column name"},
		{"sqlite key", "type: postgres\n    dsn: x\n    path: a.db", "c.yaml:6:5: sinks[0].path: unknown key \"path\" in a sink of type postgres"},
	} {
		y := "sources: [{name: darwin, provider: darwin, secret: 0123456789abcdef0123456789abcdef}]\nsinks:\n  - name: a\n    " + tc.sink + "\nroutes: [{name: r, match: [\"*\"], to: [a]}]\n"
		_, err := Parse("c.yaml", []byte(y), func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %q", tc.name, err, tc.want)
		}
	}
}

// With replicas, a SQLite archive splits into one file per replica: the
// configuration says so, and names the postgres sink.
func TestSQLiteArchiveWithReplicasWarns(t *testing.T) {
	t.Parallel()
	y := `storage: {backend: postgres, dsn: "postgres://db/q"}
sources: [{name: darwin, provider: darwin, secret: 0123456789abcdef0123456789abcdef}]
sinks: [{name: a, type: sqlite, path: a.db}]
routes: [{name: r, match: ["*"], to: [a]}]
`
	c, err := Parse("c.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0].String(), "sinks[0].type: with storage.backend postgres, each replica writes its own SQLite archive") {
		t.Errorf("warnings = %v", c.Warnings)
	}
}
