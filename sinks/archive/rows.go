package archive

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
)

// Columns of sessions filled from events, in table order, between
// session_id and the bookkeeping. Configured columns follow them.
const (
	CSource = iota
	CAgentID
	CAgentName
	CConversationID
	CChannelID
	CChannelName
	CTitle
	CCreatedAt
	COpenedAt
	CClosedAt
	CForwardedAt
	CForwardType
	CForwardedToID
	CForwardedToName
	CStage
	CPreviousStage
	CStageAt
	CSummary
	CSummarizedAt
	CSmartFields
	CLastHumanActivityAt
	CFirstEventAt
	CLastEventAt
	CEventCount
	NBuiltin
)

var builtinColumns = [NBuiltin]string{
	"source", "agent_id", "agent_name", "conversation_id", "channel_id", "channel_name",
	"title", "created_at", "opened_at", "closed_at",
	"forwarded_at", "forward_type", "forwarded_to_id", "forwarded_to_name",
	"stage", "previous_stage", "stage_at",
	"summary", "summarized_at", "smart_fields", "last_human_activity_at",
	"first_event_at", "last_event_at", "event_count",
}

// BuiltinColumn is the name of sessions column i (CSource…CEventCount).
func BuiltinColumn(i int) string { return builtinColumns[i] }

// Kind is what a built-in sessions column holds.
type Kind int

const (
	KindText  Kind = iota
	KindTime       // a time in TimeFormat; other text when a sender sent other text
	KindJSON       // JSON text
	KindCount      // an int64
)

// BuiltinKind is what sessions column i holds.
func BuiltinKind(i int) Kind {
	switch i {
	case CCreatedAt, COpenedAt, CClosedAt, CForwardedAt, CStageAt, CSummarizedAt,
		CLastHumanActivityAt, CFirstEventAt, CLastEventAt:
		return KindTime
	case CSmartFields:
		return KindJSON
	case CEventCount:
		return KindCount
	}
	return KindText
}

// EventRow is an event ready for a writer: its events row and, for a
// session event, what it says about the session.
type EventRow struct {
	ID, Source, EventType, Subject, AgentID, AgentName string
	// Timestamp and ReceivedAt are in TimeFormat.
	Timestamp, ReceivedAt string
	// Data is the data object's JSON, "{}" when there is none.
	Data string
	// ExternalID is the id the platform gave the event, "" when none.
	ExternalID string
	Session    *SessionUpdate
}

// SessionUpdate is what one event says about its session: facts, each
// a group of columns with the version that orders it against other
// events' facts about the same group.
type SessionUpdate struct {
	SessionID string
	Timestamp string
	lastHuman any
	facts     []fact
}

// fact sets the columns of one group. Versions compare as text: the
// group's own time (forwardedAt for the forward group, summarizedAt for
// the analysis, …; the event's timestamp for the rest), then the event
// id, so that every order of the same events gives the same row.
type fact struct {
	group   string
	version string
	sets    []set
}

type set struct {
	col int
	val any
}

// SessionRow is a sessions row being merged: the values of its
// built-in then configured columns (nil for NULL), and which event
// each group of columns came from (the _versions column, as JSON).
type SessionRow struct {
	Vals     []any
	Versions map[string]string
}

// NewSessionRow is an empty row with ncols columns.
func NewSessionRow(ncols int) *SessionRow {
	return &SessionRow{Vals: make([]any, ncols), Versions: map[string]string{}}
}

// Merge applies u to r. For each fact: if it is newer than the version
// r holds for its group, its non-nil values replace r's; if older, they
// fill only r's NULLs. So a late event never overwrites newer data,
// and a field a newer event lacks is kept. Duplicates are filtered out
// before (by the events row), so Merge is called once per event.
func (r *SessionRow) Merge(u *SessionUpdate) {
	for _, f := range u.facts {
		cur, ok := r.Versions[f.group]
		newer := !ok || f.version > cur
		for _, s := range f.sets {
			if s.val != nil && (newer || r.Vals[s.col] == nil) {
				r.Vals[s.col] = s.val
			}
		}
		if newer {
			r.Versions[f.group] = f.version
		}
	}
	if u.lastHuman != nil {
		if cur, ok := r.Vals[CLastHumanActivityAt].(string); !ok || u.lastHuman.(string) > cur {
			r.Vals[CLastHumanActivityAt] = u.lastHuman
		}
	}
	if cur, ok := r.Vals[CFirstEventAt].(string); !ok || u.Timestamp < cur {
		r.Vals[CFirstEventAt] = u.Timestamp
	}
	if cur, ok := r.Vals[CLastEventAt].(string); !ok || u.Timestamp > cur {
		r.Vals[CLastEventAt] = u.Timestamp
	}
	n, _ := r.Vals[CEventCount].(int64)
	r.Vals[CEventCount] = n + 1
}

