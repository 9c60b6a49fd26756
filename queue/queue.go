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
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/event"
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
	path string
	log  *slog.Logger
	now  func() time.Time

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
	o := sqlitedb.Options{Synchronous: sync, BusyTimeout: opts.BusyTimeout, ForeignKeys: true}
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
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.wg.Go(func() {
		defer close(s.done)
		s.writer()
	})
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
		err = errors.Join(s.db.Close(), s.rdb.Close())
	})
	return err
}

// op is one write: fn runs inside a shared transaction.
type op struct {
	fn   func(tx *sql.Tx) error
	done chan error
}

// maxBatch bounds how many writes share one transaction.
const maxBatch = 256

// write runs fn in a transaction shared with concurrent writes (group
// commit: one fsync for many requests) and returns once it is committed.
// fn's own error rolls back only fn's changes.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
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
	batch := make([]*op, 0, maxBatch)
	for {
		var first *op
		select {
		case first = <-s.ops:
		case <-s.closing:
			// Finish what was queued before Close.
			select {
			case first = <-s.ops:
			default:
				return
			}
		}
		batch = append(batch[:0], first)
		// Let handlers that are about to write join this transaction.
		// Without the yield, on one CPU the writer would usually find the
		// channel empty and commit one row per fsync.
		runtime.Gosched()
	drain:
		for len(batch) < maxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

func (s *Store) commit(batch []*op) {
	errs := make([]error, len(batch))
	finish := func(err error) {
		for i, o := range batch {
			if errs[i] == nil {
				errs[i] = err
			}
			o.done <- errs[i]
		}
	}
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		finish(fmt.Errorf("begin: %w", err))
		return
	}
	single := len(batch) == 1
	for i, o := range batch {
		if single {
			errs[i] = o.fn(tx)
			continue
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT op"); err != nil {
			errs[i] = err
			continue
		}
		if errs[i] = o.fn(tx); errs[i] != nil {
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO op"); err != nil {
				tx.Rollback()
				finish(fmt.Errorf("rollback to savepoint: %w", err))
				return
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE op"); err != nil {
			tx.Rollback()
			finish(fmt.Errorf("release savepoint: %w", err))
			return
		}
	}
	if single && errs[0] != nil {
		tx.Rollback()
		finish(nil)
		return
	}
	if err := tx.Commit(); err != nil {
		for i := range errs {
			errs[i] = nil // nothing committed: every op failed
		}
		finish(fmt.Errorf("commit: %w", err))
		return
	}
	finish(nil)
}

// Target is a sink an accepted event must reach.
type Target struct {
	Sink   string
	Routes []string
}

// Accepted is the outcome of Accept.
type Accepted struct {
	// EventID is the stored event's id: ev.ID, or for a duplicate the
	// id of the event first stored with the same dedup key.
	EventID   string
	Duplicate bool
	// Deliveries are the ids of the deliveries created, one per target.
	Deliveries []string
}

