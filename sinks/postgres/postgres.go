// Package postgres is the postgres sink: the archive of the sqlite sink
// (events, one row per Darwin session, configured columns, retention,
// search that ignores accents) in a PostgreSQL database, so that any
// number of gateway replicas keep one archive. Rows are those of the
// sqlite archive (package archive derives both); PostgreSQL types them
// (timestamptz, jsonb) and indexes search with a tsvector and GIN.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/groupcommit"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/sinks"
	"github.com/switchyard/switchyard/sinks/archive"
)

// Options configures a sink.
type Options struct {
	// DSN is the database: postgres://user:pass@host:5432/db?sslmode=…
	// (or key=value pairs). It is a credential.
	DSN string
	// Columns adds a column to sessions per entry, filled with the
	// expression's value for the session's newest event where it is not
	// nil. Names are checked with archive.CheckColumnName.
	Columns map[string]*lang.Expression
	// Retention prunes events older than this, and sessions whose newest
	// event is; zero keeps everything.
	Retention time.Duration
	// Providers names each source's provider, by source name: the chat
	// inbox's and DocsSmith Demo2's events keep a sessions row per
	// conversation, as Darwin's do per session.
	Providers map[string]string
	// PruneEvery is how often retention runs; default an hour.
	PruneEvery time.Duration
	// ConnectTimeout bounds reaching the database at Open; default 10s.
	ConnectTimeout time.Duration
	Logger         *slog.Logger
	// Now is the clock for retention; default time.Now.
	Now func() time.Time
}

// Sink writes events to a PostgreSQL archive. Concurrent Sends are
// grouped into one transaction by a single writer goroutine.
type Sink struct {
	opts     Options
	cfg      *pgxpool.Config
	describe string // host:port/db, for messages: no credentials
	log      *slog.Logger
	mapper   *archive.Mapper
	columns  []archive.Column
	warn     archive.Warnings

	typesMu sync.Mutex
	types   map[string]string // configured column → type; "" while pending

	mu     sync.Mutex
	pool   *pgxpool.Pool
	fold   string
	ops    chan *op
	stop   chan struct{}
	wg     sync.WaitGroup
	closed bool
}

var (
	_ sinks.Sink   = (*Sink)(nil)
	_ sinks.Opener = (*Sink)(nil)
)

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("archive closed")

// New returns a sink for opts, checking the DSN and the columns' names
// without connecting.
func New(opts Options) (*Sink, error) {
	cfg, err := ParseDSN(opts.DSN)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PruneEvery <= 0 {
		opts.PruneEvery = time.Hour
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	cols := archive.ConfiguredColumns(opts.Columns)
	for _, c := range cols {
		if err := archive.CheckColumnName(c.Name); err != nil {
			return nil, err
		}
	}
	// The writers, the pruner and a column being added; searches and
	// exports use connections of their own (Reader).
	cfg.MaxConns = writers + 2
	s := &Sink{
		opts: opts, cfg: cfg, describe: Describe(cfg.ConnConfig), log: opts.Logger, columns: cols,
		mapper: archive.NewMapper(archive.MapperOptions{Columns: cols, Value: archive.TypedValue, Providers: opts.Providers, Logger: opts.Logger}),
	}
	return s, nil
}

// ParseDSN checks a connection string without connecting. Its errors
// never show the password.
func ParseDSN(dsn string) (*pgxpool.Config, error) {
	if strings.TrimSpace(dsn) == "" {
		return nil, errors.New("missing dsn: the PostgreSQL connection string, such as postgres://user:pass@host:5432/archive?sslmode=verify-full")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn's parse errors redact the password; the DSN stays out
		// of ours all the same.
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("invalid dsn: %s", pe.Unwrap())
		}
		return nil, errors.New("invalid dsn: want postgres://user:pass@host:5432/db?sslmode=… or key=value pairs")
	}
	return cfg, nil
}

// Describe names a database for messages: host:port/db, no password.
func Describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}

