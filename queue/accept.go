package queue

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
)

// Target is a sink an accepted event must reach.
type Target struct {
	Sink   string
	Routes []string
}

// Incoming is an event to accept.
type Incoming struct {
	Event   *event.Event
	Targets []Target
	// DedupWindow is how long an event's dedup key makes a later event
	// with the same key a duplicate; zero is for as long as the event is
	// stored.
	DedupWindow time.Duration
}

// Accepted is the outcome of Accept.
type Accepted struct {
	// EventID is the stored event's id: the incoming event's, or for a
	// duplicate the id of the event first stored with the same key.
	EventID   string
	Duplicate bool
	// Deliveries are the ids of the deliveries created, one per target.
	Deliveries []string
}

// Accept stores the event and one pending delivery per target in one
// transaction. An event whose source and dedup key were stored within
// the dedup window is a duplicate: nothing is written and the original
// id is returned.
func (s *Store) Accept(ctx context.Context, in Incoming) (Accepted, error) {
	ev := in.Event
	body, err := ev.JSON()
	if err != nil {
		return Accepted{}, fmt.Errorf("encode event: %w", err)
	}
	dedup := ev.DedupKey
	if dedup == "" {
		dedup = "id:" + ev.ID
	}
	now := s.now().UnixMilli()
	received := ev.ReceivedAt.UnixMilli()
	var res Accepted
	err = s.write(ctx, func(tx *sql.Tx) (int64, error) {
		res = Accepted{}
		if in.DedupWindow > 0 {
			// An older event with this key is outside the window: it no
			// longer claims the key (it stays stored until pruned).
			if _, err := tx.ExecContext(ctx, `UPDATE events SET dedup_key = 'expired:' || id
				WHERE source = ? AND dedup_key = ? AND received_at < ?`,
				ev.Source, dedup, received-in.DedupWindow.Milliseconds()); err != nil {
				return 0, fmt.Errorf("expire dedup key: %w", err)
			}
		}
		r, err := tx.ExecContext(ctx, `INSERT INTO events (id, source, dedup_key, event_type, subject, received_at, event)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, dedup_key) DO NOTHING`,
			ev.ID, ev.Source, dedup, ev.EventType, ev.Subject, received, body)
		if err != nil {
			return 0, fmt.Errorf("insert event: %w", err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			res.Duplicate = true
			return 0, tx.QueryRowContext(ctx, `SELECT id FROM events WHERE source = ? AND dedup_key = ?`,
				ev.Source, dedup).Scan(&res.EventID)
		}
		res.EventID = ev.ID
		for _, t := range in.Targets {
			id := event.NewID("dlv_", ev.ReceivedAt)
			if _, err := tx.ExecContext(ctx, `INSERT INTO deliveries
				(id, event_id, sink, routes, subject, state, created_at, next_at, updated_at)
				VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)`,
				id, ev.ID, t.Sink, strings.Join(t.Routes, ","), ev.Subject, now, now, now); err != nil {
				return 0, fmt.Errorf("insert delivery: %w", err)
			}
			res.Deliveries = append(res.Deliveries, id)
		}
		return int64(len(in.Targets)), nil
	})
	if err != nil {
		return Accepted{}, err
	}
	return res, nil
}
