package app

import (
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
)

func TestDataFieldWarnings(t *testing.T) {
	t.Parallel()
	y := `sources: [{name: darwin, provider: darwin, secret: x}]
sinks:
  - name: s
    type: slack
    webhook_url: https://hooks.slack.com/x
    text: "{{ data.conversationTitel }} {{ data.smartFields.anything }}"
  - name: a
    type: sqlite
    path: /tmp/never-opened.db
    columns: {score: data.smartFeilds.leadScore, fn: data.functionName}
routes:
  - name: r
    match: ["session.forwarded.*"]
    when: 'data.forwardTyp == "escalated" && data.functionName != nil && lookup(data, "app.x") == nil'
    to: [s, a]
  - name: f
    match: ["function.*"]
    when: |
      data.app.agentAppID != nil ||
        data["inputs"].x == 1 || data.app.metadata.y == 2 || data.summary != nil
    to: [s]
  - name: other
    match: ["order.*"]
    when: data.whatever == 1
    to: [a]
`
	cfg, err := config.Parse("c.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range DataFieldWarnings(cfg) {
		if !w.Warning {
			t.Errorf("not a warning: %v", w)
		}
		got = append(got, w.String())
	}
	want := []string{
		`c.yaml:14:17: warning: routes[0].when: data.forwardTyp: Darwin sends no such field with the events this route matches (a missing field is nil); did you mean data.forwardType?`,
		`c.yaml:14:51: warning: routes[0].when: data.functionName: Darwin sends no such field with the events this route matches (a missing field is nil)`,
		`c.yaml:14:88: warning: routes[0].when: data.app: Darwin sends no such field with the events this route matches (a missing field is nil)`,
		`c.yaml:19:16: warning: routes[1].when: data.app.agentAppID: Darwin sends no such field with the events this route matches (a missing field is nil); did you mean data.app.agentAppId?`,
		`c.yaml:20:67: warning: routes[1].when: data.summary: Darwin sends no such field with the events this route matches (a missing field is nil)`,
		`c.yaml:6:20: warning: sinks[0].text: data.conversationTitel: Darwin sends no such field with the events routed to this sink (a missing field is nil); did you mean data.conversationTitle?`,
		`c.yaml:10:59: warning: sinks[1].columns.fn: data.functionName: Darwin sends no such field with the events routed to this sink (a missing field is nil)`,
		`c.yaml:10:27: warning: sinks[1].columns.score: data.smartFeilds: Darwin sends no such field with the events routed to this sink (a missing field is nil); did you mean data.smartFields?`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The configuration still builds: these are warnings.
	p, err := Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}

// TestDataFieldWarningsHTTP: an http sink's url, headers and body are
// checked too.
func TestDataFieldWarningsHTTP(t *testing.T) {
	t.Parallel()
	y := `sources: [{name: darwin, provider: darwin, secret: x}]
sinks:
  - name: crm
    type: http
    url: https://crm.example.com/c/{{ data.sesionId }}
    headers: {X-Title: "{{ data.conversationTitle }}", X-To: "{{ data.forwardedTo }}"}
    body: '{"note": data.sumary}'
  - name: text
    type: http
    url: https://crm.example.com/t
    content_type: text/plain
    body: "{{ data.forwardTipe }}"
routes: [{name: r, match: ["session.forwarded.*"], to: [crm, text]}]
`
	cfg, err := config.Parse("c.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range DataFieldWarnings(cfg) {
		got = append(got, w.String())
	}
	for _, want := range []string{
		`c.yaml:5:44: warning: sinks[0].url: data.sesionId: Darwin sends no such field with the events routed to this sink (a missing field is nil); did you mean data.sessionId?`,
		`c.yaml:6:71: warning: sinks[0].headers.X-To: data.forwardedTo:`,
		`c.yaml:7:26: warning: sinks[0].body: data.sumary:`,
		`c.yaml:12:20: warning: sinks[1].body: data.forwardTipe:`,
	} {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, want) }) {
			t.Errorf("missing %q in\n%s", want, strings.Join(got, "\n"))
		}
	}
	if len(got) != 4 {
		t.Errorf("%d warnings, want 4:\n%s", len(got), strings.Join(got, "\n"))
	}
}

// TestDataFieldWarningsOnlyForDarwin: payloads of other senders are not
// known, so nothing is said about their fields.
func TestDataFieldWarningsOnlyForDarwin(t *testing.T) {
	t.Parallel()
	y := `sources:
  - {name: darwin, provider: darwin, secret: x}
  - {name: gh, provider: github, secret: y}
sinks: [{name: s, type: http, url: "https://x.example"}]
routes: [{name: r, match: ["*"], when: "data.forwardTyp == 1", to: [s]}]
`
	cfg, err := config.Parse("c.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if w := DataFieldWarnings(cfg); len(w) != 0 {
		t.Fatalf("warnings: %v", w)
	}
}

func TestExampleConfigHasNoDataFieldWarnings(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if w := DataFieldWarnings(cfg); len(w) != 0 {
		t.Fatalf("warnings: %v", w)
	}
}

// TestDataFieldWarningsPostgres: a postgres archive's columns are
// checked as a sqlite archive's.
func TestDataFieldWarningsPostgres(t *testing.T) {
	t.Parallel()
	y := `sources: [{name: darwin, provider: darwin, secret: x}]
sinks:
  - name: a
    type: postgres
    dsn: postgres://u@db.invalid/archive
    columns: {score: data.smartFeilds.leadScore}
routes: [{name: r, match: ["session.*"], to: [a]}]
`
	cfg, err := config.Parse("c.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range DataFieldWarnings(cfg) {
		got = append(got, w.String())
	}
	want := `c.yaml:6:27: warning: sinks[0].columns.score: data.smartFeilds: Darwin sends no such field with the events routed to this sink (a missing field is nil); did you mean data.smartFields?`
	if len(got) != 1 || got[0] != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
