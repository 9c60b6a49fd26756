package main

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
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/sqlitedb"
	"github.com/switchyard/switchyard/queue/sqlite"
	"github.com/switchyard/switchyard/receiver/darwin"
)

// The fault suite runs the real gateway as a process and injects the
// storage and timing faults of issue 13 while a sender posts signed
// events and a downstream service receives them. Each case asserts:
// no 2xx without a durable record, at most one extra send per delivery
// per lease period, recovery once the fault clears, nothing lost.

const faultSecret = "fault-secret"

// rig is a downstream service, a gateway process and a sender.
type rig struct {
	t                  *testing.T
	dir, addr, cfgPath string
	admin              string
	env                []string
	target             *httptest.Server
	hold               atomic.Int64 // how long the target takes to answer, ns
	child              *child
	client             *http.Client
	base               map[string]any
	next               atomic.Int64 // the next event number
	mu                 sync.Mutex
	sends              map[string]int    // delivery id → requests received
	received           map[string]bool   // event id → answered 2xx by the target
	accepted           map[string]string // body number → event id answered 2xx
	refused            map[int]bool      // body numbers answered otherwise
	statuses           map[int]int       // status → count
	stopLoad           chan struct{}
	loaders            sync.WaitGroup
}

type rigOptions struct {
	storage string // more keys under storage:
	sink    string // more keys for the sink
	admin   bool
	env     []string
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir(), sends: map[string]int{}, received: map[string]bool{},
		accepted: map[string]string{}, refused: map[int]bool{}, statuses: map[int]int{},
		client: &http.Client{Timeout: 20 * time.Second}, env: o.env}
	r.target = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		r.sends[req.Header.Get("X-Switchyard-Delivery")]++
		r.mu.Unlock()
		if d := time.Duration(r.hold.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-req.Context().Done():
				return
			}
		}
		r.mu.Lock()
		r.received[req.Header.Get("X-Switchyard-Event")] = true
		r.mu.Unlock()
	}))
	t.Cleanup(r.target.Close)
	r.addr = freeAddr(t)
	admin := ""
	if o.admin {
		r.admin = freeAddr(t)
		admin = fmt.Sprintf("admin: {listen: %q, token: 0123456789abcdef-fault}\n", r.admin)
	}
	r.cfgPath = filepath.Join(r.dir, "switchyard.yaml")
	r.writeConfig(fmt.Sprintf(`server: {listen: %q, shutdown_timeout: 5s}
storage:
  dir: %s
%s
sources: [{name: darwin, provider: darwin, secret: %s}]
sinks:
  - name: downstream
    type: http
    url: %s/events
    concurrency: 4
    retry: {initial_backoff: 50ms, max_backoff: 500ms}
%s
routes: [{name: all, match: ["*"], to: [downstream]}]
%s`, r.addr, filepath.Join(r.dir, "data"), o.storage, faultSecret, r.target.URL, o.sink, admin))
	fixture, err := os.ReadFile("../../testdata/darwin/session_forwarded_escalated.json")
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(fixture, &r.base)
	return r
}

func (r *rig) writeConfig(yaml string) {
	if err := os.WriteFile(r.cfgPath, []byte(yaml), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) start() { r.child = startChild(r.t, r.cfgPath, r.addr, r.env...) }

// stop stops the gateway gracefully.
func (r *rig) stop() {
	r.child.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.child.done:
	case <-time.After(30 * time.Second):
		r.t.Fatal("the gateway did not stop within 30s")
	}
}

func (r *rig) body(n int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	data := r.base["data"].(map[string]any)
	data["sessionId"] = fmt.Sprintf("fault-%d", n%20)
	data["summary"] = fmt.Sprintf("fault event %d", n)
	b, _ := json.Marshal(r.base)
	return b
}

// post posts event n once and records the answer.
func (r *rig) post(n int) int {
	b := r.body(n)
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.addr+"/hooks/darwin", bytes.NewReader(b))
	req.Header.Set("X-Signature", darwin.Sign([]byte(faultSecret), b))
	resp, err := r.client.Do(req)
	if err != nil {
		r.mu.Lock()
		r.refused[n] = true
		r.mu.Unlock()
		return 0
	}
	var out struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses[resp.StatusCode]++
	if resp.StatusCode == http.StatusOK {
		r.accepted[fmt.Sprint(n)] = out.ID
		delete(r.refused, n)
	} else {
		r.refused[n] = true
	}
	return resp.StatusCode
}

// load posts new events from conns connections until stopLoad.
func (r *rig) load(conns int) {
	r.stopLoad = make(chan struct{})
	for range conns {
		r.loaders.Go(func() {
			for {
				select {
				case <-r.stopLoad:
					return
				default:
				}
				if r.post(int(r.next.Add(1))) != http.StatusOK {
					time.Sleep(10 * time.Millisecond) // a sender backs off
				}
			}
		})
	}
}

