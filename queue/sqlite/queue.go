// Package sqlite is the embedded queue.Store: events and their
// deliveries in a SQLite database (WAL) in the storage directory,
// written by one writer that commits concurrent requests together.
package sqlite

import (
	"cmp"
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

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/switchyard/switchyard/internal/groupcommit"
	"github.com/switchyard/switchyard/internal/health"
	"github.com/switchyard/switchyard/internal/sqlitedb"
	"github.com/switchyard/switchyard/queue"
)

var _ queue.Store = (*Store)(nil)

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
	// SyncHook, when set, runs before each fsync of the WAL, and an
	// error it returns stands in for the fsync's: the fault tests' way
	// to make an fsync fail.
	SyncHook func() error

	// idleTruncate, lazyLinger and lingerAfter replace the constants
	// (tests).
	idleTruncate, lazyLinger, lingerAfter time.Duration
}

// Store is the SQLite queue. Its methods are safe for concurrent use.
type Store struct {
	db   *sql.DB // one connection, used only by the writer goroutine
	rdb  *sql.DB // readers
	cdb  *sql.DB // the checkpointer's connection
	path string
	log  *slog.Logger
	now  func() time.Time

	// backlog counts deliveries waiting (pending or failed), per sink.
	// Writes keep it current; the writer recounts now and then, since
	// other processes (the replay command) change the file too.
	bmu     sync.Mutex
	backlog map[string]int64

	// commits and committed count transactions and the writes in them,
	// for the group-commit benchmark.
	commits, committed atomic.Int64
	// fsyncs counts the syncer's fsyncs; lingers the lazy batches held
	// back (tests).
	fsyncs, lingers atomic.Int64
	// syncing counts the batches handed to the syncer and not answered
	// yet: while there are any, linger does not wait (see there).
	syncing atomic.Int64
	// lastDurable is when the writer last committed a write that is not
	// lazy (Unix nanoseconds): lazy writes wait for company only while
	// such writes come.
	lastDurable atomic.Int64
	// lastWrite is when the writer last committed (Unix nanoseconds),
	// for the checkpointer's idle truncation after idleAfter.
	lastWrite atomic.Int64
	idleAfter time.Duration
	// lingerFor is lazyLinger; lingerWithin lingerAfter.
	lingerFor, lingerWithin time.Duration

	// health is the error of the last failed write, nil once one
	// succeeds; failed latches a fault the store cannot vouch for.
	health *health.Writes
	failed atomic.Pointer[error]

	// stmts are the hot writes, prepared once on the writer's
	// connection (parsing SQL costs as much as running it); stmtDue and
	// stmtNext the leases' reads, unordered and ordered.
	stmts             map[string]*sql.Stmt
	stmtDue, stmtNext map[bool]*sql.Stmt

	leases leases
	events *eventCache

	// syncs carries committed batches to the syncer, which answers them
	// once the WAL is on disk; nil at synchronous=normal.
	syncs chan []*op
	wal   *os.File // the WAL, for the syncer's fsync
	// syncHook is Options.SyncHook.
	syncHook func() error
	// sync is whether answers wait for the WAL's fsync (synchronous=full).
	sync bool

	ops       chan *op
	closing   chan struct{} // closed by Close
	done      chan struct{} // closed when the writer has exited
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// FileName is the queue database's name inside the storage directory.
const FileName = "queue.db"

// walSizeLimit bounds the WAL file kept after a checkpoint resets it:
// a burst grows it, and SQLite truncates it back to this.
const walSizeLimit = 64 << 20

// walAutoCheckpoint is the WAL's length, in pages, past which the writer
// checkpoints it: 16 MiB of 4 KiB pages.
const walAutoCheckpoint = 4096

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
	// fsyncs inside the commit. A sync hook (tests) needs the syncer.
	//
	// Either way SQLite commits at NORMAL and the store fsyncs the WAL
	// itself, so that writes which need not be on disk when answered
	// (outcomes of attempts) skip the fsync: the next one takes them
	// along.
	full := sync == "FULL"
	syncWAL := full && (runtime.GOMAXPROCS(0) > 1 || opts.SyncHook != nil)
	o := sqlitedb.Options{Synchronous: "NORMAL", BusyTimeout: opts.BusyTimeout, ForeignKeys: true}
	db, err := sqlitedb.Open(ctx, path, o)
	if err != nil {
		return nil, fmt.Errorf("open queue db %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer; group commit batches through it
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	closeAll := func(dbs ...*sql.DB) {
		for _, d := range dbs {
			if d != nil {
				d.Close()
			}
		}
	}
	if err := sqlitedb.Migrate(ctx, db, migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate queue db %s: %w", path, err)
	}
	// Checkpoints copy the WAL into the database file. SQLite runs them
	// inside a commit once the WAL passes 1000 pages, which stalls every
	// request waiting on that commit; a separate connection does them
	// instead, beside the writer. But under a steady load that
	// checkpoint never completes (the writer keeps adding frames), and
	// the WAL only restarts from its beginning after one that does: it
	// would grow without end (16 KB per event). So the writer still
	// checkpoints itself once the WAL passes walAutoCheckpoint pages; by
	// then the checkpointer has copied nearly all of it, and the next
	// commit starts the WAL over. After a checkpoint, the WAL file is cut
	// back to walSizeLimit.
	if _, err := db.ExecContext(ctx, fmt.Sprintf(`PRAGMA wal_autocheckpoint = %d; PRAGMA journal_size_limit = %d`, walAutoCheckpoint, walSizeLimit)); err != nil {
		db.Close()
		return nil, fmt.Errorf("queue db %s: %w", path, err)
	}
	// The WAL now exists: make its directory entry durable, once, so
	// that a power loss cannot take the file with the commits in it.
	if err := syncDir(dir); err != nil {
		db.Close()
		return nil, fmt.Errorf("queue db %s: %w", path, err)
	}
	o.QueryOnly = true
	rdb, err := sqlitedb.Open(ctx, path, o)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open queue db %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(4)
	rdb.SetMaxIdleConns(4)

	s := &Store{
		db:      db,
		rdb:     rdb,
		path:    path,
		log:     opts.Logger,
		now:     opts.Now,
		backlog: map[string]int64{},
		ops:     make(chan *op, 1024),
		leases: leases{held: map[string]map[string]*lease{}, nextStart: map[string]time.Time{},
			fresh: map[string]*freshList{}, read: map[string]time.Time{}},
		events:       newEventCache(eventCacheBytes),
		syncHook:     opts.SyncHook,
		sync:         full,
		idleAfter:    cmp.Or(opts.idleTruncate, idleTruncate),
		lingerFor:    cmp.Or(opts.lazyLinger, lazyLinger),
		lingerWithin: cmp.Or(opts.lingerAfter, lingerAfter),
		closing:      make(chan struct{}),
		done:         make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.health = health.New(s.log.With("path", s.path), "queue storage cannot write", "queue storage writes again")
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.recount(ctx); err != nil {
		closeAll(db, rdb)
		return nil, err
	}
	o.QueryOnly = false
	if s.cdb, err = sqlitedb.Open(ctx, path, o); err != nil {
		closeAll(db, rdb)
		return nil, fmt.Errorf("open queue db %s: %w", path, err)
	}
	s.cdb.SetMaxOpenConns(1)
	s.cdb.SetMaxIdleConns(1)
	s.cdb.SetConnMaxLifetime(0)
	if _, err := s.cdb.ExecContext(ctx, fmt.Sprintf(`PRAGMA journal_size_limit = %d`, walSizeLimit)); err != nil {
		closeAll(db, rdb, s.cdb)
		return nil, fmt.Errorf("queue db %s: %w", path, err)
	}
	if err := s.prepare(ctx); err != nil {
		closeAll(db, rdb, s.cdb)
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

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open storage dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync storage dir: %w", err)
	}
	return nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Describe implements queue.Store.
func (s *Store) Describe() string { return "sqlite " + s.path }

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
		for _, m := range []map[bool]*sql.Stmt{s.stmtDue, s.stmtNext} {
			for _, st := range m {
				st.Close()
			}
		}
		err = errors.Join(s.db.Close(), s.rdb.Close(), s.cdb.Close())
		if s.wal != nil {
			s.wal.Close()
		}
	})
	return err
}

// Waiting implements queue.Store.
func (s *Store) Waiting(sink string) int64 {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	return s.backlog[sink]
}

// Pending is the number of deliveries waiting, of every sink.
func (s *Store) Pending() int64 {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	var n int64
	for _, c := range s.backlog {
		n += c
	}
	return n
}

func (s *Store) recount(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT sink, count(*) FROM deliveries WHERE state IN ('pending', 'failed') GROUP BY sink`)
	if err != nil {
		return fmt.Errorf("count pending deliveries: %w", err)
	}
	defer rows.Close()
	counts := map[string]int64{}
	for rows.Next() {
		var sink string
		var n int64
		if err := rows.Scan(&sink, &n); err != nil {
			return fmt.Errorf("count pending deliveries: %w", err)
		}
		counts[sink] = n
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("count pending deliveries: %w", err)
	}
	s.bmu.Lock()
	s.backlog = counts
	s.bmu.Unlock()
	return nil
}

// hot lists the statements worth preparing: those run for every event
// or every attempt.
var hot = []string{sqlInsertEvent, sqlInsertDelivery, sqlFindDuplicate, sqlExpireKey,
	sqlDelivered, sqlFailed, sqlDead, sqlInsertAttempt}

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
	s.stmtDue, s.stmtNext = map[bool]*sql.Stmt{}, map[bool]*sql.Stmt{}
	for _, ordered := range []bool{false, true} {
		due, err := s.rdb.PrepareContext(ctx, sqlDue(ordered))
		if err != nil {
			return err
		}
		next, err := s.rdb.PrepareContext(ctx, sqlNext(ordered))
		if err != nil {
			due.Close()
			return err
		}
		s.stmtDue[ordered], s.stmtNext[ordered] = due, next
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

func (s *Store) queryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if st, ok := s.stmts[q]; ok {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, q, args...)
}

// checkpointEvery is how often the checkpointer copies the WAL into the
// database file; after idleTruncate without a write, it also cuts the
// WAL back to nothing.
const (
	checkpointEvery = 250 * time.Millisecond
	idleTruncate    = 5 * time.Second
)

// checkpointer runs passive checkpoints, which never wait for (nor
// block) the writer or readers, until the store closes; once the queue
// has been idle a while, one truncating checkpoint gives the disk back.
// SQLite runs a last one when the store closes.
func (s *Store) checkpointer() {
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var last string // warn when the error changes, not four times a second
	truncated := true
	var probed time.Time
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		if s.health.Err() != nil && s.failed.Load() == nil && time.Since(probed) >= probeEvery {
			probed = time.Now()
			s.probe()
		}
		mode := "PASSIVE"
		idle := time.Since(time.Unix(0, s.lastWrite.Load())) > s.idleAfter
		if idle && !truncated {
			mode = "TRUNCATE"
		}
		var busy, logPages, done int
		err := s.cdb.QueryRow(`PRAGMA wal_checkpoint(`+mode+`)`).Scan(&busy, &logPages, &done)
		switch {
		case err != nil && err.Error() != last:
			s.log.Warn("checkpoint queue db", "err", err)
			last = err.Error()
		case err == nil && last != "":
			s.log.Info("checkpoint queue db: working again")
			last = ""
		}
		if mode == "TRUNCATE" && err == nil && busy == 0 {
			truncated = true
		}
		if !idle {
			truncated = false
		}
	}
}

// probeEvery is how often a store whose writes fail tries a write of
// its own, so that it learns of the recovery even when nothing else
// writes.
const probeEvery = time.Second

// probe writes a row (WAL frames, like any write) to learn whether
// writes work again; its outcome updates Health.
func (s *Store) probe() {
	ctx, cancel := context.WithTimeout(context.Background(), probeEvery)
	defer cancel()
	s.write(ctx, func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error) {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO health_probe (id, at) VALUES (1, ?)`, time.Now().UnixMilli())
		return nil, err
	})
}