// Open connects, creates or migrates the archive, records configured
// columns, and starts the writer and, with a retention, the pruner. It
// fails at once when the database cannot be reached.
func (s *Sink) Open(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.pool != nil {
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, s.cfg)
	if err != nil {
		return fmt.Errorf("postgres archive %s: %w", s.describe, err)
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(cctx); err != nil {
		pool.Close()
		return fmt.Errorf("cannot reach the postgres archive at %s: %w (check the sink's dsn, and that the server runs and accepts this client)", s.describe, redact(err, s.cfg))
	}
	s.pool = pool
	fold, err := s.migrate(cctx)
	if err != nil {
		pool.Close()
		s.pool = nil
		return fmt.Errorf("postgres archive %s: %w", s.describe, redact(err, s.cfg))
	}
	s.fold = fold
	s.ops = make(chan *op)
	s.stop = make(chan struct{})
	for range writers {
		s.wg.Go(s.writer)
	}
	if s.opts.Retention > 0 {
		s.wg.Go(s.pruner)
	}
	return nil
}

// redact removes the password from an error's text.
func redact(err error, cfg *pgxpool.Config) error {
	if pw := cfg.ConnConfig.Password; pw != "" {
		return sinks.Redact(err, pw)
	}
	return err
}

// Fold reports how the archive folds accents in searches: FoldUnaccent
// or FoldTable. Empty before Open.
func (s *Sink) Fold() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fold
}

// Send archives the event: a row in events, and for a session event an
// update of its sessions row. An event already archived (a retry, a
// replay, or a delivery by another replica) changes nothing. Send
// returns once the rows are committed.
func (s *Sink) Send(ctx context.Context, d *sinks.Delivery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	ops, stop, closed := s.ops, s.stop, s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if ops == nil {
		if err := s.Open(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		ops, stop = s.ops, s.stop
		s.mu.Unlock()
	}
	o := &op{row: cleanRow(s.mapper.Row(d.Event)), done: make(chan error, 1)}
	// Once the writer has it, the row may commit after ctx ends; a retry
	// of it is harmless.
	return groupcommit.Submit(ctx, ops, stop, o, o.done, ErrClosed)
}

// Preview returns the rows Send would write for ev, without opening
// the archive: an *archive.Rows.
func (s *Sink) Preview(ev *event.Event) (any, error) { return s.mapper.Preview(ev), nil }

// cleanRow replaces NUL characters in a row's keys and texts, which
// PostgreSQL's text cannot hold (see clean).
func cleanRow(r *archive.EventRow) *archive.EventRow {
	for _, p := range []*string{&r.ID, &r.Source, &r.EventType, &r.Subject, &r.AgentID, &r.AgentName, &r.ExternalID} {
		*p = clean(*p)
	}
	r.Data = cleanJSON(r.Data)
	if r.Session != nil {
		r.Session.SessionID = clean(r.Session.SessionID)
	}
	return r
}

// op is one Send waiting for the writer.
type op struct {
	row  *archive.EventRow
	done chan error
}

// maxBatch bounds how many events share one transaction.
const maxBatch = 256

// writers is how many batches commit at once: while one waits for its
// commit to reach the disk, the next is written. Their rows' locks are
// taken in one order (sortOps), so they never deadlock.
const writers = 4

// batchTimeout bounds a batch's transaction: a database that stops
// answering fails the batch's Sends (they are retried) rather than
// holding the writer.
const batchTimeout = 30 * time.Second

func (s *Sink) writer() {
	groupcommit.Loop[*op]{Ops: s.ops, Stop: s.stop, Max: maxBatch, Commit: s.commit}.Run()
}

// commit writes batch in one transaction. If it fails, each event is
// written again in a transaction of its own, so one bad event fails
// only its own Send.
func (s *Sink) commit(batch []*op) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	if len(batch) > 1 {
		if err := s.tryBatch(ctx, batch); err == nil {
			for _, o := range batch {
				o.done <- nil
			}
			return
		}
	}
	for _, o := range batch {
		o.done <- s.tryBatch(ctx, []*op{o})
	}
}

// tryBatch writes batch, again when PostgreSQL chose it as the victim
// of a deadlock (with another replica's batch, or with pruning).
func (s *Sink) tryBatch(ctx context.Context, batch []*op) error {
	var err error
	for range 3 {
		if err = s.writeBatch(ctx, batch); !retryable(err) {
			break
		}
	}
	if err != nil {
		if len(batch) == 1 {
			return fmt.Errorf("archive event %s: %w", batch[0].row.ID, redact(err, s.cfg))
		}
		return fmt.Errorf("archive events: %w", redact(err, s.cfg))
	}
	return nil
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// Close stops the writer after the Sends already queued, stops pruning,
// and closes the pool. Sends after Close return ErrClosed.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		close(stop)
	}
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pool != nil {
		s.pool.Close()
		s.pool = nil
	}
	return nil
}

// sortOps orders a batch by subject, then event id: every replica takes
// the rows' locks in this order, so two batches never deadlock.
func sortOps(batch []*op) []*op {
	out := slices.Clone(batch)
	slices.SortStableFunc(out, func(a, b *op) int {
		if c := strings.Compare(a.row.Subject, b.row.Subject); c != 0 {
			return c
		}
		return strings.Compare(a.row.ID, b.row.ID)
	})
	return out
}
