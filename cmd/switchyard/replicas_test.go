package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/receiver/darwin"
)

// The multi-replica proof: real switchyard serve processes on one queue,
// a sender spreading load over them (re-posting some bodies to another
// replica), a downstream service that fails for a while and rejects one
// session, one replica killed with kill -9 and restarted, another
// stopped (SIGSTOP) past its lease and continued, dead letters replayed
// through one replica's admin API while it is stopped. Afterwards:
// every 2xx event delivered to both sinks, each sender event stored
// once, each session delivered in order by the ordered sink, duplicates
// only from attempts a killed or stopped replica held, nothing waiting.

const (
	proofSecret = "proof-secret"
	proofToken  = "proof-admin-token-0123456789"
)

// sent is one request the downstream service received.
type sent struct {
	sink, event, subject, replica string
	status                        int
}

// proofTarget is the downstream service of both sinks (/ordered,
// /bulk): it answers 503 while failing, 400 to the poison session until
// fixed, and tracks each session's attempts in flight on the ordered
// sink.
type proofTarget struct {
	*httptest.Server
	failing, fixed atomic.Bool
	mu             sync.Mutex
	log            []sent
	inFlight       map[string]int
	overlaps       int
}

func newProofTarget(t *testing.T) *proofTarget {
	pt := &proofTarget{inFlight: map[string]int{}}
	pt.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ Subject string }
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &ev)
		sink := strings.TrimPrefix(r.URL.Path, "/")
		s := sent{sink: sink, event: r.Header.Get("X-Switchyard-Event"), subject: ev.Subject, replica: r.Header.Get("X-Replica"), status: 200}
		switch {
		case pt.failing.Load():
			s.status = http.StatusServiceUnavailable
		case sink == "ordered" && ev.Subject == "poison" && !pt.fixed.Load():
			s.status = http.StatusBadRequest
		}
		pt.mu.Lock()
		if sink == "ordered" {
			pt.inFlight[ev.Subject]++
			if pt.inFlight[ev.Subject] > 1 {
				pt.overlaps++
			}
		}
		pt.mu.Unlock()
		time.Sleep(10 * time.Millisecond) // attempts in flight when a replica is killed or stopped
		pt.mu.Lock()
		if sink == "ordered" {
			pt.inFlight[ev.Subject]--
		}
		pt.log = append(pt.log, s)
		pt.mu.Unlock()
		w.WriteHeader(s.status)
	}))
	t.Cleanup(pt.Close)
	return pt
}

func (pt *proofTarget) sends() []sent {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return slices.Clone(pt.log)
}

// replicaProc is one switchyard serve process of the cluster.
type replicaProc struct {
	name, addr, admin string
	env               []string
	child             *child
}

// proof runs the scenario; with postgres, on three replicas sharing a
// database, else on one gateway with SQLite.
type proof struct {
	t        *testing.T
	target   *proofTarget
	cfg      string
	replicas []*replicaProc
	client   *http.Client
	base     map[string]any

	mu       sync.Mutex
	bodies   [][]byte         // by body number
	session  []string         // by body number
	ids      map[int]string   // body number → event id answered 2xx
	order    map[string][]int // session → body numbers, in acceptance order
	answers  map[int][]string // body number → every id answered
	retried  int              // posts tried again (refused, timed out, 503)
	stopLoad chan struct{}
	senders  sync.WaitGroup
}

func newProof(t *testing.T, n int, storage string) *proof {
	t.Helper()
	p := &proof{t: t, target: newProofTarget(t), client: &http.Client{Timeout: 2 * time.Second},
		ids: map[int]string{}, order: map[string][]int{}, answers: map[int][]string{}, stopLoad: make(chan struct{})}
	dir := t.TempDir()
	p.cfg = filepath.Join(dir, "switchyard.yaml")
	// One file for every replica (one configuration digest): what
	// differs comes from each process's environment.
	os.WriteFile(p.cfg, []byte(fmt.Sprintf(`server: {listen: "127.0.0.1:1", shutdown_timeout: 2s}
storage:
  dir: %s/${REPLICA}
%s
sources: [{name: darwin, provider: darwin, secret: %s}]
sinks:
  - name: ordered
    type: http
    url: %s/ordered
    ordered: true
    concurrency: 4
    headers: {X-Replica: "${REPLICA}"}
    retry: {initial_backoff: 50ms, max_backoff: 400ms}
  - name: bulk
    type: http
    url: %s/bulk
    concurrency: 8
    headers: {X-Replica: "${REPLICA}"}
    retry: {initial_backoff: 50ms, max_backoff: 400ms}
routes: [{name: all, match: ["*"], to: [ordered, bulk]}]
admin: {listen: "${ADMIN_LISTEN}", token: %s}
`, dir, storage, proofSecret, p.target.URL, p.target.URL, proofToken)), 0o600)
	for i := range n {
		r := &replicaProc{name: fmt.Sprintf("r%d", i), addr: freeAddr(t), admin: freeAddr(t)}
		r.env = []string{"SWITCHYARD_LISTEN=" + r.addr, "ADMIN_LISTEN=" + r.admin, "REPLICA=" + r.name}
		p.replicas = append(p.replicas, r)
	}
	fixture, err := os.ReadFile("../../testdata/darwin/session_forwarded_escalated.json")
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(fixture, &p.base)
	return p
}