// recountEvery is how often the writer recounts waiting deliveries.
const recountEvery = 10 * time.Second

// sinkDelta is how much a write changed the number of deliveries
// waiting for a sink.
type sinkDelta struct {
	sink string
	n    int64
}

// op is one write: fn runs inside a shared transaction, on the batch's
// own context, and returns how it changed the waiting deliveries.
type op struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error)
	done chan error
	// lazy writes need not be on disk when answered (outcomes of
	// attempts: one lost to a power cut only makes its delivery go
	// again); the next fsync takes them along.
	lazy   bool
	ticket groupcommit.Ticket
}

// maxBatch bounds how many writes share one transaction.
const maxBatch = 256

// write runs fn in a transaction shared with concurrent writes (group
// commit: one fsync for many requests) and returns once it is committed
// and on disk. fn's own error rolls back only fn's changes. When ctx
// ends before the writer takes the write, it is left out and ctx's
// error returned; once taken, write waits for its outcome, so that an
// error always means "not written".
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error)) error {
	return s.submit(ctx, fn, false)
}

// writeLazy is write for a write that may be answered before it is on
// disk: it is committed, and the next fsync takes it along. Outcomes of
// attempts are written so: they are half the queue's writes, and one lost
// in a power cut only sends its delivery once more (at least once).
func (s *Store) writeLazy(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error)) error {
	return s.submit(ctx, fn, true)
}

