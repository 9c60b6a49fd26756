package sqlite

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/queue"
)

// eventOverhead is what an event costs the cache beyond its data.
const eventOverhead = 256

// storedEventColumns are what scanStoredEvent reads.
const storedEventColumns = `e.id, e.source, e.event_type, e.subject, e.occurred_at, e.received, e.agent_id, e.agent_name, e.external_id, ` + dataColumn + `, e.event`

// dataColumn is an event's data: in its own column, or (data_off ≥ 0)
// the part of the request body the sender wrote it in.
const dataColumn = `CASE WHEN e.data_off >= 0 THEN substr(e.request_body, e.data_off + 1, e.data_len) ELSE e.data END`

// scanStoredEvent reads an event from storedEventColumns: from its
// columns, or for a row stored by schema v2 (data NULL) from its JSON.
// more are scanned after storedEventColumns.
func scanStoredEvent(row interface{ Scan(...any) error }, more ...any) (*event.Event, error) {
	var (
		ev                 event.Event
		occurred, received string
		data, legacy       []byte
	)
	if err := row.Scan(append([]any{&ev.ID, &ev.Source, &ev.EventType, &ev.Subject, &occurred, &received,
		&ev.AgentID, &ev.AgentName, &ev.ExternalID, &data, &legacy}, more...)...); err != nil {
		return nil, err
	}
	if data == nil {
		old, err := decodeEvent(legacy)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", ev.ID, err)
		}
		return old, nil
	}
	ev.Data = data
	var err1, err2 error
	ev.Timestamp, err1 = queue.ParseTime(occurred)
	ev.ReceivedAt, err2 = queue.ParseTime(received)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("event %s: %w", ev.ID, err)
	}
	return &ev, nil
}

// decodeEvent reads an event stored by schema v2: the whole event as
// JSON.
func decodeEvent(body []byte) (*event.Event, error) {
	var ev event.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, err
	}
	return &ev, nil
}
