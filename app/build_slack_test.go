package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/sinks"
)

// TestSlackStateFollowsStorage: with storage.backend postgres a Slack
// sink keeps its threads in the queue's database (storage.dsn), shared by
// the replicas; with sqlite, in storage.dir/slack.db.
func TestSlackStateFollowsStorage(t *testing.T) {
	c := pgtest.Shared(t)
	dsn := c.DSN(t)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.yaml")
			os.WriteFile(path, []byte(fmt.Sprintf(`storage: {backend: %s, dsn: %q, dir: %q}
sources: [{name: darwin, provider: darwin, secret: x}]
sinks: [{name: ops, type: slack, token: xoxb-1, channel: "#ops"}]
routes: [{name: all, match: ["*"], to: [ops]}]
`, backend, dsn, dir)), 0o600)
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := Build(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer plan.Close()
			if err := plan.Sinks[0].Sink.(sinks.Opener).Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, statErr := os.Stat(filepath.Join(dir, "slack.db"))
			conn, err := pgx.Connect(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			var inPostgres bool
			if err := conn.QueryRow(context.Background(), `SELECT to_regclass('slack_threads') IS NOT NULL`).Scan(&inPostgres); err != nil {
				t.Fatal(err)
			}
			if backend == "postgres" && (!inPostgres || statErr == nil) {
				t.Errorf("postgres: slack_threads in the database %v, slack.db written %v; want the database only", inPostgres, statErr == nil)
			}
			if backend == "sqlite" && (inPostgres || statErr != nil) {
				t.Errorf("sqlite: slack_threads in the database %v, slack.db: %v; want slack.db only", inPostgres, statErr)
			}
		})
	}
}

// TestSlackThreadsAcrossReplicas: a session's first message is posted
// by one gateway on the PostgreSQL queue, its later ones by another:
// they reply in the first one's thread, not in a thread of their own.
func TestSlackThreadsAcrossReplicas(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	type msg struct{ sid, threadTS, ts, token string }
	var msgs []msg
	slackSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		m := msg{threadTS: r.PostForm.Get("thread_ts"), ts: fmt.Sprintf("1700000000.%06d", len(msgs)+1), token: r.PostForm.Get("token")}
		if _, after, ok := strings.Cut(r.PostForm.Get("text"), "update "); ok {
			m.sid = strings.Fields(after)[2] // "update N of <session>"
		}
		msgs = append(msgs, m)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": "COPS", "ts": m.ts})
	}))
	defer slackSrv.Close()
	dsn := pgtest.Shared(t).DSN(t)
	dir := t.TempDir()
	replica := func(name string) *App {
		file := filepath.Join(dir, name+".yaml")
		os.WriteFile(file, []byte(fmt.Sprintf(`
server: {listen: "127.0.0.1:0", replica_name: %s, shutdown_timeout: 2s}
storage: {dir: %q, backend: postgres, dsn: %q, lease_ttl: 2s, poll_interval: 100ms}
sources: [{name: darwin, provider: darwin, secret: %s}]
sinks:
  - name: ops
    type: slack
    token: xoxb-1-2-%s
    channel: "#ops"
    api_url: %s/
    text: "{{ data.summary }}"
    channel_rate: 100/s
routes: [{name: all, match: ["*"], to: [ops]}]
`, name, filepath.Join(dir, name), dsn, secret, name, slackSrv.URL)), 0o600)
		cfg, err := config.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		return serve(t, cfg, nil)
	}
	posted := func(n int) {
		eventually(t, fmt.Sprintf("%d messages posted", n), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(msgs) >= n
		})
	}
	const sessions = 4
	r1 := replica("r1")
	for s := range sessions {
		mustAccept(t, r1, sessionEvent(t, fmt.Sprintf("sess-%d", s), 0))
	}
	posted(sessions)
	if err := r1.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	r2 := replica("r2")
	for s := range sessions {
		for n := 1; n <= 2; n++ {
			mustAccept(t, r2, sessionEvent(t, fmt.Sprintf("sess-%d", s), n))
		}
	}
	posted(3 * sessions)
	mu.Lock()
	defer mu.Unlock()
	parents := map[string]string{}
	for _, m := range msgs {
		if m.threadTS == "" {
			if p, dup := parents[m.sid]; dup {
				t.Errorf("%s: a second parent message %s by %s (first %s)", m.sid, m.ts, m.token, p)
			}
			parents[m.sid] = m.ts
		}
	}
	replies := 0
	for _, m := range msgs {
		if m.threadTS == "" {
			continue
		}
		replies++
		if m.threadTS != parents[m.sid] || m.token != "xoxb-1-2-r2" {
			t.Errorf("%s: a reply by %s in %s, want r2's in the thread %s", m.sid, m.token, m.threadTS, parents[m.sid])
		}
	}
	if len(parents) != sessions || replies != 2*sessions {
		t.Errorf("%d parents, %d replies; want %d and %d", len(parents), replies, sessions, 2*sessions)
	}
}
