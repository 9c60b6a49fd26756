// Command load is Switchyard's load benchmark. In one run on one
// machine it drives, with the same pre-signed Darwin events and the same
// client:
//
//	a       a bare Fiber handler answering 200;
//	b       a Fiber handler that verifies the signature and parses the
//	        event: the ceiling for the gateway;
//	d       b, plus an insert of the raw body into one SQLite table with
//	        group commit, fsynced before the answer: the floor for any
//	        durable ingest;
//	ingest  `switchyard serve` routing every event to a held sink: it
//	        verifies, routes and stores, and delivers nothing;
//	c       `switchyard serve` delivering to an HTTP sink on loopback
//	        that this command runs.
//
// Each server runs in its own process, so its CPU time and peak RSS are
// its own: the table gives server CPU per event from /proc, which a
// noisy machine disturbs far less than events/s. With -runs N it repeats
// the whole set and prints the median of each figure and of the ratios
// measured within each run. With -rate R the client sends R events/s
// (open loop) instead of as fast as answered. Run it from the
// repository root:
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
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/queue"
)

type options struct {
	synchronous  string
	conns        int
	rate         int
	duration     time.Duration
	warmup       time.Duration
	idle         time.Duration
	events       int
	runs         int
	gomaxprocs   int
	targets      []string
	secret       string
	fixtures     string
	switchyard   string
	drainTimeout time.Duration
	cpuprofile   string
	keep         bool

	// c and ingest: one row per storage variant (-backend, -replicas;
	// replicas.go), PostgreSQL at dsn or a throwaway cluster (pg).
	variants []variant
	dsn      string
	pgstats  bool
	poolSize int
	pg       *pgServer
}

var allTargets = []string{"a", "b", "d", "ingest", "c"}

func main() {
	var o options
	flag.IntVar(&o.conns, "conns", 64, "concurrent connections; closed loop: each sends its next request when answered")
	flag.IntVar(&o.rate, "rate", 0, "send this many events/s (open loop, spread over -conns connections) instead of as fast as answered")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per target")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before measuring, per target")
	flag.DurationVar(&o.idle, "idle", 5*time.Second, "c: after the drain, measure the idle gateway's CPU for this long (0: skip)")
	flag.IntVar(&o.events, "events", 200000, "distinct events to pre-generate (events are re-sent only once all were)")
	flag.IntVar(&o.runs, "runs", 1, "repeat every target this many times and print the medians")
	flag.IntVar(&o.gomaxprocs, "gomaxprocs", 0, "run the servers with GOMAXPROCS set to this (0: the Go default, one per CPU)")
	targets := flag.String("targets", strings.Join(allTargets, ","), "targets to run, comma-separated: "+strings.Join(allTargets, ", "))
	flag.StringVar(&o.secret, "secret", "bench-secret-not-for-production", "Darwin signing secret")
	flag.StringVar(&o.fixtures, "fixtures", "testdata/darwin", "directory of Darwin events to vary")
	flag.StringVar(&o.switchyard, "switchyard", "", "switchyard binary for c and ingest (default: go build ./cmd/switchyard)")
	flag.DurationVar(&o.drainTimeout, "drain-timeout", 60*time.Second, "c: how long to wait for the sink to receive every accepted event")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the gateway (c or ingest) to `file` (it then runs inside this binary, as serve wires it)")
	flag.StringVar(&o.synchronous, "synchronous", "full", "c, ingest: the queue's storage.synchronous (full or normal)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs, databases)")
	backends := flag.String("backend", backendSQLite, "c, ingest: the queue's storage, comma-separated for a row each: sqlite, postgres")
	replicas := flag.String("replicas", "1", "c, ingest on postgres: gateways sharing the database, comma-separated for a row each (1,2,3); sqlite always runs one")
	flag.StringVar(&o.dsn, "dsn", "", "postgres: an existing server to use (its user creates and drops a database per row) instead of a throwaway cluster")
	flag.BoolVar(&o.pgstats, "pgstats", false, "postgres: print each row's transactions, WAL, busy backends' waits and top statements (pg_stat_statements, loaded in the throwaway cluster)")
	flag.IntVar(&o.poolSize, "pool-size", 0, "postgres: each gateway's storage.pool_size (0: the default)")
	// Internal: the server side of a target, in a child process.
	child := flag.String("child", "", "internal: serve a target (bare, verify, insert or gateway) instead of benchmarking")
	addr := flag.String("addr", "", "internal: -child listen address")
	config := flag.String("config", "", "internal: -child gateway configuration")
	dir := flag.String("dir", "", "internal: -child insert's directory")
	flag.Parse()

	if *child != "" {
		if err := runChild(*child, *addr, o.secret, *config, o.cpuprofile, *dir); err != nil {
			fmt.Fprintln(os.Stderr, "load -child:", err)
			os.Exit(1)
		}
		return
	}
	o.targets = strings.Split(*targets, ",")
	var err error
	if o.variants, err = parseVariants(*backends, *replicas); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
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
	serverCPU time.Duration // the server's CPU time during the window
	loadCPU   time.Duration // this process's (client, and c's sink)

	// c only: the sink's view.
	sink         bool
	lost         int            // accepted, not delivered, and not in the queue either
	queued       int            // accepted, not delivered within -drain-timeout, still queued
	lostStates   map[string]int // the queue's view of the lost events
	redelivery   int            // deliveries beyond one per event
	deliveryRate float64        // distinct events/s at the sink, first delivery to last
	drain        time.Duration
	// backlog is accepted minus delivered, when the window opened and
	// when it closed: growing means delivery does not keep up.
	backlog0, backlog1 int
	idleCPU            float64 // cores used by the idle gateway after the drain

	cl clusterRow // c, ingest: storage variant, database CPU (replicas.go)
}

