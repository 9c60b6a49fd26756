package postgres

import (
	"context"
	"fmt"
	"time"
)

// pruneBatch is how many rows one pruning statement deletes: small, so
// the writers never wait long for it.
const pruneBatch = 500

// pruner runs Prune a minute after Open and then every PruneEvery
// until Close.
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

// Prune deletes, 500 rows at a time, the events whose timestamp is
// older than the retention, and the sessions whose newest event is. One
// replica prunes at a time (an advisory lock): while another does,
// Prune returns at once, deleting nothing. It reports how many rows it
// deleted; without a retention it does nothing.
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
		for {
			tag, err := conn.Exec(ctx, p.q, cutoff, pruneBatch)
			if err != nil {
				return events, sessions, fmt.Errorf("prune: %w", redact(err, s.cfg))
			}
			*p.n += tag.RowsAffected()
			if tag.RowsAffected() < pruneBatch {
				break
			}
		}
	}
	return events, sessions, nil
}
