package sqlite

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

// Prune deletes, in small transactions, the events whose timestamp is
// older than the retention, and the sessions whose newest event is.
// It reports how many rows it deleted; without a retention it does
// nothing.
func (s *Sink) Prune(ctx context.Context) (events, sessions int64, err error) {
	if s.opts.Retention <= 0 {
		return 0, 0, nil
	}
	s.mu.Lock()
	db := s.db
	s.mu.Unlock()
	if db == nil {
		return 0, 0, ErrClosed
	}
	cutoff := s.opts.Now().Add(-s.opts.Retention).UTC().Format(TimeFormat)
	for _, p := range []struct {
		n *int64
		q string
	}{
		{&events, `DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE timestamp < ? LIMIT ?)`},
		{&sessions, `DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE last_event_at < ? LIMIT ?)`},
	} {
		n, err := archive.DeleteInBatches(func() (int64, error) {
			res, err := db.ExecContext(ctx, p.q, cutoff, archive.PruneBatch)
			if err != nil {
				return 0, err
			}
			n, _ := res.RowsAffected()
			return n, nil
		})
		*p.n = n
		if err != nil {
			return events, sessions, fmt.Errorf("prune: %w", err)
		}
	}
	return events, sessions, nil
}
