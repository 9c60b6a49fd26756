// Package admin is the operator's view of the queue: list and inspect
// events and their deliveries, replay deliveries, reload the
// configuration. Ops is the one implementation behind both the CLI
// (switchyard deliveries, events, replay) and the admin HTTP API
// (Handler).
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/queue"
)

// Store is the part of queue.Store the operations use.
type Store interface {
	List(ctx context.Context, f queue.Filter) ([]queue.DeliveryInfo, error)
	Attempts(ctx context.Context, deliveryID string) ([]queue.AttemptInfo, error)
	Replay(ctx context.Context, f queue.Filter) (int64, error)
	Purge(ctx context.Context, f queue.Filter, dryRun bool) (int64, error)
	Events(ctx context.Context, f queue.EventFilter) ([]queue.EventInfo, error)
	Event(ctx context.Context, id string) (queue.EventInfo, error)
	RetryNow(ctx context.Context, f queue.Filter) (int64, error)
	GiveUp(ctx context.Context, f queue.Filter) (int64, error)
	Session(ctx context.Context, subject string) ([]queue.DeliveryInfo, error)
	Blocked(ctx context.Context, sink string, limit int) ([]queue.Blocked, error)
	SinkStats(ctx context.Context) ([]queue.SinkStats, error)
	AddAudit(ctx context.Context, a queue.Audit) error
	Audits(ctx context.Context, limit int) ([]queue.Audit, error)
}

// Ops runs the operations on a store.
type Ops struct {
	store Store
	now   func() time.Time
	// sinks names the configured sinks, for a replay's warning; nil
	// when unknown (the CLI with --dir).
	sinks func() []string
	// info describes the configured sinks (SetSinkInfo); nil when
	// unknown.
	info func() []SinkInfo
}

// NewOps returns the operations on store. sinks, when not nil, names the
// configured sinks: replaying to another is allowed, with a warning.
func NewOps(store Store, sinks func() []string) *Ops {
	return &Ops{store: store, now: time.Now, sinks: sinks}
}

// InputError is a query an operator wrote wrong: Field is the flag or
// query parameter ("state", "since").
type InputError struct {
	Field string
	Msg   string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Msg }

// ErrNotFound is an event or delivery the queue does not hold.
var ErrNotFound = queue.ErrNotFound

