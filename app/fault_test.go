package app

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/sqlitedb"
	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/queue/sqlite"
)

func healthz(t *testing.T, a *App) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get("http://" + a.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// TestHealthzReportsStoreFaults: while the store cannot write (another
// process holds the lock past storage.busy_timeout), events get 503
// and /healthz answers 503 with the reason; both recover when the lock
// goes, without a restart.
func TestHealthzReportsStoreFaults(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	dir := t.TempDir()
	a := gateway(t, dir, "http://"+tg.addr, "", "  busy_timeout: 50ms")
	if code, _ := healthz(t, a); code != http.StatusOK {
		t.Fatalf("healthz = %d before any fault", code)
	}
	db, err := sql.Open("sqlite3", sqlitedb.DSN(dir+"/"+sqlite.FileName, sqlitedb.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin() // immediate: takes the write lock
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := postRaw(t, a, sessionEvent(t, "s", 1)); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("post while locked = %d, want 503", resp.StatusCode)
	}
	code, body := healthz(t, a)
	if code != http.StatusServiceUnavailable || !strings.Contains(body["error"], "locked") {
		t.Fatalf("healthz while locked = %d %v, want 503 naming the lock", code, body)
	}
	tx.Rollback()
	eventually(t, "healthz recovers", func() bool { code, _ := healthz(t, a); return code == http.StatusOK })
	mustAccept(t, a, sessionEvent(t, "s", 2))
	eventually(t, "delivered", func() bool { return len(tg.delivered()) >= 1 })
}

// TestMaxPendingIgnoresHeldSinks: a held sink's backlog never drains
// until its destination is set, so it must not hold every source at 503.
func TestMaxPendingIgnoresHeldSinks(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	yaml := fmt.Sprintf(`
server: {listen: "127.0.0.1:0"}
storage: {dir: %s, max_pending: 3}
sources: [{name: darwin, provider: darwin, secret: %s}]
sinks:
  - {name: crm, type: http, url: "http://%s/hook"}
  - {name: later, type: http, url: ""}
routes: [{name: all, match: ["*"], to: [crm, later]}]
`, t.TempDir(), secret, tg.addr)
	cfg, err := config.Parse("g.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	a := serve(t, cfg, nil)
	for i := range 8 {
		if resp, out := postRaw(t, a, sessionEvent(t, "s", i)); resp.StatusCode != http.StatusOK {
			t.Fatalf("post %d = %d %v: a held sink's backlog counted toward max_pending", i, resp.StatusCode, out)
		}
		eventually(t, "crm drains", func() bool { return a.Store().Waiting("crm") == 0 })
	}
	if held := a.Store().Waiting("later"); held != 8 {
		t.Fatalf("%d deliveries wait for the held sink, want 8", held)
	}
}

// TestReloadOutlivesItsCaller: a client that gives up on POST /reload
// must not cut short the attempts of the sinks the reload replaces
// (they would be sent again).
func TestReloadOutlivesItsCaller(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		requests = map[string]int{}
		finished = map[string]bool{}
	)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		id := r.Header.Get("X-Switchyard-Delivery")
		mu.Lock()
		requests[id]++
		mu.Unlock()
		select {
		case <-time.After(800 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		mu.Lock()
		finished[id] = true
		mu.Unlock()
	}))
	t.Cleanup(slow.Close)
	e := newReloadEnv(t)
	e.a.URL = slow.URL
	e.config(t, []string{"a"}, []string{"a"}, "admin: {listen: \"127.0.0.1:0\", token: 0123456789abcdef-admin}\n")
	a := e.start(t, Options{})
	id := mustAccept(t, a, sessionEvent(t, "s", 1))
	eventually(t, "the attempt is in flight", func() bool { mu.Lock(); defer mu.Unlock(); return len(requests) == 1 })

	data, _ := os.ReadFile(e.path)
	data = bytes.Replace(data, []byte("{name: a, type: http,"), []byte("{name: a, type: http, concurrency: 2,"), 1)
	os.WriteFile(e.path, data, 0o600)
	client := &http.Client{Timeout: 100 * time.Millisecond} // gives up long before the attempt ends
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.AdminAddr()+"/reload", nil)
	req.Header.Set("Authorization", "Bearer 0123456789abcdef-admin")
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("reload answered in time (%d): the test needs a client that gives up", resp.StatusCode)
	}
	eventually(t, "delivered", func() bool {
		ds, _ := deliveriesOf(a.Store(), id)
		return len(ds) == 1 && ds[0].State == queue.StateDelivered
	})
	mu.Lock()
	defer mu.Unlock()
	for dlv, n := range requests {
		if n != 1 || !finished[dlv] {
			t.Fatalf("delivery %s: %d requests, finished %v: the reload's caller cut the attempt short", dlv, n, finished[dlv])
		}
	}
}