func (r *rig) endLoad() {
	close(r.stopLoad)
	r.loaders.Wait()
}

func (r *rig) count(status int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if status == 0 {
		return len(r.accepted)
	}
	return r.statuses[status]
}

func (r *rig) healthz() (int, string) {
	resp, err := http.Get("http://" + r.addr + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// finish plays the sender retrying every refused event until it is
// answered 2xx, waits until every accepted event reached the target,
// checks each is stored (after a graceful stop), and returns the most
// sends any one delivery took.
func (r *rig) finish() (maxSends int) {
	r.t.Helper()
	r.mu.Lock()
	var retry []int
	for n := range r.refused {
		retry = append(retry, n)
	}
	r.mu.Unlock()
	for _, n := range retry {
		waitFor(r.t, fmt.Sprintf("event %d accepted on retry", n), 30*time.Second, func() bool { return r.post(n) == http.StatusOK })
	}
	missing := func() []string {
		r.mu.Lock()
		defer r.mu.Unlock()
		var out []string
		for _, id := range r.accepted {
			if !r.received[id] {
				out = append(out, id)
			}
		}
		return out
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if m := missing(); len(m) > 0 {
		r.t.Fatalf("%d of %d events answered 2xx never reached the target (first %s)", len(m), len(r.accepted), m[0])
	}
	r.stop()
	st, err := sqlite.Open(context.Background(), filepath.Join(r.dir, "data"), sqlite.Options{})
	if err != nil {
		r.t.Fatal(err)
	}
	defer st.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, id := range r.accepted {
		if _, err := st.Event(context.Background(), id); err != nil {
			r.t.Fatalf("event %s (body %s) was answered 2xx but is not stored: %v", id, n, err)
		}
	}
	for _, n := range r.sends {
		maxSends = max(maxSends, n)
	}
	if w, _ := st.WaitingBySink(context.Background()); w["downstream"] != 0 {
		r.t.Fatalf("%d deliveries still waiting after everything was received", w["downstream"])
	}
	return maxSends
}

// finishSentAtMost finishes (see finish), logs the summary under name,
// and fails the test when a delivery was sent more than most times; why
// says what the extra sends break.
func (r *rig) finishSentAtMost(most int, name, why string) {
	r.t.Helper()
	maxSends := r.finish()
	r.t.Logf("%s: %s", name, r.summary())
	if maxSends > most {
		r.t.Fatalf("a delivery was sent %d times, at most %d allowed: %s", maxSends, most, why)
	}
}

func (r *rig) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	extra := 0
	for _, n := range r.sends {
		extra += n - 1
	}
	return fmt.Sprintf("%d events accepted, answers %v, %d deliveries, %d extra sends", len(r.accepted), r.statuses, len(r.sends), extra)
}

// TestFaultDiskFull: the storage directory is on a small tmpfs that
// fills under load. Events get 503 (not 2xx), outcomes that cannot be
// written are held (no resend storm), /healthz says why, and once space
// is freed everything recovers and is delivered.
func TestFaultDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("runs gateway processes")
	}
	t.Parallel()
	r := newRig(t, rigOptions{})
	data := filepath.Join(r.dir, "data")
	os.MkdirAll(data, 0o750)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", data).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("mounting a tmpfs needs root: %v %s (CI runs this as root)", err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("skipped: " + msg)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", data).Run() })
	r.start()
	r.load(8)
	waitFor(t, "the disk to fill (503s)", 90*time.Second, func() bool { return r.count(http.StatusServiceUnavailable) >= 20 })
	code, body := r.healthz()
	sendsAtFull := r.count(0)
	time.Sleep(time.Second) // the disk stays full under load: no storm
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "full") {
		t.Errorf("healthz with a full disk = %d %s, want 503 naming it", code, body)
	}
	if out, err := exec.Command("mount", "-o", "remount,size=64m", data).CombinedOutput(); err != nil {
		t.Fatalf("free space: %v %s", err, out)
	}
	waitFor(t, "recovery (2xx again)", 30*time.Second, func() bool { return r.count(0) > sendsAtFull+50 })
	r.endLoad()
	if code, body := r.healthz(); code != http.StatusOK {
		t.Errorf("healthz after recovery = %d %s", code, body)
	}
	r.finishSentAtMost(2, "disk full", "at most one extra send per lease period")
}

