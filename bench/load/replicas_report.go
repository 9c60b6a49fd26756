package main

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// figures are one c or ingest row's numbers in the replicas table, or
// their medians over runs.
type figures struct {
	target    string
	v         variant
	rate      float64 // accepted events/s in the window
	share     float64 // rate ÷ SQLite×1's in the same run (0: none)
	p50, p99  time.Duration
	delivered float64 // distinct events/s at the sink
	sink      bool    // delivered, backlog and lost were measured (c)
	backlog   [2]int
	// CPU per event answered 2xx in the window: the gateways' summed,
	// the database server's, and both.
	gateways, db, total time.Duration
	dbMeasured          bool
	// CPU per event accepted, from the start of the load until every
	// event was delivered (c, once drained; lifeOK).
	life, lifeDB time.Duration
	lifeOK       bool
	// cores used in the window: each gateway's, the database server's.
	replicaCores []float64
	dbCores      float64
	loadCores    float64 // the load generator's and the sink's (this process)
	errors, lost int
}

func figuresOf(r *row) figures {
	f := figures{target: r.target, v: r.cl.variant, rate: r.rate(), p50: r.res.percentile(0.50), p99: r.res.percentile(0.99),
		delivered: r.deliveryRate, sink: r.sink, backlog: [2]int{r.backlog0, r.backlog1}, errors: r.res.Errors, lost: r.lost,
		dbMeasured: r.cl.dbMeasured || r.cl.variant.backend == backendSQLite}
	w := r.res.Window.Seconds()
	for _, c := range r.cl.replicaCPU {
		f.replicaCores = append(f.replicaCores, c.Seconds()/w)
	}
	f.dbCores = r.cl.db.Seconds() / w
	f.loadCores = r.loadCPU.Seconds() / w
	if n := time.Duration(r.res.Measured); n > 0 {
		f.gateways, f.db = r.serverCPU/n, r.cl.db/n
	}
	f.total = f.gateways + f.db
	f.life, f.lifeDB, f.lifeOK = r.cl.life, r.cl.lifeDB, r.cl.lifeOK
	return f
}

// medianFigures is the median of each figure over runs (errors and lost:
// the most in any run).
func medianFigures(fs []figures) figures {
	m := fs[0]
	med := func(get func(figures) float64) float64 {
		var vs []float64
		for _, f := range fs {
			vs = append(vs, get(f))
		}
		return median(vs)
	}
	dur := func(get func(figures) time.Duration) time.Duration {
		return time.Duration(med(func(f figures) float64 { return float64(get(f)) }))
	}
	m.rate = med(func(f figures) float64 { return f.rate })
	m.share = med(func(f figures) float64 { return f.share })
	m.p50 = dur(func(f figures) time.Duration { return f.p50 })
	m.p99 = dur(func(f figures) time.Duration { return f.p99 })
	m.delivered = med(func(f figures) float64 { return f.delivered })
	m.gateways = dur(func(f figures) time.Duration { return f.gateways })
	m.db = dur(func(f figures) time.Duration { return f.db })
	m.total = dur(func(f figures) time.Duration { return f.total })
	m.life = dur(func(f figures) time.Duration { return f.life })
	m.lifeDB = dur(func(f figures) time.Duration { return f.lifeDB })
	m.dbCores = med(func(f figures) float64 { return f.dbCores })
	m.loadCores = med(func(f figures) float64 { return f.loadCores })
	m.replicaCores = slices.Clone(m.replicaCores)
	for i := range m.replicaCores {
		m.replicaCores[i] = med(func(f figures) float64 { return f.replicaCores[i] })
	}
	for _, f := range fs {
		m.errors, m.lost = max(m.errors, f.errors), max(m.lost, f.lost)
		m.dbMeasured = m.dbMeasured && f.dbMeasured
		m.lifeOK = m.lifeOK && f.lifeOK
	}
	return m
}

// runFigures are one run's rows of a target, each with its events/s
// as a share of SQLite×1's in that run.
func runFigures(rows []*row, idx []int) []figures {
	var fs []figures
	var lite float64
	for _, i := range idx {
		f := figuresOf(rows[i])
		if f.v == (variant{backendSQLite, 1}) {
			lite = f.rate
		}
		fs = append(fs, f)
	}
	for i := range fs {
		if lite > 0 {
			fs[i].share = fs[i].rate / lite
		}
	}
	return fs
}

