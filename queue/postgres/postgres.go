// Package postgres is the queue.Store of several replicas: events and
// their deliveries in PostgreSQL (15 or newer), shared by every
// switchyard serve that names the same database.
//
// Leases live in the deliveries table: a lease is a fencing token drawn
// from a sequence and an expiry (lease_until). Lease claims due rows
// with FOR UPDATE SKIP LOCKED, so replicas never wait for each other's
// claims; Complete and Renew act only WHERE token = the lease's token.
// A sink's leases are taken under a transaction-scoped advisory lock on
// the sink, so that its concurrency, its rate and, for ordered sinks,
// one delivery in flight per subject hold for the whole cluster.
//
// Times are the replicas' own clocks (Options.Now), written into the
// rows: lease expiries, due times and dedup windows are compared across
// replicas, so their clocks must agree (NTP) to well within a lease.
//
// Concurrent writes of one replica (accepting events, recording
// outcomes) share transactions, as the SQLite store's do: one commit,
// one round trip and one WAL flush for many requests. New work is
// announced with NOTIFY on channel Channel; a replica LISTENs and wakes
// its workers (Options.OnNotify), and polling finds what a lost
// notification missed.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/internal/health"
	"github.com/switchyard/switchyard/queue"
)

var _ queue.Store = (*Store)(nil)

// MinVersion is the oldest PostgreSQL the store runs on (server_version_num).
const (
	MinVersion     = 150000
	MinVersionName = "15"
)

// Defaults of Options.
const (
	DefaultPoolSize         = 16
	DefaultStatementTimeout = 5 * time.Second
	DefaultConnectTimeout   = 5 * time.Second
)

// Options configures a store.
type Options struct {
	// PoolSize bounds the connections to the database; DefaultPoolSize
	// when zero. One more is kept for LISTEN.
	PoolSize int
	// StatementTimeout bounds every statement (statement_timeout) and
	// every transaction left idle (idle_in_transaction_session_timeout,
	// so that a replica stopped mid-transaction holds no lock longer):
	// a database that is unreachable or too slow fails a write within
	// it. DefaultStatementTimeout when zero.
	StatementTimeout time.Duration
	// Logger logs faults and recoveries.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil. See the package documentation.
	Now func() time.Time
	// Replica names this process in lease records (leased_by).
	Replica string
	// OnNotify, when set, is called when another replica (or the CLI)
	// announces new work for a sink; "" names every sink (the listening
	// connection was lost and notifications may have been missed).
	OnNotify func(sink string)
	// Client opens the store for a command-line tool: the schema must
	// exist already (it is neither created nor migrated), and nothing
	// runs in the background (no LISTEN, no recount of waiting
	// deliveries).
	Client bool
}

// Store is the PostgreSQL queue. Its methods are safe for concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	cfg      *pgxpool.Config
	log      *slog.Logger
	now      func() time.Time
	replica  string
	origin   string // this store's id in notifications
	timeout  time.Duration
	describe string
	onNotify func(string)
	// waking are the sinks whose wake (wakeSoon) is due; under wakeMu.
	wakeMu sync.Mutex
	waking map[string]bool
	client bool

	waiting counter
	// commits and committed count the group-commit transactions and the
	// writes in them.
	commits, committed atomic.Int64

	health *health.Writes

	ops chan *op
	// ungrouped runs each write in a transaction of its own, on the
	// caller's goroutine: the benchmark's baseline.
	ungrouped bool
	// writersDone is closed once the writers have exited.
	writersDone chan struct{}
	notes       chan string // sinks to announce
	closing     chan struct{}
	closed      atomic.Bool
	once        sync.Once
	writers     sync.WaitGroup
	bg          sync.WaitGroup
	listenMu    sync.Mutex
	listen      *pgx.Conn
}

