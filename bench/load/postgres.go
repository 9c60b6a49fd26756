package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/pgtest"
)

// pgServer is the PostgreSQL server of the postgres rows: a throwaway
// cluster this command starts (fsync and synchronous_commit on, the
// gateway's promise intact), or one given with -dsn. Each row gets a
// database of its own, created before and dropped after it, so that
// every row starts from an empty queue.
type pgServer struct {
	cluster *pgtest.Cluster // nil with -dsn
	admin   string          // connection string of a database to create and drop the rows' from
	// pid is the postmaster's process id, 0 when it is not on this
	// machine: its CPU is then not measured.
	pid   int
	stats bool // pg_stat_statements is loaded
}

// startPostgres starts a throwaway cluster, or, with dsn, checks that
// the server answers and finds its postmaster when it runs here.
func startPostgres(ctx context.Context, dsn string, stats bool) (*pgServer, error) {
	p := &pgServer{admin: dsn}
	if dsn == "" {
		settings := []string{"synchronous_commit=on"}
		if stats {
			settings = append(settings, "shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all")
		}
		c, err := pgtest.New(settings...)
		if err != nil {
			return nil, fmt.Errorf("start a throwaway PostgreSQL (or give -dsn): %w", err)
		}
		p.cluster, p.admin, p.pid = c, c.ConnString("postgres"), c.PID()
	}
	conn, err := p.connect(ctx)
	if err != nil {
		p.close(false)
		return nil, err
	}
	defer conn.Close(ctx)
	var backend int
	var fsync, syncCommit, libs string
	err = conn.QueryRow(ctx, `SELECT pg_backend_pid(), current_setting('fsync'), current_setting('synchronous_commit'),
		current_setting('shared_preload_libraries')`).Scan(&backend, &fsync, &syncCommit, &libs)
	if err != nil {
		p.close(false)
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if fsync != "on" || syncCommit != "on" {
		fmt.Fprintf(os.Stderr, "load: warning: the PostgreSQL server runs with fsync=%s, synchronous_commit=%s: not the gateway's promise\n", fsync, syncCommit)
	}
	p.stats = strings.Contains(libs, "pg_stat_statements")
	if stats && !p.stats {
		fmt.Fprintln(os.Stderr, "load: warning: -pgstats: the server does not load pg_stat_statements (shared_preload_libraries); no statement statistics")
	}
	if p.pid == 0 {
		p.pid = postmasterOf("/proc", backend)
	}
	return p, nil
}

// postmasterOf returns the parent of PostgreSQL backend pid when it
// runs on this machine, else 0.
func postmasterOf(proc string, backend int) int {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", proc, backend))
	if err != nil || !bytes.Contains(b, []byte("(postgres")) {
		return 0 // another machine, or another pid namespace
	}
	st, err := parseStat(b)
	if err != nil {
		return 0
	}
	return st.ppid
}

func (p *pgServer) connect(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.admin)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	return conn, nil
}

// createDB creates database name, afresh, and returns its connection
// string. It checkpoints first, so that one row's dirty pages are not
// written during the next.
func (p *pgServer) createDB(ctx context.Context, name string) (string, error) {
	conn, err := p.connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	id := pgx.Identifier{name}.Sanitize()
	for _, q := range []string{"DROP DATABASE IF EXISTS " + id, "CREATE DATABASE " + id, "CHECKPOINT"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return "", fmt.Errorf("postgres: %s: %w", q, err)
		}
	}
	dsn, err := withDatabase(p.admin, name)
	if err != nil {
		return "", err
	}
	if p.stats {
		db, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return "", err
		}
		defer db.Close(ctx)
		if _, err := db.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
			return "", fmt.Errorf("postgres: create extension pg_stat_statements: %w", err)
		}
	}
	return dsn, nil
}

// dropDB drops database name, closing the connections left to it.
func (p *pgServer) dropDB(ctx context.Context, name string) error {
	conn, err := p.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// withDatabase returns dsn naming database db instead of its own.
func withDatabase(dsn, db string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("-dsn: %w", err)
		}
		u.Path = "/" + db
		return u.String(), nil
	}
	// key=value pairs: the last dbname wins.
	return strings.TrimSpace(dsn) + " dbname=" + db, nil
}

// cpu is the CPU time the server's processes have used so far; false
// when the server does not run on this machine.
func (p *pgServer) cpu() (time.Duration, bool, error) {
	if p.pid == 0 {
		return 0, false, nil
	}
	d, err := treeCPU("/proc", p.pid)
	return d, true, err
}