func run(o options) error {
	for _, t := range o.targets {
		if !slices.Contains(allTargets, t) {
			return fmt.Errorf("-targets: unknown target %q: want some of %s", t, strings.Join(allTargets, ", "))
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
	if slices.Contains(o.targets, "c") || slices.Contains(o.targets, "ingest") {
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
		if hasPostgres(o.variants) {
			if o.pg, err = startPostgres(context.Background(), o.dsn, o.pgstats); err != nil {
				return err
			}
			defer o.pg.close(o.keep)
		}
	}

	load1, _ := os.ReadFile("/proc/loadavg")
	mode := fmt.Sprintf("%d connections, closed loop", o.conns)
	if o.rate > 0 {
		mode = fmt.Sprintf("%d events/s over %d connections, open loop", o.rate, o.conns)
	}
	procs := "default"
	if o.gomaxprocs > 0 {
		procs = strconv.Itoa(o.gomaxprocs)
	}
	fmt.Printf("switchyard load benchmark: %s, %v warm-up + %v measured per target, %d run(s), servers' GOMAXPROCS %s\n",
		mode, o.warmup, o.duration, o.runs, procs)
	fmt.Printf("events: %d distinct, %s\n", len(events), sizes(events))
	fmt.Printf("machine: %d CPUs, %s %s/%s, load average at start %s\n\n",
		runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, strings.Join(strings.Fields(string(load1))[:3], " "))

	var runs [][]*row
	for n := range o.runs {
		var rows []*row
		for _, t := range o.targets {
			dir := filepath.Join(tmp, fmt.Sprintf("run%d-%s", n+1, t))
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return err
			}
			var r *row
			var rs []*row
			var err error
			switch t {
			case "a":
				r, err = runPlain(o, dir, "a", self, "bare", events)
			case "b":
				r, err = runPlain(o, dir, "b", self, "verify", events)
			case "d":
				r, err = runPlain(o, dir, "d", self, "insert", events)
			case "ingest", "c":
				rs, err = runVariants(o, dir, t, gateway, events)
			}
			if err != nil {
				return fmt.Errorf("run %d, target %s: %w", n+1, t, err)
			}
			if r != nil {
				rs = []*row{r}
			}
			rows = append(rows, rs...)
		}
		if o.runs > 1 {
			fmt.Printf("run %d of %d\n", n+1, o.runs)
		}
		report(o, rows)
		reportReplicas(o, rows)
		runs = append(runs, rows)
	}
	if o.runs > 1 {
		medians(o, runs)
		replicaMedians(o, runs)
	}
	return nil
}

// runPlain runs target a, b or d: this binary in -child mode.
func runPlain(o options, dir, target, self, mode string, events []signedEvent) (*row, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	srv, err := startServer(filepath.Join(dir, "server.log"), o.serverEnv(), self, "-child", mode, "-addr", addr, "-secret", o.secret, "-dir", dir)
	if err != nil {
		return nil, err
	}
	r, err := measure(o, target, single(srv, addr), events, false, nil)
	if stopErr := srv.stop(30 * time.Second); err == nil {
		err = stopErr
	}
	return r, err
}

func (o options) serverEnv() []string {
	if o.gomaxprocs > 0 {
		return []string{fmt.Sprintf("GOMAXPROCS=%d", o.gomaxprocs)}
	}
	return nil
}

// runGateway runs target c (with a loopback HTTP sink, then waits until
// the sink has received every accepted event, and measures the idle
// gateway) or ingest (every event routed to a held sink), on v's
// storage: v.replicas gateways share the sink and the load.
func runGateway(o options, dir, target string, v variant, gateway []string, events []signedEvent) (*row, error) {
	sk, err := startSink()
	if err != nil {
		return nil, err
	}
	defer sk.close()
	url := sk.url()
	if target == "ingest" {
		url = "" // held: stored, delivered nowhere
	}
	srv, err := startGateways(o, dir, v, gateway, url)
	if err != nil {
		return nil, err
	}
	defer srv.release()
	var sinkAt func() int
	if target == "c" {
		sinkAt = sk.distinct
	}
	all0, err := srv.cpu()
	if err != nil {
		return nil, err
	}
	r, err := measure(o, target, srv, events, target == "c", sinkAt)
	if err == nil {
		r.cl.variant = v
		err = srv.statements(r)
	}
	var missing []string
	if err == nil && target == "c" {
		r.sink = true
		start := time.Now()
		missing = sk.missing(r.res.IDs)
		for len(missing) > 0 && time.Since(start) < o.drainTimeout {
			time.Sleep(100 * time.Millisecond)
			missing = sk.missing(missing)
		}
		r.drain = time.Since(start)
		if len(missing) == 0 {
			err = r.drained(srv, all0)
		}
		requests, distinct, rate := sk.counts()
		r.redelivery, r.deliveryRate = requests-distinct, rate
		if err == nil && o.idle > 0 {
			r.idleCPU, err = srv.idleCPU(o.idle)
		}
		if err == nil {
			r.rss, err = srv.peakRSS() // again: the drain may have grown it
		}
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
		states, err = queuedStates(srv, missing)
		r.queued = states[queue.StatePending] + states[queue.StateFailed]
		r.lost = len(missing) - r.queued
		delete(states, queue.StatePending)
		delete(states, queue.StateFailed)
		r.lostStates = states
	}
	return r, err
}

// queuedStates counts the events among ids by the state of their
// delivery in the gateways' queue ("none" when it has none). The
// gateways must be stopped.
func queuedStates(g *servers, ids []string) (map[string]int, error) {
	ctx := context.Background()
	st, err := g.openQueue(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	out := map[string]int{}
	for _, id := range ids {
		ds, err := st.List(ctx, queue.Filter{EventID: id})
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

const gatewayConfig = `# Written by bench/load for targets c and ingest. Each gateway
# listens on $SWITCHYARD_LISTEN (one gateway: on the address below too).
server:
  listen: %q
storage:
%ssources:
  - name: darwin
    provider: darwin
    secret: %q
sinks:
  - name: loopback
    type: http
    url: %q                   # empty for target ingest: the sink is held
    concurrency: 32           # keep up with ingest: a delivery waits for two commits
routes:
  - name: everything
    match: ["*"]
    to: [loopback]
`

// measure waits for srv, loads it and reads its CPU time and peak RSS.
// sinkAt, when set, counts the events the sink has received, to see the
// backlog when the window opens and closes.
func measure(o options, target string, srv *servers, events []signedEvent, collectIDs bool, sinkAt func() int) (*row, error) {
	if err := srv.waitHealthy(60 * time.Second); err != nil {
		return nil, err
	}
	r := &row{target: target}
	var srv0 cpuSample
	var self0 time.Duration
	var cpuErr error
	var accepted func() int
	res := load(srv.addrs, events, o.conns, o.rate, o.warmup, o.duration, collectIDs, func(acc func() int) {
		var err1, err2 error
		srv0, err1 = srv.cpu()
		self0, err2 = cpuTime(os.Getpid())
		cpuErr = fmt.Errorf("cpu time: %w %w", err1, err2)
		if err1 == nil && err2 == nil {
			cpuErr = nil
		}
		accepted = acc
		if sinkAt != nil {
			r.backlog0 = acc() - sinkAt()
		}
	}, func() {
		if sinkAt != nil && accepted != nil {
			r.backlog1 = accepted() - sinkAt()
		}
	})
	if cpuErr != nil {
		return nil, cpuErr
	}
	srv1, err1 := srv.cpu()
	self1, err2 := cpuTime(os.Getpid())
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("cpu time: %v %v", err1, err2)
	}
	rss, err := srv.peakRSS()
	if err != nil {
		return nil, err
	}
	r.res, r.rss, r.loadCPU = res, rss, self1-self0
	r.window(srv0, srv1)
	return r, nil
}

var targetNames = map[string]string{
	"a":      "a bare fiber",
	"b":      "b verify+parse",
	"d":      "d verify+parse+insert",
	"ingest": "c-ingest switchyard, held sink",
	"c":      "c switchyard",
}

func report(o options, rows []*row) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tevents/s\tp50\tp99\tmax\terrors\tCPU/event\tserver CPU\tlost\tdelivered/s\tbacklog\tdrain\tidle CPU\tpeak RSS\t")
	byTarget := map[string]*row{}
	for _, r := range rows {
		if byTarget[r.target] == nil { // with several storage variants: the first (SQLite×1)
			byTarget[r.target] = r
		}
		lost, delivered, backlog, drain, idle := "-", "-", "-", "-", "-"
		if r.sink {
			lost, delivered, drain = fmt.Sprint(r.lost), fmt.Sprintf("%.0f", r.deliveryRate), r.drain.Round(100*time.Millisecond).String()
			backlog = fmt.Sprintf("%d→%d", r.backlog0, r.backlog1)
			if o.idle > 0 {
				idle = fmt.Sprintf("%.2f%%", 100*r.idleCPU)
			}
		}
		name := r.name(o)
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%d\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%.1f MiB\t\n",
			name, r.rate(), ms(r.res.percentile(0.50)), ms(r.res.percentile(0.99)), ms(r.res.percentile(1)),
			r.res.Errors, us(r.cpuPerEvent()), r.serverCPU.Seconds()/r.res.Window.Seconds(), lost, delivered, backlog, drain, idle,
			float64(r.rss)/(1<<20))
	}
	tw.Flush()
	fmt.Println(`
events/s, p50, p99, max: 2xx answers to requests sent in the measured window (open loop: latency from the scheduled send)
errors: non-2xx answers and transport errors, warm-up included
CPU/event: the server's CPU time (user + system, /proc) in the window per event answered 2xx in it (replicas: the gateways', summed)
server CPU: cores the server used in the window
peak RSS: the server's (replicas: the largest gateway's)
lost: accepted (2xx) events neither received by the sink nor waiting in the queue
delivered/s: distinct events received by the sink, from its first delivery to its last
backlog: accepted minus delivered when the window opened → when it closed; growing: delivery does not keep up
drain: time after the load until the sink had every accepted event (bounded by -drain-timeout)
idle CPU: the gateway's CPU use once drained and idle, in % of a core`)

	for _, r := range rows {
		for kind, n := range r.res.ErrorKinds {
			fmt.Printf("%s: %d × %s\n", r.name(o), n, kind)
		}
		if r.res.Wrapped {
			fmt.Printf("%s: more requests than -events: events were re-sent (%d answered as duplicates)\n", r.name(o), r.res.Duplicates)
		}
		if r.queued > 0 {
			fmt.Printf("%s: %d accepted events not delivered within %v, still queued: delivery is slower than ingest\n", r.name(o), r.queued, o.drainTimeout)
		}
		for state, n := range r.lostStates {
			fmt.Printf("%s: %d lost events are %q in the queue\n", r.name(o), n, state)
		}
		if r.redelivery > 0 {
			fmt.Printf("%s: %d deliveries repeated an event (at least once)\n", r.name(o), r.redelivery)
		}
	}
	fmt.Println()
	for _, q := range ratios(byTarget) {
		fmt.Printf("%-40s %.2f\n", q.name, q.value)
	}
	verdicts(o, byTarget)
	fmt.Println()
}

type ratio struct {
	name  string
	value float64
}

// ratios are the comparisons made within one run.
func ratios(t map[string]*row) []ratio {
	var out []ratio
	add := func(name string, ok bool, v func() float64) {
		if ok {
			out = append(out, ratio{name, v()})
		}
	}
	a, b, d, in, c := t["a"], t["b"], t["d"], t["ingest"], t["c"]
	add("c-ingest CPU/event ÷ d CPU/event", in != nil && d != nil, func() float64 { return in.cpuPerEvent().Seconds() / d.cpuPerEvent().Seconds() })
	add("c events/s ÷ b events/s", c != nil && b != nil, func() float64 { return c.rate() / b.rate() })
	add("c CPU/event ÷ d CPU/event", c != nil && d != nil, func() float64 { return c.cpuPerEvent().Seconds() / d.cpuPerEvent().Seconds() })
	add("d events/s ÷ b events/s", d != nil && b != nil, func() float64 { return d.rate() / b.rate() })
	add("b events/s ÷ a events/s", b != nil && a != nil, func() float64 { return b.rate() / a.rate() })
	return out
}

// verdicts prints the targets met or missed in this run.
func verdicts(o options, t map[string]*row) {
	check := func(ok bool, what, got string) {
		verdict := "met"
		if !ok {
			verdict = "MISSED"
		}
		fmt.Printf("  %-44s %-7s %s\n", what, verdict, got)
	}
	in, d, b, c := t["ingest"], t["d"], t["b"], t["c"]
	if in == nil && c == nil {
		return
	}
	fmt.Println("\ntargets:")
	if in != nil && d != nil {
		q := in.cpuPerEvent().Seconds() / d.cpuPerEvent().Seconds()
		check(q <= 1.3, "c-ingest CPU/event ≤ 1.3 × d's", fmt.Sprintf("%.2f × (%s against %s)", q, us(in.cpuPerEvent()), us(d.cpuPerEvent())))
	}
	if c == nil {
		return
	}
	if o.rate > 0 {
		check(c.cpuPerEvent() <= 150*time.Microsecond, fmt.Sprintf("c CPU/event at %d/s ≤ 150 µs", o.rate), us(c.cpuPerEvent()))
	} else if b != nil {
		check(c.rate() >= 0.3*b.rate(), "c events/s ≥ 0.3 × b's", fmt.Sprintf("%.2f", c.rate()/b.rate()))
		p99 := c.res.percentile(0.99)
		check(p99 <= 15*time.Millisecond, "c p99 ≤ 15 ms", ms(p99))
	}
	grow := c.backlog1 - c.backlog0
	check(grow <= max(100, int(c.rate()/10)), "c delivery keeps up (backlog does not grow)", fmt.Sprintf("%d→%d", c.backlog0, c.backlog1))
	check(c.res.Errors == 0, "c errors = 0", fmt.Sprint(c.res.Errors))
	check(c.lost == 0, "c lost = 0", fmt.Sprintf("%d of %d accepted; %d still queued after the drain", c.lost, c.res.Accepted, c.queued))
	check(c.rss <= 100<<20, "c peak RSS ≤ 100 MiB", fmt.Sprintf("%.1f MiB", float64(c.rss)/(1<<20)))
	if o.idle > 0 {
		check(c.idleCPU < 0.01, "c idle < 1% of a core", fmt.Sprintf("%.2f%%", 100*c.idleCPU))
	}
}

// medians prints, per target, the median of each run's figures, and
// the median of each ratio measured within one run.
func medians(o options, runs [][]*row) {
	fmt.Printf("medians of %d runs\n", len(runs))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tevents/s\tp99\tCPU/event\tserver CPU\tdelivered/s\tidle CPU\tpeak RSS\t")
	for i, r0 := range runs[0] {
		var rate, p99, cpu, cores, delivered, idle, rss []float64
		for _, rows := range runs {
			r := rows[i]
			rate = append(rate, r.rate())
			p99 = append(p99, float64(r.res.percentile(0.99)))
			cpu = append(cpu, float64(r.cpuPerEvent()))
			cores = append(cores, r.serverCPU.Seconds()/r.res.Window.Seconds())
			delivered = append(delivered, r.deliveryRate)
			idle = append(idle, r.idleCPU)
			rss = append(rss, float64(r.rss))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%.2f\t%.0f\t%.2f%%\t%.1f MiB\t\n", r0.name(o), median(rate), ms(time.Duration(median(p99))),
			us(time.Duration(median(cpu))), median(cores), median(delivered), 100*median(idle), median(rss)/(1<<20))
	}
	tw.Flush()
	byName := map[string][]float64{}
	var names []string
	for _, rows := range runs {
		t := map[string]*row{}
		for _, r := range rows {
			if t[r.target] == nil {
				t[r.target] = r
			}
		}
		for _, q := range ratios(t) {
			if _, ok := byName[q.name]; !ok {
				names = append(names, q.name)
			}
			byName[q.name] = append(byName[q.name], q.value)
		}
	}
	fmt.Println()
	for _, n := range names {
		vs := byName[n]
		fmt.Printf("%-40s median %.2f  (runs: %s)\n", n, median(vs), fmtList(vs))
	}
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtList(vs []float64) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("%.2f", v)
	}
	return strings.Join(parts, ", ")
}

func (r *row) rate() float64 { return float64(r.res.Measured) / r.res.Window.Seconds() }

// cpuPerEvent is the server's CPU time per event answered 2xx in the
// window.
func (r *row) cpuPerEvent() time.Duration {
	if r.res.Measured == 0 {
		return 0
	}
	return r.serverCPU / time.Duration(r.res.Measured)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

func sizes(events []signedEvent) string {
	lo, hi, sum := len(events[0].Body), 0, 0
	for _, e := range events {
		lo, hi, sum = min(lo, len(e.Body)), max(hi, len(e.Body)), sum+len(e.Body)
	}
	return fmt.Sprintf("%d–%d bytes, mean %d", lo, hi, sum/len(events))
}
