package sqlite

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
)

// Columns of sessions filled from events, in table order, between
// session_id and _versions. Configured columns follow them.
const (
	cSource = iota
	cAgentID
	cAgentName
	cConversationID
	cChannelID
	cChannelName
	cTitle
	cCreatedAt
	cOpenedAt
	cClosedAt
	cForwardedAt
	cForwardType
	cForwardedToID
	cForwardedToName
	cStage
	cPreviousStage
	cStageAt
	cSummary
	cSummarizedAt
	cSmartFields
	cLastHumanActivityAt
	cFirstEventAt
	cLastEventAt
	cEventCount
	nBuiltin
)

var builtinColumns = [nBuiltin]string{
	"source", "agent_id", "agent_name", "conversation_id", "channel_id", "channel_name",
	"title", "created_at", "opened_at", "closed_at",
	"forwarded_at", "forward_type", "forwarded_to_id", "forwarded_to_name",
	"stage", "previous_stage", "stage_at",
	"summary", "summarized_at", "smart_fields", "last_human_activity_at",
	"first_event_at", "last_event_at", "event_count",
}

// eventRow is an event ready for the writer: its events row and, for a
// session event, what it says about the session.
type eventRow struct {
	id, source, eventType, subject, agentID, agentName string
	timestamp, receivedAt, data, externalID            string
	session                                            *sessionUpdate
}