// resetStats clears pg_stat_statements' counters, and returns the
// server's activity counters so far.
func (p *pgServer) resetStats(ctx context.Context, dsn string) (dbCounters, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return dbCounters{}, err
	}
	defer conn.Close(ctx)
	if p.stats {
		if _, err := conn.Exec(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
			return dbCounters{}, err
		}
	}
	return readCounters(ctx, conn)
}

// dbCounters are the server's activity counters: the row's database's
// transactions, and the server's WAL (one row runs at a time).
type dbCounters struct {
	commits, rollbacks           int64
	walRecords, walFPI, walSyncs int64
	walBytes                     float64
}

func readCounters(ctx context.Context, conn *pgx.Conn) (dbCounters, error) {
	var c dbCounters
	// The statistics are a snapshot per transaction: clear it to read
	// what the server counts now.
	if _, err := conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return c, err
	}
	err := conn.QueryRow(ctx, `SELECT d.xact_commit, d.xact_rollback, w.wal_records, w.wal_fpi, w.wal_bytes::float8, w.wal_sync
		FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()`).
		Scan(&c.commits, &c.rollbacks, &c.walRecords, &c.walFPI, &c.walBytes, &c.walSyncs)
	if err != nil {
		return c, fmt.Errorf("postgres statistics: %w", err)
	}
	return c, nil
}

func (c dbCounters) sub(d dbCounters) dbCounters {
	return dbCounters{c.commits - d.commits, c.rollbacks - d.rollbacks, c.walRecords - d.walRecords,
		c.walFPI - d.walFPI, c.walSyncs - d.walSyncs, c.walBytes - d.walBytes}
}

// counters reads the server's activity counters.
func (p *pgServer) counters(ctx context.Context, dsn string) (dbCounters, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return dbCounters{}, err
	}
	defer conn.Close(ctx)
	return readCounters(ctx, conn)
}

// statement is one line of pg_stat_statements.
type statement struct {
	query     string
	calls     int64
	totalMS   float64
	rows      int64
	blksDirty int64
	walBytes  float64
}

// topStatements returns the statements run on database db that took the
// most time since the last reset, at most n.
func (p *pgServer) topStatements(ctx context.Context, dsn string, n int) ([]statement, float64, error) {
	if !p.stats {
		return nil, 0, nil
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close(ctx)
	var total float64
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := conn.Query(ctx, `SELECT query, calls, total_exec_time, rows, shared_blks_dirtied, wal_bytes::float8
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY total_exec_time DESC LIMIT $1`, n)
	if err != nil {
		return nil, 0, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (statement, error) {
		var s statement
		err := r.Scan(&s.query, &s.calls, &s.totalMS, &s.rows, &s.blksDirty, &s.walBytes)
		return s, err
	})
	return out, total, err
}

// close stops and removes a throwaway cluster (keeps its files with
// keep); a server given with -dsn is left alone.
func (p *pgServer) close(keep bool) error {
	if p == nil || p.cluster == nil {
		return nil
	}
	if keep {
		p.cluster.Stop()
		fmt.Println("keeping the PostgreSQL cluster's files in", p.cluster.Dir())
		return nil
	}
	p.cluster.Remove()
	return nil
}

// waitSampler samples what the row's database's busy backends wait for
// (pg_stat_activity), every 10 ms, during the load (-pgstats): where
// PostgreSQL's time goes besides its CPU.
type waitSampler struct {
	stop    chan struct{}
	done    chan struct{}
	counts  map[string]int // "Lock:advisory", "IO:WALSync", "CPU" (no wait event) …
	samples int
	err     error
}

func (p *pgServer) sampleWaits(dsn string) *waitSampler {
	w := &waitSampler{stop: make(chan struct{}), done: make(chan struct{}), counts: map[string]int{}}
	go func() {
		defer close(w.done)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			w.err = err
			return
		}
		defer conn.Close(ctx)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			rows, err := conn.Query(ctx, `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
				WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()`)
			if err != nil {
				w.err = err
				return
			}
			waits, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				w.err = err
				return
			}
			w.samples++
			for _, e := range waits {
				w.counts[e]++
			}
		}
	}()
	return w
}

// end stops sampling and returns, per wait, the average number of busy
// backends in it.
func (w *waitSampler) end() (map[string]float64, error) {
	close(w.stop)
	<-w.done
	out := map[string]float64{}
	for k, n := range w.counts {
		out[k] = float64(n) / float64(max(w.samples, 1))
	}
	return out, w.err
}
