package app

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// TestBuildPartialConfigs: check compiles a configuration that has
// problems (config.ParseAll), so Build must report, never panic, on
// whatever a broken file decodes to.
func TestBuildPartialConfigs(t *testing.T) {
	t.Parallel()
	for _, y := range []string{
		"sources: [{}]\nsinks: [{}]\nroutes: [{}]",
		"sources: [{name: a, provider: nope}]\nsinks: [{name: s, type: nope}]\nroutes: [{name: r, match: [\"*\"], to: [s, t]}]",
		"sources: [{name: a, provider: custom}]\nsinks: [{name: s, type: slack, token: x, webhook_url: 'https://h.example/x', group: {by: 'x +'}}]",
		"sources: [{name: a, provider: darwin, secret: ''}]\nsinks: [{name: s, type: slack, token: xoxb, thread: sideways, group: {by: data.x, wait: 0s}}]",
		"sources: [{name: a, provider: custom, verify: {type: hmac}, map: {}}]\nsinks: [{name: h, type: http, url: 'ftp://x', sign: {}, tls: {ca_file: /nope}}]",
		"sources: [{name: a, provider: discord, verify: {public_key: zz}}]\nsinks: [{name: q, type: sqlite, columns: {'Bad Name': '', ok: 'data.x +'}}]",
		"sources: [{name: a, provider: meta, secret: x, verify: {verify_token: ''}}]\nsinks: [{name: f, type: file}, {name: o, type: stdout, path: x}]",
		"sources: [{name: a, provider: github, secret: s, subject: '+'}]\nroutes: [{name: r, match: ['session*'], when: 'x', to: []}]",
		"storage: {dir: ''}\nserver: {listen: ''}\nsources: [{name: a, provider: darwin, secret: s, dedup_key: '+'}]\nsinks: [{name: s, type: slack, retry: {max_backoff: 1ms}, blocks: 'not json'}]",
	} {
		cfg, err := config.ParseAll("partial.yaml", []byte(y), func(string) (string, bool) { return "", false })
		if cfg == nil {
			t.Fatalf("ParseAll gave no configuration: %v", err)
		}
		cfg.Storage.Dir = t.TempDir()
		plan, berr := Build(cfg, nil)
		if err == nil && berr == nil {
			plan.Close()
			t.Errorf("no problem found in:\n%s", y)
		}
		if berr != nil && strings.Contains(berr.Error(), "panic") {
			t.Errorf("%v", berr)
		}
	}
}
