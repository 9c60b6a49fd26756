package archive

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
	// win (see SessionRow.Merge).
	Sessions Row `json:"sessions,omitempty"`
}

// Row is a table row: columns in table order.
type Row []Field

// Field is one column of a row. JSON columns (data, smart_fields) hold
// a json.RawMessage.
type Field struct {
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

// Preview returns the rows archiving ev would write to an archive
// without its session: a *Rows.
func (m *Mapper) Preview(ev *event.Event) *Rows {
	r := m.Row(ev)
	out := &Rows{Events: Row{
		{"id", r.ID}, {"source", r.Source}, {"event_type", r.EventType}, {"subject", r.Subject},
		{"agent_id", r.AgentID}, {"agent_name", r.AgentName},
		{"timestamp", r.Timestamp}, {"received_at", r.ReceivedAt}, {"data", jsonColumn(r.Data)},
		{"external_id", r.ExternalID},
	}}
	if u := r.Session; u != nil {
		row := NewSessionRow(NBuiltin + len(m.columns))
		row.Merge(u)
		out.Sessions = Row{{"session_id", u.SessionID}}
		for i, v := range row.Vals {
			if v == nil {
				continue
			}
			var name string
			if i < NBuiltin {
				name = builtinColumns[i]
			} else {
				name = m.columns[i-NBuiltin].Name
			}
			if i == CSmartFields {
				v = jsonColumn(v.(string))
			}
			out.Sessions = append(out.Sessions, Field{name, v})
		}
	}
	return out
}

// jsonColumn shows a JSON text column as JSON, when it is.
func jsonColumn(s string) any {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	return s
}
