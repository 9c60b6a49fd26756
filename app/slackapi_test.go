package app

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/receiver/darwin"
)

// TestSlackBotOnACompatibleAPI: a bot sink with api_url posts to that
// server instead of Slack, threads included: a session's second event
// replies under the first one's ts.
func TestSlackBotOnACompatibleAPI(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		posts []map[string]string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if r.URL.Path != "/api/chat.postMessage" || r.Form.Get("token") != "xoxb-test" && r.Header.Get("Authorization") != "Bearer xoxb-test" {
			http.Error(w, "unexpected "+r.URL.Path, http.StatusNotFound)
			return
		}
		mu.Lock()
		posts = append(posts, map[string]string{"channel": r.Form.Get("channel"), "thread_ts": r.Form.Get("thread_ts")})
		n := len(posts)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":true,"channel":"C1","ts":"1700000000.00000%d"}`, n)
	}))
	defer srv.Close()

	dir := t.TempDir()
	cfg, err := config.Parse("c.yaml", []byte(fmt.Sprintf(`
server: {listen: "127.0.0.1:0"}
storage: {dir: %[1]s}
sources: [{name: darwin, provider: darwin, secret: %[2]s}]
sinks:
  - name: ops
    type: slack
    token: xoxb-test
    channel: "#ops"
    api_url: %[3]s/api
routes: [{name: all, match: ["session.*"], to: [ops]}]
`, dir, secret, srv.URL)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	a := serve(t, cfg, nil)
	for _, name := range []string{"session_opened", "session_forwarded_escalated"} {
		body := fixture(t, name)
		if code, out := post(t, a, body, darwin.Sign([]byte(secret), body)); code != http.StatusOK {
			t.Fatalf("%s: %d %v", name, code, out)
		}
	}
	eventually(t, "both posts", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(posts) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if posts[0]["channel"] != "#ops" || posts[0]["thread_ts"] != "" || !strings.HasPrefix(posts[1]["thread_ts"], "1700000000.000001") {
		t.Fatalf("posts %v: want the second in the first's thread", posts)
	}
}
