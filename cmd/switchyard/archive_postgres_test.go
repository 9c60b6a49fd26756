package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/pgtest"
)

// exportLines decodes JSONL output.
func exportLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	for line := range strings.Lines(out) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		rows = append(rows, m)
	}
	return rows
}

// TestArchivePostgres: archive search and export read a postgres sink
// named by --config (its dsn from dsn_file, or from the environment),
// and answer what they answer for the same events in a sqlite sink.
func TestArchivePostgres(t *testing.T) {
	c := pgtest.Shared(t)
	dsnFile := filepath.Join(t.TempDir(), "dsn")
	os.WriteFile(dsnFile, []byte(c.DSN(t)+"\n"), 0o600)
	pgCfg := fillArchive(t, fmt.Sprintf("    type: postgres\n    dsn_file: %q", dsnFile))
	liteCfg := fillArchive(t, fmt.Sprintf("    type: sqlite\n    path: %q", filepath.Join(t.TempDir(), "archive.db")))

	for _, args := range [][]string{
		{"archive", "export", "--format", "jsonl"},
		{"archive", "export", "--format", "jsonl", "--where", "lead_score >= 80"},
		{"archive", "export", "--format", "jsonl", "--table", "events", "--since", "3650d", "--where", `event_type startsWith "session.forwarded"`},
	} {
		pg, errOut, err := runCmd(t, append(args, "--config", pgCfg)...)
		if err != nil {
			t.Fatalf("%v on postgres: %v: %s", args, err, errOut)
		}
		lite, _, err := runCmd(t, append(args, "--config", liteCfg)...)
		if err != nil {
			t.Fatalf("%v on sqlite: %v", args, err)
		}
		if p, l := exportLines(t, pg), exportLines(t, lite); len(p) == 0 || !reflect.DeepEqual(p, l) {
			t.Errorf("%v: postgres exported\n%s\nsqlite\n%s", args, pg, lite)
		}
	}
	pg, _, err := runCmd(t, "archive", "search", "--config", pgCfg, "reembolso OR refund")
	if err != nil || !strings.Contains(pg, "6651a0e7c4b2f81d9a3e5c11") || !strings.Contains(pg, "[reembolso]") || strings.Contains(pg, "other-session") {
		t.Errorf("search: %v\n%s", err, pg)
	}
	lite, _, _ := runCmd(t, "archive", "search", "--config", liteCfg, "reembolso OR refund")
	if first := func(s string) string { return strings.Fields(strings.Split(s, "\n")[1])[0] }; first(pg) != first(lite) {
		t.Errorf("search: postgres\n%s\nsqlite\n%s", pg, lite)
	}
	if out, _, err := runCmd(t, "archive", "search", "--config", pgCfg, "sessao"); err != nil || !strings.Contains(out, "6651a0e7c4b2f81d9a3e5c11") {
		t.Errorf("accent-free search: %v\n%s", err, out)
	}
	if _, _, err := runCmd(t, "archive", "search", "--config", pgCfg, `"unbalanced`); err == nil || !strings.Contains(err.Error(), "unbalanced quote") {
		t.Errorf("a malformed search: %v", err)
	}

	// The DSN from the environment.
	t.Setenv("ARCHIVE_TEST_DSN", strings.TrimSpace(string(must(os.ReadFile(dsnFile)))))
	envCfg := filepath.Join(t.TempDir(), "env.yaml")
	os.WriteFile(envCfg, []byte(`sources: [{name: darwin, provider: darwin, secret: x}]
sinks: [{name: archive, type: postgres, dsn: "${ARCHIVE_TEST_DSN}"}]
routes: [{name: all, match: ["*"], to: [archive]}]
`), 0o600)
	if out, _, err := runCmd(t, "archive", "export", "--config", envCfg, "--format", "csv"); err != nil || !strings.Contains(out, "other-session") {
		t.Errorf("export with the dsn from the environment: %v\n%s", err, out)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// check validates a postgres sink without connecting: an unreachable
// server passes; a malformed or empty dsn is a positioned problem that
// never shows the password. serve fails at once, naming the server.
func TestCheckAndServePostgresSink(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	write := func(dsn string) string {
		path := filepath.Join(dir, "config.yaml")
		os.WriteFile(path, []byte(fmt.Sprintf(`storage: {dir: %q}
server: {listen: "127.0.0.1:0"}
sources: [{name: darwin, provider: darwin, secret: x}]
sinks:
  - name: archive
    type: postgres
    dsn: %q
    columns: {lead_score: data.smartFields.leadScore}
routes: [{name: all, match: ["*"], to: [archive]}]
`, filepath.Join(dir, "state"), dsn)), 0o600)
		return path
	}
	unreachable := write("postgres://archiver:s3cretpw@" + addr + "/archive?sslmode=disable&connect_timeout=2")
	if out, _, err := runCmd(t, "check", "--config", unreachable); err != nil {
		t.Errorf("check of an unreachable archive: %v\n%s", err, out)
	}
	start := time.Now()
	_, errOut, err := runCmd(t, "serve", "--config", unreachable)
	if err == nil {
		t.Fatal("serve succeeded without its archive database")
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("serve took %v to fail", d)
	}
	if msg := err.Error() + errOut; !strings.Contains(msg, "sink archive: cannot reach the postgres archive at 127.0.0.1:") || strings.Contains(msg, "s3cretpw") {
		t.Errorf("serve failed with %q", msg)
	}
	for dsn, want := range map[string]string{
		"postgres://archiver:s3cretpw@host:port/db": ":7:10: sinks[0].dsn: invalid dsn",
		"${UNSET_ARCHIVE_DSN:-}":                    ":7:10: sinks[0].dsn: is empty",
	} {
		out, _, err := runCmd(t, "check", "--config", write(dsn))
		if exitCode(err) != 1 || !strings.Contains(out, want) || strings.Contains(out, "s3cretpw") {
			t.Errorf("check with dsn %q: exit %d\n%s\nwant %q", dsn, exitCode(err), out, want)
		}
	}
}

// TestAnalystQueriesPostgres feeds the example events to the example
// configuration with its archive in PostgreSQL, as `switchyard send`
// posts them, and runs every query docs/sinks/postgres.md shows: each
// must give the answer the page prints under it, as psql -At prints it.
func TestAnalystQueriesPostgres(t *testing.T) {
	t.Setenv("SLACK_WEBHOOK_URL", "")
	t.Setenv("CRM_URL", "")
	t.Setenv("DARWIN_WEBHOOK_SECRET", "")
	c := pgtest.Shared(t)
	dsn := c.DSN(t) + "&timezone=UTC"
	dir := t.TempDir()
	example, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(example), "./data", filepath.Join(dir, "data"))
	text = strings.Replace(text, `listen: ":8080"`, `listen: "127.0.0.1:0"`, 1)
	sqliteSink := "    type: sqlite\n    path: " + filepath.Join(dir, "data") + "/archive.db\n"
	if !strings.Contains(text, sqliteSink) {
		t.Fatal("config.example.yaml's archive sink is no longer where this test looks")
	}
	text = strings.Replace(text, sqliteSink, fmt.Sprintf("    type: postgres\n    dsn: %q\n", dsn), 1)
	path := filepath.Join(dir, "config.yaml")
	os.WriteFile(path, []byte(text), 0o600)
	a, _ := startGateway(t, path)
	out, _, err := runCmd(t, "send", "--config", path, "--source", "darwin", "--url", "http://"+a.Addr()+"/hooks/darwin", "../../examples/events/three_sessions.jsonl")
	if err != nil || strings.Count(out, "200 OK") != 15 {
		t.Fatalf("send: %v\n%s", err, out)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	wait(t, "every event archived", func() bool {
		var n int
		return conn.QueryRow(context.Background(), "SELECT count(*) FROM events").Scan(&n) == nil && n == 15
	})
	queries := docQueries(t, "../../docs/sinks/postgres.md")
	if len(queries) < 8 {
		t.Fatalf("docs/sinks/postgres.md shows %d queries with their answers, want every example query (8)", len(queries))
	}
	for _, q := range queries {
		// Text results: the values as psql prints them.
		rows, err := conn.Query(context.Background(), q.sql, pgx.QueryResultFormats{pgx.TextFormatCode})
		if err != nil {
			t.Errorf("docs/sinks/postgres.md:%d: %v\n%s", q.line, err, q.sql)
			continue
		}
		var got strings.Builder
		for rows.Next() {
			var cells []string
			for _, v := range rows.RawValues() {
				cells = append(cells, string(v))
			}
			got.WriteString(strings.Join(cells, "|") + "\n")
		}
		if err := rows.Err(); err != nil {
			t.Errorf("docs/sinks/postgres.md:%d: %v", q.line, err)
		}
		if got.String() != q.answer {
			t.Errorf("docs/sinks/postgres.md:%d: the query answers\n%s\nthe page shows\n%s\n%s", q.line, got.String(), q.answer, q.sql)
		}
	}
}
