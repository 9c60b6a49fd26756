// Package queue is the durable delivery queue: events and their
// deliveries in an embedded SQLite database (WAL), written by one writer
// that commits concurrent requests together.
package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/groupcommit"
	"github.com/switchyard/switchyard/internal/sqlitedb"
)

// ErrClosed is returned by operations on a closed store.
var ErrClosed = errors.New("queue closed")

// Delivery states.
const (
	StatePending   = "pending"   // not yet attempted
	StateFailed    = "failed"    // attempted, failed, will retry
	StateDelivered = "delivered" // done
	StateDead      = "dead"      // given up: kept for inspection and replay
)

// Options configures a store.
type Options struct {
	// Synchronous is SQLite's synchronous level: "full" (default) makes
	// each commit durable across power loss before it returns; "normal"
	// only across process crashes.
	Synchronous string
	// BusyTimeout is how long a write waits for another process (such as
	// the replay command) to release the database.
	BusyTimeout time.Duration
	Logger      *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Store is the queue. Its methods are safe for concurrent use.
type Store struct {
	db   *sql.DB // one connection, used only by the writer goroutine
	rdb  *sql.DB // readers
	cdb  *sql.DB // the checkpointer's connection
	path string
	log  *slog.Logger
	now  func() time.Time

	// pending counts deliveries waiting (pending or failed). Writes
	// keep it current; the writer recounts now and then, since other
	// processes (the replay command) change the file too.
	pending atomic.Int64

	// commits and committed count transactions and the writes in them,
	// for the group-commit benchmark.
	commits, committed atomic.Int64
	// fsyncs counts the syncer's fsyncs.
	fsyncs atomic.Int64

	// stmts are the hot writes, prepared once on the writer's
	// connection (parsing SQL costs as much as running it).
	stmts map[string]*sql.Stmt

	leases leases
	events *eventCache

	// syncs carries committed batches to the syncer, which answers them
	// once the WAL is on disk; nil at synchronous=normal.
	syncs chan []*op
	wal   *os.File // the WAL, for the syncer's fsync
	// beforeSync, when set, runs before each fsync (tests).
	beforeSync func()

	ops       chan *op
	closing   chan struct{} // closed by Close
	done      chan struct{} // closed when the writer has exited
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// FileName is the queue database's name inside the storage directory.
const FileName = "queue.db"

// Open opens (creating if needed) the queue in dir and migrates it.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create storage dir: %w", err)
	}
	sync := strings.ToUpper(opts.Synchronous)
	switch sync {
	case "":
		sync = "FULL"
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("synchronous %q: want full or normal", opts.Synchronous)
	}
	path := filepath.Join(dir, FileName)
	// At FULL, SQLite would fsync the WAL inside every commit, and the
	// writer could not run the next batch until the disk answered. The
	// store instead commits at NORMAL (written to the WAL, not yet
	// synced) and a second goroutine fsyncs the WAL and only then
	// answers the batches committed before the fsync: each answer still
	// waits for the disk, but the writer runs the next batch meanwhile.
	// That needs a second CPU: on one, the writer would only take CPU
	// from the handlers whose requests make its batches, and commit
	// smaller ones (BenchmarkAccept -cpu 1: 25% slower), so there SQLite
	// fsyncs inside the commit.
	syncWAL := sync == "FULL" && runtime.GOMAXPROCS(0) > 1
	o := sqlitedb.Options{Synchronous: sync, BusyTimeout: opts.BusyTimeout, ForeignKeys: true}
	if syncWAL {
		o.Synchronous = "NORMAL"
	}
	db, err := sqlitedb.Open(ctx, path, o)
	if err != nil {
		return nil, fmt.Errorf("open queue db %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer; group commit batches through it
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := sqlitedb.Migrate(ctx, db, migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate queue db %s: %w", path, err)
	}
	o.QueryOnly = true
	rdb, err := sqlitedb.Open(ctx, path, o)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open queue db %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(4)

	s := &Store{
		db:      db,
		rdb:     rdb,
		path:    path,
		log:     opts.Logger,
		now:     opts.Now,
		ops:     make(chan *op, 1024),
		leases:  leases{held: map[string]map[string]lease{}},
		events:  newEventCache(eventCacheBytes),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.recount(ctx); err != nil {
		db.Close()
		rdb.Close()
		return nil, err
	}
	// Checkpoints copy the WAL into the database file. SQLite runs them
	// inside a commit once the WAL passes 1000 pages, which stalls every
	// request waiting on that commit; a separate connection does them
	// instead, beside the writer.
	if _, err := db.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
		db.Close()
		rdb.Close()
		return nil, fmt.Errorf("queue db %s: %w", path, err)
	}
	o.QueryOnly = false
	if s.cdb, err = sqlitedb.Open(ctx, path, o); err != nil {
		db.Close()
		rdb.Close()
		return nil, fmt.Errorf("open queue db %s: %w", path, err)
	}
	s.cdb.SetMaxOpenConns(1)
	if err := s.prepare(ctx); err != nil {
		db.Close()
		rdb.Close()
		return nil, fmt.Errorf("prepare queue statements: %w", err)
	}
	if syncWAL {
		s.syncs = make(chan []*op, maxBatch)
		synced := make(chan struct{})
		s.wg.Go(func() {
			defer close(synced)
			s.syncer()
		})
		s.wg.Go(func() {
			defer close(s.done)
			s.writer()
			close(s.syncs)
			<-synced
		})
	} else {
		s.wg.Go(func() {
			defer close(s.done)
			s.writer()
		})
	}
	s.wg.Go(s.checkpointer)
	return s, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close waits for queued writes, then closes the database. It is safe to
// call more than once.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closing)
		s.wg.Wait()
		for _, st := range s.stmts {
			st.Close()
		}
		err = errors.Join(s.db.Close(), s.rdb.Close(), s.cdb.Close())
		if s.wal != nil {
			s.wal.Close()
		}
	})
	return err
}

