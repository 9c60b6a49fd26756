package sqlite

import (
	"bytes"
	"encoding/json"

	"github.com/switchyard/switchyard/event"
)

// Rows is what archiving an event writes: its events row and, for a
// session event, the sessions columns it sets.
type Rows struct {
	Events Row `json:"events"`
	// Sessions are the columns the event sets on a session not yet in
	// the archive; on an existing session, values from newer events
	// win (see sessionRow.merge).
	Sessions Row `json:"sessions,omitempty"`
}

// Row is a table row: columns in table order.
type Row []Column

// Column is one column of a row. JSON columns (data, smart_fields)
// hold a json.RawMessage.
type Column struct {
	Name  string
	Value any
}

// MarshalJSON writes the row as an object with its columns in order,
// text as it is stored (no HTML escaping).
func (r Row) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	b.WriteByte('{')
	for i, c := range r {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := enc.Encode(c.Name); err != nil {
			return nil, err
		}
		b.Truncate(b.Len() - 1) // Encode's newline
		b.WriteByte(':')
		if err := enc.Encode(c.Value); err != nil {
			return nil, err
		}
		b.Truncate(b.Len() - 1)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Preview returns the rows Send would write for ev, without opening
// the archive: a *Rows.
func (s *Sink) Preview(ev *event.Event) (any, error) {
	r := s.prepareRow(ev)
	out := &Rows{Events: Row{
		{"id", r.id}, {"source", r.source}, {"event_type", r.eventType}, {"subject", r.subject},
		{"agent_id", r.agentID}, {"agent_name", r.agentName},
		{"timestamp", r.timestamp}, {"received_at", r.receivedAt}, {"data", jsonColumn(r.data)},
		{"external_id", r.externalID},
	}}
	if u := r.session; u != nil {
		row := &sessionRow{vals: make([]any, nBuiltin+len(s.columns)), versions: map[string]string{}}
		row.merge(u)
		out.Sessions = Row{{"session_id", u.sessionID}}
		for i, v := range row.vals {
			if v == nil {
				continue
			}
			var name string
			if i < nBuiltin {
				name = builtinColumns[i]
			} else {
				name = s.columns[i-nBuiltin].name
			}
			if i == cSmartFields {
				v = jsonColumn(v.(string))
			}
			out.Sessions = append(out.Sessions, Column{name, v})
		}
	}
	return out, nil
}

// jsonColumn shows a JSON text column as JSON, when it is.
func jsonColumn(s string) any {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	return s
}
