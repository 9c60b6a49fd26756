package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/queue"
)

// Accept stores the event and one pending delivery per target in one
// transaction. An event whose source and dedup key were stored within
// the dedup window is a duplicate: nothing is written and the original
// id is returned.
func (s *Store) Accept(ctx context.Context, in queue.Incoming) (queue.Accepted, error) {
	ev := in.Event
	data := []byte(ev.Data)
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("null")
	}
	occurred, received := queue.FormatTime(ev.Timestamp), queue.FormatTime(ev.ReceivedAt)
	dedup := ev.DedupKey
	if dedup == "" {
		dedup = "id:" + ev.ID
	}
	var reqHeader string
	var reqBody []byte
	stored, dataOff := data, -1
	if r := ev.Request; r != nil {
		reqHeader, reqBody = r.Header, r.Body
		if len(data) >= minDataInBody {
			if dataOff = bytes.Index(r.Body, data); dataOff >= 0 {
				stored = []byte{} // in the body: stored once
			}
		}
	}
	now := s.now().UnixMilli()
	receivedMS := ev.ReceivedAt.UnixMilli()
	// Cached before it is written: its deliveries can be leased from
	// the moment the commit is visible, before the fsync answers this
	// call, and the lease should find the event here. A new event's id
	// is its own, so nothing else can read the entry before then.
	cacheable := len(in.Targets) > 0
	if cacheable {
		cached := ev
		if ev.Request != nil { // sinks never read it: keep it out of memory
			c := *ev
			c.Request = nil
			cached = &c
		}
		s.events.put(cached, len(data)+eventOverhead)
	}
	// The deliveries' ids are drawn once: a batch that fails runs this
	// write again alone. Those of unordered sinks wait in the fresh list
	// (fresh.go) until the write returns.
	ids := make([]string, len(in.Targets))
	fresh := make([]*freshEntry, len(in.Targets))
	s.leases.mu.Lock()
	for i, t := range in.Targets {
		ids[i] = event.NewID("dlv_", ev.ReceivedAt)
		if !t.Ordered {
			created := time.UnixMilli(now)
			fresh[i] = s.leases.addFresh(queue.Delivery{ID: ids[i], EventID: ev.ID, Sink: t.Sink, Routes: t.Routes,
				Subject: ev.Subject, Attempt: 1, CreatedAt: created, Since: created})
		}
	}
	s.leases.mu.Unlock()
	var res queue.Accepted
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) ([]sinkDelta, error) {
		res = queue.Accepted{}
		insert := func() (bool, error) {
			r, err := s.exec(ctx, tx, sqlInsertEvent, ev.ID, ev.Source, dedup, ev.EventType, ev.Subject, receivedMS,
				occurred, received, ev.AgentID, ev.AgentName, ev.ExternalID, stored, reqHeader, reqBody, dataOff, len(data))
			if err != nil {
				return false, fmt.Errorf("insert event: %w", err)
			}
			n, err := r.RowsAffected()
			return n == 1, err
		}
		inserted, err := insert()
		if err != nil {
			return nil, err
		}
		if !inserted {
			var firstAt int64
			if err := s.queryRow(ctx, tx, sqlFindDuplicate, ev.Source, dedup).Scan(&res.EventID, &firstAt); err != nil {
				return nil, fmt.Errorf("find duplicate: %w", err)
			}
			if in.DedupWindow <= 0 || receivedMS-firstAt < in.DedupWindow.Milliseconds() {
				res.Duplicate = true
				return nil, nil
			}
			// The first event is outside the window: it gives up the key
			// (it stays stored until pruned) and this one is new.
			if _, err := s.exec(ctx, tx, sqlExpireKey, res.EventID); err != nil {
				return nil, fmt.Errorf("expire dedup key: %w", err)
			}
			if inserted, err = insert(); err != nil {
				return nil, err
			} else if !inserted {
				return nil, fmt.Errorf("insert event %s: dedup key still taken", ev.ID)
			}
		}
		res.EventID = ev.ID
		deltas := make([]sinkDelta, len(in.Targets))
		for i, t := range in.Targets {
			r, err := s.exec(ctx, tx, sqlInsertDelivery,
				ids[i], ev.ID, t.Sink, strings.Join(t.Routes, ","), ev.Subject, now, now, now)
			if err != nil {
				return nil, fmt.Errorf("insert delivery: %w", err)
			}
			if fresh[i] != nil {
				seq, err := r.LastInsertId()
				if err != nil {
					return nil, fmt.Errorf("insert delivery: %w", err)
				}
				s.leases.mu.Lock()
				fresh[i].seq = seq
				s.leases.mu.Unlock()
			}
			res.Deliveries = append(res.Deliveries, ids[i])
			deltas[i] = sinkDelta{t.Sink, 1}
		}
		return deltas, nil
	})
	s.leases.mu.Lock()
	for i, e := range fresh {
		switch {
		case e == nil:
		case err != nil || res.Duplicate:
			s.leases.dropFresh(in.Targets[i].Sink, ids[i])
		default:
			e.ready = true
		}
	}
	s.leases.mu.Unlock()
	if cacheable && (err != nil || res.Duplicate) {
		s.events.remove(ev.ID)
	}
	if err != nil {
		return queue.Accepted{}, err
	}
	return res, nil
}

// minDataInBody is the smallest data worth finding in the body rather
// than storing twice.
const minDataInBody = 64

const (
	sqlInsertEvent = `INSERT INTO events (id, source, dedup_key, event_type, subject, received_at,
			occurred_at, received, agent_id, agent_name, external_id, data, request_header, request_body, data_off, data_len, event)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, X'') ON CONFLICT (source, dedup_key) DO NOTHING`
	sqlFindDuplicate  = `SELECT id, received_at FROM events WHERE source = ? AND dedup_key = ?`
	sqlExpireKey      = `UPDATE events SET dedup_key = 'expired:' || id WHERE id = ?`
	sqlInsertDelivery = `INSERT INTO deliveries (id, event_id, sink, routes, subject, state, created_at, next_at, updated_at)
		VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)`
)