// Accept stores ev and one pending delivery per target in one
// transaction. An event whose source and dedup key are already stored is
// a duplicate: nothing is written and the original id is returned.
func (s *Store) Accept(ctx context.Context, ev *event.Event, targets []Target) (Accepted, error) {
	body, err := ev.JSON()
	if err != nil {
		return Accepted{}, fmt.Errorf("encode event: %w", err)
	}
	dedup := ev.DedupKey
	if dedup == "" {
		dedup = "id:" + ev.ID
	}
	now := s.now().UnixMilli()
	var res Accepted
	err = s.write(ctx, func(tx *sql.Tx) error {
		res = Accepted{}
		r, err := tx.ExecContext(ctx, `INSERT INTO events (id, source, dedup_key, event_type, subject, received_at, event)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, dedup_key) DO NOTHING`,
			ev.ID, ev.Source, dedup, ev.EventType, ev.Subject, ev.ReceivedAt.UnixMilli(), body)
		if err != nil {
			return fmt.Errorf("insert event: %w", err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			res.Duplicate = true
			return tx.QueryRowContext(ctx, `SELECT id FROM events WHERE source = ? AND dedup_key = ?`,
				ev.Source, dedup).Scan(&res.EventID)
		}
		res.EventID = ev.ID
		for _, t := range targets {
			id := event.NewID("dlv_", ev.ReceivedAt)
			if _, err := tx.ExecContext(ctx, `INSERT INTO deliveries
				(id, event_id, sink, routes, subject, state, created_at, next_at, updated_at)
				VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)`,
				id, ev.ID, t.Sink, strings.Join(t.Routes, ","), ev.Subject, now, now, now); err != nil {
				return fmt.Errorf("insert delivery: %w", err)
			}
			res.Deliveries = append(res.Deliveries, id)
		}
		return nil
	})
	if err != nil {
		return Accepted{}, err
	}
	return res, nil
}

// Delivery is a leased delivery: one attempt to send Event to Sink.
type Delivery struct {
	ID      string
	EventID string
	Sink    string
	Routes  []string
	// Attempt is this attempt's number, from 1.
	Attempt   int
	CreatedAt time.Time
	Event     *event.Event

	seq int64 // insertion order
}

// Lease claims up to limit due deliveries of sink for leaseFor: no other
// Lease returns them until the lease ends or the delivery is completed.
// A process that dies mid-attempt leaves the lease to expire, and the
// delivery is attempted again.
func (s *Store) Lease(ctx context.Context, sink string, limit int, leaseFor time.Duration) ([]Delivery, error) {
	now := s.now()
	var out []Delivery
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `UPDATE deliveries
			SET lease_until = ?, attempts = attempts + 1, updated_at = ?
			WHERE id IN (
				SELECT id FROM deliveries
				WHERE sink = ? AND state IN ('pending', 'failed') AND next_at <= ? AND lease_until <= ?
				ORDER BY next_at, rowid LIMIT ?)
			RETURNING rowid, id, event_id, routes, attempts, created_at`,
			now.Add(leaseFor).UnixMilli(), now.UnixMilli(), sink, now.UnixMilli(), now.UnixMilli(), limit)
		if err != nil {
			return fmt.Errorf("lease: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				d       Delivery
				routes  string
				created int64
			)
			if err := rows.Scan(&d.seq, &d.ID, &d.EventID, &routes, &d.Attempt, &created); err != nil {
				return err
			}
			d.Sink = sink
			d.Routes = strings.Split(routes, ",")
			d.CreatedAt = time.UnixMilli(created)
			out = append(out, d)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		for i := range out {
			var body []byte
			if err := tx.QueryRowContext(ctx, `SELECT event FROM events WHERE id = ?`, out[i].EventID).Scan(&body); err != nil {
				return fmt.Errorf("load event %s: %w", out[i].EventID, err)
			}
			ev, err := decodeEvent(body)
			if err != nil {
				return fmt.Errorf("load event %s: %w", out[i].EventID, err)
			}
			out[i].Event = ev
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortDeliveries(out)
	return out, nil
}

// Outcome is the result of an attempt.
type Outcome struct {
	State string // StateDelivered, StateFailed (retry at NextAt) or StateDead
	// NextAt is when a failed delivery is due again.
	NextAt time.Time
	// Error and Status describe the last failure (Status is the HTTP
	// status, 0 if there was none).
	Error  string
	Status int
}

// Complete records an attempt's outcome and ends its lease.
func (s *Store) Complete(ctx context.Context, id string, o Outcome) error {
	now := s.now().UnixMilli()
	var q string
	args := []any{}
	switch o.State {
	case StateDelivered:
		q = `UPDATE deliveries SET state = 'delivered', lease_until = 0, updated_at = ?, last_status = ? WHERE id = ?`
		args = append(args, now, o.Status, id)
	case StateFailed:
		q = `UPDATE deliveries SET state = 'failed', lease_until = 0, next_at = ?, updated_at = ?, last_error = ?, last_status = ? WHERE id = ?`
		args = append(args, o.NextAt.UnixMilli(), now, truncate(o.Error, 1000), o.Status, id)
	case StateDead:
		q = `UPDATE deliveries SET state = 'dead', lease_until = 0, updated_at = ?, last_error = ?, last_status = ? WHERE id = ?`
		args = append(args, now, truncate(o.Error, 1000), o.Status, id)
	default:
		return fmt.Errorf("complete %s: invalid state %q", id, o.State)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	})
}

// ReleaseLeases ends every lease, so deliveries interrupted by a crash
// are attempted at once rather than when their lease would expire. Call
// it only while no other process is delivering from this store.
func (s *Store) ReleaseLeases(ctx context.Context) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `UPDATE deliveries SET lease_until = 0 WHERE lease_until > 0 AND state IN ('pending', 'failed')`)
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	return n, err
}

// NextDue returns when the earliest waiting delivery of sink is due, or
// false if none is waiting.
func (s *Store) NextDue(ctx context.Context, sink string) (time.Time, bool, error) {
	var next sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, `SELECT min(max(next_at, lease_until)) FROM deliveries
		WHERE sink = ? AND state IN ('pending', 'failed')`, sink).Scan(&next)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due: %w", err)
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(next.Int64), true, nil
}

// Counts returns how many deliveries are in each state, per sink.
func (s *Store) Counts(ctx context.Context) (map[string]map[string]int, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT sink, state, count(*) FROM deliveries GROUP BY sink, state`)
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var sink, state string
		var n int
		if err := rows.Scan(&sink, &state, &n); err != nil {
			return nil, err
		}
		if out[sink] == nil {
			out[sink] = map[string]int{}
		}
		out[sink][state] = n
	}
	return out, rows.Err()
}

// DeliveryInfo is a delivery's stored state.
type DeliveryInfo struct {
	ID         string
	EventID    string
	Sink       string
	State      string
	Attempts   int
	LastError  string
	LastStatus int
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Deliveries returns the deliveries of an event.
func (s *Store) Deliveries(ctx context.Context, eventID string) ([]DeliveryInfo, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, event_id, sink, state, attempts, last_error, last_status, created_at, updated_at
		FROM deliveries WHERE event_id = ? ORDER BY sink`, eventID)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []DeliveryInfo
	for rows.Next() {
		var d DeliveryInfo
		var created, updated int64
		if err := rows.Scan(&d.ID, &d.EventID, &d.Sink, &d.State, &d.Attempts, &d.LastError, &d.LastStatus, &created, &updated); err != nil {
			return nil, err
		}
		d.CreatedAt, d.UpdatedAt = time.UnixMilli(created), time.UnixMilli(updated)
		out = append(out, d)
	}
	return out, rows.Err()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
