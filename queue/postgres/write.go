package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard/switchyard/internal/groupcommit"
	"github.com/switchyard/switchyard/queue"
)

// sinkDelta is how much a write changed the number of deliveries
// waiting for a sink.
type sinkDelta struct {
	sink string
	n    int64
}

// A write is one request's part of a grouped transaction: its
// statements are pipelined with the batch's others, in one round trip.
type write interface {
	// key orders the writes of a batch: replicas' batches then take
	// their locks (a dedup key's index entry, a delivery's row) in the
	// same order, and never deadlock on each other.
	key() string
	// queue appends the write's statements to b; their callbacks keep
	// what the write needs to know. It may be called again, for another
	// try, and then starts afresh.
	queue(b *pgx.Batch)
	// finish runs once the batch's statements ran, in its transaction:
	// the follow-up statements a few writes need (an event whose dedup
	// key is taken), and how the write changes the waiting deliveries.
	finish(ctx context.Context, tx pgx.Tx) ([]sinkDelta, error)
}

// op is a write waiting for a batch.
type op struct {
	ctx    context.Context
	w      write
	done   chan error
	ticket groupcommit.Ticket
}

// maxBatch bounds how many writes share one transaction.
const maxBatch = 256

// submit runs w in a transaction shared with concurrent writes and
// returns once it is committed. When ctx ends before a writer takes
// the write, it is left out and ctx's error returned; once taken, submit
// waits for its outcome, so that an error always means "not written"
// (or, for a commit whose answer was lost, "perhaps written").
func (s *Store) submit(ctx context.Context, w write) error {
	if s.isClosed() {
		return queue.ErrClosed
	}
	o := &op{ctx: ctx, w: w, done: make(chan error, 1)}
	if s.ungrouped {
		if !o.ticket.Claim(ctx, o.done) {
			return <-o.done
		}
		return s.tryBatch([]*op{o})
	}
	return groupcommit.Await(ctx, s.ops, o, &o.ticket, o.done, s.closing, s.writersDone, queue.ErrClosed)
}

// writer commits batches of ops until the store closes; ops queued
// before Close are committed first.
func (s *Store) writer() {
	groupcommit.Loop[*op]{Ops: s.ops, Stop: s.closing, Max: maxBatch, Commit: s.commit}.Run()
}

// commit runs batch in one transaction. A storage fault (the database
// unreachable, a statement timed out) fails every write of the batch; a
// write failing on its own account (bad data) rolls the batch back, and
// each write then runs alone, so that it fails only itself. Writes whose
// callers gave up before the batch began are left out.
func (s *Store) commit(batch []*op) {
	live := make([]*op, 0, len(batch))
	for _, o := range batch {
		if o.ticket.Claim(o.ctx, o.done) {
			live = append(live, o)
		}
	}
	if len(live) == 0 {
		return
	}
	slices.SortStableFunc(live, func(a, b *op) int { return cmp.Compare(a.w.key(), b.w.key()) })
	err := s.tryBatch(live)
	if err != nil && len(live) > 1 && !storageFault(err) {
		for _, o := range live {
			o.done <- s.tryBatch([]*op{o})
		}
		return
	}
	for _, o := range live {
		o.done <- err
	}
}

// tryBatch commits batch, trying again after a deadlock with another
// replica's transaction (the database cancels one of the two), and
// returns the outcome for every write of the batch.
func (s *Store) tryBatch(batch []*op) error {
	var err error
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		err = s.runBatch(ctx, batch)
		cancel()
		if !retryable(err) {
			break
		}
	}
	s.noteFault(err)
	if err == nil {
		s.commits.Add(1)
		s.committed.Add(int64(len(batch)))
	}
	return err
}

func (s *Store) runBatch(ctx context.Context, batch []*op) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Release()
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	for _, o := range batch {
		o.w.queue(b)
	}
	br := conn.SendBatch(ctx, b)
	tx := br.Tx()
	if err := br.Close(); err != nil {
		tx.Rollback(ctx)
		return err
	}
	var deltas []sinkDelta
	for _, o := range batch {
		d, err := o.w.finish(ctx, tx)
		if err != nil {
			tx.Rollback(ctx)
			return err
		}
		deltas = append(deltas, d...)
	}
	return s.commitTx(ctx, tx, deltas)
}

