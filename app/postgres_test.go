package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/logbuf"
	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/queue"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// replicaConfig is a gateway on the PostgreSQL queue dsn, named name,
// with one darwin source and one HTTP sink "crm" (extra: more keys of
// the sink) routed everything. The file is written in dir, so that the
// replica records its digest.
func replicaConfig(t *testing.T, dir, name, dsn, url, extra string) *config.Config {
	t.Helper()
	yaml := fmt.Sprintf(`
server: {listen: "127.0.0.1:0", replica_name: %s, shutdown_timeout: 2s}
storage:
  dir: %s
  backend: postgres
  dsn: %s
  lease_ttl: 2s
  statement_timeout: 500ms
  poll_interval: 100ms
sources:
  - {name: darwin, provider: darwin, secret: %s}
sinks:
  - name: crm
    type: http
    url: %s/hook
    timeout: 10s
    retry: {initial_backoff: 20ms, max_backoff: 200ms}
%s
routes:
  - {name: all, match: ["*"], to: [crm]}
`, name, filepath.Join(dir, name), dsn, secret, url, extra)
	file := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestPostgresAcceptAndDeliver: a gateway on PostgreSQL accepts signed
// events and delivers each once, in order per session; a duplicate post
// is answered with the original id.
func TestPostgresAcceptAndDeliver(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	a := serve(t, replicaConfig(t, t.TempDir(), "solo", pgtest.Shared(t).DSN(t), "http://"+tg.addr, "    ordered: true"), nil)
	want := map[string][]string{}
	for i := range 12 {
		session := fmt.Sprintf("sess-%d", i%3)
		want[session] = append(want[session], mustAccept(t, a, sessionEvent(t, session, i)))
	}
	resp, out := postRaw(t, a, sessionEvent(t, "sess-0", 0))
	if resp.StatusCode != http.StatusOK || out["id"] != want["sess-0"][0] || out["duplicate"] != true {
		t.Fatalf("repeat: %d %v, want the original id %s", resp.StatusCode, out, want["sess-0"][0])
	}
	eventually(t, "every event delivered", func() bool { return len(tg.delivered()) >= 12 })
	got := map[string][]string{}
	for _, d := range tg.delivered() {
		got[d.subject] = append(got[d.subject], d.event)
	}
	for session, ids := range want {
		if !slices.Equal(got[session], ids) {
			t.Errorf("%s delivered %v, want %v", session, got[session], ids)
		}
	}
	if !strings.HasPrefix(a.Store().Describe(), "postgres ") {
		t.Fatalf("store = %s", a.Store().Describe())
	}
}

// TestPostgresDown: with the database down, an event gets 503 with
// Retry-After (never 2xx) and /healthz says why; once it is back, events
// are accepted again and every 2xx event is delivered.
func TestPostgresDown(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	tg := newTarget(t)
	a := serve(t, replicaConfig(t, t.TempDir(), "down", c.DSN(t), "http://"+tg.addr, ""), nil)
	var accepted []string
	accepted = append(accepted, mustAccept(t, a, sessionEvent(t, "sess-down", 0)))
	c.Kill()
	start := time.Now()
	resp, out := postRaw(t, a, sessionEvent(t, "sess-down", 1))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("with the database down: %d %v, want 503 with Retry-After", resp.StatusCode, out)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the 503 took %v", took)
	}
	health := func() int {
		r, err := http.Get("http://" + a.Addr() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	eventually(t, "/healthz 503", func() bool { return health() == http.StatusServiceUnavailable })
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "/healthz 200 again", func() bool { return health() == http.StatusOK })
	for i := 1; i < 4; i++ {
		accepted = append(accepted, mustAccept(t, a, sessionEvent(t, "sess-down", i)))
	}
	eventually(t, "every 2xx event delivered", func() bool {
		got := map[string]bool{}
		for _, d := range tg.delivered() {
			got[d.event] = true
		}
		for _, id := range accepted {
			if !got[id] {
				return false
			}
		}
		return true
	})
}

// flightTarget is a downstream service that answers slowly and records,
// per session, whether two deliveries of it were ever in flight at once.
type flightTarget struct {
	URL      string
	mu       sync.Mutex
	inFlight map[string]int
	overlaps []string
	order    map[string][]string // session → event ids answered 2xx, in order
	total    int
}

func newFlightTarget(t *testing.T, hold time.Duration) *flightTarget {
	ft := &flightTarget{inFlight: map[string]int{}, order: map[string][]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ ID, Subject string }
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &ev)
		ft.mu.Lock()
		ft.inFlight[ev.Subject]++
		if ft.inFlight[ev.Subject] > 1 {
			ft.overlaps = append(ft.overlaps, ev.Subject)
		}
		ft.mu.Unlock()
		time.Sleep(hold)
		ft.mu.Lock()
		ft.inFlight[ev.Subject]--
		ft.order[ev.Subject] = append(ft.order[ev.Subject], ev.ID)
		ft.total++
		ft.mu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	ft.URL = "http://" + ln.Addr().String()
	return ft
}