func (s *Store) submit(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error), lazy bool) error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	o := &op{ctx: ctx, fn: fn, done: make(chan error, 1), lazy: lazy}
	select {
	case <-s.closing:
		return queue.ErrClosed
	default:
	}
	return groupcommit.Await(ctx, s.ops, o, &o.ticket, o.done, s.closing, s.done, queue.ErrClosed)
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
// fail on its own account, the transaction is rolled back and each
// write runs again alone, so that one failure fails only its own write.
// A storage fault (a full disk, a lock held by another process) fails
// the whole batch at once: running each write alone would only repeat
// it. Writes whose callers gave up before the batch began are left out.
func (s *Store) commit(batch []*op) {
	batch = s.linger(batch)
	live := batch[:0]
	for _, o := range batch {
		if o.ticket.Claim(o.ctx, o.done) {
			live = append(live, o)
		}
	}
	if len(live) == 0 {
		return
	}
	if len(live) > 1 {
		if s.tryBatch(live) {
			return
		}
	}
	for _, o := range live {
		s.tryBatch([]*op{o})
	}
}

// lazyLinger is how long a batch of lazy writes alone (outcomes of
// attempts) waits for company: at a light load each outcome would
// otherwise commit alone, rewriting the same pages, where it can ride
// along with the next accepted event's transaction.
const lazyLinger = 5 * time.Millisecond

