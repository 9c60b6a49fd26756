package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/queue"
)

// exportPage is how many events Export reads at a time.
const exportPage = 500

// Export calls fn with every stored event, oldest first, and those of
// its deliveries not delivered yet (pending, failed and dead), with
// their history: what `switchyard storage copy` moves to PostgreSQL.
// Every event is exported, delivered or not, so that its dedup key
// keeps answering a sender's retry as a duplicate.
func (s *Store) Export(ctx context.Context, fn func(queue.Record) error) error {
	var after int64
	for {
		rows, err := s.rdb.QueryContext(ctx, `SELECT `+storedEventColumns+`, e.rowid, e.dedup_key, e.request_header, e.request_body
			FROM events e WHERE e.rowid > ? ORDER BY e.rowid LIMIT ?`, after, exportPage)
		if err != nil {
			return fmt.Errorf("export events: %w", err)
		}
		var recs []queue.Record
		var ids []any
		for rows.Next() {
			var dedup, header string
			var body []byte
			ev, err := scanStoredEvent(rows, &after, &dedup, &header, &body)
			if err != nil {
				rows.Close()
				return fmt.Errorf("export events: %w", err)
			}
			ev.DedupKey = dedup
			if body != nil || header != "" {
				ev.Request = &event.Request{Body: body, Header: header}
			}
			recs = append(recs, queue.Record{Event: ev})
			ids = append(ids, ev.ID)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("export events: %w", err)
		}
		if len(recs) == 0 {
			return nil
		}
		if err := s.exportDeliveries(ctx, recs, ids); err != nil {
			return err
		}
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
}

func (s *Store) exportDeliveries(ctx context.Context, recs []queue.Record, ids []any) error {
	marks := "?" + strings.Repeat(", ?", len(ids)-1)
	rows, err := s.rdb.QueryContext(ctx, `SELECT d.id, d.event_id, d.sink, d.subject, d.routes, d.state, d.attempts, d.replays,
			d.last_error, d.last_status, d.created_at, d.updated_at, d.next_at, d.replayed_at, d.took_ms
		FROM deliveries d WHERE d.event_id IN (`+marks+`) AND d.state != 'delivered' ORDER BY d.rowid`, ids...)
	if err != nil {
		return fmt.Errorf("export deliveries: %w", err)
	}
	byEvent := map[string]int{}
	for i, r := range recs {
		byEvent[r.Event.ID] = i
	}
	byID := map[string][2]int{}
	var dids []any
	for rows.Next() {
		var (
			d                                queue.RecordDelivery
			routes                           string
			created, updated, next, replayed int64
			took                             int64
		)
		if err := rows.Scan(&d.ID, &d.EventID, &d.Sink, &d.Subject, &routes, &d.State, &d.Attempts, &d.Replays,
			&d.LastError, &d.LastStatus, &created, &updated, &next, &replayed, &took); err != nil {
			rows.Close()
			return fmt.Errorf("export deliveries: %w", err)
		}
		d.Routes = strings.Split(routes, ",")
		d.CreatedAt, d.UpdatedAt, d.NextAt = time.UnixMilli(created), time.UnixMilli(updated), time.UnixMilli(next)
		if replayed > 0 {
			d.ReplayedAt = time.UnixMilli(replayed)
		}
		d.Took = time.Duration(took) * time.Millisecond
		i := byEvent[d.EventID]
		d.EventType, d.Source = recs[i].Event.EventType, recs[i].Event.Source
		byID[d.ID] = [2]int{i, len(recs[i].Deliveries)}
		recs[i].Deliveries = append(recs[i].Deliveries, d)
		dids = append(dids, d.ID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("export deliveries: %w", err)
	}
	if len(dids) == 0 {
		return nil
	}
	rows, err = s.rdb.QueryContext(ctx, `SELECT delivery_id, replays, attempt, at, took_ms, state, status, error FROM attempts
		WHERE delivery_id IN (?`+strings.Repeat(", ?", len(dids)-1)+`) ORDER BY delivery_id, replays, attempt`, dids...)
	if err != nil {
		return fmt.Errorf("export attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a queue.AttemptInfo
		var id string
		var at, took int64
		if err := rows.Scan(&id, &a.Replays, &a.Attempt, &at, &took, &a.State, &a.Status, &a.Error); err != nil {
			return fmt.Errorf("export attempts: %w", err)
		}
		a.At, a.Took = time.UnixMilli(at), time.Duration(took)*time.Millisecond
		at2 := byID[id]
		d := &recs[at2[0]].Deliveries[at2[1]]
		d.History = append(d.History, a)
	}
	return rows.Err()
}