// replicaRatios are issue 14's comparisons within one run (or their
// medians over runs).
type replicaRatios struct {
	// rate is PostgreSQL×1's events/s ÷ SQLite×1's.
	rate   float64
	hasRow bool
	// growth is, per number of replicas above one, the total CPU per
	// event ÷ PostgreSQL×1's; gwGrowth the gateways' alone. With life,
	// CPU per event accepted and delivered; else in the window.
	growth, gwGrowth map[int]float64
	life             bool
}

func ratiosOfFigures(fs []figures) replicaRatios {
	q := replicaRatios{growth: map[int]float64{}, gwGrowth: map[int]float64{}}
	var lite, pg1 *figures
	for i := range fs {
		switch fs[i].v {
		case variant{backendSQLite, 1}:
			lite = &fs[i]
		case variant{backendPostgres, 1}:
			pg1 = &fs[i]
		}
	}
	if lite != nil && pg1 != nil && lite.rate > 0 {
		q.rate, q.hasRow = pg1.rate/lite.rate, true
	}
	if pg1 == nil {
		return q
	}
	// CPU per event accepted and delivered when every row was drained
	// (c): in the window alone, a row whose delivery lagged more would
	// look cheaper.
	q.life = true
	for _, f := range fs {
		q.life = q.life && (f.v.backend != backendPostgres || f.lifeOK)
	}
	cost := func(f figures) (total, gateways time.Duration) {
		if q.life {
			return f.life + f.lifeDB, f.life
		}
		return f.total, f.gateways
	}
	t1, g1 := cost(*pg1)
	if t1 <= 0 || g1 <= 0 {
		return q
	}
	for _, f := range fs {
		if f.v.backend == backendPostgres && f.v.replicas > 1 {
			t, g := cost(f)
			q.growth[f.v.replicas] = t.Seconds() / t1.Seconds()
			q.gwGrowth[f.v.replicas] = g.Seconds() / g1.Seconds()
		}
	}
	return q
}

// replicaGroups returns, per target (c, then ingest), the indexes of the
// rows that name a storage variant.
func replicaGroups(rows []*row) map[string][]int {
	out := map[string][]int{}
	for i, r := range rows {
		if r.cl.labelled {
			out[r.target] = append(out[r.target], i)
		}
	}
	return out
}

// reportReplicas prints, for c and ingest run on several storage
// variants (-backend, -replicas), the replicas table and issue 14's
// targets.
func reportReplicas(o options, rows []*row) {
	groups := replicaGroups(rows)
	for _, t := range []string{"c", "ingest"} {
		fs := runFigures(rows, groups[t])
		if len(fs) == 0 {
			continue
		}
		printReplicas(o, t, fs, ratiosOfFigures(fs), "")
		if o.pgstats {
			for _, i := range groups[t] {
				printStatements(rows[i])
			}
		}
	}
}

// replicaMedians prints the replicas tables of -runs N: the median of
// each figure, and of each ratio measured within a run.
func replicaMedians(o options, runs [][]*row) {
	groups := replicaGroups(runs[0])
	for _, t := range []string{"c", "ingest"} {
		if len(groups[t]) == 0 {
			continue
		}
		var perRun [][]figures
		for _, rows := range runs {
			perRun = append(perRun, runFigures(rows, groups[t]))
		}
		var fs []figures
		for k := range groups[t] {
			var each []figures
			for _, one := range perRun {
				each = append(each, one[k])
			}
			fs = append(fs, medianFigures(each))
		}
		var rates []float64
		growth, gwGrowth := map[int][]float64{}, map[int][]float64{}
		life := true
		for _, one := range perRun {
			q := ratiosOfFigures(one)
			life = life && q.life
			if q.hasRow {
				rates = append(rates, q.rate)
			}
			for n, g := range q.growth {
				growth[n] = append(growth[n], g)
				gwGrowth[n] = append(gwGrowth[n], q.gwGrowth[n])
			}
		}
		q := replicaRatios{rate: median(rates), hasRow: len(rates) > 0, growth: map[int]float64{}, gwGrowth: map[int]float64{}, life: life}
		runsOf := map[string]string{"rate": fmtList(rates)}
		for n := range growth {
			q.growth[n], q.gwGrowth[n] = median(growth[n]), median(gwGrowth[n])
			runsOf[fmt.Sprint(n)] = fmtList(growth[n])
		}
		printReplicas(o, t, fs, q, fmt.Sprintf("medians of %d runs", len(runs)))
		fmt.Printf("ratios' runs: PostgreSQL×1 ÷ SQLite×1 events/s %s", runsOf["rate"])
		for _, n := range slices.Sorted(maps.Keys(growth)) {
			fmt.Printf("; CPU/event ×%d ÷ ×1 %s", n, runsOf[fmt.Sprint(n)])
		}
		fmt.Print("\n\n")
	}
}

