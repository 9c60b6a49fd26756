package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// docQuery is an SQL block of a doc and the answer shown after it.
type docQuery struct {
	line        int
	sql, answer string
}

var fence = regexp.MustCompile("```sql\n([^`]*)```\n+```text\n([^`]*)```")

// docQueries returns the doc's SQL blocks that are followed by a text
// block: the answer the query gives on the example events.
func docQueries(t *testing.T, doc string) []docQuery {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	var out []docQuery
	for _, m := range fence.FindAllSubmatchIndex(b, -1) {
		out = append(out, docQuery{
			line:   strings.Count(string(b[:m[0]]), "\n") + 1,
			sql:    string(b[m[2]:m[3]]),
			answer: string(b[m[4]:m[5]]),
		})
	}
	return out
}

// sqliteText formats a value as the sqlite3 shell prints it in its
// default (list) mode: NULL as nothing, a REAL with at least one decimal.
func sqliteText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case []byte:
		return string(x)
	case float64:
		s := strconv.FormatFloat(x, 'g', 15, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return s
	}
	return fmt.Sprint(v)
}

// TestAnalystQueries feeds the example events (three sessions) to the
// example configuration's archive, as `switchyard send` posts them, and
// runs every query docs/sinks/sqlite.md shows: each must give the answer
// the page prints under it, as the sqlite3 shell prints it.
func TestAnalystQueries(t *testing.T) {
	t.Setenv("SLACK_WEBHOOK_URL", "")
	t.Setenv("CRM_URL", "")
	t.Setenv("DARWIN_WEBHOOK_SECRET", "")
	dir := t.TempDir()
	example, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(example), "./data", filepath.Join(dir, "data"))
	text = strings.Replace(text, `listen: ":8080"`, `listen: "127.0.0.1:0"`, 1)
	path := filepath.Join(dir, "config.yaml")
	os.WriteFile(path, []byte(text), 0o600)
	a, _ := startGateway(t, path)
	events := "../../examples/events/three_sessions.jsonl"
	out, _, err := runCmd(t, "send", "--config", path, "--source", "darwin", "--url", "http://"+a.Addr()+"/hooks/darwin", events)
	if err != nil || strings.Count(out, "200 OK") != 15 {
		t.Fatalf("send: %v\n%s", err, out)
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "data", "archive.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	wait(t, "every event archived", func() bool {
		var n int
		return db.QueryRow("SELECT count(*) FROM events").Scan(&n) == nil && n == 15
	})

	queries := docQueries(t, "../../docs/sinks/sqlite.md")
	if len(queries) < 7 {
		t.Fatalf("docs/sinks/sqlite.md shows %d queries with their answers, want every example query (7)", len(queries))
	}
	for _, q := range queries {
		rows, err := db.Query(q.sql)
		if err != nil {
			t.Errorf("docs/sinks/sqlite.md:%d: %v\n%s", q.line, err, q.sql)
			continue
		}
		cols, _ := rows.Columns()
		var got strings.Builder
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			cells := make([]string, len(vals))
			for i, v := range vals {
				cells[i] = sqliteText(v)
			}
			got.WriteString(strings.Join(cells, "|") + "\n")
		}
		rows.Close()
		if got.String() != q.answer {
			t.Errorf("docs/sinks/sqlite.md:%d: the query answers\n%s\nthe page shows\n%s\n%s", q.line, got.String(), q.answer, q.sql)
		}
	}
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdFenced  = regexp.MustCompile("(?s)```.*?```")
	mdHeading = regexp.MustCompile(`(?m)^#+\s+(.*)$`)
)

// anchor is the id GitHub gives a heading.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestDocLinks: every relative link in README.md and docs/ leads to a
// file that exists and, with a #fragment, to a heading of that file.
func TestDocLinks(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	files := []string{"README.md", "bench/README.md"}
	filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".md") {
			rel, _ := filepath.Rel(root, p)
			files = append(files, rel)
		}
		return nil
	})
	headings := func(file string) map[string]bool {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			return nil
		}
		out := map[string]bool{}
		for _, m := range mdHeading.FindAllStringSubmatch(mdFenced.ReplaceAllString(string(b), ""), -1) {
			out[anchor(m[1])] = true
		}
		return out
	}
	checked := 0
	for _, file := range files {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(mdFenced.ReplaceAllString(string(b), ""), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			path, frag, _ := strings.Cut(link, "#")
			target := file
			if path != "" {
				target = filepath.Join(filepath.Dir(file), path)
			}
			checked++
			if _, err := os.Stat(filepath.Join(root, target)); err != nil {
				t.Errorf("%s: link %s: no such file", file, link)
				continue
			}
			if frag != "" && strings.HasSuffix(target, ".md") && !headings(target)[frag] {
				t.Errorf("%s: link %s: %s has no heading #%s", file, link, target, frag)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("checked %d links: the docs are not where this test looks", checked)
	}
}

// TestDocSampleRuns: the switchyard test runs docs/rules.md and the
// README show are what the command prints, up to the first sink's
// payload (the pages abbreviate it).
func TestDocSampleRuns(t *testing.T) {
	t.Setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T000/B000/XXXX")
	t.Setenv("CRM_URL", "")
	t.Setenv("DARWIN_WEBHOOK_SECRET", "x")
	for _, tc := range []struct{ doc, config, event, cut string }{
		{"docs/rules.md", "config.example.yaml", "testdata/darwin/session_forwarded_qualified.json", "    {\n"},
		{"README.md", "examples/darwin.yaml", "testdata/darwin/session_forwarded_escalated.json", "    {\""},
	} {
		page, err := os.ReadFile("../../" + tc.doc)
		if err != nil {
			t.Fatal(err)
		}
		_, shown, ok := strings.Cut(string(page), "```\n== "+tc.event)
		shown, _, _ = strings.Cut(shown, tc.cut)
		if !ok {
			t.Fatalf("%s no longer shows the sample run", tc.doc)
		}
		out, _, code := runTest(t, "--config", "../../"+tc.config, "../../"+tc.event)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		out = strings.TrimPrefix(out, "== ../../"+tc.event)
		if !strings.HasPrefix(out, shown) {
			t.Errorf("%s shows\n%s\nthe command prints\n%s", tc.doc, shown, out)
		}
	}
}