// lingerAfter: lazy writes wait for company only if an accepted event
// was committed this recently.
const lingerAfter = 20 * time.Millisecond

// linger holds a batch of lazy writes back for up to lazyLinger, adding
// the writes that arrive meanwhile; a write that is not lazy ends the
// wait at once (an accepted event is never held back).
//
// It waits only when company is likely and soon: not while committed
// batches wait for their fsync (the requests whose accepts would end the
// wait are blocked behind it, and under a heavy load that is every
// request), and not when no accepted event was committed within
// lingerAfter (draining a backlog, nothing comes). Waiting then would
// only hold each outcome, and its delivery's slot, longer: with those
// waits BenchmarkLifecycle (64 writers, then the backlog drained) ran at
// 4,400 events/s, and at 11,000 without them.
func (s *Store) linger(batch []*op) []*op {
	for _, o := range batch {
		if !o.lazy {
			return batch
		}
	}
	if s.syncing.Load() > 0 || time.Since(time.Unix(0, s.lastDurable.Load())) > s.lingerWithin {
		return batch
	}
	s.lingers.Add(1)
	t := time.NewTimer(s.lingerFor)
	defer t.Stop()
	for len(batch) < maxBatch {
		select {
		case o := <-s.ops:
			batch = append(batch, o)
			if !o.lazy {
				return batch
			}
		case <-t.C:
			return batch
		case <-s.closing:
			return batch
		}
	}
	return batch
}