// inTx runs fn in a transaction of its own (the writes that are not
// grouped: replays, purges) and applies the deltas it returns once
// committed.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) ([]sinkDelta, error)) error {
	if s.isClosed() {
		return queue.ErrClosed
	}
	var err error
	for range 3 {
		err = s.runTx(ctx, fn)
		if !retryable(err) {
			break
		}
	}
	s.noteFault(err)
	return err
}

func (s *Store) runTx(ctx context.Context, fn func(tx pgx.Tx) ([]sinkDelta, error)) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	deltas, err := fn(tx)
	if err != nil {
		tx.Rollback(ctx)
		return err
	}
	return s.commitTx(ctx, tx, deltas)
}

// commitTx commits tx and applies its deltas to the waiting counts once
// it is committed.
func (s *Store) commitTx(ctx context.Context, tx pgx.Tx, deltas []sinkDelta) error {
	s.waiting.beginCommit()
	err := tx.Commit(ctx)
	s.waiting.endCommit(deltas, err == nil)
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// retryable reports a transaction the database cancelled to break a
// deadlock (or a serialization failure): running it again succeeds.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// storageFault reports whether err is the database's, not the write's:
// every write would meet it (the database unreachable or too slow, out
// of disk, shutting down). Errors of the data itself (class 22, 23) and
// of a caller that gave up are not.
func storageFault(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, queue.ErrLeaseLost) || errors.Is(err, queue.ErrClosed) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "22", "23", "42":
			return false
		}
	}
	return true
}

// counter keeps the number of deliveries waiting per sink: exact for
// this replica's commits, and recounted from the database now and then,
// since other replicas write too. A recount must neither miss nor
// double a commit of this replica: it takes its snapshot while none is
// committing, and adds the commits that follow it.
type counter struct {
	mu         sync.Mutex
	cond       sync.Cond
	counts     map[string]int64
	committing int
	// holding is set while a recount takes its snapshot: commits wait.
	holding bool
	// since are the deltas committed after the recount's snapshot; nil
	// when no recount runs.
	since map[string]int64
}

func (c *counter) init() {
	c.cond.L = &c.mu
	c.counts = map[string]int64{}
}

func (c *counter) get(sink string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[sink]
}

func (c *counter) beginCommit() {
	c.mu.Lock()
	for c.holding {
		c.cond.Wait()
	}
	c.committing++
	c.mu.Unlock()
}

func (c *counter) endCommit(deltas []sinkDelta, ok bool) {
	c.mu.Lock()
	c.committing--
	if ok {
		for _, d := range deltas {
			c.counts[d.sink] += d.n
			if c.since != nil {
				c.since[d.sink] += d.n
			}
		}
	}
	c.cond.Broadcast()
	c.mu.Unlock()
}

// recount counts the waiting deliveries in the database (see counter).
func (s *Store) recount(ctx context.Context) error {
	c := &s.waiting
	conn, err := s.pool.Acquire(ctx) // before holding commits up: they hold connections
	if err != nil {
		return fmt.Errorf("count waiting deliveries: %w", err)
	}
	defer conn.Release()
	c.mu.Lock()
	for c.holding || c.since != nil {
		c.cond.Wait()
	}
	c.holding = true
	for c.committing > 0 {
		c.cond.Wait()
	}
	c.mu.Unlock()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err == nil {
		// A repeatable-read transaction's snapshot is taken by its
		// first statement.
		if _, err = tx.Exec(ctx, `SELECT 1`); err != nil {
			tx.Rollback(ctx)
		}
	}
	c.mu.Lock()
	c.holding = false
	if err == nil {
		c.since = map[string]int64{}
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("count waiting deliveries: %w", err)
	}
	counts := map[string]int64{}
	rows, _ := tx.Query(ctx, `SELECT sink, count(*) FROM queue_deliveries WHERE state IN ('pending', 'failed') GROUP BY sink`)
	var sink string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&sink, &n}, func() error {
		counts[sink] = n
		return nil
	})
	tx.Rollback(ctx)
	c.mu.Lock()
	if err == nil {
		for k, v := range c.since {
			counts[k] += v
		}
		c.counts = counts
	}
	c.since = nil
	c.cond.Broadcast()
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("count waiting deliveries: %w", err)
	}
	return nil
}
