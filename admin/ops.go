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
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
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
}

// Ops runs the operations on a store.
type Ops struct {
	store Store
	now   func() time.Time
	// sinks names the configured sinks, for a replay's warning; nil
	// when unknown (the CLI with --dir).
	sinks func() []string
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
	// Event is the normalized event as stored; only when one event is
	// asked for.
	Event      json.RawMessage `json:"event,omitempty"`
	Deliveries []Delivery      `json:"deliveries"`
}

// DeliveryQuery selects deliveries, as written in flags or a URL query.
type DeliveryQuery struct {
	Delivery string
	Event    string
	Sink     string
	// State is one state or several, comma-separated.
	State string
	// Since is a duration: deliveries whose state changed within it.
	Since string
	// Limit bounds a list, newest first; 0 is no limit.
	Limit int
}

func (o *Ops) filter(q DeliveryQuery) (queue.Filter, error) {
	states, err := ParseStates(q.State)
	if err != nil {
		return queue.Filter{}, err
	}
	since, err := o.since(q.Since)
	if err != nil {
		return queue.Filter{}, err
	}
	if q.Limit < 0 {
		return queue.Filter{}, &InputError{"limit", "must be 0 (no limit) or more"}
	}
	return queue.Filter{ID: q.Delivery, EventID: q.Event, Sink: q.Sink, States: states, Since: since, Limit: q.Limit}, nil
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
	Type   string
	// Since is a duration: events received within it.
	Since string
	Limit int
}

// Events lists the events q selects, newest first, each with its
// deliveries; more reports that q.Limit cut the list.
func (o *Ops) Events(ctx context.Context, q EventQuery) (evs []Event, more bool, err error) {
	since, err := o.since(q.Since)
	if err != nil {
		return nil, false, err
	}
	if q.Limit < 0 {
		return nil, false, &InputError{"limit", "must be 0 (no limit) or more"}
	}
	f := queue.EventFilter{Source: q.Source, EventType: q.Type, Since: since, Limit: q.Limit}
	if f.Limit > 0 {
		f.Limit++
	}
	infos, err := o.store.Events(ctx, f)
	if err != nil {
		return nil, false, err
	}
	if q.Limit > 0 && len(infos) > q.Limit {
		infos, more = infos[:q.Limit], true
	}
	evs = make([]Event, len(infos))
	for i, info := range infos {
		if evs[i], err = o.withDeliveries(ctx, info, false); err != nil {
			return nil, false, err
		}
	}
	return evs, more, nil
}

// Event returns one event, as stored, with its deliveries; an unknown
// (or pruned) event is ErrNotFound.
func (o *Ops) Event(ctx context.Context, id string) (Event, error) {
	info, err := o.store.Event(ctx, id)
	if err != nil {
		return Event{}, err
	}
	return o.withDeliveries(ctx, info, true)
}

func (o *Ops) withDeliveries(ctx context.Context, info queue.EventInfo, body bool) (Event, error) {
	ev := Event{ID: info.ID, Source: info.Source, ExternalID: info.ExternalID, EventType: info.EventType, Subject: info.Subject,
		ReceivedAt: info.ReceivedAt.UTC(), Deliveries: []Delivery{}}
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

func (o *Ops) since(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return time.Time{}, &InputError{"since", err.Error()}
	}
	return o.now().Add(-d.D()), nil
}

// IsInput reports whether err is an operator's mistake (a bad query)
// rather than a failure.
func IsInput(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}
