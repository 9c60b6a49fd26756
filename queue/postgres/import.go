package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard/switchyard/queue"
)

// Import stores records copied from another store (switchyard storage
// copy) in one transaction, keeping their ids, states and times. What
// is there already (an event by id or by dedup key, a delivery by id,
// an attempt) is left as it is, so that a second copy adds nothing. It
// returns how many events and deliveries it added, and announces the
// sinks with work.
func (s *Store) Import(ctx context.Context, recs []queue.Record) (events, deliveries int64, err error) {
	var sinks []string
	err = s.inTx(ctx, func(tx pgx.Tx) ([]sinkDelta, error) {
		events, deliveries, sinks = 0, 0, nil
		var deltas []sinkDelta
		b := &pgx.Batch{}
		for _, r := range recs {
			a := newAcceptWrite(queue.Incoming{Event: r.Event}, r.Event.ReceivedAt)
			b.Queue(`INSERT INTO queue_events (id, source, dedup_key, event_type, subject, received_at, occurred, received,
					agent_id, agent_name, data, exact, external_id, search_text, request_header, request_body)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT DO NOTHING`,
				append(a.args[:12:12], a.args[16:20]...)...).Exec(func(ct pgconn.CommandTag) error {
				events += ct.RowsAffected()
				return nil
			})
			for _, d := range r.Deliveries {
				var replayed *time.Time
				if !d.ReplayedAt.IsZero() {
					at := ms(d.ReplayedAt)
					replayed = &at
				}
				waiting := d.State == queue.StatePending || d.State == queue.StateFailed
				b.Queue(`INSERT INTO queue_deliveries (id, event_id, sink, routes, subject, state, attempts, replays, created_at,
						next_at, updated_at, replayed_at, last_error, last_status, took_ms)
					SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15
					WHERE EXISTS (SELECT 1 FROM queue_events WHERE id = $2)
					ON CONFLICT DO NOTHING`,
					d.ID, d.EventID, d.Sink, strings.Join(d.Routes, ","), cleaned(d.Subject), d.State, d.Attempts, d.Replays,
					ms(d.CreatedAt), ms(d.NextAt), ms(d.UpdatedAt), replayed, cleaned(d.LastError), d.LastStatus, d.Took.Milliseconds(),
				).Exec(func(ct pgconn.CommandTag) error {
					deliveries += ct.RowsAffected()
					if ct.RowsAffected() > 0 && waiting {
						deltas = append(deltas, sinkDelta{d.Sink, 1})
						sinks = append(sinks, d.Sink)
					}
					return nil
				})
				for _, h := range d.History {
					b.Queue(`INSERT INTO queue_attempts (delivery_id, replays, attempt, at, took_ms, state, status, error)
						SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM queue_deliveries WHERE id = $1)
						ON CONFLICT DO NOTHING`,
						d.ID, h.Replays, h.Attempt, ms(h.At), h.Took.Milliseconds(), h.State, h.Status, cleaned(h.Error))
				}
			}
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return nil, err
		}
		return deltas, nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("import: %w", err)
	}
	s.announce(sinks...)
	return events, deliveries, nil
}