// The targets for several replicas.
const (
	targetRateShare = 0.4                   // PostgreSQL×1 events/s ≥ 0.4 × SQLite×1's
	targetP99       = 30 * time.Millisecond // p99 under 30 ms
	// CPU per event "does not grow" with replicas: within 10%, the
	// noise of one run on this machine.
	targetGrowth = 1.10
)

func printReplicas(o options, target string, fs []figures, q replicaRatios, title string) {
	if title == "" {
		title = "one run"
	}
	fmt.Printf("%s on SQLite and PostgreSQL (%s, %d connections spread over the replicas)\n", targetNames[target], title, o.conns)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "storage\tevents/s\t÷ SQLite×1\tp50\tp99\terrors\tlost\tdelivered/s\tbacklog\tCPU/event in window\tCPU/event accepted+delivered\tcores\tload cores\t")
	for _, f := range fs {
		share, lost, delivered, backlog, life := "-", "-", "-", "-", "-"
		if f.share > 0 {
			share = fmt.Sprintf("%.2f", f.share)
		}
		if f.sink {
			lost, delivered, backlog = fmt.Sprint(f.lost), fmt.Sprintf("%.0f", f.delivered), fmt.Sprintf("%d→%d", f.backlog[0], f.backlog[1])
		}
		cores := make([]string, len(f.replicaCores))
		for i, c := range f.replicaCores {
			cores[i] = fmt.Sprintf("%.2f", c)
		}
		window, coreList := us(f.gateways), strings.Join(cores, "+")
		if f.lifeOK {
			life = us(f.life)
		}
		if f.v.backend == backendPostgres {
			window, coreList = "?", coreList+" + ?"
			if f.dbMeasured {
				window = fmt.Sprintf("%s + %s = %s", usN(f.gateways), usN(f.db), us(f.total))
				coreList = fmt.Sprintf("%s + %.2f", strings.Join(cores, "+"), f.dbCores)
				if f.lifeOK {
					life = fmt.Sprintf("%s + %s = %s", usN(f.life), usN(f.lifeDB), us(f.life+f.lifeDB))
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t\n", f.v, f.rate, share, ms(f.p50), ms(f.p99),
			f.errors, lost, delivered, backlog, window, life, coreList, f.loadCores)
	}
	tw.Flush()
	fmt.Println(`÷ SQLite×1: events/s ÷ SQLite×1's in the same run (medians: the median of those ratios)
CPU/event: user + system CPU (/proc) of the gateways, summed over the replicas, + the PostgreSQL server's
  (the postmaster and every process under it) = both, per event answered 2xx;
  in window: during the measured window (delivery may lag: see backlog);
  accepted+delivered: from the start of the load (warm-up included) until the sink had every event, per event accepted
cores: each gateway's cores in the window + the PostgreSQL server's; load cores: the load generator's and the sink's
the load spreads its connections evenly over the replicas; one sink receives every replica's deliveries`)
	replicaVerdicts(o, target, fs, q)
	fmt.Println()
}

// replicaVerdicts prints issue 14's targets, met or missed.
func replicaVerdicts(o options, target string, fs []figures, q replicaRatios) {
	if !hasPostgres(variantsOf(fs)) {
		return
	}
	check := func(ok bool, what, got string) {
		verdict := "met"
		if !ok {
			verdict = "MISSED"
		}
		fmt.Printf("  %-52s %-7s %s\n", what, verdict, got)
	}
	fmt.Printf("\nreplica targets (%s):\n", target)
	if q.hasRow {
		what := fmt.Sprintf("PostgreSQL×1 events/s ≥ %.1f × SQLite×1's", targetRateShare)
		if o.conns != 64 || o.rate > 0 {
			what += " (set for 64 conns, closed loop)"
		}
		check(q.rate >= targetRateShare, what, fmt.Sprintf("%.2f ×", q.rate))
	}
	control := ""
	for _, f := range fs {
		if f.v == (variant{backendSQLite, 1}) {
			control = fmt.Sprintf(" (SQLite×1: %s)", ms(f.p99))
		}
	}
	for _, f := range fs {
		if f.v.backend != backendPostgres {
			continue
		}
		check(f.p99 < targetP99, fmt.Sprintf("%s p99 < %v", f.v, targetP99), ms(f.p99)+control)
		check(f.errors == 0, fmt.Sprintf("%s errors = 0", f.v), fmt.Sprint(f.errors))
		if f.sink {
			check(f.lost == 0, fmt.Sprintf("%s lost = 0", f.v), fmt.Sprint(f.lost))
		}
	}
	what := "in window"
	if q.life {
		what = "accepted+delivered"
	}
	for _, n := range slices.Sorted(maps.Keys(q.growth)) {
		check(q.growth[n] <= targetGrowth, fmt.Sprintf("CPU/event ×%d ≤ %.2f × ×1's (does not grow)", n, targetGrowth),
			fmt.Sprintf("%.2f × (%s; gateways alone %.2f ×)", q.growth[n], what, q.gwGrowth[n]))
	}
}

// usN is d in µs, without the unit.
func usN(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

func variantsOf(fs []figures) []variant {
	var out []variant
	for _, f := range fs {
		out = append(out, f.v)
	}
	return out
}

// printStatements prints a postgres row's activity and top statements
// (-pgstats).
func printStatements(r *row) {
	if r.cl.variant.backend != backendPostgres || r.res.Accepted == 0 {
		return
	}
	a, n := r.cl.activity, float64(r.res.Accepted)
	fmt.Printf("%s: per event accepted during the load: %.2f transactions (%d rolled back), %.0f WAL bytes in %.1f records (%.2f full pages), %.3f WAL fsyncs\n",
		r.name(options{}), float64(a.commits)/n, a.rollbacks, a.walBytes/n, float64(a.walRecords)/n, float64(a.walFPI)/n, float64(a.walSyncs)/n)
	if len(r.cl.waits) > 0 {
		var busy float64
		for _, n := range r.cl.waits {
			busy += n
		}
		keys := slices.SortedFunc(maps.Keys(r.cl.waits), func(a, b string) int { return cmp.Compare(r.cl.waits[b], r.cl.waits[a]) })
		var parts []string
		for _, k := range keys[:min(len(keys), 8)] {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, r.cl.waits[k]))
		}
		fmt.Printf("  busy backends, sampled every 10 ms: %.2f on average: %s\n", busy, strings.Join(parts, ", "))
	}
	if len(r.cl.statements) == 0 {
		return
	}
	fmt.Printf("%s: pg_stat_statements during the load (warm-up included), by total time; all statements %.0f ms\n",
		r.name(options{}), r.cl.statementsMS)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "share\ttotal ms\tcalls\tµs/call\trows/call\tblocks dirtied/call\tWAL B/call\tstatement\t")
	for _, s := range r.cl.statements {
		calls := float64(max(s.calls, 1))
		q := strings.Join(strings.Fields(s.query), " ")
		if len(q) > 110 {
			q = q[:110] + "…"
		}
		fmt.Fprintf(tw, "%.0f%%\t%.0f\t%d\t%.0f\t%.1f\t%.2f\t%.0f\t%s\t\n", 100*s.totalMS/max(r.cl.statementsMS, 1e-9), s.totalMS, s.calls,
			1000*s.totalMS/calls, float64(s.rows)/calls, float64(s.blksDirty)/calls, s.walBytes/calls, q)
	}
	tw.Flush()
	fmt.Println()
}
