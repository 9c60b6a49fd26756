// Command load is Switchyard's load benchmark (issue 3). In one run on
// one machine it drives, with the same pre-signed Darwin events and the
// same closed-loop client:
//
//	a  a bare Fiber handler answering 200;
//	b  a Fiber handler that verifies the signature and parses the event:
//	   the ceiling for the gateway;
//	c  `switchyard serve`: verification, rules, durable SQLite persistence
//	   and delivery to an HTTP sink on loopback that this command runs.
//
// Each server runs in its own process, so its CPU time and peak RSS are
// its own. It prints accepted events/s, latency, errors, lost events and
// peak RSS per target, the ratios c/a and c/b, and whether issue 3's
// targets are met. Run it from the repository root:
//
//	go run ./bench/load
//
// See bench/README.md. It exits non-zero only when the harness fails,
// not when a target is missed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/queue/sqlite"
)

type options struct {
	synchronous  string
	conns        int
	duration     time.Duration
	warmup       time.Duration
	events       int
	targets      []string
	secret       string
	fixtures     string
	switchyard   string
	drainTimeout time.Duration
	cpuprofile   string
	keep         bool
}

func main() {
	var o options
	flag.IntVar(&o.conns, "conns", 64, "concurrent connections, each sending its next request when answered")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per target")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before measuring, per target")
	flag.IntVar(&o.events, "events", 200000, "distinct events to pre-generate (c re-sends none while enough remain)")
	targets := flag.String("targets", "a,b,c", "targets to run, comma-separated: a, b, c")
	flag.StringVar(&o.secret, "secret", "bench-secret-not-for-production", "Darwin signing secret")
	flag.StringVar(&o.fixtures, "fixtures", "testdata/darwin", "directory of Darwin events to vary")
	flag.StringVar(&o.switchyard, "switchyard", "", "switchyard binary for c (default: go build ./cmd/switchyard)")
	flag.DurationVar(&o.drainTimeout, "drain-timeout", 60*time.Second, "c: how long to wait for the sink to receive every accepted event")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of c's gateway to `file` (c then runs the gateway in this binary, as serve wires it)")
	flag.StringVar(&o.synchronous, "synchronous", "full", "c: the queue's storage.synchronous (full or normal)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs, queue.db)")
	// Internal: the server side of a target, in a child process.
	child := flag.String("child", "", "internal: serve a target (bare, verify or gateway) instead of benchmarking")
	addr := flag.String("addr", "", "internal: -child listen address")
	config := flag.String("config", "", "internal: -child gateway configuration")
	flag.Parse()

	if *child != "" {
		if err := runChild(*child, *addr, o.secret, *config, o.cpuprofile); err != nil {
			fmt.Fprintln(os.Stderr, "load -child:", err)
			os.Exit(1)
		}
		return
	}
	o.targets = strings.Split(*targets, ",")
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// row is one target's line in the table.
type row struct {
	target    string
	res       *loadResult
	rss       int64
	serverCPU float64 // cores used by the server during the window
	loadCPU   float64 // cores used by this process (client, and c's sink)

	// c only: the sink's view.
	sink         bool
	lost         int            // accepted, not delivered, and not in the queue either
	queued       int            // accepted, not delivered within -drain-timeout, still queued
	lostStates   map[string]int // the queue's view of the lost events
	redelivery   int            // deliveries beyond one per event
	deliveryRate float64        // distinct events/s at the sink, first delivery to last
	drain        time.Duration
}

