package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// TestReloadRefusesShadowingAndUnsignedTimestamps: a reload to a
// configuration in which one source's path shadows another's, or in
// which a timestamp header is not signed, is refused with the problem
// placed in the file; the running sources keep answering as before (an
// unsigned POST to the signed source's path is still 401, not taken by
// an unsigned source).
func TestReloadRefusesShadowingAndUnsignedTimestamps(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t)
	base := fmt.Sprintf("server: {listen: \"127.0.0.1:0\"}\nstorage: {dir: %s/data}\nsinks:\n  - {name: a, type: http, url: %s/hook}\nroutes:\n  - {name: r, match: [\"*\"], to: [a]}\nsources:\n  - {name: darwin, provider: darwin, secret: \"${SECRET}\"}\n", e.dir, e.a.URL)
	write := func(sources string) {
		t.Helper()
		if err := os.WriteFile(e.path, []byte(base+sources), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	a := e.start(t, Options{})

	for _, tc := range []struct {
		name, sources, want string
	}{
		{"shadowing", "  - {name: open, provider: custom, verify: {type: none}, map: {eventType: 'body.type'}, path: /HOOKS/darwin/}\n",
			`:9:95: sources[1].path: "/HOOKS/darwin/" collides with sources[0]'s default path "/hooks/darwin" (` + e.path + `:8:12)`},
		{"unsigned timestamp", "  - {name: slack, provider: slack, secret: \"${SECRET}\", verify: {signed: \"{body}\"}}\n",
			`:9:74: sources[1].verify.signed: "{body}" leaves out {timestamp}`},
	} {
		write(tc.sources)
		_, err := a.Reload(context.Background())
		var cerr *config.Error
		if !errors.As(err, &cerr) || !strings.Contains(err.Error(), e.path+tc.want) {
			t.Errorf("%s: reload = %v, want a problem %q", tc.name, err, e.path+tc.want)
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/hooks/darwin/", strings.NewReader(`{"type":"x","eventType":"x"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: unsigned POST after the refused reload: %d, want 401", tc.name, resp.StatusCode)
		}
	}
}
