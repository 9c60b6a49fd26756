package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/app"
	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/receiver/darwin"
)

// TestMain lets the test binary run as switchyard itself: with
// SWITCHYARD_TEST_MAIN=1 it runs main with its arguments. The crash test
// starts it as a separate process, so kill -9 is a real crash.
//
// The fault tests inject faults into that process through testOptions:
// SWITCHYARD_TEST_FSYNC_FAIL names a file whose existence makes every
// fsync of the queue's WAL fail (EIO), SWITCHYARD_TEST_LEASE_TTL sets
// the delivery leases' TTL.
func TestMain(m *testing.M) {
	if os.Getenv("SWITCHYARD_TEST_MAIN") == "1" {
		testOptions = func(o *app.Options) {
			if path := os.Getenv("SWITCHYARD_TEST_FSYNC_FAIL"); path != "" {
				o.SyncHook = func() error {
					if _, err := os.Stat(path); err == nil {
						return syscall.EIO
					}
					return nil
				}
			}
			if ttl, err := time.ParseDuration(os.Getenv("SWITCHYARD_TEST_LEASE_TTL")); err == nil {
				o.LeaseTTL = ttl
			}
		}
		main()
		os.Exit(0)
	}
	pgtest.Main(m) // runs the tests, then stops the shared PostgreSQL cluster
}

// child is a switchyard serve process.
type child struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan struct{}
}

func startChild(t *testing.T, config, addr string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "--config", config, "--log-level", "warn")
	cmd.Env = append(append(os.Environ(), "SWITCHYARD_TEST_MAIN=1"), env...)
	c := &child{cmd: cmd, logs: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.logs, c.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-c.done })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		select {
		case <-c.done:
			t.Fatalf("switchyard exited at start:\n%s", c.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("switchyard did not serve within 30s:\n%s", c.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestCrash starts the real gateway as a process, posts signed events
// to it from many connections, kills it with SIGKILL mid-stream,
// restarts it on the same storage, and repeats. Every event answered 2xx
// must reach the downstream service at least once.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills gateway processes")
	}
	t.Parallel()
	var (
		mu        sync.Mutex
		delivered = map[string]int{} // event id → times received
	)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		delivered[r.Header.Get("X-Switchyard-Event")]++
		mu.Unlock()
	}))
	defer sink.Close()

	dir := t.TempDir()
	addr := freeAddr(t)
	config := filepath.Join(dir, "switchyard.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`server: {listen: "%s", shutdown_timeout: 5s}
storage: {dir: %s}
sources: [{name: darwin, provider: darwin, secret: crash-secret}]
sinks:
  - name: downstream
    type: http
    url: %s/events
    concurrency: 8
    retry: {initial_backoff: 50ms, max_backoff: 500ms}
routes: [{name: all, match: ["*"], to: [downstream]}]
`, addr, filepath.Join(dir, "data"), sink.URL)), 0o600)

	fixture, err := os.ReadFile("../../testdata/darwin/session_forwarded_escalated.json")
	if err != nil {
		t.Fatal(err)
	}
	var base map[string]any
	json.Unmarshal(fixture, &base)
	const rounds, perRound, conns = 3, 1200, 16
	bodies := make([][]byte, rounds*perRound+1)
	for n := range bodies {
		base["data"].(map[string]any)["sessionId"] = fmt.Sprintf("crash-%d", n%50)
		base["data"].(map[string]any)["summary"] = fmt.Sprintf("event %d", n)
		bodies[n], _ = json.Marshal(base)
	}
	body := func(n int) []byte { return bodies[n] }

	var accepted []string
	client := &http.Client{Timeout: 10 * time.Second}
	for round := range rounds + 1 {
		c := startChild(t, config, addr)
		if round == rounds {
			break // the last run only delivers
		}
		var (
			wg   sync.WaitGroup
			amu  sync.Mutex
			okN  atomic.Int64
			sent atomic.Int64
		)
		for range conns {
			wg.Go(func() {
				for {
					i := sent.Add(1)
					if i > perRound {
						return
					}
					n := round*perRound + int(i)
					b := body(int(n))
					req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/darwin", bytes.NewReader(b))
					req.Header.Set("X-Signature", darwin.Sign([]byte("crash-secret"), b))
					resp, err := client.Do(req)
					if err != nil {
						continue // the gateway is gone: the sender would retry later
					}
					var out struct{ ID string }
					json.NewDecoder(resp.Body).Decode(&out)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						amu.Lock()
						accepted = append(accepted, out.ID)
						amu.Unlock()
						okN.Add(1)
					}
				}
			})
		}
		// Kill it mid-stream: after two thirds of the round were accepted.
		deadline := time.Now().Add(30 * time.Second)
		for okN.Load() < perRound*2/3 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-c.done
		wg.Wait()
		t.Logf("round %d: killed after %d accepted in this round", round, okN.Load())
	}

	missing := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, id := range accepted {
			if delivered[id] == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if lost := missing(); len(lost) > 0 {
		t.Fatalf("%d of %d events answered 2xx were never delivered (first: %s)", len(lost), len(accepted), lost[0])
	}
	mu.Lock()
	dups := 0
	for _, n := range delivered {
		dups += n - 1
	}
	mu.Unlock()
	t.Logf("%d events answered 2xx across %d kill -9s: all delivered, %d delivered more than once", len(accepted), rounds, dups)
	if len(accepted) < rounds*perRound/3 {
		t.Fatalf("only %d events accepted: the test did not exercise the gateway", len(accepted))
	}
}
