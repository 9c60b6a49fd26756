package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/queue/postgres"
	"github.com/switchyard/switchyard/queue/sqlite"
)

// The storage of targets c and ingest: -backend and -replicas.
const (
	backendSQLite   = "sqlite"
	backendPostgres = "postgres"
)

// variant is how a c or ingest row stores events: a backend, and how
// many gateways share it.
type variant struct {
	backend  string
	replicas int
}

func (v variant) String() string {
	name := "SQLite"
	if v.backend == backendPostgres {
		name = "PostgreSQL"
	}
	return fmt.Sprintf("%s×%d", name, v.replicas)
}

func (v variant) slug() string { return fmt.Sprintf("%s-%d", v.backend, v.replicas) }

// parseVariants turns -backend and -replicas (comma-separated lists)
// into rows: SQLite first, with one gateway (one serve owns a storage
// directory) whatever -replicas says; then PostgreSQL, a row per count.
func parseVariants(backends, replicas string) ([]variant, error) {
	var counts []int
	for _, s := range strings.Split(replicas, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-replicas: %q is not a number of gateways (1 or more); for example -replicas 1,2,3", s)
		}
		if !slices.Contains(counts, n) {
			counts = append(counts, n)
		}
	}
	var lite, pg bool
	for _, b := range strings.Split(backends, ",") {
		switch strings.TrimSpace(b) {
		case backendSQLite:
			lite = true
		case backendPostgres:
			pg = true
		default:
			return nil, fmt.Errorf("-backend: unknown backend %q: want sqlite, postgres or both (sqlite,postgres)", b)
		}
	}
	// SQLite first: the baseline of the ratios.
	var out []variant
	if lite {
		out = append(out, variant{backendSQLite, 1})
	}
	for _, n := range counts {
		if pg {
			out = append(out, variant{backendPostgres, n})
		}
	}
	return out, nil
}

func hasPostgres(vs []variant) bool {
	return slices.ContainsFunc(vs, func(v variant) bool { return v.backend == backendPostgres })
}

// labelled reports whether rows name their variant: unless the only one
// is SQLite×1, the table as it always was.
func labelled(vs []variant) bool { return len(vs) != 1 || vs[0] != variant{backendSQLite, 1} }

// clusterRow is what a c or ingest row adds to the table: its storage,
// and the database server's CPU.
type clusterRow struct {
	variant  variant
	labelled bool
	// db is the PostgreSQL server's CPU in the window (the postmaster
	// and its processes); dbMeasured is false when the server does not
	// run on this machine, or with SQLite.
	db         time.Duration
	dbMeasured bool
	// replicaCPU is each gateway's CPU in the window.
	replicaCPU []time.Duration
	// life is the CPU used from the start of the load (warm-up included)
	// until the sink had every accepted event, per event accepted:
	// what accepting and delivering an event costs, whether or not
	// delivery kept up during the window (c; lifeOK once drained).
	life, lifeDB time.Duration
	lifeOK       bool
	// statements are pg_stat_statements' top statements (-pgstats),
	// during the load; statementsMS their total time, all statements.
	statements   []statement
	statementsMS float64
	// activity is what the database server counted during the load
	// (warm-up included).
	activity dbCounters
	// waits is, per wait event, how many of the database's backends
	// were busy in it on average during the load ("CPU": running).
	waits map[string]float64
}

// name is the row's name in the tables.
func (r *row) name(o options) string {
	name := targetNames[r.target]
	if r.cl.labelled {
		name += " " + r.cl.variant.String()
	}
	if (r.target == "c" || r.target == "ingest") && o.cpuprofile != "" {
		name += " (profiled)"
	}
	return name
}

// runVariants runs target c or ingest once per -backend/-replicas row.
func runVariants(o options, dir, target string, gateway []string, events []signedEvent) ([]*row, error) {
	var rows []*row
	for _, v := range o.variants {
		vdir := dir
		if labelled(o.variants) {
			vdir = filepath.Join(dir, v.slug())
			if err := os.MkdirAll(vdir, 0o750); err != nil {
				return nil, err
			}
		}
		r, err := runGateway(o, vdir, target, v, gateway, events)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v, err)
		}
		r.cl.labelled = labelled(o.variants)
		rows = append(rows, r)
	}
	return rows, nil
}

