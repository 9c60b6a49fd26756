package postgres

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/queue"
)

// Accept implements queue.Store. The event and its deliveries are one
// statement in a transaction shared with concurrent writes. Two replicas
// storing the same sender event at once meet on the unique dedup key:
// the second waits for the first to commit, finds its event, and
// answers with its id.
func (s *Store) Accept(ctx context.Context, in queue.Incoming) (queue.Accepted, error) {
	a := newAcceptWrite(in, s.now())
	if err := s.submit(ctx, a); err != nil {
		return queue.Accepted{}, err
	}
	if !a.res.Duplicate {
		s.announce(a.sinks...)
	}
	return a.res, nil
}

// acceptWrite is an Accept's part of a batch.
type acceptWrite struct {
	ev     *event.Event
	window time.Duration
	dedup  string
	args   []any // of sqlAccept
	ids    []string
	sinks  []string

	inserted bool
	res      queue.Accepted
}

func newAcceptWrite(in queue.Incoming, now time.Time) *acceptWrite {
	ev := in.Event
	data := []byte(ev.Data)
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("null")
	}
	dedup := ev.DedupKey
	if dedup == "" {
		dedup = "id:" + ev.ID
	}
	if !clean(dedup) {
		// Unique as it was: a key that cannot be text is stored as hex.
		dedup = "hex:" + hex.EncodeToString([]byte(dedup))
	}
	// Text columns cannot hold a NUL byte or invalid UTF-8: such an
	// event keeps its exact form as JSON, and its columns a cleaned copy.
	var exact []byte
	fields := []string{ev.ID, ev.Source, ev.EventType, ev.Subject, ev.AgentID, ev.AgentName, ev.ExternalID}
	for _, f := range fields {
		if !clean(f) {
			exact, _ = ev.JSON()
			break
		}
	}
	var reqHeader string
	var reqBody []byte
	if r := ev.Request; r != nil {
		reqHeader, reqBody = cleaned(r.Header), r.Body
		if reqBody == nil {
			reqBody = []byte{}
		}
	}
	a := &acceptWrite{ev: ev, window: in.DedupWindow, dedup: dedup}
	routes := make([]string, len(in.Targets))
	for i, t := range in.Targets {
		a.ids = append(a.ids, event.NewID("dlv_", ev.ReceivedAt))
		a.sinks = append(a.sinks, t.Sink)
		routes[i] = strings.Join(t.Routes, ",")
	}
	created := ms(now)
	a.args = []any{
		cleaned(ev.ID), cleaned(ev.Source), dedup, cleaned(ev.EventType), cleaned(ev.Subject), ms(ev.ReceivedAt),
		queue.FormatTime(ev.Timestamp), queue.FormatTime(ev.ReceivedAt), cleaned(ev.AgentID), cleaned(ev.AgentName), data, exact,
		created, a.ids, a.sinks, routes, cleaned(ev.ExternalID), searchText(data), reqHeader, reqBody,
	}
	return a
}

// textFields are the data fields the console's text search reads
// (queue.TextFields), kept raw: a number is searched as written.
type textFields struct {
	ConversationTitle json.RawMessage `json:"conversationTitle"`
	Title             json.RawMessage `json:"title"`
	Summary           json.RawMessage `json:"summary"`
}

// searchText is what EventFilter.Text searches in an event: its data's
// title and summary, computed once as the event is stored.
func searchText(data []byte) string {
	found := false
	for _, f := range queue.TextFields {
		found = found || bytes.Contains(data, []byte(`"`+f+`"`))
	}
	if !found {
		return ""
	}
	var tf textFields
	if json.Unmarshal(data, &tf) != nil {
		return ""
	}
	var parts []string
	for _, raw := range []json.RawMessage{tf.ConversationTitle, tf.Title, tf.Summary} {
		var s string
		switch {
		case len(raw) == 0 || string(raw) == "null":
			continue
		case raw[0] == '"' && json.Unmarshal(raw, &s) == nil:
		default:
			s = string(raw)
		}
		parts = append(parts, s)
	}
	return cleaned(strings.Join(parts, " "))
}

// sqlAccept stores an event and its deliveries, unless the event's
// dedup key is taken; it returns whether it stored the event.
const sqlAccept = `WITH ev AS (
	INSERT INTO queue_events (id, source, dedup_key, event_type, subject, received_at, occurred, received, agent_id, agent_name, data, exact,
		external_id, search_text, request_header, request_body)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $17, $18, $19, $20)
	ON CONFLICT (source, dedup_key) DO NOTHING
	RETURNING id
), dl AS (
	INSERT INTO queue_deliveries (id, event_id, sink, routes, subject, state, created_at, next_at, updated_at)
	SELECT t.id, ev.id, t.sink, t.routes, $5, 'pending', $13, $13, $13
	FROM ev, unnest($14::text[], $15::text[], $16::text[]) WITH ORDINALITY AS t(id, sink, routes, n)
	ORDER BY t.n
)
SELECT count(*) FROM ev`

func (a *acceptWrite) key() string { return "e" + a.ev.Source + "\x00" + a.dedup }

func (a *acceptWrite) queue(b *pgx.Batch) {
	a.inserted, a.res = false, queue.Accepted{}
	b.Queue(sqlAccept, a.args...).QueryRow(func(row pgx.Row) error {
		var n int
		err := row.Scan(&n)
		a.inserted = n == 1
		return err
	})
}

func (a *acceptWrite) finish(ctx context.Context, tx pgx.Tx) ([]sinkDelta, error) {
	// The key is taken: by an event within the dedup window (a
	// duplicate), or by an older one, which gives the key up (it stays
	// stored until pruned) so that this event is new.
	for try := 0; !a.inserted; try++ {
		if try == 3 {
			return nil, fmt.Errorf("insert event %s: dedup key still taken", a.ev.ID)
		}
		var first string
		var firstAt time.Time
		err := tx.QueryRow(ctx, `SELECT id, received_at FROM queue_events WHERE source = $1 AND dedup_key = $2`,
			a.args[1], a.dedup).Scan(&first, &firstAt)
		switch {
		case isNoRows(err):
			// Pruned meanwhile: store the event after all.
		case err != nil:
			return nil, fmt.Errorf("find duplicate: %w", err)
		case a.window <= 0 || ms(a.ev.ReceivedAt).Sub(firstAt) < a.window:
			a.res = queue.Accepted{EventID: first, Duplicate: true}
			return nil, nil
		default:
			if _, err := tx.Exec(ctx, `UPDATE queue_events SET dedup_key = 'expired:' || id WHERE id = $1`, first); err != nil {
				return nil, fmt.Errorf("expire dedup key: %w", err)
			}
		}
		var n int
		if err := tx.QueryRow(ctx, sqlAccept, a.args...).Scan(&n); err != nil {
			return nil, fmt.Errorf("insert event: %w", err)
		}
		a.inserted = n == 1
	}
	a.res = queue.Accepted{EventID: a.ev.ID, Deliveries: a.ids}
	deltas := make([]sinkDelta, len(a.sinks))
	for i, sink := range a.sinks {
		deltas[i] = sinkDelta{sink, 1}
	}
	return deltas, nil
}

// ms truncates t to the millisecond: what the store keeps of its times.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond) }

// clean reports whether s can be stored as PostgreSQL text.
func clean(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// cleaned is s as PostgreSQL text can hold it.
func cleaned(s string) string {
	if clean(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
