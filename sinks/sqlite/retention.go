package sqlite

import (
	"context"
	"fmt"
	"time"
)

// pruneBatch is how many rows one pruning transaction deletes: small, so
// the writer never waits long for it.
const pruneBatch = 500

// pruner runs Prune soon after Open and then every PruneEvery until
// Close.
func (s *Sink) pruner() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if events, sessions, err := s.Prune(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("prune archive", "err", err)
		} else if events+sessions > 0 {
			s.log.Info("pruned archive", "events", events, "sessions", sessions, "retention", s.opts.Retention)
		}
		t.Reset(s.opts.PruneEvery)
	}
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
		for {
			res, err := db.ExecContext(ctx, p.q, cutoff, pruneBatch)
			if err != nil {
				return events, sessions, fmt.Errorf("prune: %w", err)
			}
			n, _ := res.RowsAffected()
			*p.n += n
			if n < pruneBatch {
				break
			}
		}
	}
	return events, sessions, nil
}
