package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/app"
	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/receiver/darwin"
)

// downstream is a service that answers 400 for the sessions in bad,
// until fixed, and records what it took.
type downstream struct {
	*httptest.Server
	fixed atomic.Bool
	down  atomic.Bool // answer 503 to everything
	mu    sync.Mutex
	got   map[string]int // event id → times delivered
}

func newDownstream(t *testing.T, bad string) *downstream {
	d := &downstream{got: map[string]int{}}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ ID, Subject string }
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &ev)
		switch {
		case d.down.Load():
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		case ev.Subject == bad && !d.fixed.Load():
			http.Error(w, `{"error":"unknown field"}`, http.StatusBadRequest)
			return
		}
		d.mu.Lock()
		d.got[ev.ID]++
		d.mu.Unlock()
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *downstream) times(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.got[id]
}

func postEvent(t *testing.T, a *app.App, session string, n int) (id string, duplicate bool) {
	t.Helper()
	body := fmt.Sprintf(`{"eventType":"session.forwarded.escalated","data":{"sessionId":%q,"n":%d}}`, session, n)
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/hooks/darwin", strings.NewReader(body))
	req.Header.Set("X-Signature", darwin.Sign([]byte("s"), []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID        string
		Duplicate bool
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post: %d", resp.StatusCode)
	}
	return out.ID, out.Duplicate
}

func jsonLines(t *testing.T, out string) []map[string]any {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		lines = append(lines, m)
	}
	return lines
}