// TestPurgeRemovedSinkBacklog: a sink removed from the configuration
// leaves deliveries that no worker will send; purge deletes them after
// a dry-run count, and they stop counting.
func TestPurgeRemovedSinkBacklog(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t)
	e.config(t, []string{"a", "b"}, []string{"a", "b"}, "storage: {max_pending: 4}\n")
	// storage appears twice otherwise: rewrite it whole.
	data, _ := os.ReadFile(e.path)
	data = bytes.Replace(data, []byte("storage: {max_pending: 4}\n"), nil, 1)
	data = bytes.Replace(data, []byte("storage: {dir: "+e.dir+"/data}"), []byte("storage: {dir: "+e.dir+"/data, max_pending: 4}"), 1)
	os.WriteFile(e.path, data, 0o600)
	a := e.start(t, Options{})
	e.config(t, []string{"a"}, []string{"a"}, "")
	data, _ = os.ReadFile(e.path)
	data = bytes.Replace(data, []byte("storage: {dir: "+e.dir+"/data}"), []byte("storage: {dir: "+e.dir+"/data, max_pending: 4}"), 1)
	os.WriteFile(e.path, data, 0o600)
	if _, err := a.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Deliveries for b, made before its removal (written here after it,
	// so that b's workers, now stopped, cannot send them), wait for ever.
	for i := range 3 {
		_, err := a.Store().Accept(context.Background(), queue.Incoming{Event: testEvent(i), Targets: []queue.Target{{Sink: "b", Routes: []string{"r"}}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 6 {
		if resp, out := postRaw(t, a, sessionEvent(t, "s", i)); resp.StatusCode != http.StatusOK {
			t.Fatalf("post %d = %d %v: the removed sink's backlog counted toward max_pending", i, resp.StatusCode, out)
		}
		eventually(t, "a drains", func() bool { return a.Store().Waiting("a") == 0 })
	}
	ops := a.Ops()
	res, err := ops.Purge(context.Background(), admin.PurgeQuery{Sink: "b", DryRun: true})
	if err != nil || res.Purged != 3 || res.Warning != "" {
		t.Fatalf("dry run = %+v, %v; want 3 and no warning (b is not configured)", res, err)
	}
	if w := a.Store().Waiting("b"); w != 3 {
		t.Fatalf("a dry run deleted: %d waiting", w)
	}
	if res, err := ops.Purge(context.Background(), admin.PurgeQuery{Sink: "b"}); err != nil || res.Purged != 3 {
		t.Fatalf("purge = %+v, %v", res, err)
	}
	if w := a.Store().Waiting("b"); w != 0 {
		t.Fatalf("%d waiting for b after the purge", w)
	}
	if res, _ := ops.Purge(context.Background(), admin.PurgeQuery{Sink: "a", DryRun: true}); !strings.Contains(res.Warning, "configured") {
		t.Fatalf("purging a configured sink gives no warning: %+v", res)
	}
}

func testEvent(i int) *event.Event {
	now := time.Now()
	return &event.Event{ID: event.NewID("evt_", now), Source: "darwin", EventType: "session.opened",
		Subject: fmt.Sprint("s", i), Timestamp: now, ReceivedAt: now, Data: json.RawMessage(`{}`), DedupKey: fmt.Sprint("test-", i)}
}

// TestOperatorsWakeTheWorkers: a replay or retry-now through the admin
// operations (API, console) is attempted at once, not at the workers'
// next poll a second later.
func TestOperatorsWakeTheWorkers(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	tg.status.Store(http.StatusServiceUnavailable)
	a := gateway(t, t.TempDir(), "http://"+tg.addr, "", "")
	tg.status.Store(http.StatusBadRequest) // dead at once
	for i := range 5 {
		id := mustAccept(t, a, sessionEvent(t, fmt.Sprint("wake-", i), i))
		eventually(t, "dead", func() bool {
			ds, _ := deliveriesOf(a.Store(), id)
			return len(ds) == 1 && ds[0].State == queue.StateDead
		})
		tg.status.Store(http.StatusOK)
		time.Sleep(50 * time.Millisecond) // not just after a poll
		start := time.Now()
		if _, err := a.Ops().Replay(context.Background(), admin.DeliveryQuery{Event: id}); err != nil {
			t.Fatal(err)
		}
		for {
			ds, _ := deliveriesOf(a.Store(), id)
			if len(ds) == 1 && ds[0].State == queue.StateDelivered {
				break
			}
			if time.Since(start) > 300*time.Millisecond {
				t.Fatalf("replay %d not delivered within 300 ms: the workers waited for their poll", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
		tg.status.Store(http.StatusBadRequest)
	}
}