// TestPostgresTwoReplicas runs two gateways on one database: the same
// event posted to both at once is one event and both answers carry its
// id; an ordered sink has at most one delivery of a session in flight
// across both, and delivers each session in order; GET /replicas lists
// both, and a replica whose configuration differs says so.
func TestPostgresTwoReplicas(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Shared(t).DSN(t)
	ft := newFlightTarget(t, 15*time.Millisecond)
	dir := t.TempDir()
	admin := "admin: {listen: \"127.0.0.1:0\", token: 0123456789abcdef0123}\n"
	cfgA := replicaConfig(t, dir, "a", dsn, ft.URL, "    ordered: true\n    concurrency: 4\n"+admin)
	cfgB := replicaConfig(t, dir, "b", dsn, ft.URL, "    ordered: true\n    concurrency: 4\n    headers: {X-Replica: b}\n"+admin)
	var logsB logbuf.Buffer
	a := serve(t, cfgA, nil)
	b := serve(t, cfgB, slog.New(slog.NewTextHandler(&logsB, nil)))
	replicas := []*App{a, b}

	// The same body to both replicas at once, eight times over.
	body := sessionEvent(t, "sess-dup", 0)
	ids := make([]string, 8)
	dups := make([]bool, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			resp, out := postRaw(t, replicas[i%2], body)
			if resp.StatusCode == http.StatusOK {
				ids[i], _ = out["id"].(string)
				dups[i] = out["duplicate"] == true
			}
		})
	}
	wg.Wait()
	stored := 0
	for i, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("answers carry ids %v, want one id", ids)
		}
		if !dups[i] {
			stored++
		}
	}
	if evs, err := a.Store().Events(context.Background(), queue.EventFilter{}); err != nil || len(evs) != 1 || stored != 1 {
		t.Fatalf("stored %d events (%d answers not duplicates), %v; want 1", len(evs), stored, err)
	}

	// Sessions spread over both replicas.
	want := map[string][]string{"sess-dup": {ids[0]}}
	for i := range 40 {
		session := fmt.Sprintf("sess-%d", i%5)
		want[session] = append(want[session], mustAccept(t, replicas[i%2], sessionEvent(t, session, i)))
	}
	eventually(t, "every event delivered", func() bool {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		return ft.total >= 41
	})
	ft.mu.Lock()
	overlaps, order := slices.Clone(ft.overlaps), ft.order
	ft.mu.Unlock()
	if len(overlaps) > 0 {
		t.Fatalf("two deliveries of one session in flight at once across the replicas: %v", overlaps)
	}
	for session, ids := range want {
		if !slices.Equal(order[session], ids) {
			t.Errorf("%s delivered %v, want %v", session, order[session], ids)
		}
	}

	// Both listed; b's configuration differs (its sink has a header).
	status, out := call(t, http.MethodGet, "http://"+a.AdminAddr()+"/replicas", "Bearer 0123456789abcdef0123", "")
	list, _ := out["replicas"].([]any)
	if status != http.StatusOK || len(list) != 2 {
		t.Fatalf("GET /replicas = %d %v", status, out)
	}
	for i, name := range []string{"a", "b"} {
		r := list[i].(map[string]any)
		if r["name"] != name || r["version"] != Version || len(r["config_digest"].(string)) != 64 || r["heartbeat_at"] == "" {
			t.Fatalf("replica %d = %v", i, r)
		}
	}
	eventually(t, "b's warning", func() bool {
		return strings.Contains(logsB.String(), "configuration differs from other replicas") && strings.Contains(logsB.String(), "differs_from=[a]")
	})
}

// TestPostgresPausedReplicaLosesItsWork: a replica that stops renewing
// its lease (its clock frozen, as a paused process's would be) loses
// its attempt to the other replica once the lease expires; its own
// outcome, when it finally comes, is refused, and the other's stands.
func TestPostgresPausedReplicaLosesItsWork(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Shared(t).DSN(t)
	release := make(chan struct{})
	var requests atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if requests.Add(1) == 1 {
			<-release // the first attempt hangs until the paused replica resumes
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	url := "http://" + ln.Addr().String()
	dir := t.TempDir()

	var frozen atomic.Pointer[time.Time]
	clock := func() time.Time {
		if at := frozen.Load(); at != nil {
			return *at
		}
		return time.Now()
	}
	var logsA logbuf.Buffer
	a := serveWith(t, replicaConfig(t, dir, "a", dsn, url, ""), Options{Now: clock, Logger: slog.New(slog.NewTextHandler(&logsA, nil))})
	id := mustAccept(t, a, sessionEvent(t, "sess-pause", 1))
	eventually(t, "a's attempt", func() bool { return requests.Load() == 1 })
	now := time.Now()
	frozen.Store(&now) // a is "paused": its renewals no longer move its lease on

	b := serve(t, replicaConfig(t, dir, "b", dsn, url, ""), nil)
	eventually(t, "b takes the delivery over", func() bool { return requests.Load() == 2 })
	ds, _ := deliveriesOf(b.Store(), id)
	eventually(t, "b's outcome", func() bool {
		ds, _ = deliveriesOf(b.Store(), id)
		return len(ds) == 1 && ds[0].State == queue.StateDelivered
	})
	frozen.Store(nil)
	close(release) // a resumes: its attempt ends, and its outcome is refused
	eventually(t, "a's outcome refused", func() bool {
		return strings.Contains(logsA.String(), "the lease expired and another attempt took the delivery over")
	})
	hist, err := b.Store().Attempts(context.Background(), ds[0].ID)
	if err != nil || len(hist) != 1 || hist[0].State != queue.StateDelivered {
		t.Fatalf("history = %+v, %v; want b's attempt alone", hist, err)
	}
	if ds, _ := deliveriesOf(a.Store(), id); len(ds) != 1 || ds[0].Attempts != 1 {
		t.Fatalf("delivery = %+v, want one recorded attempt", ds)
	}
}