// darwinData is the part of a Darwin session event's data the sessions
// table keeps.
type darwinData struct {
	ConversationID      jsonText        `json:"conversationId"`
	ChannelID           jsonText        `json:"channelId"`
	ChannelName         jsonText        `json:"channelName"`
	ConversationTitle   jsonText        `json:"conversationTitle"`
	CreatedAt           jsonText        `json:"createdAt"`
	ClosedAt            jsonText        `json:"closedAt"`
	ForwardedAt         jsonText        `json:"forwardedAt"`
	ForwardType         jsonText        `json:"forwardType"`
	ForwardedToID       jsonText        `json:"forwardedToId"`
	ForwardedToName     jsonText        `json:"forwardedToName"`
	Stage               jsonText        `json:"stage"`
	PreviousStage       jsonText        `json:"previousStage"`
	TransitionedAt      jsonText        `json:"transitionedAt"`
	Summary             jsonText        `json:"summary"`
	SummarizedAt        jsonText        `json:"summarizedAt"`
	SmartFields         json.RawMessage `json:"smartFields"`
	LastHumanActivityAt jsonText        `json:"lastHumanActivityAt"`
}

// jsonText is a JSON value as text: a string as is, a number as
// written, null or absent as nil, anything else as its JSON.
type jsonText struct{ v any }

func (t *jsonText) UnmarshalJSON(b []byte) error {
	switch {
	case bytes.Equal(b, []byte("null")):
		t.v = nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		t.v = s
	default:
		t.v = string(b)
	}
	return nil
}

// Mapper turns events into rows: the work of a Send that needs no
// database. It is safe for concurrent use.
type Mapper struct {
	columns   []Column
	value     func(any) any
	providers map[string]string
	log       *slog.Logger
	warn      warnings
}

// MapperOptions configure a Mapper.
type MapperOptions struct {
	// Columns are the configured columns, sorted by ConfiguredColumns.
	Columns []Column
	// Value converts an expression's result to a column value;
	// ColumnValue when nil.
	Value func(any) any
	// Providers names each source's provider, by source name: the chat
	// inbox's and DocsSmith Demo2's events keep a sessions row per
	// conversation, as Darwin's do per session.
	Providers map[string]string
	// Logger gets problems with an event's data, once per distinct
	// error.
	Logger *slog.Logger
}

// NewMapper returns a mapper.
func NewMapper(o MapperOptions) *Mapper {
	if o.Value == nil {
		o.Value = ColumnValue
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Mapper{columns: o.Columns, value: o.Value, providers: o.Providers, log: o.Logger}
}

// Columns are the configured columns, in table order.
func (m *Mapper) Columns() []Column { return m.columns }

// Row turns an event into rows, evaluating configured columns.
func (m *Mapper) Row(ev *event.Event) *EventRow {
	data := string(bytes.TrimSpace(ev.Data))
	if data == "" || data == "null" {
		data = "{}"
	}
	r := &EventRow{
		ID: ev.ID, Source: ev.Source, EventType: ev.EventType, Subject: ev.Subject,
		AgentID: ev.AgentID, AgentName: ev.AgentName,
		Timestamp:  ev.Timestamp.UTC().Format(TimeFormat),
		ReceivedAt: ev.ReceivedAt.UTC().Format(TimeFormat),
		Data:       data,
		ExternalID: ev.ExternalID,
	}
	if ev.Subject == "" {
		return r
	}
	switch m.providers[ev.Source] {
	case "chat-inbox", "docssmith":
		r.Session = m.conversationUpdate(ev, r)
		return r
	}
	if !strings.HasPrefix(ev.EventType, "session.") {
		return r
	}
	var d darwinData
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		// The events row keeps what was sent; there is no session to derive.
		m.warn.once(m.log, "session", "cannot read a session event's data; archived in events only", "event_id", ev.ID, "err", err)
		return r
	}
	u := &SessionUpdate{SessionID: ev.Subject, Timestamp: r.Timestamp}
	tie := " " + ev.ID
	evVersion := r.Timestamp + tie
	u.facts = append(u.facts, fact{group: "info", version: evVersion, sets: []set{
		{CSource, nonEmpty(ev.Source)},
		{CAgentID, nonEmpty(ev.AgentID)},
		{CAgentName, nonEmpty(ev.AgentName)},
		{CConversationID, d.ConversationID.v},
		{CChannelID, d.ChannelID.v},
		{CChannelName, d.ChannelName.v},
		{CTitle, d.ConversationTitle.v},
		{CCreatedAt, timeText(d.CreatedAt.v)},
	}})
	if ev.EventType == "session.opened" {
		u.facts = append(u.facts, fact{group: "opened", version: evVersion, sets: []set{{COpenedAt, r.Timestamp}}})
	}
	if ev.EventType == "session.closed" || strings.HasPrefix(ev.EventType, "session.closed.") || d.ClosedAt.v != nil {
		at := orTime(d.ClosedAt.v, r.Timestamp)
		u.facts = append(u.facts, fact{group: "closed", version: at + tie, sets: []set{{CClosedAt, at}}})
	}
	forwardType := d.ForwardType.v
	if kind, ok := strings.CutPrefix(ev.EventType, "session.forwarded."); ok && forwardType == nil {
		forwardType = kind
	}
	if d.ForwardedAt.v != nil || forwardType != nil {
		at := orTime(d.ForwardedAt.v, r.Timestamp)
		u.facts = append(u.facts, fact{group: "forward", version: at + tie, sets: []set{
			{CForwardedAt, at},
			{CForwardType, forwardType},
			{CForwardedToID, d.ForwardedToID.v},
			{CForwardedToName, d.ForwardedToName.v},
		}})
	}
	if d.Stage.v != nil {
		at := orTime(d.TransitionedAt.v, r.Timestamp)
		u.facts = append(u.facts, fact{group: "stage", version: at + tie, sets: []set{
			{CStage, d.Stage.v},
			{CPreviousStage, d.PreviousStage.v},
			{CStageAt, at},
		}})
	}
	smart := bytes.TrimSpace(d.SmartFields)
	if d.Summary.v != nil || (len(smart) > 0 && !bytes.Equal(smart, []byte("null"))) {
		at := orTime(d.SummarizedAt.v, r.Timestamp)
		var sf any
		if len(smart) > 0 && !bytes.Equal(smart, []byte("null")) {
			sf = string(smart)
		}
		u.facts = append(u.facts, fact{group: "analysis", version: at + tie, sets: []set{
			{CSummary, d.Summary.v},
			{CSummarizedAt, at},
			{CSmartFields, sf},
		}})
	}
	if t := timeText(d.LastHumanActivityAt.v); t != nil {
		u.lastHuman = t
	}
	m.columnFacts(u, ev, evVersion)
	r.Session = u
	return r
}