func (p *proof) start(r *replicaProc) { r.child = startChild(p.t, p.cfg, r.addr, r.env...) }

// body returns a new body of session, and its number.
func (p *proof) body(session string) (int, []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.bodies)
	data := p.base["data"].(map[string]any)
	data["sessionId"] = session
	data["summary"] = fmt.Sprintf("proof event %d", n)
	b, _ := json.Marshal(p.base)
	p.bodies = append(p.bodies, b)
	p.session = append(p.session, session)
	return n, b
}

// post posts body n to replica i, and to the next replicas when it is
// refused, times out or answers otherwise than 2xx, as a sender behind a
// load balancer would, until one answers 2xx.
func (p *proof) post(n, i int, body []byte) string {
	for try := 0; ; try++ {
		r := p.replicas[(i+try)%len(p.replicas)]
		req, _ := http.NewRequest(http.MethodPost, "http://"+r.addr+"/hooks/darwin", bytes.NewReader(body))
		req.Header.Set("X-Signature", darwin.Sign([]byte(proofSecret), body))
		resp, err := p.client.Do(req)
		if err == nil {
			var out struct{ ID string }
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && out.ID != "" {
				p.mu.Lock()
				p.answers[n] = append(p.answers[n], out.ID)
				p.mu.Unlock()
				return out.ID
			}
		}
		p.mu.Lock()
		p.retried++
		p.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
}

// load runs one sender per session until stopLoad: each posts its
// session's events one after the other (the next once the last got a
// 2xx), spread over the replicas; every third body goes to two replicas
// at once.
func (p *proof) load(sessions []string) {
	for si, session := range sessions {
		p.senders.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-p.stopLoad:
					return
				case <-time.After(40 * time.Millisecond):
				}
				n, body := p.body(session)
				i := (si + k) % len(p.replicas)
				var id string
				if k%3 == 0 {
					var wg sync.WaitGroup
					wg.Go(func() { p.post(n, i+1, body) })
					id = p.post(n, i, body)
					wg.Wait()
				} else {
					id = p.post(n, i, body)
				}
				p.mu.Lock()
				p.ids[n] = id
				p.order[session] = append(p.order[session], n)
				p.mu.Unlock()
			}
		})
	}
}

func (p *proof) accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ids)
}

