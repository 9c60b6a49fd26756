package config

import (
	"strings"
	"testing"
)

// TestSourcePathCollisions: two sources the receiver cannot tell apart
// (it matches paths without regard to case or trailing slashes) are
// refused, at the later one, pointing at the earlier. Before, the later
// silently received the earlier's requests: a signed GitHub source on
// /hooks/GitHub was shadowed by an unsigned one on /hooks/github/.
func TestSourcePathCollisions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		sources string
		extra   string
		want    []string // problems, exactly
	}{
		{
			name: "case and trailing slash",
			sources: `
  - name: github
    provider: github
    secret: 0123456789abcdef
    path: /hooks/GitHub
  - name: other
    provider: custom
    verify: {type: none}
    map: {eventType: 'body.type'}
    path: /hooks/github/
`,
			want: []string{`c.yaml:12:11: sources[1].path: "/hooks/github/" collides with sources[0].path "/hooks/GitHub" (c.yaml:7:11): paths match without regard to case or a trailing slash; give each source its own path`},
		},
		{
			name: "exact duplicate",
			sources: `
  - {name: a, provider: darwin, secret: 0123456789abcdef, path: /in}
  - {name: b, provider: darwin, secret: 0123456789abcdef, path: /in}
`,
			want: []string{`c.yaml:5:65: sources[1].path: "/in" collides with sources[0].path "/in" (c.yaml:4:65): paths match`},
		},
		{
			name: "several slashes",
			sources: `
  - {name: a, provider: darwin, secret: 0123456789abcdef, path: /in}
  - {name: b, provider: darwin, secret: 0123456789abcdef, path: /IN//}
`,
			want: []string{`c.yaml:5:65: sources[1].path: "/IN//" collides with sources[0].path "/in" (c.yaml:4:65)`},
		},
		{
			name: "a default path collides with a written one",
			sources: `
  - {name: a, provider: darwin, secret: 0123456789abcdef, path: /hooks/Darwin}
  - {name: darwin, provider: darwin, secret: 0123456789abcdef}
`,
			want: []string{`c.yaml:5:12: sources[1].path: default path "/hooks/darwin" (from name "darwin") collides with sources[0].path "/hooks/Darwin" (c.yaml:4:65)`},
		},
		{
			name: "a written path collides with a default one",
			sources: `
  - {name: Darwin, provider: darwin, secret: 0123456789abcdef}
  - {name: b, provider: darwin, secret: 0123456789abcdef, path: /hooks/darwin/}
`,
			want: []string{`c.yaml:5:65: sources[1].path: "/hooks/darwin/" collides with sources[0]'s default path "/hooks/Darwin" (c.yaml:4:12)`},
		},
		{
			name: "the health check",
			sources: `
  - {name: a, provider: darwin, secret: 0123456789abcdef, path: /Healthz/}
`,
			want: []string{`c.yaml:4:65: sources[0].path: "/Healthz/" collides with the health check GET /healthz: paths match without regard to case or a trailing slash; choose another path`},
		},
		{
			name: "the metrics on the main listener",
			sources: `
  - {name: a, provider: darwin, secret: 0123456789abcdef, path: /METRICS}
`,
			extra: "metrics: {listener: main}\n",
			want:  []string{`c.yaml:4:65: sources[0].path: "/METRICS" collides with the metrics GET /metrics, served there because metrics.listener is main (c.yaml:5:21): paths match without regard to case or a trailing slash; choose another path`},
		},
		{
			name: "the metrics elsewhere leave the path free",
			sources: `
  - {name: a, provider: darwin, secret: 0123456789abcdef, path: /metrics}
`,
		},
		{
			name: "characters a request cannot carry",
			sources: `
  - {name: a, provider: darwin, secret: 0123456789abcdef, path: /hooks/Ünï}
  - {name: b, provider: darwin, secret: 0123456789abcdef, path: "/hooks/a b"}
  - {name: c, provider: darwin, secret: 0123456789abcdef, path: "/hooks/c?x=1"}
`,
			want: []string{
				`c.yaml:4:65: sources[0].path: "/hooks/Ünï" has a character no request can carry as is ('Ü'): write the path as senders send it, percent-encoded: /hooks/%C3%9Cn%C3%AF`,
				`c.yaml:5:65: sources[1].path: "/hooks/a b" has a character no request can carry as is (' '): write the path as senders send it, percent-encoded: /hooks/a%20b`,
				`c.yaml:6:65: sources[2].path: "/hooks/c?x=1" has a character no request can carry as is ('?')`,
			},
		},
		{
			name: "distinct paths",
			sources: `
  - {name: a, provider: darwin, secret: 0123456789abcdef, path: /hooks/a}
  - {name: b, provider: darwin, secret: 0123456789abcdef, path: /hooks/a/b}
  - {name: c, provider: darwin, secret: 0123456789abcdef, path: /hooks//a}
  - {name: d, provider: darwin, secret: 0123456789abcdef}
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			yaml := "storage: {dir: /tmp/sy}\nsinks: []\nsources:" + tc.sources + tc.extra
			_, err := Parse("c.yaml", []byte(yaml), env(nil))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected problems:\n%v", err)
				}
				return
			}
			cerr, ok := err.(*Error)
			if !ok {
				t.Fatalf("err = %v, want problems %q", err, tc.want)
			}
			if len(cerr.Problems) != len(tc.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(cerr.Problems), len(tc.want), err)
			}
			for i, w := range tc.want {
				if got := cerr.Problems[i].String(); !strings.HasPrefix(got, w) {
					t.Errorf("problem %d:\n got %s\nwant %s…", i, got, w)
				}
			}
		})
	}
}

func TestPathKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/hooks/GitHub": "/hooks/github", "/hooks/github/": "/hooks/github", "/hooks/x//": "/hooks/x",
		"/": "/", "//": "/", "/a//b": "/a//b",
	} {
		if got := PathKey(in); got != want {
			t.Errorf("PathKey(%q) = %q, want %q", in, got, want)
		}
	}
}
