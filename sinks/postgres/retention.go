package postgres

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/sinks/archive"
)

// pruner runs Prune a minute after Open and then every PruneEvery
// until Close.
func (s *Sink) pruner() {
	archive.Pruner{Stop: s.stop, Every: s.opts.PruneEvery, Retention: s.opts.Retention, Log: s.log, Prune: s.Prune}.Run()
}

// Prune deletes, archive.PruneBatch rows at a time, the events whose
// timestamp is older than the retention, and the sessions whose newest
// event is. One replica prunes at a time (an advisory lock): while
// another does, Prune returns at once, deleting nothing. It reports how
// many rows it deleted; without a retention it does nothing.
func (s *Sink) Prune(ctx context.Context) (events, sessions int64, err error) {
	if s.opts.Retention <= 0 {
		return 0, 0, nil
	}
	s.mu.Lock()
	pool := s.pool
	s.mu.Unlock()
	if pool == nil {
		return 0, 0, ErrClosed
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("prune: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, lockSpace, lockPrune).Scan(&locked); err != nil {
		return 0, 0, fmt.Errorf("prune: %w", err)
	}
	if !locked {
		return 0, 0, nil // another replica prunes
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, $2)`, lockSpace, lockPrune)
	cutoff := s.opts.Now().Add(-s.opts.Retention)
	for _, p := range []struct {
		n *int64
		q string
	}{
		{&events, `DELETE FROM events WHERE id IN (SELECT id FROM events WHERE timestamp < $1 LIMIT $2)`},
		{&sessions, `DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE last_event_at < $1 LIMIT $2)`},
	} {
		n, err := archive.DeleteInBatches(func() (int64, error) {
			tag, err := conn.Exec(ctx, p.q, cutoff, archive.PruneBatch)
			return tag.RowsAffected(), err
		})
		*p.n = n
		if err != nil {
			return events, sessions, fmt.Errorf("prune: %w", redact(err, s.cfg))
		}
	}
	return events, sessions, nil
}