// admin calls a replica's admin API.
func (p *proof) admin(r *replicaProc, method, path, body string) (int, map[string]any) {
	req, _ := http.NewRequest(method, "http://"+r.admin+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+proofToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// deliveries lists a replica's view of the queue's deliveries in state.
func (p *proof) deliveries(r *replicaProc, state string) []any {
	status, out := p.admin(r, http.MethodGet, "/deliveries?limit=0&state="+state, "")
	if status != http.StatusOK {
		p.t.Fatalf("GET /deliveries: %d %v", status, out)
	}
	list, _ := out["deliveries"].([]any)
	return list
}

// check verifies the outcome; suspects are the replicas whose attempts
// may legitimately be sent twice (killed or stopped while they held
// leases).
func (p *proof) check(suspects ...string) (duplicates int) {
	t := p.t
	p.mu.Lock()
	ids, order, answers, bodies := p.ids, p.order, p.answers, len(p.bodies)
	p.mu.Unlock()
	// Every body answered 2xx carries one id, however many replicas it
	// was posted to.
	distinct := map[string]bool{}
	for n, as := range answers {
		for _, id := range as {
			if id != ids[n] {
				t.Fatalf("body %d was answered with ids %v", n, as)
			}
		}
		distinct[ids[n]] = true
	}
	if len(distinct) != len(ids) {
		t.Fatalf("%d bodies answered 2xx with %d distinct ids: a body stored twice, or two bodies as one", len(ids), len(distinct))
	}
	status, out := p.admin(p.replicas[0], http.MethodGet, "/events?limit=0", "")
	if stored, _ := out["events"].([]any); status != http.StatusOK || len(stored) != len(ids) {
		t.Fatalf("the queue holds %d events (status %d) for %d bodies: each sender event must be stored once", len(stored), status, len(ids))
	}
	// Every 2xx event delivered to both sinks; the ordered sink in order
	// per session (first deliveries; a later copy of an event is a
	// duplicate, not a reordering).
	delivered := map[string]map[string][]string{"ordered": {}, "bulk": {}} // sink → event → replicas that delivered it
	firsts := map[string][]string{}                                        // session → events first delivered by the ordered sink, in order
	retries, rejected := 0, 0
	for _, s := range p.target.sends() {
		switch {
		case s.status == http.StatusServiceUnavailable:
			retries++
		case s.status == http.StatusBadRequest:
			rejected++
		case s.status == http.StatusOK:
			if len(delivered[s.sink][s.event]) == 0 && s.sink == "ordered" {
				firsts[s.subject] = append(firsts[s.subject], s.event)
			}
			delivered[s.sink][s.event] = append(delivered[s.sink][s.event], s.replica)
		}
	}
	lost := 0
	for _, id := range ids {
		for _, sink := range []string{"ordered", "bulk"} {
			if len(delivered[sink][id]) == 0 {
				lost++
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d deliveries of events answered 2xx never arrived", lost)
	}
	for session, ns := range order {
		want := make([]string, len(ns))
		for i, n := range ns {
			want[i] = ids[n]
		}
		if got := firsts[session]; !slices.Equal(got, want) {
			t.Fatalf("session %s delivered in the order %v, want %v", session, got, want)
		}
	}
	for sink, byEvent := range delivered {
		for id, by := range byEvent {
			if len(by) < 2 {
				continue
			}
			duplicates += len(by) - 1
			if !slices.ContainsFunc(by, func(r string) bool { return slices.Contains(suspects, r) }) {
				t.Errorf("%s delivered event %s %d times, by %v: none of them was killed or stopped", sink, id, len(by), by)
			}
		}
	}
	p.target.mu.Lock()
	overlaps := p.target.overlaps
	p.target.mu.Unlock()
	if overlaps > duplicates {
		t.Errorf("%d times two deliveries of a session were in flight at once, with only %d duplicates to explain them", overlaps, duplicates)
	}
	t.Logf("%d bodies (%d answered 2xx, %d posts tried again), %d events delivered to 2 sinks: 0 lost; %d duplicates (from attempts the killed or stopped replicas held), %d overlapping attempts of a session, %d 503 retries, %d rejected (dead letters)",
		bodies, len(ids), p.retried, len(ids), duplicates, overlaps, retries, rejected)
	return duplicates
}

// TestReplicasProof is the multi-replica proof on PostgreSQL (three
// replicas) and, for comparison, on SQLite (one gateway killed and
// restarted).
func TestReplicasProof(t *testing.T) {
	if testing.Short() {
		t.Skip("runs gateway processes for about a minute")
	}
	t.Parallel()
	sessions := []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "poison"}

	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn := pgtest.Shared(t).DSN(t)
		p := newProof(t, 3, fmt.Sprintf("  backend: postgres\n  dsn: %q\n  lease_ttl: 3s\n  statement_timeout: 1s\n  poll_interval: 200ms", dsn))
		r0, r1, r2 := p.replicas[0], p.replicas[1], p.replicas[2]
		for _, r := range p.replicas {
			p.start(r)
		}
		start := time.Now()
		p.target.failing.Store(true)
		p.load(sessions)
		waitFor(t, "load with the sink failing", 30*time.Second, func() bool { return p.accepted() >= 60 })
		p.target.failing.Store(false)

		// kill -9 one replica mid-load, and start it again.
		waitFor(t, "load", 60*time.Second, func() bool { return p.accepted() >= 150 })
		r1.child.cmd.Process.Signal(syscall.SIGKILL)
		<-r1.child.done
		time.Sleep(time.Second)
		p.start(r1)

		// Stop another past its lease (3s), then continue it.
		waitFor(t, "load", 60*time.Second, func() bool { return p.accepted() >= 300 })
		r2.child.cmd.Process.Signal(syscall.SIGSTOP)
		before := len(p.target.sends())
		time.Sleep(5 * time.Second)
		during := len(p.target.sends()) - before
		r2.child.cmd.Process.Signal(syscall.SIGCONT)
		if during == 0 {
			t.Fatal("nothing was delivered while r2 was stopped: the others did not carry on")
		}
		waitFor(t, "load after the stop", 60*time.Second, func() bool { return p.accepted() >= 400 })
		close(p.stopLoad)
		p.senders.Wait()

		// The poison session's deliveries are dead letters; replayed
		// through r0's admin API, they are carried out by the others
		// while r0 is stopped.
		waitFor(t, "the poison session's dead letters", 60*time.Second, func() bool {
			return len(p.deliveries(r1, "dead")) == len(p.order["poison"]) && len(p.deliveries(r1, "pending,failed")) == 0
		})
		dead := len(p.deliveries(r1, "dead"))
		p.target.fixed.Store(true)
		status, out := p.admin(r0, http.MethodPost, "/replay", `{"sink":"ordered","state":"dead"}`)
		if status != http.StatusOK || out["requeued"] != float64(dead) {
			t.Fatalf("POST /replay on r0: %d %v, want %d re-queued", status, out, dead)
		}
		r0.child.cmd.Process.Signal(syscall.SIGSTOP)
		waitFor(t, "the replay carried out", 30*time.Second, func() bool {
			return len(p.deliveries(r1, "dead")) == 0 && len(p.deliveries(r1, "pending,failed")) == 0
		})
		r0.child.cmd.Process.Signal(syscall.SIGCONT)
		replayedBy := map[string]int{}
		for _, s := range p.target.sends() {
			if s.sink == "ordered" && s.subject == "poison" && s.status == http.StatusOK {
				replayedBy[s.replica]++
			}
		}
		// r0 wakes its own workers for the replay and may send some
		// before it stops; every other dead letter is the others' to
		// carry out, and the ones r0 held when it stopped are sent
		// again once its lease lapses.
		if replayedBy["r1"]+replayedBy["r2"] < dead-replayedBy["r0"] || replayedBy["r1"]+replayedBy["r2"] == 0 {
			t.Fatalf("the replay issued on r0 was carried out by %v, want r1 and r2 to carry out the %d r0 did not", replayedBy, dead)
		}
		// Everything drained, on every replica's view.
		for _, r := range p.replicas {
			if w := p.deliveries(r, "pending,failed,dead"); len(w) != 0 {
				t.Fatalf("%s sees %d deliveries not delivered", r.name, len(w))
			}
		}
		status, out = p.admin(r2, http.MethodGet, "/replicas", "")
		if list, _ := out["replicas"].([]any); status != http.StatusOK || len(list) != 3 {
			t.Fatalf("GET /replicas: %d %v", status, out)
		}
		p.check("r1", "r2")
		t.Logf("postgres: %d attempts sent by r0 and r1 while r2 was stopped; %d dead letters replayed through r0 and delivered by %v; %s in all",
			during, dead, replayedBy, time.Since(start).Round(time.Second))
	})

	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		p := newProof(t, 1, "")
		r0 := p.replicas[0]
		p.start(r0)
		start := time.Now()
		p.target.failing.Store(true)
		p.load(sessions)
		waitFor(t, "load with the sink failing", 30*time.Second, func() bool { return p.accepted() >= 60 })
		p.target.failing.Store(false)
		waitFor(t, "load", 60*time.Second, func() bool { return p.accepted() >= 150 })
		r0.child.cmd.Process.Signal(syscall.SIGKILL)
		<-r0.child.done
		time.Sleep(time.Second)
		p.start(r0)
		waitFor(t, "load after the restart", 60*time.Second, func() bool { return p.accepted() >= 300 })
		close(p.stopLoad)
		p.senders.Wait()
		waitFor(t, "the poison session's dead letters", 60*time.Second, func() bool {
			return len(p.deliveries(r0, "dead")) == len(p.order["poison"]) && len(p.deliveries(r0, "pending,failed")) == 0
		})
		dead := len(p.deliveries(r0, "dead"))
		p.target.fixed.Store(true)
		if status, out := p.admin(r0, http.MethodPost, "/replay", `{"sink":"ordered","state":"dead"}`); status != http.StatusOK || out["requeued"] != float64(dead) {
			t.Fatalf("POST /replay: %d %v", status, out)
		}
		waitFor(t, "drained", 30*time.Second, func() bool { return len(p.deliveries(r0, "pending,failed,dead")) == 0 })
		p.check("r0")
		t.Logf("sqlite: %d dead letters replayed; %s in all", dead, time.Since(start).Round(time.Second))
	})
}