// servers are the processes answering a row's load: one server, or a
// target's gateways (its replicas), and the database they share.
type servers struct {
	procs []*server
	addrs []string // procs[i] listens on addrs[i]

	v       variant
	pg      *pgServer // postgres: the database's server
	db, dsn string    // postgres: the row's database
	dir     string    // sqlite: storage.dir
	keep    bool      // -keep: leave the database
	// counters are the server's activity counters when the load began.
	counters dbCounters
	waits    *waitSampler // -pgstats
}

func single(srv *server, addr string) *servers {
	return &servers{procs: []*server{srv}, addrs: []string{addr}}
}

var notWord = regexp.MustCompile(`[^a-z0-9]+`)

// startGateways writes the gateways' configuration (one file for every
// replica, as in production: the listen address comes from
// SWITCHYARD_LISTEN) and starts v.replicas gateways. A postgres row
// gets a database of its own, dropped by release.
func startGateways(o options, dir string, v variant, gateway []string, sinkURL string) (_ *servers, err error) {
	g := &servers{v: v, dir: filepath.Join(dir, "data"), keep: o.keep}
	defer func() {
		if err != nil {
			g.stop(10 * time.Second)
			g.release()
		}
	}()
	storage := fmt.Sprintf("  dir: %q\n  synchronous: %s\n", g.dir, o.synchronous)
	if v.backend == backendPostgres {
		if o.pg == nil {
			return nil, errors.New("no PostgreSQL server")
		}
		rel, _ := filepath.Rel(os.TempDir(), dir)
		g.pg, g.db = o.pg, "bench_"+strings.Trim(notWord.ReplaceAllString(strings.ToLower(rel), "_"), "_")
		if len(g.db) > 63 {
			g.db = g.db[len(g.db)-63:]
		}
		if g.dsn, err = o.pg.createDB(context.Background(), g.db); err != nil {
			return nil, err
		}
		storage = fmt.Sprintf("  backend: postgres\n  dsn: %q\n  dir: %q\n", g.dsn, g.dir)
		if o.poolSize > 0 {
			storage += fmt.Sprintf("  pool_size: %d\n", o.poolSize)
		}
	}
	addrs := make([]string, v.replicas)
	for i := range addrs {
		if addrs[i], err = freeAddr(); err != nil {
			return nil, err
		}
	}
	// One gateway also finds its address in the file, so that a build
	// older than SWITCHYARD_LISTEN (-switchyard, for a before-and-after
	// comparison in one run) listens where the load goes.
	listen := "127.0.0.1:1"
	if v.replicas == 1 {
		listen = addrs[0]
	}
	cfg := filepath.Join(dir, "switchyard.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, gatewayConfig, listen, storage, o.secret, sinkURL), 0o600); err != nil {
		return nil, err
	}
	for i, addr := range addrs {
		bin, args := gateway[0], []string{"serve", "--config", cfg, "--log-level", "warn"}
		if len(gateway) > 1 {
			args = append(slices.Clone(gateway[1:]), "-config", cfg)
			if v.replicas > 1 || labelled(o.variants) {
				// One profile per gateway: c.pprof → c.postgres-2.r1.pprof.
				prof := args[slices.Index(args, "-cpuprofile")+1]
				ext := filepath.Ext(prof)
				args[slices.Index(args, "-cpuprofile")+1] = fmt.Sprintf("%s.%s.r%d%s", strings.TrimSuffix(prof, ext), v.slug(), i+1, ext)
			}
		}
		log := "server.log"
		if v.replicas > 1 {
			log = fmt.Sprintf("server-r%d.log", i+1)
		}
		env := append(o.serverEnv(), "SWITCHYARD_LISTEN="+addr)
		srv, err := startServer(filepath.Join(dir, log), env, bin, args...)
		if err != nil {
			return nil, err
		}
		g.procs, g.addrs = append(g.procs, srv), append(g.addrs, addr)
	}
	if err := g.waitHealthy(60 * time.Second); err != nil {
		return nil, err
	}
	if g.pg != nil {
		if g.counters, err = g.pg.resetStats(context.Background(), g.dsn); err != nil {
			return nil, err
		}
		if o.pgstats {
			g.waits = g.pg.sampleWaits(g.dsn)
		}
	}
	return g, nil
}