// TestFaultLockHeld: another process holds the queue's write lock
// longer than storage.busy_timeout under load, then releases it.
func TestFaultLockHeld(t *testing.T) {
	if testing.Short() {
		t.Skip("runs gateway processes")
	}
	t.Parallel()
	r := newRig(t, rigOptions{storage: "  busy_timeout: 100ms"})
	r.start()
	r.load(8)
	waitFor(t, "some events accepted", 30*time.Second, func() bool { return r.count(0) >= 200 })
	db, err := sql.Open("sqlite3", sqlitedb.DSN(filepath.Join(r.dir, "data", sqlite.FileName), sqlitedb.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin() // immediate: the write lock
	if err != nil {
		t.Fatal(err)
	}
	before503 := r.count(http.StatusServiceUnavailable)
	time.Sleep(2 * time.Second)
	code, body := r.healthz()
	tx.Rollback()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "locked") {
		t.Errorf("healthz while locked = %d %s, want 503 naming the lock", code, body)
	}
	if r.count(http.StatusServiceUnavailable) == before503 {
		t.Error("no 503 while another process held the write lock")
	}
	accepted := r.count(0)
	waitFor(t, "recovery", 30*time.Second, func() bool { return r.count(0) > accepted+100 })
	r.endLoad()
	r.finishSentAtMost(2, "lock held", "at most one extra send per lease period")
}

// TestFaultFsyncFails: an fsync of the WAL fails under load (through the
// store's injection hook). Every event from then on is refused, even
// after the disk "recovers", until a restart; then the sender's retries
// are accepted and everything is delivered.
func TestFaultFsyncFails(t *testing.T) {
	if testing.Short() {
		t.Skip("runs gateway processes")
	}
	t.Parallel()
	dir := t.TempDir()
	flag := filepath.Join(dir, "fail-fsync")
	r := newRig(t, rigOptions{env: []string{"SWITCHYARD_TEST_FSYNC_FAIL=" + flag}})
	r.start()
	r.load(8)
	waitFor(t, "some events accepted", 30*time.Second, func() bool { return r.count(0) >= 200 })
	os.WriteFile(flag, nil, 0o600)
	waitFor(t, "503s after the failed fsync", 30*time.Second, func() bool { return r.count(http.StatusServiceUnavailable) >= 10 })
	os.Remove(flag) // the disk seems fine again: the store must not believe it
	accepted := r.count(0)
	time.Sleep(500 * time.Millisecond)
	if got := r.count(0); got != accepted {
		t.Fatalf("%d events answered 2xx after a failed fsync, before a restart", got-accepted)
	}
	if code, body := r.healthz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "restart") {
		t.Errorf("healthz after a failed fsync = %d %s, want 503 asking for a restart", code, body)
	}
	r.endLoad()
	r.stop()
	r.start()
	r.finishSentAtMost(2, "fsync failed", "at most one extra send per lease period, across the restart")
}

// TestFaultStoppedPastLease: the gateway is stopped (SIGSTOP) for
// longer than its attempts' lease, then continued: each delivery in
// flight is sent at most once more, and everything is delivered.
func TestFaultStoppedPastLease(t *testing.T) {
	if testing.Short() {
		t.Skip("runs gateway processes")
	}
	t.Parallel()
	r := newRig(t, rigOptions{env: []string{"SWITCHYARD_TEST_LEASE_TTL=1s"}})
	r.hold.Store(int64(300 * time.Millisecond))
	r.start()
	r.load(4)
	waitFor(t, "attempts in flight", 30*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.sends) >= 20
	})
	r.child.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(3 * time.Second) // three lease periods
	r.child.cmd.Process.Signal(syscall.SIGCONT)
	accepted := r.count(0)
	waitFor(t, "accepting again", 30*time.Second, func() bool { return r.count(0) > accepted+20 })
	r.endLoad()
	r.hold.Store(0)
	r.finishSentAtMost(2, "stopped past the lease", "at most once more after its lease expired")
}

// TestFaultReloadClientGone: POST /reload from a client that gives up
// mid-way replaces a sink with attempts in flight; they finish, and no
// delivery is sent twice.
func TestFaultReloadClientGone(t *testing.T) {
	if testing.Short() {
		t.Skip("runs gateway processes")
	}
	t.Parallel()
	r := newRig(t, rigOptions{admin: true})
	r.hold.Store(int64(time.Second))
	r.start()
	for n := range 4 {
		if code := r.post(n); code != http.StatusOK {
			t.Fatalf("post %d = %d", n, code)
		}
	}
	waitFor(t, "attempts in flight", 10*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.sends) == 4
	})
	cfg, _ := os.ReadFile(r.cfgPath)
	r.writeConfig(strings.Replace(string(cfg), "concurrency: 4", "concurrency: 8", 1))
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.admin+"/reload", nil)
	req.Header.Set("Authorization", "Bearer 0123456789abcdef-fault")
	client := &http.Client{Timeout: 100 * time.Millisecond}
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the reload answered (%d) before the client gave up: the test needs attempts in flight", resp.StatusCode)
	}
	maxSends := r.finish()
	t.Logf("reload with its client gone: %s", r.summary())
	if maxSends != 1 {
		t.Fatalf("a delivery was sent %d times: the reload's caller cut attempts short", maxSends)
	}
}