// Delivery is a delivery as the CLI (--json) and the API show it.
type Delivery struct {
	ID         string    `json:"id"`
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type"`
	Source     string    `json:"source"`
	Sink       string    `json:"sink"`
	Subject    string    `json:"subject"`
	Routes     []string  `json:"routes"`
	State      string    `json:"state"`
	Attempts   int       `json:"attempts"`
	Replays    int       `json:"replays"`
	LastError  string    `json:"last_error"`
	LastStatus int       `json:"last_status"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	NextAt     time.Time `json:"next_at"`
	// History is the recorded attempts, oldest first; only when one
	// event is asked for.
	History []Attempt `json:"history,omitempty"`
	// Cursor continues a list after this delivery (DeliveryQuery.After).
	Cursor string `json:"-"`
}

// Attempt is one recorded attempt of a delivery.
type Attempt struct {
	Attempt int `json:"attempt"`
	// Run counts the replays before the attempt (0: before any).
	Run        int       `json:"run"`
	At         time.Time `json:"at"`
	TookMillis int64     `json:"took_ms"`
	State      string    `json:"state"`
	Status     int       `json:"status,omitempty"`
	Error      string    `json:"error,omitempty"`
}

func attemptOf(a queue.AttemptInfo) Attempt {
	return Attempt{Attempt: a.Attempt, Run: a.Replays, At: a.At.UTC(), TookMillis: a.Took.Milliseconds(),
		State: a.State, Status: a.Status, Error: a.Error}
}

func deliveryOf(d queue.DeliveryInfo) Delivery {
	return Delivery{
		ID: d.ID, EventID: d.EventID, EventType: d.EventType, Source: d.Source, Sink: d.Sink, Subject: d.Subject,
		Routes: d.Routes, State: d.State, Attempts: d.Attempts, Replays: d.Replays, LastError: d.LastError,
		LastStatus: d.LastStatus, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(), NextAt: d.NextAt.UTC(),
		Cursor: d.Cursor,
	}
}

// Event is a stored event with its deliveries.
type Event struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	// ExternalID is the id the platform gave the event, to find it in
	// the platform's own logs.
	ExternalID string    `json:"external_id,omitempty"`
	EventType  string    `json:"event_type"`
	Subject    string    `json:"subject"`
	ReceivedAt time.Time `json:"received_at"`
	// Title is the event's title, or its summary (queue.TextFields),
	// cut to 160 bytes: what lists show of it.
	Title string `json:"title,omitempty"`
	// Event is the normalized event as stored; only when one event is
	// asked for, or a page filtered with Where.
	Event json.RawMessage `json:"event,omitempty"`
	// Request is the request the event came in; only when one event is
	// asked for.
	Request    *Request   `json:"request,omitempty"`
	Deliveries []Delivery `json:"deliveries"`
	// Cursor continues a list after this event (EventQuery.After).
	Cursor string `json:"-"`
}

// Request is the request an event came in, as stored: its headers
// (those that carry no secret: signatures and credentials are never
// stored) and its body.
type Request struct {
	Header string `json:"header"`
	Body   string `json:"body"`
}

// DeliveryQuery selects deliveries, as written in flags or a URL query.
type DeliveryQuery struct {
	Delivery string
	Event    string
	Sink     string
	Subject  string
	// State is one state or several, comma-separated.
	State string
	// Status is the last attempt's HTTP status, such as 500; "" is any.
	Status string
	// Error is text the last error contains.
	Error string
	// Since and Until bound when the state changed: a duration (that
	// long ago) or a time (2026-11-21T14:00, RFC 3339).
	Since string
	Until string
	// After continues a list after a delivery (its cursor).
	After string
	// Limit bounds a list, newest first; 0 is no limit.
	Limit int
}

func (o *Ops) filter(q DeliveryQuery) (queue.Filter, error) {
	states, err := ParseStates(q.State)
	if err != nil {
		return queue.Filter{}, err
	}
	since, err := o.when("since", q.Since)
	if err != nil {
		return queue.Filter{}, err
	}
	until, err := o.when("until", q.Until)
	if err != nil {
		return queue.Filter{}, err
	}
	if q.Limit < 0 {
		return queue.Filter{}, &InputError{"limit", "must be 0 (no limit) or more"}
	}
	status := 0
	if q.Status != "" {
		if status, err = strconv.Atoi(strings.TrimSpace(q.Status)); err != nil || status < 100 || status > 599 {
			return queue.Filter{}, &InputError{"status", fmt.Sprintf("%q is not an HTTP status: write one such as 500", q.Status)}
		}
	}
	return queue.Filter{ID: q.Delivery, EventID: q.Event, Sink: q.Sink, Subject: q.Subject, States: states, Status: status,
		Error: q.Error, Since: since, Before: until, After: q.After, Limit: q.Limit}, nil
}

// Deliveries lists the deliveries q selects, most recently changed
// first; more reports that q.Limit cut the list.
func (o *Ops) Deliveries(ctx context.Context, q DeliveryQuery) (ds []Delivery, more bool, err error) {
	f, err := o.filter(q)
	if err != nil {
		return nil, false, err
	}
	if f.Limit > 0 {
		f.Limit++ // one more tells whether there are more
	}
	infos, err := o.store.List(ctx, f)
	if err != nil {
		return nil, false, err
	}
	if q.Limit > 0 && len(infos) > q.Limit {
		infos, more = infos[:q.Limit], true
	}
	ds = make([]Delivery, len(infos))
	for i, d := range infos {
		ds[i] = deliveryOf(d)
	}
	return ds, more, nil
}

// EventQuery selects events.
type EventQuery struct {
	Source string
	// Type is a pattern as routes write them: session.closed,
	// session.*, or *.
	Type    string
	Subject string
	// State selects events with a delivery in a state (several,
	// comma-separated).
	State string
	// Since and Until bound when events were received: a duration (that
	// long ago) or a time (2026-11-21T14:00, RFC 3339).
	Since string
	Until string
	// Text is text the event's title or summary contains.
	Text string
	// Where is a condition on the event in the rules' expression
	// language (data.leadScore > 80); the gateway reads at most
	// MaxScan events to fill a page with it.
	Where string
	// After continues a list after an event (EventPage.Next).
	After string
	Limit int
}

// MaxScan bounds the events read for one page filtered by Where.
const MaxScan = 5000

// EventPage is a page of events.
type EventPage struct {
	Events []Event `json:"events"`
	// Next continues the list (EventQuery.After); "" at its end.
	Next string `json:"next,omitempty"`
	// Scanned counts the events read to fill a page filtered by Where;
	// Partial is set when MaxScan cut the reading short (the page may
	// have fewer events than asked for, and Next goes on).
	Scanned int  `json:"scanned,omitempty"`
	Partial bool `json:"partial,omitempty"`
}

// Events lists the events q selects, newest first, each with its
// deliveries; more reports that q.Limit cut the list.
func (o *Ops) Events(ctx context.Context, q EventQuery) (evs []Event, more bool, err error) {
	page, err := o.EventPage(ctx, q)
	return page.Events, page.Next != "", err
}

// EventPage is Events with the cursor that continues the list.
func (o *Ops) EventPage(ctx context.Context, q EventQuery) (EventPage, error) {
	if q.Limit < 0 {
		return EventPage{}, &InputError{"limit", "must be 0 (no limit) or more"}
	}
	f, err := o.eventFilter(q)
	if err != nil {
		return EventPage{}, err
	}
	var where *lang.Condition
	if strings.TrimSpace(q.Where) != "" {
		if where, err = lang.CompileCondition(q.Where); err != nil {
			return EventPage{}, &InputError{"where", err.Error()}
		}
	}
	var page EventPage
	var infos []queue.EventInfo
	if where == nil {
		if f.Limit > 0 {
			f.Limit++ // one more tells whether there are more
		}
		if infos, err = o.store.Events(ctx, f); err != nil {
			return EventPage{}, err
		}
		if q.Limit > 0 && len(infos) > q.Limit {
			infos = infos[:q.Limit]
			page.Next = infos[len(infos)-1].Cursor
		}
	} else if infos, page, err = o.scan(ctx, f, q.Limit, where); err != nil {
		return EventPage{}, err
	}
	page.Events = make([]Event, len(infos))
	for i, info := range infos {
		if page.Events[i], err = o.withDeliveries(ctx, info, false); err != nil {
			return EventPage{}, err
		}
		page.Events[i].Cursor = info.Cursor
	}
	return page, nil
}

// scan reads events f selects, batch by batch, keeping those where
// holds, until limit are kept or MaxScan are read.
func (o *Ops) scan(ctx context.Context, f queue.EventFilter, limit int, where *lang.Condition) ([]queue.EventInfo, EventPage, error) {
	var page EventPage
	var kept []queue.EventInfo
	f.Limit = 200
	for {
		batch, err := o.store.Events(ctx, f)
		if err != nil {
			return nil, page, err
		}
		for i, info := range batch {
			if limit > 0 && len(kept) == limit {
				page.Next = kept[len(kept)-1].Cursor
				return kept, page, nil
			}
			if page.Scanned == MaxScan {
				// Go on after the last event read.
				page.Partial, page.Next = true, f.After
				if i > 0 {
					page.Next = batch[i-1].Cursor
				}
				return kept, page, nil
			}
			page.Scanned++
			if Matches(info, where) {
				kept = append(kept, info)
			}
		}
		if len(batch) < f.Limit {
			return kept, page, nil
		}
		f.After = batch[len(batch)-1].Cursor
	}
}

// title returns the first of an event's TextFields that is a string,
// cut to 160 characters.
func title(eventJSON []byte) string {
	var ev struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if json.Unmarshal(eventJSON, &ev) != nil {
		return ""
	}
	for _, f := range queue.TextFields {
		var s string
		if raw, ok := ev.Data[f]; ok && json.Unmarshal(raw, &s) == nil && strings.TrimSpace(s) != "" {
			return queue.Truncate(strings.TrimSpace(s), 160)
		}
	}
	return ""
}

// Matches reports whether a stored event meets cond; an event that
// cannot be read, or on which cond fails, does not.
func Matches(info queue.EventInfo, cond *lang.Condition) bool {
	var ev event.Event
	if err := json.Unmarshal(info.JSON, &ev); err != nil {
		return false
	}
	env, err := ev.Env()
	if err != nil {
		return false
	}
	ok, err := cond.Eval(env)
	return err == nil && ok
}

func (o *Ops) eventFilter(q EventQuery) (queue.EventFilter, error) {
	since, err := o.when("since", q.Since)
	if err != nil {
		return queue.EventFilter{}, err
	}
	until, err := o.when("until", q.Until)
	if err != nil {
		return queue.EventFilter{}, err
	}
	states, err := ParseStates(q.State)
	if err != nil {
		return queue.EventFilter{}, err
	}
	if t := strings.TrimSpace(q.Type); t != "" {
		if err := event.ValidPattern(t); err != nil {
			return queue.EventFilter{}, &InputError{"type", err.Error()}
		}
	}
	return queue.EventFilter{Source: q.Source, EventType: strings.TrimSpace(q.Type), Subject: q.Subject, States: states,
		Since: since, Until: until, Text: strings.TrimSpace(q.Text), After: q.After, Limit: q.Limit}, nil
}

// Event returns one event, as stored, with its deliveries; an unknown
// (or pruned) event is ErrNotFound.
func (o *Ops) Event(ctx context.Context, id string) (Event, error) {
	info, err := o.store.Event(ctx, id)
	if err != nil {
		return Event{}, err
	}
	ev, err := o.withDeliveries(ctx, info, true)
	if err == nil && info.Request != nil {
		ev.Request = &Request{Header: info.Request.Header, Body: string(info.Request.Body)}
	}
	return ev, err
}

func (o *Ops) withDeliveries(ctx context.Context, info queue.EventInfo, body bool) (Event, error) {
	ev := Event{ID: info.ID, Source: info.Source, ExternalID: info.ExternalID, EventType: info.EventType, Subject: info.Subject,
		ReceivedAt: info.ReceivedAt.UTC(), Title: title(info.JSON), Deliveries: []Delivery{}}
	if body {
		ev.Event = json.RawMessage(info.JSON)
	}
	ds, err := o.store.List(ctx, queue.Filter{EventID: info.ID})
	if err != nil {
		return Event{}, err
	}
	slices.SortFunc(ds, func(a, b queue.DeliveryInfo) int { return strings.Compare(a.Sink, b.Sink) })
	for _, d := range ds {
		dv := deliveryOf(d)
		if body {
			hist, err := o.store.Attempts(ctx, d.ID)
			if err != nil && !errors.Is(err, ErrNotFound) { // pruned meanwhile: no history
				return Event{}, err
			}
			for _, a := range hist {
				dv.History = append(dv.History, attemptOf(a))
			}
		}
		ev.Deliveries = append(ev.Deliveries, dv)
	}
	return ev, nil
}

// ReplayResult is what a replay did.
type ReplayResult struct {
	Requeued int64 `json:"requeued"`
	// Warning is set when the sink replayed to is not configured: its
	// deliveries wait until it is.
	Warning string `json:"warning,omitempty"`
}

// Replay queues the deliveries q selects again: one delivery
// (q.Delivery), an event's (q.Event, any state unless q.State), or a
// sink's (q.Sink, dead unless q.State). A delivery or event with
// nothing to replay is ErrNotFound.
func (o *Ops) Replay(ctx context.Context, q DeliveryQuery) (ReplayResult, error) {
	if q.Delivery == "" && q.Event == "" && q.Sink == "" {
		return ReplayResult{}, &InputError{"replay", "name what to replay: a delivery id, an event id, or a sink (with a state, default dead)"}
	}
	q.Limit = 0
	f, err := o.filter(q)
	if err != nil {
		return ReplayResult{}, err
	}
	if f.States == nil && q.Event == "" && q.Delivery == "" {
		f.States = []string{queue.StateDead}
	}
	var res ReplayResult
	if q.Sink != "" && o.sinks != nil && !slices.Contains(o.sinks(), q.Sink) {
		res.Warning = fmt.Sprintf("sink %q is not configured: its deliveries wait until it is", q.Sink)
	}
	if res.Requeued, err = o.store.Replay(ctx, f); err != nil {
		return ReplayResult{}, err
	}
	if res.Requeued == 0 && (q.Event != "" || q.Delivery != "") {
		// Say whether there was nothing to find, or nothing to do.
		ds, err := o.store.List(ctx, queue.Filter{ID: q.Delivery, EventID: q.Event, Limit: 1})
		if err != nil {
			return ReplayResult{}, err
		}
		if len(ds) == 0 {
			what := "event " + q.Event + " has no deliveries (unknown, routed nowhere, or pruned)"
			if q.Delivery != "" {
				what = "no delivery " + q.Delivery
			}
			return ReplayResult{}, fmt.Errorf("%s: %w", what, ErrNotFound)
		}
	}
	return res, nil
}

// PurgeQuery selects the deliveries to purge, as written in flags or a
// request body.
type PurgeQuery struct {
	Sink string
	// State is one state or several, comma-separated; "" is every state
	// but delivered (the backlog and the dead letters).
	State string
	// Before is a duration: deliveries whose state last changed longer
	// ago than it.
	Before string
	DryRun bool
}

// PurgeResult is what a purge did, or with a dry run would do.
type PurgeResult struct {
	// Purged counts the deliveries deleted; with a dry run, those that
	// would be.
	Purged int64 `json:"purged"`
	DryRun bool  `json:"dry_run"`
	// Warning is set when the sink is configured: its deliveries are
	// deleted all the same, and never sent.
	Warning string `json:"warning,omitempty"`
}

// Purge deletes a sink's deliveries (those of a removed sink that will
// never drain, say), except any with an attempt in flight; with DryRun
// it only counts them.
func (o *Ops) Purge(ctx context.Context, q PurgeQuery) (PurgeResult, error) {
	if q.Sink == "" {
		return PurgeResult{}, &InputError{"sink", "name the sink whose deliveries to purge"}
	}
	states, err := ParseStates(q.State)
	if err != nil {
		return PurgeResult{}, err
	}
	if states == nil {
		states = []string{queue.StatePending, queue.StateFailed, queue.StateDead}
	}
	f := queue.Filter{Sink: q.Sink, States: states}
	if q.Before != "" {
		d, err := config.ParseDuration(q.Before)
		if err != nil {
			return PurgeResult{}, &InputError{"before", err.Error()}
		}
		f.Before = o.now().Add(-d.D())
	}
	res := PurgeResult{DryRun: q.DryRun}
	if o.sinks != nil && slices.Contains(o.sinks(), q.Sink) {
		res.Warning = fmt.Sprintf("sink %q is configured: its purged deliveries will never be sent", q.Sink)
	}
	if res.Purged, err = o.store.Purge(ctx, f, q.DryRun); err != nil {
		return PurgeResult{}, err
	}
	return res, nil
}

// ParseStates parses a comma-separated list of delivery states; "" is
// every state (nil).
func ParseStates(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	states := strings.Split(s, ",")
	for i, st := range states {
		states[i] = strings.TrimSpace(st)
		if !slices.Contains(queue.States, states[i]) {
			return nil, &InputError{"state", fmt.Sprintf("unknown state %q: one of %s (or several, comma-separated)", st, strings.Join(queue.States, ", "))}
		}
	}
	return states, nil
}

// timeLayouts are the times a query may give (since, until), besides a
// duration: RFC 3339, and what a browser's datetime-local field sends
// (taken as UTC).
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"}

// when reads a time bound: a duration (that long before now) or a time.
func (o *Ops) when(field, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	d, err := config.ParseDuration(s)
	if err == nil {
		return o.now().Add(-d.D()), nil
	}
	for _, layout := range timeLayouts {
		if t, terr := time.Parse(layout, s); terr == nil {
			return t, nil
		}
	}
	return time.Time{}, &InputError{field, fmt.Sprintf("%v; or a time such as 2026-11-21T14:00 (UTC) or RFC 3339", err)}
}

// IsInput reports whether err is an operator's mistake (a bad query)
// rather than a failure.
func IsInput(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}