// columnFacts adds the configured columns' values for ev to u.
func (m *Mapper) columnFacts(u *SessionUpdate, ev *event.Event, version string) {
	if len(m.columns) == 0 {
		return
	}
	env, err := ev.Env()
	if err != nil {
		return
	}
	for i, c := range m.columns {
		if v := m.evalColumn(c, env, ev.ID); v != nil {
			u.facts = append(u.facts, fact{group: "c." + c.Name, version: version, sets: []set{{NBuiltin + i, v}}})
		}
	}
}

// conversationUpdate is what an event of the chat inbox or of DocsSmith
// Demo2 says about its conversation, which has a sessions row as a
// Darwin session does (session_id is the conversation id, the subject):
// the title is the customer's or the contact's name, the channel and the
// creation time when the event carries them; the first and last event
// times and the count, and the configured columns, as for any session.
func (m *Mapper) conversationUpdate(ev *event.Event, r *EventRow) *SessionUpdate {
	u := &SessionUpdate{SessionID: ev.Subject, Timestamp: r.Timestamp}
	version := r.Timestamp + " " + ev.ID
	data, err := event.DecodeData(ev.Data)
	if err != nil {
		m.warn.once(m.log, "conversation", "cannot read a conversation event's data; archived in events only", "event_id", ev.ID, "err", err)
		return nil
	}
	at := func(path ...string) any {
		var cur any = data
		for _, k := range path {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[k]
		}
		switch v := cur.(type) {
		case string:
			if v == "" {
				return nil
			}
			return v
		case float64:
			if strings.HasSuffix(path[len(path)-1], "_at") && v > 0 && v < 1e11 {
				return time.Unix(int64(v), 0).UTC().Format(TimeFormat) // DocsSmith's Unix seconds
			}
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
		return nil
	}
	info := []set{{CSource, nonEmpty(ev.Source)}, {CConversationID, ev.Subject}}
	if m.providers[ev.Source] == "chat-inbox" {
		info = append(info,
			set{CTitle, at("conversation", "customer", "name")},
			set{CChannelID, at("conversation", "Channel", "id")},
			set{CChannelName, at("conversation", "Channel", "name")},
			set{CCreatedAt, timeText(at("conversation", "createdAt"))},
		)
	} else {
		info = append(info, set{CTitle, at("contact", "username")})
		if strings.HasPrefix(ev.EventType, "conversation.") {
			info = append(info, set{CCreatedAt, at("created_at")})
		}
	}
	u.facts = append(u.facts, fact{group: "info", version: version, sets: info})
	m.columnFacts(u, ev, version)
	return u
}

func nonEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// timeText normalizes a time from data (RFC 3339 text, or Unix
// milliseconds) to TimeFormat, so it sorts and compares as text. Other
// text is kept as it is.
func timeText(v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Format(TimeFormat)
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC().Format(TimeFormat)
	}
	return s
}

// orTime is timeText(v) when it is a time, else fallback.
func orTime(v any, fallback string) string {
	if t, ok := timeText(v).(string); ok {
		if _, err := time.Parse(TimeFormat, t); err == nil {
			return t
		}
	}
	return fallback
}

// Value is the value u sets for column col, or nil.
func (u *SessionUpdate) Value(col int) any {
	for _, f := range u.facts {
		for _, s := range f.sets {
			if s.col == col && s.val != nil {
				return s.val
			}
		}
	}
	return nil
}