// Pending is the number of deliveries waiting: pending, or failed and
// due again later. Backpressure compares it with storage.max_pending.
func (s *Store) Pending() int64 { return s.pending.Load() }

func (s *Store) recount(ctx context.Context) error {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM deliveries WHERE state IN ('pending', 'failed')`).Scan(&n); err != nil {
		return fmt.Errorf("count pending deliveries: %w", err)
	}
	s.pending.Store(n)
	return nil
}

// hot lists the statements worth preparing: those run for every event
// or every attempt.
var hot = []string{sqlInsertEvent, sqlInsertDelivery, sqlFindDuplicate, sqlExpireKey,
	sqlDelivered, sqlFailed, sqlDead}

// eventCacheBytes bounds the cache of recently accepted events that
// spares leases a read and a decode: a few seconds of peak traffic.
const eventCacheBytes = 8 << 20

// prepare prepares the hot statements. It runs before the writer
// starts: the writer's one connection is free.
func (s *Store) prepare(ctx context.Context) error {
	s.stmts = map[string]*sql.Stmt{}
	for _, q := range hot {
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			return err
		}
		s.stmts[q] = st
	}
	return nil
}

// exec runs q in tx, prepared if it is hot.
func (s *Store) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if st, ok := s.stmts[q]; ok {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, q, args...)
}

func (s *Store) query(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	if st, ok := s.stmts[q]; ok {
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, q, args...)
}

func (s *Store) queryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if st, ok := s.stmts[q]; ok {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, q, args...)
}

// checkpointEvery is how often the checkpointer copies the WAL into the
// database file.
const checkpointEvery = 250 * time.Millisecond

// checkpointer runs passive checkpoints, which never wait for (nor
// block) the writer or readers, until the store closes. SQLite runs a
// last one when the store closes.
func (s *Store) checkpointer() {
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var last string // warn when the error changes, not four times a second
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		_, err := s.cdb.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		switch {
		case err != nil && err.Error() != last:
			s.log.Warn("checkpoint queue db", "err", err)
			last = err.Error()
		case err == nil && last != "":
			s.log.Info("checkpoint queue db: working again")
			last = ""
		}
	}
}

// recountEvery is how often the writer recounts pending deliveries.
const recountEvery = 10 * time.Second

// op is one write: fn runs inside a shared transaction and returns by
// how much it changed the number of waiting deliveries.
type op struct {
	fn   func(tx *sql.Tx) (pendingDelta int64, err error)
	done chan error
}

// maxBatch bounds how many writes share one transaction.
const maxBatch = 256

// write runs fn in a transaction shared with concurrent writes (group
// commit: one fsync for many requests) and returns once it is committed.
// fn's own error rolls back only fn's changes.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) (int64, error)) error {
	o := &op{fn: fn, done: make(chan error, 1)}
	select {
	case <-s.closing:
		return ErrClosed
	default:
	}
	select {
	case s.ops <- o:
	case <-s.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-s.done:
		// Close raced the send; the writer may have drained o already.
		select {
		case err := <-o.done:
			return err
		default:
			return ErrClosed
		}
	case <-ctx.Done():
		// The write may still commit; callers treat this as unknown.
		return ctx.Err()
	}
}

func (s *Store) writer() {
	groupcommit.Loop[*op]{
		Ops:    s.ops,
		Stop:   s.closing,
		Max:    maxBatch,
		Commit: s.commit,
		Every:  recountEvery,
		// Between batches every committed delta is applied, so the
		// count is exact for this process's writes.
		Tick: func() {
			if err := s.recount(context.Background()); err != nil {
				s.log.Warn("recount pending deliveries", "err", err)
			}
		},
	}.Run()
}

// commit runs batch in one transaction. Writes rarely fail, so they
// run without savepoints (two statements less per write); when one does
// fail, the transaction is rolled back and each write runs again alone,
// so that one failure fails only its own write.
func (s *Store) commit(batch []*op) {
	if len(batch) > 1 {
		if s.tryBatch(batch) {
			return
		}
	}
	for _, o := range batch {
		s.tryBatch([]*op{o})
	}
}

// tryBatch commits batch and reports each write's outcome, or, for a
// batch of several where a write failed, rolls back and reports
// nothing, returning false.
func (s *Store) tryBatch(batch []*op) bool {
	ctx := context.Background()
	fail := func(err error) bool {
		for _, o := range batch {
			o.done <- err
		}
		return true
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(fmt.Errorf("begin: %w", err))
	}
	deltas := make([]int64, len(batch))
	for i, o := range batch {
		var err error
		if deltas[i], err = o.fn(tx); err != nil {
			tx.Rollback()
			if len(batch) > 1 {
				return false
			}
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(fmt.Errorf("commit: %w", err))
	}
	for _, d := range deltas {
		s.pending.Add(d)
	}
	s.commits.Add(1)
	s.committed.Add(int64(len(batch)))
	if s.syncs != nil {
		s.syncs <- slices.Clone(batch) // the writer reuses batch
		return true
	}
	for _, o := range batch {
		o.done <- nil
	}
	return true
}

// syncer answers committed batches once an fsync of the WAL that began
// after their commit has returned. Batches that commit while it syncs
// share the next fsync.
func (s *Store) syncer() {
	var group []*op
	for batch := range s.syncs {
		group = append(group[:0], batch...)
	more:
		for {
			select {
			case b, ok := <-s.syncs:
				if !ok {
					break more
				}
				group = append(group, b...)
			default:
				break more
			}
		}
		err := s.syncWAL()
		if err != nil {
			// Committed but maybe not durable: the sender gets an error
			// and retries, and its retry is answered as a duplicate.
			s.log.Error("sync queue WAL", "err", err)
		}
		for _, o := range group {
			o.done <- err
		}
		s.fsyncs.Add(1)
	}
}

func (s *Store) syncWAL() error {
	if s.beforeSync != nil {
		s.beforeSync()
	}
	if s.wal == nil {
		// The WAL exists once anything is committed, and lives as long
		// as the store's connections.
		f, err := os.Open(s.path + "-wal")
		if err != nil {
			return fmt.Errorf("open WAL: %w", err)
		}
		s.wal = f
	}
	if err := s.wal.Sync(); err != nil {
		return fmt.Errorf("fsync WAL: %w", err)
	}
	return nil
}
