package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

const opsBase = `
server: {listen: ":8080"}
sources:
  - {name: darwin, provider: darwin, secret: x}
sinks:
  - {name: archive, type: sqlite, path: ./a.db}
routes:
  - {name: all, match: ["*"], to: [archive]}
`

func TestOpsSections(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, yaml string
		want       string // a problem's text; "" for none
	}{
		{"off by default", "", ""},
		{"admin", "admin: {listen: \"127.0.0.1:9090\", token: 0123456789abcdef}\n", ""},
		{"listen without token", "admin: {listen: \"127.0.0.1:9090\"}\n", "m.yaml:9:8: admin.token: admin.listen is set but no token"},
		{"short token", "admin: {listen: \"127.0.0.1:9090\", token: short}\n", "admin.token: too short"},
		{"same listener", "admin: {listen: \":8080\", token: 0123456789abcdef}\n", "admin.listen: must differ from server.listen"},
		{"metrics listener", "metrics: {listener: public}\n", `metrics.listener: unknown listener "public"`},
		{"metrics on main reserves its path", "metrics: {listener: main}\nsources:\n  - {name: m, provider: darwin, secret: x, path: /metrics}\n",
			`sources[0].path: "/metrics" collides with the metrics GET /metrics, served there because metrics.listener is main (m.yaml:7:21)`},
		{"log events", "log: {events: true, format: json}\n", `unknown key "format" in log`},
		{"viewer token", "admin: {listen: \"127.0.0.1:9090\", token: 0123456789abcdef, viewer_token: fedcba9876543210}\n", ""},
		{"short viewer token", "admin: {listen: \"127.0.0.1:9090\", token: 0123456789abcdef, viewer_token: short}\n", "m.yaml:9:74: admin.viewer_token: too short"},
		{"viewer token same as admin's", "admin: {listen: \"127.0.0.1:9090\", token: 0123456789abcdef, viewer_token: 0123456789abcdef}\n",
			"admin.viewer_token: is the same as admin.token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			yaml := opsBase + c.yaml
			if strings.Contains(c.yaml, "sources:") {
				yaml = strings.Replace(opsBase, "sources:\n  - {name: darwin, provider: darwin, secret: x}\n", "", 1) + c.yaml
			}
			_, err := Parse("m.yaml", []byte(yaml), env(nil))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected problems:\n%v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want a problem containing %q", err, c.want)
			}
		})
	}
}

func TestAdminTokenNeverShown(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("m.yaml", []byte(opsBase+"admin: {listen: \"127.0.0.1:9090\", token: 0123456789abcdef-hunter2}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Admin.Enabled() || cfg.Admin.Token.Reveal() != "0123456789abcdef-hunter2" {
		t.Fatalf("admin: %+v", cfg.Admin)
	}
	if s := fmt.Sprintf("%v %+v %#v", cfg.Admin, cfg.Admin, cfg.Admin); strings.Contains(s, "hunter2") {
		t.Errorf("the token prints: %s", s)
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	parse := func(yaml string) *Config {
		t.Helper()
		c, err := Parse("m.yaml", []byte(yaml), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old := parse(opsBase)
	next := parse(`
server: {listen: ":9090", body_limit: 2MiB}
storage: {max_pending: 10}
log: {events: true}
sources:
  - {name: darwin, provider: darwin, secret: y}
  - {name: gh, provider: github, secret: z}
sinks:
  - {name: crm, type: http, url: "https://crm.example.com/h"}
routes:
  - {name: all, match: ["*"], to: [crm]}
  - {name: more, match: ["a.*"], to: [crm]}
`)
	ch := Diff(old, next)
	for _, c := range []struct {
		what      string
		got, want []string
	}{
		{"sources added", ch.Sources.Added, []string{"gh"}},
		{"sources modified", ch.Sources.Modified, []string{"darwin"}},
		{"sinks added", ch.Sinks.Added, []string{"crm"}},
		{"sinks removed", ch.Sinks.Removed, []string{"archive"}},
		{"routes added", ch.Routes.Added, []string{"more"}},
		{"routes modified", ch.Routes.Modified, []string{"all"}},
		{"settings", ch.Settings, []string{"storage.max_pending", "log.events"}},
		{"needs restart", ch.NeedsRestart, []string{"server.body_limit", "server.listen"}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	if got := ch.Sinks.String(); got != "+crm -archive" {
		t.Errorf("sinks summary %q", got)
	}
	next.KeepRunning(old)
	if next.Server.Listen != ":8080" || next.Storage.MaxPending != 10 {
		t.Errorf("KeepRunning: listen %q, max_pending %d", next.Server.Listen, next.Storage.MaxPending)
	}
	if !Diff(old, old).Empty() {
		t.Error("a configuration differs from itself")
	}
}