func run(o options) error {
	for _, t := range o.targets {
		if t != "a" && t != "b" && t != "c" {
			return fmt.Errorf("-targets: unknown target %q", t)
		}
	}
	tmp, err := os.MkdirTemp("", "switchyard-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	fixtures, err := loadFixtures(o.fixtures)
	if err != nil {
		return err
	}
	events, err := generate(fixtures, o.events, []byte(o.secret), 1)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	gateway := []string{o.switchyard}
	if slices.Contains(o.targets, "c") {
		switch {
		case o.cpuprofile != "":
			gateway = []string{self, "-child", "gateway", "-cpuprofile", o.cpuprofile}
		case o.switchyard == "":
			bin := filepath.Join(tmp, "switchyard")
			build := exec.Command("go", "build", "-o", bin, "./cmd/switchyard")
			build.Stdout, build.Stderr = os.Stderr, os.Stderr
			if err := build.Run(); err != nil {
				return fmt.Errorf("go build ./cmd/switchyard (run from the repository root): %w", err)
			}
			gateway = []string{bin}
		}
	}

	load1, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("switchyard load benchmark: %d connections, %v warm-up + %v measured per target\n", o.conns, o.warmup, o.duration)
	fmt.Printf("events: %d distinct, %s\n", len(events), sizes(events))
	fmt.Printf("machine: %d CPUs, %s %s/%s, load average at start %s\n\n",
		runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, strings.Join(strings.Fields(string(load1))[:3], " "))

	var rows []*row
	for _, t := range o.targets {
		var r *row
		var err error
		switch t {
		case "a":
			r, err = runPlain(o, tmp, "a", self, "bare", events)
		case "b":
			r, err = runPlain(o, tmp, "b", self, "verify", events)
		case "c":
			r, err = runGateway(o, tmp, gateway, events)
		}
		if err != nil {
			return fmt.Errorf("target %s: %w", t, err)
		}
		rows = append(rows, r)
	}
	report(o, rows)
	return nil
}

// runPlain runs target a or b: this binary in -child mode.
func runPlain(o options, tmp, target, self, mode string, events []signedEvent) (*row, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	srv, err := startServer(filepath.Join(tmp, target+".log"), self, "-child", mode, "-addr", addr, "-secret", o.secret)
	if err != nil {
		return nil, err
	}
	r, err := measure(o, target, srv, addr, events, false)
	if stopErr := srv.stop(30 * time.Second); err == nil {
		err = stopErr
	}
	return r, err
}

// runGateway runs target c: the gateway with a loopback HTTP sink. After
// the load it waits until the sink has received every accepted event.
func runGateway(o options, tmp string, gateway []string, events []signedEvent) (*row, error) {
	sk, err := startSink()
	if err != nil {
		return nil, err
	}
	defer sk.close()
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(tmp, "c.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, gatewayConfig, addr, filepath.Join(tmp, "data"), o.synchronous, o.secret, sk.url()), 0o600); err != nil {
		return nil, err
	}
	args := append(slices.Clone(gateway[1:]), "-config", cfg)
	if len(gateway) == 1 {
		args = []string{"serve", "--config", cfg}
	}
	srv, err := startServer(filepath.Join(tmp, "c.log"), gateway[0], args...)
	if err != nil {
		return nil, err
	}
	r, err := measure(o, "c", srv, addr, events, true)
	var missing []string
	if err == nil {
		r.sink = true
		start := time.Now()
		missing = sk.missing(r.res.IDs)
		for len(missing) > 0 && time.Since(start) < o.drainTimeout {
			time.Sleep(100 * time.Millisecond)
			missing = sk.missing(missing)
		}
		r.drain = time.Since(start)
		requests, distinct, rate := sk.counts()
		r.redelivery, r.deliveryRate = requests-distinct, rate
		r.rss, err = peakRSS(srv.pid()) // again: the drain may have grown it
	}
	if stopErr := srv.stop(60 * time.Second); err == nil {
		err = stopErr
	}
	if err == nil && len(missing) > 0 {
		// Not delivered in time. Attempts finished during the shutdown
		// may have arrived since; the rest is still queued (slow, not
		// lost) or lost.
		missing = sk.missing(missing)
		var states map[string]int
		states, err = queuedStates(filepath.Join(tmp, "data"), missing)
		r.queued = states[queue.StatePending] + states[queue.StateFailed]
		r.lost = len(missing) - r.queued
		delete(states, queue.StatePending)
		delete(states, queue.StateFailed)
		r.lostStates = states
	}
	return r, err
}

// queuedStates counts the events among ids by the state of their
// delivery in the queue in dir ("none" when it has none). The gateway
// must be stopped.
func queuedStates(dir string, ids []string) (map[string]int, error) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	out := map[string]int{}
	for _, id := range ids {
		ds, err := st.Deliveries(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(ds) == 0 {
			out["none"]++
			continue
		}
		out[ds[0].State]++ // one sink: one delivery
	}
	return out, nil
}

const gatewayConfig = `# Written by bench/load for target c.
server:
  listen: %q
storage:
  dir: %q
  synchronous: %s
sources:
  - name: darwin
    provider: darwin
    secret: %q
sinks:
  - name: loopback
    type: http
    url: %q
    concurrency: 32           # keep up with ingest: a delivery waits for two commits
routes:
  - name: everything
    match: ["*"]
    to: [loopback]
`

// measure waits for srv, loads it and reads its CPU time and peak RSS.
func measure(o options, target string, srv *server, addr string, events []signedEvent, collectIDs bool) (*row, error) {
	if err := srv.waitHealthy(addr, 60*time.Second); err != nil {
		return nil, err
	}
	var srv0, self0 time.Duration
	var cpuErr error
	res := load(addr, events, o.conns, o.warmup, o.duration, collectIDs, func() {
		var err1, err2 error
		srv0, err1 = cpuTime(srv.pid())
		self0, err2 = cpuTime(os.Getpid())
		cpuErr = fmt.Errorf("cpu time: %w %w", err1, err2)
		if err1 == nil && err2 == nil {
			cpuErr = nil
		}
	})
	if cpuErr != nil {
		return nil, cpuErr
	}
	srv1, err1 := cpuTime(srv.pid())
	self1, err2 := cpuTime(os.Getpid())
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("cpu time: %v %v", err1, err2)
	}
	rss, err := peakRSS(srv.pid())
	if err != nil {
		return nil, err
	}
	return &row{
		target:    target,
		res:       res,
		rss:       rss,
		serverCPU: (srv1 - srv0).Seconds() / o.duration.Seconds(),
		loadCPU:   (self1 - self0).Seconds() / o.duration.Seconds(),
	}, nil
}