// tryBatch commits batch and reports each write's outcome, or, for a
// batch of several where a write failed on its own account, rolls back
// and reports nothing, returning false.
func (s *Store) tryBatch(batch []*op) bool {
	ctx := context.Background()
	fail := func(err error) bool {
		s.noteFault(err)
		for _, o := range batch {
			o.done <- err
		}
		return true
	}
	if p := s.failed.Load(); p != nil {
		return fail(*p)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(fmt.Errorf("begin: %w", err))
	}
	var deltas []sinkDelta
	for _, o := range batch {
		d, err := o.fn(ctx, tx)
		if err != nil {
			tx.Rollback()
			if len(batch) > 1 && !storageFault(err) {
				return false
			}
			return fail(err)
		}
		deltas = append(deltas, d...)
	}
	if err := tx.Commit(); err != nil {
		err = fmt.Errorf("commit: %w", err)
		if unvouched(err) {
			s.latch(err)
			err = *s.failed.Load()
		}
		return fail(err)
	}
	now := time.Now().UnixNano()
	s.lastWrite.Store(now)
	durable := slices.ContainsFunc(batch, func(o *op) bool { return !o.lazy })
	if durable {
		s.lastDurable.Store(now)
	}
	if len(deltas) > 0 {
		s.bmu.Lock()
		for _, d := range deltas {
			s.backlog[d.sink] += d.n
		}
		s.bmu.Unlock()
	}
	s.commits.Add(1)
	s.committed.Add(int64(len(batch)))
	// A batch holding a write that must be on disk before it is
	// answered waits for an fsync.
	if s.sync && durable {
		if s.syncs != nil {
			s.syncing.Add(1)
			s.syncs <- slices.Clone(batch) // the writer reuses batch
			return true
		}
		// One CPU: a second goroutine would only take the writer's, so
		// the writer fsyncs here, as SQLite would inside the commit.
		if err := s.syncOnce(); err != nil {
			return fail(err)
		}
	}
	s.noteFault(nil)
	for _, o := range batch {
		o.done <- nil
	}
	return true
}

// storageFault reports whether err is the storage's, not the write's:
// every write of a batch would meet it.
func storageFault(err error) bool {
	if errors.Is(err, queue.ErrFailed) {
		return true
	}
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case sqlite3.ErrFull, sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrIoErr, sqlite3.ErrReadonly,
		sqlite3.ErrCantOpen, sqlite3.ErrNomem, sqlite3.ErrCorrupt, sqlite3.ErrNotADB, sqlite3.ErrProtocol:
		return true
	}
	return false
}

// unvouched reports whether a failed commit may have left the database
// file other than SQLite believes (an I/O error while writing or
// syncing): then only a restart, recovering from the disk, is safe.
func unvouched(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.Code == sqlite3.ErrIoErr || se.Code == sqlite3.ErrCorrupt)
}

// latch makes the store refuse every write from now on, with err.
func (s *Store) latch(err error) {
	failed := fmt.Errorf("%w: %w", queue.ErrFailed, err)
	if s.failed.CompareAndSwap(nil, &failed) {
		s.log.Error("queue storage failed: refusing writes until restart", "path", s.path, "err", err)
	}
}

// noteFault records the outcome of a write for Health, warning once per
// change of error rather than once per write.
func (s *Store) noteFault(err error) {
	if err != nil && !storageFault(err) {
		return // the write's own problem, not the store's
	}
	s.health.Note(err)
}

// Health implements queue.Store.
func (s *Store) Health() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return s.health.Err()
}

// syncer answers committed batches once an fsync of the WAL that began
// after their commit has returned. Batches that commit while it syncs
// share the next fsync. A failed fsync latches the store: the pages it
// was to write may never reach the disk (Linux can mark them clean), so
// no later answer may rest on them.
func (s *Store) syncer() {
	var group []*op
	for batch := range s.syncs {
		group = append(group[:0], batch...)
		batches := int64(1)
	more:
		for {
			select {
			case b, ok := <-s.syncs:
				if !ok {
					break more
				}
				group = append(group, b...)
				batches++
			default:
				break more
			}
		}
		err := s.syncOnce()
		s.noteFault(err)
		for _, o := range group {
			o.done <- err
		}
		s.syncing.Add(-batches)
	}
}

// syncOnce fsyncs the WAL, latching the store when that fails.
func (s *Store) syncOnce() error {
	err := s.syncWAL()
	s.fsyncs.Add(1)
	if err != nil {
		s.latch(err)
		return *s.failed.Load()
	}
	return nil
}

func (s *Store) syncWAL() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	if s.syncHook != nil {
		if err := s.syncHook(); err != nil {
			return fmt.Errorf("fsync WAL: %w", err)
		}
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