func (g *servers) waitHealthy(timeout time.Duration) error {
	for i, s := range g.procs {
		if err := s.waitHealthy(g.addrs[i], timeout); err != nil {
			return err
		}
	}
	return nil
}

// cpuSample is the CPU time used so far by a row's gateways (summed)
// and by its database server.
type cpuSample struct {
	replicas []time.Duration
	db       time.Duration
	dbOK     bool
}

func (g *servers) cpu() (cpuSample, error) {
	var s cpuSample
	for _, p := range g.procs {
		c, err := cpuTime(p.pid())
		if err != nil {
			return s, err
		}
		s.replicas = append(s.replicas, c)
	}
	if g.pg != nil {
		var err error
		if s.db, s.dbOK, err = g.pg.cpu(); err != nil {
			return s, fmt.Errorf("postgres: %w", err)
		}
	}
	return s, nil
}

// window records in r the CPU used between samples c0 and c1: the
// gateways' summed as the server's, the database's on its own.
func (r *row) window(c0, c1 cpuSample) {
	r.serverCPU = 0
	r.cl.replicaCPU = nil
	for i := range c1.replicas {
		d := c1.replicas[i] - c0.replicas[i]
		r.serverCPU += d
		r.cl.replicaCPU = append(r.cl.replicaCPU, d)
	}
	r.cl.db, r.cl.dbMeasured = c1.db-c0.db, c1.dbOK && c0.dbOK
}

// drained records the CPU used since sample c0, taken before the load
// began, now that every accepted event was delivered: per event
// accepted, the gateways' and the database's.
func (r *row) drained(g *servers, c0 cpuSample) error {
	c1, err := g.cpu()
	if err != nil || r.res.Accepted == 0 {
		return err
	}
	var w row
	w.window(c0, c1)
	n := time.Duration(r.res.Accepted)
	r.cl.life, r.cl.lifeDB, r.cl.lifeOK = w.serverCPU/n, w.cl.db/n, true
	return nil
}

// peakRSS is the largest gateway's.
func (g *servers) peakRSS() (int64, error) {
	var peak int64
	for _, p := range g.procs {
		rss, err := peakRSS(p.pid())
		if err != nil {
			return 0, err
		}
		peak = max(peak, rss)
	}
	return peak, nil
}

// idleCPU is the cores the gateways use over d, summed.
func (g *servers) idleCPU(d time.Duration) (float64, error) {
	c0, err := g.cpu()
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	c1, err := g.cpu()
	if err != nil {
		return 0, err
	}
	var r row
	r.window(c0, c1)
	return r.serverCPU.Seconds() / d.Seconds(), nil
}

// stop stops every gateway; the first error wins.
func (g *servers) stop(timeout time.Duration) error {
	var first error
	for _, p := range g.procs {
		if err := p.stop(timeout); err != nil && first == nil {
			first = err
		}
	}
	g.procs = nil
	if g.waits != nil {
		g.waits.end()
		g.waits = nil
	}
	return first
}

// openQueue opens the row's queue, for looking up events the sink did
// not receive; the gateways must be stopped.
func (g *servers) openQueue(ctx context.Context) (queue.Store, error) {
	if g.v.backend == backendPostgres {
		return postgres.Open(ctx, g.dsn, postgres.Options{Client: true})
	}
	return sqlite.Open(ctx, g.dir, sqlite.Options{})
}

// statements reads the database's activity counters and
// pg_stat_statements' top statements (-pgstats) since the load began.
func (g *servers) statements(r *row) error {
	if g.pg == nil {
		return nil
	}
	ctx := context.Background()
	c, err := g.pg.counters(ctx, g.dsn)
	if err != nil {
		return err
	}
	r.cl.activity = c.sub(g.counters)
	if g.waits != nil {
		if r.cl.waits, err = g.waits.end(); err != nil {
			return err
		}
		g.waits = nil
	}
	r.cl.statements, r.cl.statementsMS, err = g.pg.topStatements(ctx, g.dsn, 8)
	return err
}

// release drops a postgres row's database unless -keep.
func (g *servers) release() {
	if g.pg == nil || g.db == "" || g.keep {
		return
	}
	if err := g.pg.dropDB(context.Background(), g.db); err != nil {
		fmt.Fprintf(os.Stderr, "load: drop database %s: %v\n", g.db, err)
	}
}