var targetNames = map[string]string{
	"a": "a bare fiber",
	"b": "b verify+parse",
	"c": "c switchyard",
}

func report(o options, rows []*row) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tconns\tevents/s\tp50\tp99\tmax\terrors\tlost\tdelivered/s\tdrain\tpeak RSS\tserver CPU\tloadgen CPU\t")
	byTarget := map[string]*row{}
	for _, r := range rows {
		byTarget[r.target] = r
		lost, delivered, drain := "-", "-", "-"
		if r.sink {
			lost, delivered, drain = fmt.Sprint(r.lost), fmt.Sprintf("%.0f", r.deliveryRate), r.drain.Round(100*time.Millisecond).String()
		}
		name := targetNames[r.target]
		if r.target == "c" && o.cpuprofile != "" {
			name += " (profiled)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%.1f MiB\t%.2f\t%.2f\t\n",
			name, o.conns, r.rate(), ms(r.res.percentile(0.50)), ms(r.res.percentile(0.99)), ms(r.res.percentile(1)),
			r.res.Errors, lost, delivered, drain, float64(r.rss)/(1<<20), r.serverCPU, r.loadCPU)
	}
	tw.Flush()
	fmt.Println(`
events/s, p50, p99, max: 2xx answers to requests sent in the measured window
errors: non-2xx answers and transport errors, warm-up included
lost: accepted (2xx) events neither received by the sink nor waiting in queue.db
delivered/s: distinct events received by the sink, from its first delivery to its last
drain: time after the load until the sink had every accepted event (bounded by -drain-timeout)
server CPU, loadgen CPU: cores used during the measured window (loadgen includes c's sink)`)

	for _, r := range rows {
		for kind, n := range r.res.ErrorKinds {
			fmt.Printf("%s: %d × %s\n", r.target, n, kind)
		}
		if r.sink && r.res.Wrapped {
			fmt.Printf("%s: more requests than -events: events were re-sent (%d answered as duplicates)\n", r.target, r.res.Duplicates)
		}
		if r.queued > 0 {
			fmt.Printf("%s: %d accepted events not delivered within %v, still queued: delivery is slower than ingest\n", r.target, r.queued, o.drainTimeout)
		}
		for state, n := range r.lostStates {
			fmt.Printf("%s: %d lost events are %q in queue.db\n", r.target, n, state)
		}
		if r.redelivery > 0 {
			fmt.Printf("%s: %d deliveries repeated an event (at least once)\n", r.target, r.redelivery)
		}
	}

	a, b, c := byTarget["a"], byTarget["b"], byTarget["c"]
	fmt.Println()
	if a != nil && c != nil {
		fmt.Printf("c/a = %.2f\n", c.rate()/a.rate())
	}
	if b != nil && c != nil {
		fmt.Printf("c/b = %.2f\n", c.rate()/b.rate())
	}
	if c == nil {
		return
	}
	fmt.Printf("\nissue 3 targets for c at %d connections:\n", o.conns)
	check := func(ok bool, what, got string) {
		verdict := "met"
		if !ok {
			verdict = "MISSED"
		}
		fmt.Printf("  %-16s %-7s %s\n", what, verdict, got)
	}
	if b != nil {
		check(c.rate() >= 0.5*b.rate(), "c/b >= 0.50", fmt.Sprintf("%.2f", c.rate()/b.rate()))
	}
	p99 := c.res.percentile(0.99)
	check(p99 < 15*time.Millisecond, "p99 < 15 ms", ms(p99))
	check(c.res.Errors == 0, "errors = 0", fmt.Sprint(c.res.Errors))
	check(c.lost == 0, "lost = 0", fmt.Sprintf("%d of %d accepted; %d still queued after the %v drain", c.lost, c.res.Accepted, c.queued, o.drainTimeout))
	check(c.rss < 100<<20, "peak RSS < 100 MiB", fmt.Sprintf("%.1f MiB", float64(c.rss)/(1<<20)))
}

func (r *row) rate() float64 { return float64(r.res.Measured) / r.res.Window.Seconds() }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func sizes(events []signedEvent) string {
	lo, hi, sum := len(events[0].Body), 0, 0
	for _, e := range events {
		lo, hi, sum = min(lo, len(e.Body)), max(hi, len(e.Body)), sum+len(e.Body)
	}
	return fmt.Sprintf("%d–%d bytes, mean %d", lo, hi, sum/len(events))
}