// sessionUpdate is what one event says about its session: facts, each
// a group of columns with the version that orders it against other
// events' facts about the same group.
type sessionUpdate struct {
	sessionID string
	timestamp string
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

// sessionRow is a sessions row being merged.
type sessionRow struct {
	id       int64 // 0: not in the table yet
	vals     []any
	versions map[string]string
}

// merge applies u to r. For each fact: if it is newer than the version
// r holds for its group, its non-nil values replace r's; if older, they
// fill only r's NULLs. So a late event never overwrites newer data,
// and a field a newer event lacks is kept. Duplicates are filtered out
// before (by the events row), so merge is called once per event.
func (r *sessionRow) merge(u *sessionUpdate) {
	for _, f := range u.facts {
		cur, ok := r.versions[f.group]
		newer := !ok || f.version > cur
		for _, s := range f.sets {
			if s.val != nil && (newer || r.vals[s.col] == nil) {
				r.vals[s.col] = s.val
			}
		}
		if newer {
			r.versions[f.group] = f.version
		}
	}
	if u.lastHuman != nil {
		if cur, ok := r.vals[cLastHumanActivityAt].(string); !ok || u.lastHuman.(string) > cur {
			r.vals[cLastHumanActivityAt] = u.lastHuman
		}
	}
	if cur, ok := r.vals[cFirstEventAt].(string); !ok || u.timestamp < cur {
		r.vals[cFirstEventAt] = u.timestamp
	}
	if cur, ok := r.vals[cLastEventAt].(string); !ok || u.timestamp > cur {
		r.vals[cLastEventAt] = u.timestamp
	}
	n, _ := r.vals[cEventCount].(int64)
	r.vals[cEventCount] = n + 1
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

// prepareRow turns an event into rows, evaluating configured columns.
func (s *Sink) prepareRow(ev *event.Event) *eventRow {
	data := string(bytes.TrimSpace(ev.Data))
	if data == "" || data == "null" {
		data = "{}"
	}
	r := &eventRow{
		id: ev.ID, source: ev.Source, eventType: ev.EventType, subject: ev.Subject,
		agentID: ev.AgentID, agentName: ev.AgentName,
		timestamp:  ev.Timestamp.UTC().Format(TimeFormat),
		receivedAt: ev.ReceivedAt.UTC().Format(TimeFormat),
		data:       data,
		externalID: ev.ExternalID,
	}
	if ev.Subject == "" {
		return r
	}
	switch s.opts.Providers[ev.Source] {
	case "chat-inbox", "docssmith":
		r.session = s.conversationUpdate(ev, r)
		return r
	}
	if !strings.HasPrefix(ev.EventType, "session.") {
		return r
	}
	var d darwinData
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		// The events row keeps what was sent; there is no session to derive.
		s.warn.once(s.log, "session", "cannot read a session event's data; archived in events only", "event_id", ev.ID, "err", err)
		return r
	}
	u := &sessionUpdate{sessionID: ev.Subject, timestamp: r.timestamp}
	tie := " " + ev.ID
	evVersion := r.timestamp + tie
	u.facts = append(u.facts, fact{group: "info", version: evVersion, sets: []set{
		{cSource, nonEmpty(ev.Source)},
		{cAgentID, nonEmpty(ev.AgentID)},
		{cAgentName, nonEmpty(ev.AgentName)},
		{cConversationID, d.ConversationID.v},
		{cChannelID, d.ChannelID.v},
		{cChannelName, d.ChannelName.v},
		{cTitle, d.ConversationTitle.v},
		{cCreatedAt, timeText(d.CreatedAt.v)},
	}})
	if ev.EventType == "session.opened" {
		u.facts = append(u.facts, fact{group: "opened", version: evVersion, sets: []set{{cOpenedAt, r.timestamp}}})
	}
	if ev.EventType == "session.closed" || strings.HasPrefix(ev.EventType, "session.closed.") || d.ClosedAt.v != nil {
		at := orTime(d.ClosedAt.v, r.timestamp)
		u.facts = append(u.facts, fact{group: "closed", version: at + tie, sets: []set{{cClosedAt, at}}})
	}
	forwardType := d.ForwardType.v
	if kind, ok := strings.CutPrefix(ev.EventType, "session.forwarded."); ok && forwardType == nil {
		forwardType = kind
	}
	if d.ForwardedAt.v != nil || forwardType != nil {
		at := orTime(d.ForwardedAt.v, r.timestamp)
		u.facts = append(u.facts, fact{group: "forward", version: at + tie, sets: []set{
			{cForwardedAt, at},
			{cForwardType, forwardType},
			{cForwardedToID, d.ForwardedToID.v},
			{cForwardedToName, d.ForwardedToName.v},
		}})
	}
	if d.Stage.v != nil {
		at := orTime(d.TransitionedAt.v, r.timestamp)
		u.facts = append(u.facts, fact{group: "stage", version: at + tie, sets: []set{
			{cStage, d.Stage.v},
			{cPreviousStage, d.PreviousStage.v},
			{cStageAt, at},
		}})
	}
	smart := bytes.TrimSpace(d.SmartFields)
	if d.Summary.v != nil || (len(smart) > 0 && !bytes.Equal(smart, []byte("null"))) {
		at := orTime(d.SummarizedAt.v, r.timestamp)
		var sf any
		if len(smart) > 0 && !bytes.Equal(smart, []byte("null")) {
			sf = string(smart)
		}
		u.facts = append(u.facts, fact{group: "analysis", version: at + tie, sets: []set{
			{cSummary, d.Summary.v},
			{cSummarizedAt, at},
			{cSmartFields, sf},
		}})
	}
	if t := timeText(d.LastHumanActivityAt.v); t != nil {
		u.lastHuman = t
	}
	s.columnFacts(u, ev, evVersion)
	r.session = u
	return r
}

// columnFacts adds the configured columns' values for ev to u.
func (s *Sink) columnFacts(u *sessionUpdate, ev *event.Event, version string) {
	if len(s.columns) == 0 {
		return
	}
	env, err := ev.Env()
	if err != nil {
		return
	}
	for i, c := range s.columns {
		if v := s.evalColumn(c, env, ev.ID); v != nil {
			u.facts = append(u.facts, fact{group: "c." + c.name, version: version, sets: []set{{nBuiltin + i, v}}})
		}
	}
}

// conversationUpdate is what an event of the chat inbox or of DocsSmith
// Demo2 says about its conversation, which has a sessions row as a
// Darwin session does (session_id is the conversation id, the subject):
// the title is the customer's or the contact's name, the channel and the
// creation time when the event carries them; the first and last event
// times and the count, and the configured columns, as for any session.
func (s *Sink) conversationUpdate(ev *event.Event, r *eventRow) *sessionUpdate {
	u := &sessionUpdate{sessionID: ev.Subject, timestamp: r.timestamp}
	version := r.timestamp + " " + ev.ID
	data, err := event.DecodeData(ev.Data)
	if err != nil {
		s.warn.once(s.log, "conversation", "cannot read a conversation event's data; archived in events only", "event_id", ev.ID, "err", err)
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
	info := []set{{cSource, nonEmpty(ev.Source)}, {cConversationID, ev.Subject}}
	if s.opts.Providers[ev.Source] == "chat-inbox" {
		info = append(info,
			set{cTitle, at("conversation", "customer", "name")},
			set{cChannelID, at("conversation", "Channel", "id")},
			set{cChannelName, at("conversation", "Channel", "name")},
			set{cCreatedAt, timeText(at("conversation", "createdAt"))},
		)
	} else {
		info = append(info, set{cTitle, at("contact", "username")})
		if strings.HasPrefix(ev.EventType, "conversation.") {
			info = append(info, set{cCreatedAt, at("created_at")})
		}
	}
	u.facts = append(u.facts, fact{group: "info", version: version, sets: info})
	s.columnFacts(u, ev, version)
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