// Open connects to the database dsn names, checks its version, and
// creates or migrates the schema (under an advisory lock, so that
// replicas starting together do not race).
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if err := CheckDSN(dsn); err != nil {
		return nil, fmt.Errorf("storage.dsn: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("storage.dsn: %w", err)
	}
	if opts.PoolSize <= 0 {
		opts.PoolSize = DefaultPoolSize
	}
	if opts.StatementTimeout <= 0 {
		opts.StatementTimeout = DefaultStatementTimeout
	}
	cfg.MaxConns = int32(opts.PoolSize)
	cfg.MinConns = 0
	cfg.HealthCheckPeriod = 5 * time.Second
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > DefaultConnectTimeout {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	ms := strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10)
	rp := cfg.ConnConfig.RuntimeParams
	rp["statement_timeout"] = ms
	rp["idle_in_transaction_session_timeout"] = ms
	if rp["application_name"] == "" {
		rp["application_name"] = "switchyard"
	}
	s := &Store{
		cfg:         cfg,
		log:         opts.Logger,
		now:         opts.Now,
		replica:     opts.Replica,
		timeout:     opts.StatementTimeout,
		onNotify:    opts.OnNotify,
		client:      opts.Client,
		ops:         make(chan *op, 1024),
		writersDone: make(chan struct{}),
		notes:       make(chan string, 256),
		closing:     make(chan struct{}),
		describe:    describe(cfg),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.health = health.New(s.log.With("db", s.describe), "queue database cannot write", "queue database writes again")
	if s.now == nil {
		s.now = time.Now
	}
	var b [8]byte
	rand.Read(b[:])
	s.origin = hex.EncodeToString(b[:])
	s.waiting.init()

	cctx, cancel := context.WithTimeout(ctx, cfg.ConnConfig.ConnectTimeout+opts.StatementTimeout)
	defer cancel()
	if s.pool, err = pgxpool.NewWithConfig(cctx, cfg); err != nil {
		return nil, fmt.Errorf("postgres %s: %w", s.describe, err)
	}
	if err := s.checkVersion(cctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	mctx, mcancel := context.WithTimeout(ctx, migrateTimeout)
	err = s.migrate(mctx, opts.Client)
	mcancel()
	if err != nil {
		s.pool.Close()
		return nil, err
	}
	if opts.Client {
		// A command's few writes need no batching, and it reads no
		// notifications and no counts.
		s.writers.Go(s.writer)
		return s, nil
	}
	rctx, rcancel := context.WithTimeout(ctx, opts.StatementTimeout+time.Second)
	defer rcancel()
	if err := s.recount(rctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	for range writers(opts.PoolSize) {
		s.writers.Go(s.writer)
	}
	s.bg.Go(s.notifier)
	s.bg.Go(s.listener)
	s.bg.Go(s.background)
	return s, nil
}

// writers is how many transactions of grouped writes may run at once:
// while one waits for its commit, the next batch forms and runs.
func writers(pool int) int { return min(max(pool/4, 1), 8) }

// CheckDSN parses a connection string as Open would, without
// connecting, and says what is wrong with it, never repeating it (it may
// hold a password).
func CheckDSN(dsn string) error {
	_, err := pgxpool.ParseConfig(dsn)
	if err == nil {
		return nil
	}
	// pgx quotes the string (its password masked) in backticks: drop it.
	msg := err.Error()
	if i := strings.Index(msg, "`"); i >= 0 {
		if j := strings.LastIndex(msg, "`"); j > i {
			msg = strings.TrimSpace(strings.TrimPrefix(msg[:i]+msg[j+1:], "cannot parse :"))
			msg = strings.TrimPrefix(msg, ": ")
		}
	}
	return errors.New("the connection string is not valid: " + msg)
}

// checkVersion fails with a clear message on a server older than
// MinVersion; connecting is its first use of the pool, so an unreachable
// database fails here.
func (s *Store) checkVersion(ctx context.Context) error {
	var num int
	var name string
	err := s.pool.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, current_setting('server_version')`).Scan(&num, &name)
	if err != nil {
		return fmt.Errorf("postgres %s: cannot reach the database: %w", s.describe, err)
	}
	if num < MinVersion {
		return fmt.Errorf("postgres %s: server version %s is too old: switchyard needs PostgreSQL %s or newer", s.describe, name, MinVersionName)
	}
	// A 2xx rests on the commit: with synchronous_commit off, COMMIT
	// returns before its WAL is on disk, and a crash of the database
	// can lose an answered event.
	var sync string
	if err := s.pool.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&sync); err == nil && sync == "off" {
		s.log.Warn("synchronous_commit is off on the queue database: an event answered 2xx can be lost if the database crashes; set it to on (docs/replicas.md)",
			"db", s.describe)
	}
	return nil
}

// describe names the database without its password.
func describe(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	return fmt.Sprintf("%s:%d/%s user=%s", c.Host, c.Port, c.Database, c.User)
}

// Describe implements queue.Store.
func (s *Store) Describe() string { return "postgres " + s.describe }

// Close waits for queued writes and closes the connections. It is safe
// to call more than once.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		close(s.closing)
		s.writers.Wait()
		close(s.writersDone)
		s.listenMu.Lock()
		if s.listen != nil {
			// Interrupts WaitForNotification.
			s.listen.PgConn().Conn().Close()
		}
		s.listenMu.Unlock()
		s.bg.Wait()
		s.pool.Close()
	})
	return nil
}

func (s *Store) isClosed() bool { return s.closed.Load() }

// Waiting implements queue.Store: exact for this replica's writes,
// recounted from the database every recountEvery.
func (s *Store) Waiting(sink string) int64 { return s.waiting.get(sink) }

// Stats are the group-commit counts: transactions committed, and the
// writes in them.
func (s *Store) Stats() (commits, writes int64) { return s.commits.Load(), s.committed.Load() }

// Health implements queue.Store.
func (s *Store) Health() error { return s.health.Err() }

// noteFault records the outcome of a write for Health, warning once per
// change of error rather than once per write. Errors of the write's own
// (bad data) leave the health alone.
func (s *Store) noteFault(err error) {
	if err != nil && !storageFault(err) {
		return
	}
	s.health.Note(err)
}

// Intervals of the background work.
const (
	// recountEvery is how often Waiting is recounted from the database,
	// which other replicas write to as well.
	recountEvery = 5 * time.Second
	// probeEvery is how often a store whose writes fail tries one of its
	// own, so that it learns of the recovery when nothing else writes.
	probeEvery = time.Second
)

// background recounts waiting deliveries and, while writes fail,
// probes the database.
func (s *Store) background() {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	last := time.Now()
	var warned string
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		if s.health.Err() != nil {
			s.probe()
		}
		if time.Since(last) < recountEvery {
			continue
		}
		last = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		err := s.recount(ctx)
		cancel()
		if err != nil && err.Error() != warned {
			s.log.Warn("recount waiting deliveries", "err", err)
		}
		warned = ""
		if err != nil {
			warned = err.Error()
		}
	}
}

// probe takes the write locks of the queue's tables and writes a row:
// what every write needs. Its outcome updates Health.
func (s *Store) probe() {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE queue_events, queue_deliveries, queue_attempts IN ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO queue_probe (origin, at) VALUES ($1, now())
			ON CONFLICT (origin) DO UPDATE SET at = excluded.at`, s.origin)
		return err
	})
	if err != nil {
		err = fmt.Errorf("probe: %w", err)
	}
	s.noteFault(err)
	if err == nil {
		// The probe's row is of no use once it has answered.
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		s.pool.Exec(ctx, `DELETE FROM queue_probe WHERE origin = $1`, s.origin)
		cancel()
	}
}

// bound gives ctx a deadline when it has none: the statement timeout,
// and a second for the round trip. A server that stopped answering (its
// host paused, the network cut) enforces no statement_timeout, and a
// worker or a shutdown must not wait for it for ever.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout+time.Second)
}

// errClosed is queue.ErrClosed for a store whose Close has begun.
func (s *Store) errClosed() error {
	if s.isClosed() {
		return queue.ErrClosed
	}
	return nil
}

// isNoRows reports pgx's "no rows".
func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
