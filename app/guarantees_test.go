package app

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/queue/sqlite"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/sqlitedb"
	"github.com/switchyard/switchyard/receiver/darwin"
)

// target is a downstream HTTP service that can fail in the ways real
// ones do: answer an error status, or refuse connections altogether.
type target struct {
	addr   string
	status atomic.Int32 // answer for every request
	// fail, when set, picks a status per request (0: use status).
	fail func(subject string) int

	mu       sync.Mutex
	srv      *http.Server
	attempts []attempt
}

type attempt struct {
	event, subject, delivery string
	at                       time.Time
	status                   int
}

func newTarget(t *testing.T) *target {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{addr: ln.Addr().String()}
	tg.status.Store(http.StatusOK)
	tg.serve(ln)
	t.Cleanup(tg.down)
	return tg
}

func (tg *target) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(tg.handle)}
	tg.mu.Lock()
	tg.srv = srv
	tg.mu.Unlock()
	go srv.Serve(ln)
}

func (tg *target) handle(w http.ResponseWriter, r *http.Request) {
	var ev struct{ ID, Subject string }
	body, _ := io.ReadAll(r.Body)
	json.Unmarshal(body, &ev)
	code := int(tg.status.Load())
	if tg.fail != nil {
		if c := tg.fail(ev.Subject); c != 0 {
			code = c
		}
	}
	tg.mu.Lock()
	tg.attempts = append(tg.attempts, attempt{ev.ID, ev.Subject, r.Header.Get("X-Switchyard-Delivery"), time.Now(), code})
	tg.mu.Unlock()
	w.WriteHeader(code)
}