// TestCLIOnPostgres: events, deliveries list and purge, replay and
// replicas work against a PostgreSQL queue, with its configuration or
// with only its connection string, beside a serving gateway; a replay
// from the command line wakes the gateway at once.
func TestCLIOnPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Shared(t).DSN(t)
	crm := newDownstream(t, "poison")
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`server: {listen: "127.0.0.1:0", replica_name: cli-gw}
storage: {backend: postgres, dsn: "%s", dir: %s, poll_interval: 1m}
sources: [{name: darwin, provider: darwin, secret: s}]
sinks:
  - {name: crm, type: http, url: %s}
routes: [{name: all, match: ["*"], to: [crm]}]
`, dsn, filepath.Join(dir, "data"), crm.URL)), 0o600)
	a, _ := startGateway(t, path)
	poison, _ := postEvent(t, a, "poison", 1)
	good, _ := postEvent(t, a, "good", 2)
	wait(t, "the good event delivered", func() bool { return crm.times(good) == 1 })

	wait(t, "the poison delivery dead", func() bool {
		out, _, err := runCmd(t, "deliveries", "list", "--config", path, "--state", "dead", "--json")
		if err != nil {
			t.Fatal(err)
		}
		dead := jsonLines(t, out)
		return len(dead) == 1 && dead[0]["event_id"] == poison && dead[0]["last_status"] == 400.0
	})
	// A variable of this test's own: the tests run in parallel.
	os.Setenv("TEST_PG_DSN", dsn)
	t.Cleanup(func() { os.Unsetenv("TEST_PG_DSN") })
	out, _, err := runCmd(t, "events", "list", "--dsn", "env:TEST_PG_DSN", "--json")
	if err != nil || len(jsonLines(t, out)) != 2 {
		t.Fatalf("events list --dsn: %v\n%s", err, out)
	}
	if out, _, err := runCmd(t, "events", "get", "--config", path, poison); err != nil || !strings.Contains(out, poison) {
		t.Fatalf("events get: %v\n%s", err, out)
	}
	if _, _, err := runCmd(t, "events", "list", "--dsn", "env:TEST_PG_NOPE"); exitCode(err) != 2 {
		t.Fatalf("--dsn env: of an unset variable: %v", err)
	}
	out, _, err = runCmd(t, "replicas", "--config", path)
	if err != nil || !strings.Contains(out, "cli-gw") || !strings.Contains(out, app.Version) {
		t.Fatalf("replicas: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, "replicas", "--dsn", "env:TEST_PG_DSN", "--json")
	if list := jsonLines(t, out); err != nil || len(list) != 1 || list[0]["name"] != "cli-gw" || list[0]["same_config"] != true {
		t.Fatalf("replicas --json: %v\n%s", err, out)
	}

	// The gateway polls once a minute: only the replay's notification
	// can wake it in time.
	crm.fixed.Store(true)
	out, _, err = runCmd(t, "replay", "--dsn", "env:TEST_PG_DSN", "--sink", "crm", "--state", "dead")
	if err != nil || !strings.Contains(out, "re-queued 1 deliveries") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	wait(t, "the replayed delivery", func() bool { return crm.times(poison) == 1 })

	// The sink has it; the gateway records the outcome just after.
	wait(t, "the replayed delivery recorded", func() bool {
		out, _, err = runCmd(t, "deliveries", "purge", "--config", path, "--sink", "crm", "--state", "delivered", "--dry-run")
		if err != nil {
			t.Fatalf("purge --dry-run: %v\n%s", err, out)
		}
		return strings.Contains(out, "would purge 2 deliveries")
	})
	out, _, err = runCmd(t, "deliveries", "purge", "--config", path, "--sink", "crm", "--state", "delivered", "--yes")
	if err != nil || !strings.Contains(out, "purged 2 deliveries") {
		t.Fatalf("purge: %v\n%s", err, out)
	}
}

// TestStorageCopy moves a stopped SQLite gateway's queue to PostgreSQL:
// it refuses while the gateway runs; then every event, and each
// delivery not delivered (waiting and dead), is copied; a second copy
// adds nothing; a gateway on PostgreSQL then delivers what waited, once,
// and still knows the copied events as duplicates.
func TestStorageCopy(t *testing.T) {
	t.Parallel()
	crm := newDownstream(t, "poison")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	sqlitePath := filepath.Join(dir, "sqlite.yaml")
	body := `server: {listen: "127.0.0.1:0"}
storage: {%s}
sources: [{name: darwin, provider: darwin, secret: s}]
sinks:
  - {name: crm, type: http, url: %s, retry: {initial_backoff: 10ms, max_backoff: 20ms}}
routes: [{name: all, match: ["*"], to: [crm]}]
`
	os.WriteFile(sqlitePath, []byte(fmt.Sprintf(body, "dir: "+data, crm.URL)), 0o600)
	a, stop := startGateway(t, sqlitePath)
	delivered, _ := postEvent(t, a, "good", 1)
	poison, _ := postEvent(t, a, "poison", 2)
	wait(t, "one delivered, one dead", func() bool {
		out, _, _ := runCmd(t, "deliveries", "list", "--config", sqlitePath, "--state", "dead")
		return crm.times(delivered) == 1 && strings.Contains(out, poison)
	})
	crm.down.Store(true)
	var waiting []string
	for i := range 5 {
		id, _ := postEvent(t, a, fmt.Sprintf("sess-%d", i%2), i)
		waiting = append(waiting, id)
	}

	dsn := pgtest.Shared(t).DSN(t)
	if _, _, err := runCmd(t, "storage", "copy", "--from-dir", data, "--to-dsn", dsn); err == nil || !strings.Contains(err.Error(), "in use by a running switchyard serve") {
		t.Fatalf("copy beside a running gateway: %v", err)
	}
	stop()
	out, _, err := runCmd(t, "storage", "copy", "--from-dir", data, "--to-dsn", dsn)
	// 7 events; 5 waiting deliveries and the dead one (the delivered one
	// stays behind).
	if err != nil || !strings.Contains(out, "copied 7 events and 6 deliveries") {
		t.Fatalf("copy: %v\n%s", err, out)
	}
	if strings.Contains(out, "postgres://") {
		t.Fatalf("the copy printed the connection string:\n%s", out)
	}
	out, _, err = runCmd(t, "storage", "copy", "--from-dir", data, "--to-dsn", dsn)
	if err != nil || !strings.Contains(out, "copied 0 events and 0 deliveries") {
		t.Fatalf("second copy: %v\n%s", err, out)
	}

	crm.down.Store(false)
	pgPath := filepath.Join(dir, "pg.yaml")
	os.WriteFile(pgPath, []byte(fmt.Sprintf(body, fmt.Sprintf("backend: postgres, dsn: %q, dir: %s", dsn, filepath.Join(dir, "pgdata")), crm.URL)), 0o600)
	b, _ := startGateway(t, pgPath)
	wait(t, "what waited delivered", func() bool {
		for _, id := range waiting {
			if crm.times(id) == 0 {
				return false
			}
		}
		return true
	})
	for _, id := range append(waiting, delivered) {
		if n := crm.times(id); n != 1 {
			t.Fatalf("event %s delivered %d times, want once", id, n)
		}
	}
	if id, dup := postEvent(t, b, "good", 1); !dup || id != delivered {
		t.Fatalf("the sender's retry of a copied event: %s (duplicate %v), want %s", id, dup, delivered)
	}
	out, _, err = runCmd(t, "deliveries", "list", "--config", pgPath, "--state", "dead", "--json")
	if dead := jsonLines(t, out); err != nil || len(dead) != 1 || dead[0]["event_id"] != poison || dead[0]["attempts"] != 1.0 {
		t.Fatalf("dead letters after the copy: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, "events", "get", "--config", pgPath, poison)
	if err != nil || !strings.Contains(out, `"status": 400`) || !strings.Contains(out, `"request": {`) || !strings.Contains(out, `\"sessionId\":\"poison\"`) {
		t.Fatalf("the dead letter's history and request after the copy: %v\n%s", err, out)
	}
}

// TestCheckPostgresSettings: check validates the PostgreSQL settings
// without connecting (the host here does not exist), places what is
// wrong in the file, and never prints the password.
func TestCheckPostgresSettings(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, storage, want string }{
		{"valid", `{backend: postgres, dsn: "postgres://sw:hunter2@db.invalid:5432/queue?sslmode=verify-full"}`, "OK"},
		{"bad sslmode", `{backend: postgres, dsn: "postgres://sw:hunter2@db.invalid:5432/queue?sslmode=sometimes"}`,
			"c.yaml:2:35: storage.dsn: the connection string is not valid: failed to configure TLS (sslmode is invalid)"},
		{"short lease", `{backend: postgres, dsn: "postgres://sw:hunter2@db.invalid/queue", lease_ttl: 100ms}`,
			"storage.lease_ttl: must be at least 1s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(path, []byte("sources: [{name: darwin, provider: darwin, secret: x}]\nstorage: "+c.storage+"\n"), 0o600)
			out, _, err := runCmd(t, "check", "--config", path)
			if !strings.Contains(out, c.want) || (c.want == "OK") != (err == nil) {
				t.Fatalf("check: %v\n%s\nwant %q", err, out, c.want)
			}
			if strings.Contains(out, "hunter2") {
				t.Fatalf("check printed the password:\n%s", out)
			}
		})
	}
}

// TestServeFailsFastWithoutTheDatabase: serve on a database no one
// serves stops at once, saying which database and why, without the
// password.
func TestServeFailsFastWithoutTheDatabase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`server: {listen: "127.0.0.1:0"}
storage: {backend: postgres, dsn: "postgres://sw:hunter2@%s/queue?sslmode=disable", dir: %s}
sources: [{name: darwin, provider: darwin, secret: x}]
`, freeAddr(t), dir)), 0o600)
	start := time.Now()
	_, _, err := runCmd(t, "serve", "--config", path)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the database") || !strings.Contains(err.Error(), "/queue user=sw") ||
		strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("serve: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("serve failed after %v", took)
	}
}