// down closes the listener and every connection: attempts are refused.
func (tg *target) down() {
	tg.mu.Lock()
	srv := tg.srv
	tg.srv = nil
	tg.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// up listens again on the same address.
func (tg *target) up(t *testing.T) {
	var ln net.Listener
	var err error
	for range 50 { // the port may take a moment to be free again
		if ln, err = net.Listen("tcp", tg.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen again on %s: %v", tg.addr, err)
	}
	tg.serve(ln)
}

func (tg *target) Attempts() []attempt {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return slices.Clone(tg.attempts)
}

// delivered returns the event ids answered 2xx, in the order answered.
func (tg *target) delivered() []attempt {
	var out []attempt
	for _, a := range tg.Attempts() {
		if a.status < 300 {
			out = append(out, a)
		}
	}
	return out
}

// gateway starts an app with one darwin source and one HTTP sink "crm"
// routed everything; extra is YAML appended to the sink, storage adds
// keys under storage:.
func gateway(t *testing.T, dir, url, extra, storage string) *App {
	t.Helper()
	yaml := fmt.Sprintf(`
server: {listen: "127.0.0.1:0"}
storage:
  dir: %s
%s
sources:
  - {name: darwin, provider: darwin, secret: %s}
sinks:
  - name: crm
    type: http
    url: %s/hook
    retry: {initial_backoff: 20ms, max_backoff: 200ms}
%s
routes:
  - {name: all, match: ["*"], to: [crm]}
`, dir, storage, secret, url, extra)
	cfg, err := config.Parse("g.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, cfg, nil)
}

// sessionEvent is a distinct escalation of session, numbered n.
func sessionEvent(t *testing.T, session string, n int) []byte {
	var m map[string]any
	if err := json.Unmarshal(fixture(t, "session_forwarded_escalated"), &m); err != nil {
		t.Fatal(err)
	}
	data := m["data"].(map[string]any)
	data["sessionId"] = session
	data["summary"] = fmt.Sprintf("update %d of %s", n, session)
	b, _ := json.Marshal(m)
	return b
}

func postRaw(t *testing.T, a *App, body []byte) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/hooks/darwin", bytes.NewReader(body))
	req.Header.Set("X-Signature", darwin.Sign([]byte(secret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func mustAccept(t *testing.T, a *App, body []byte) string {
	t.Helper()
	resp, out := postRaw(t, a, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post: %d %v", resp.StatusCode, out)
	}
	return out["id"].(string)
}

// TestOutage: the sink answers 503, then refuses connections, then
// recovers. Every event is delivered, in order per subject, and the
// attempts back off instead of hammering the sink.
func TestOutage(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	tg.status.Store(http.StatusServiceUnavailable)
	a := gateway(t, t.TempDir(), "http://"+tg.addr, "    ordered: true\n    concurrency: 4", "")

	want := map[string][]string{} // subject → event ids in acceptance order
	for i := range 24 {
		session := fmt.Sprintf("sess-%d", i%4)
		want[session] = append(want[session], mustAccept(t, a, sessionEvent(t, session, i)))
	}
	eventually(t, "503 answers", func() bool { return len(tg.Attempts()) >= 8 })
	time.Sleep(300 * time.Millisecond)
	tg.down() // connection refused
	time.Sleep(300 * time.Millisecond)
	tg.status.Store(http.StatusOK)
	tg.up(t)

	eventually(t, "every event delivered", func() bool { return len(tg.delivered()) >= 24 })
	got := map[string][]string{}
	for _, d := range tg.delivered() {
		got[d.subject] = append(got[d.subject], d.event)
	}
	for session, ids := range want {
		if !slices.Equal(got[session], ids) {
			t.Errorf("%s delivered %v, want once each in order %v", session, got[session], ids)
		}
	}
	// Backoff: the 503 attempts of one delivery are spaced out and
	// the spacing grows (full jitter: compare the first gaps with the
	// last ones, on average, over the heads that were retried).
	byDelivery := map[string][]time.Time{}
	for _, at := range tg.Attempts() {
		if at.status == http.StatusServiceUnavailable {
			byDelivery[at.delivery] = append(byDelivery[at.delivery], at.at)
		}
	}
	var early, late time.Duration
	var n int
	for _, ts := range byDelivery {
		if len(ts) < 4 {
			continue
		}
		early += ts[1].Sub(ts[0])
		late += ts[len(ts)-1].Sub(ts[len(ts)-2])
		n++
		for i := 1; i < len(ts); i++ {
			if gap := ts[i].Sub(ts[i-1]); gap < 40*time.Millisecond {
				t.Errorf("retries %v apart: the minimum backoff is 50ms", gap)
			}
		}
	}
	if n == 0 {
		t.Fatalf("no delivery was retried 4 times during the 503 phase: %d attempts", len(tg.Attempts()))
	}
	if late <= early {
		t.Errorf("backoff does not grow: first gaps total %v, last gaps %v over %d deliveries", early, late, n)
	}
	for _, ts := range byDelivery {
		if len(ts) > 12 {
			t.Errorf("a delivery was tried %d times in a 300ms outage: no backoff", len(ts))
		}
	}
}

// TestDuplicatePosts: the same signed body posted five times, one after
// the other and then concurrently, yields one delivery per sink.
func TestDuplicatePosts(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	a := gateway(t, t.TempDir(), "http://"+tg.addr, "", "")
	body := sessionEvent(t, "sess-dup", 1)
	first := mustAccept(t, a, body)
	for range 4 {
		resp, out := postRaw(t, a, body)
		if resp.StatusCode != http.StatusOK || out["id"] != first || out["duplicate"] != true {
			t.Fatalf("repeat: %d %v, want 200 with the original id %s", resp.StatusCode, out, first)
		}
	}
	other := sessionEvent(t, "sess-dup", 2)
	ids := make([]string, 5)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			resp, out := postRaw(t, a, other)
			if resp.StatusCode == http.StatusOK {
				ids[i], _ = out["id"].(string)
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("concurrent repeats answered ids %v, want one id", ids)
		}
	}
	eventually(t, "both delivered", func() bool { return len(tg.delivered()) >= 2 })
	time.Sleep(200 * time.Millisecond) // room for a wrong extra delivery
	if got := tg.delivered(); len(got) != 2 || got[0].event == got[1].event {
		t.Fatalf("delivered %+v, want each event once", got)
	}
	for _, id := range []string{first, ids[0]} {
		if ds, _ := deliveriesOf(a.Store(), id); len(ds) != 1 {
			t.Fatalf("event %s has %d deliveries, want 1", id, len(ds))
		}
	}
}

// TestBackpressure: with max_pending small and the sink dead, the
// gateway answers 503 rather than accept more, and accepts again once
// the sink is back and the queue drains.
func TestBackpressure(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	tg.status.Store(http.StatusServiceUnavailable)
	a := gateway(t, t.TempDir(), "http://"+tg.addr, "", "  max_pending: 5")
	accepted := 0
	var refused *http.Response
	for i := range 20 {
		resp, _ := postRaw(t, a, sessionEvent(t, "sess-bp", i))
		if resp.StatusCode == http.StatusServiceUnavailable {
			refused = resp
			break
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("post %d: %d", i, resp.StatusCode)
		}
		accepted++
	}
	if refused == nil || accepted != 5 {
		t.Fatalf("accepted %d of 20 with max_pending 5 and a dead sink; want 5 then 503", accepted)
	}
	if refused.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	tg.status.Store(http.StatusOK)
	eventually(t, "the queue drains", func() bool { return pendingOf(a.Store()) == 0 })
	mustAccept(t, a, sessionEvent(t, "sess-bp", 100))
	eventually(t, "all delivered", func() bool { return len(tg.delivered()) == 6 })
}

// TestStoreLockedAnswers503: another process holds the queue's write
// lock longer than a request may wait: 503, not 2xx, and the gateway
// recovers once the lock is released.
func TestStoreLockedAnswers503(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for the ingest timeout")
	}
	tg := newTarget(t)
	dir := t.TempDir()
	a := gateway(t, dir, "http://"+tg.addr, "", "")
	db, err := sql.Open("sqlite3", sqlitedb.DSN(dir+"/"+sqlite.FileName, sqlitedb.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin() // immediate: takes the write lock
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`UPDATE deliveries SET updated_at = 0 WHERE 0`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, out := postRaw(t, a, sessionEvent(t, "sess-lock", 1))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("while locked: %d %v, want 503 with Retry-After", resp.StatusCode, out)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("answered after %v", took)
	}
	tx.Rollback()
	// The refused event may have been stored after all when the lock
	// went; the sender's retry is then a duplicate. Either way one
	// delivery, and new events flow.
	id := mustAccept(t, a, sessionEvent(t, "sess-lock", 1))
	mustAccept(t, a, sessionEvent(t, "sess-lock", 2))
	eventually(t, "delivered", func() bool { return len(tg.delivered()) == 2 })
	if !strings.HasPrefix(id, "evt_") {
		t.Fatalf("id %q", id)
	}
}
