package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/queue"
)

// SinkInfo is what the operations know of a configured sink.
type SinkInfo struct {
	Name    string
	Type    string
	Ordered bool
	// Held says why the sink holds its deliveries ("" when it sends):
	// no destination is configured yet.
	Held string
}

// SetSinkInfo tells the operations about the configured sinks (it may
// change with a reload): the session view and the overview use it.
func (o *Ops) SetSinkInfo(info func() []SinkInfo) { o.info = info }

func (o *Ops) sinkInfo() []SinkInfo {
	if o.info == nil {
		return nil
	}
	return o.info()
}

// DeliveryPage is a page of deliveries.
type DeliveryPage struct {
	Deliveries []Delivery `json:"deliveries"`
	// Next continues the list (DeliveryQuery.After); "" at its end.
	Next string `json:"next,omitempty"`
}

// DeliveryPage lists the deliveries q selects, most recently changed
// first, with the cursor that continues the list.
func (o *Ops) DeliveryPage(ctx context.Context, q DeliveryQuery) (DeliveryPage, error) {
	ds, more, err := o.Deliveries(ctx, q)
	if err != nil {
		return DeliveryPage{}, err
	}
	page := DeliveryPage{Deliveries: ds}
	if ds == nil {
		page.Deliveries = []Delivery{}
	}
	if more {
		page.Next = ds[len(ds)-1].Cursor
	}
	return page, nil
}

// SessionSink is one sink's deliveries of a session, in the order
// accepted.
type SessionSink struct {
	Sink    string `json:"sink"`
	Ordered bool   `json:"ordered"`
	// Held is why the sink holds every delivery, when it does.
	Held       string     `json:"held,omitempty"`
	Deliveries []Delivery `json:"deliveries"`
	// Head is the index in Deliveries of the oldest waiting delivery
	// (-1 when none waits): on an ordered sink, the one the others wait
	// for. Blocked is set when it has failed, and Waiting counts those
	// behind it.
	Head    int  `json:"head"`
	Blocked bool `json:"blocked"`
	Waiting int  `json:"waiting"`
}

// Session is everything stored for one subject, sink by sink.
type Session struct {
	Subject string        `json:"subject"`
	Sinks   []SessionSink `json:"sinks"`
}

// Session returns a subject's deliveries, sink by sink, each in the
// order accepted, with what holds an ordered sink back. A subject with
// no deliveries is ErrNotFound.
func (o *Ops) Session(ctx context.Context, subject string) (Session, error) {
	if strings.TrimSpace(subject) == "" {
		return Session{}, &InputError{"subject", "name the session (the events' subject)"}
	}
	ds, err := o.store.Session(ctx, subject)
	if err != nil {
		return Session{}, err
	}
	if len(ds) == 0 {
		return Session{}, fmt.Errorf("no deliveries for subject %q (unknown, routed nowhere, or pruned): %w", subject, ErrNotFound)
	}
	info := o.sinkInfo()
	out := Session{Subject: subject}
	index := map[string]int{}
	for _, d := range ds {
		i, ok := index[d.Sink]
		if !ok {
			i = len(out.Sinks)
			index[d.Sink] = i
			s := SessionSink{Sink: d.Sink, Head: -1}
			if j := slices.IndexFunc(info, func(si SinkInfo) bool { return si.Name == d.Sink }); j >= 0 {
				s.Ordered, s.Held = info[j].Ordered, info[j].Held
			}
			out.Sinks = append(out.Sinks, s)
		}
		s := &out.Sinks[i]
		if waiting(d.State) {
			if s.Head < 0 {
				s.Head = len(s.Deliveries)
				s.Blocked = d.State == queue.StateFailed
			} else {
				s.Waiting++
			}
		}
		s.Deliveries = append(s.Deliveries, deliveryOf(d))
	}
	return out, nil
}

func waiting(state string) bool { return state == queue.StatePending || state == queue.StateFailed }

// RetryNow makes a waiting delivery due now, keeping its attempt count:
// the next attempt is not delayed by its backoff. A delivery that does
// not wait (or is unknown) is ErrNotFound.
func (o *Ops) RetryNow(ctx context.Context, deliveryID string) error {
	return o.one(ctx, deliveryID, "retry now", o.store.RetryNow)
}

// GiveUp makes a waiting delivery dead (kept for replay), as if its
// retries had run out: an ordered sink moves on to the subject's next
// delivery. One with an attempt in flight is left to the attempt.
func (o *Ops) GiveUp(ctx context.Context, deliveryID string) error {
	return o.one(ctx, deliveryID, "give up", o.store.GiveUp)
}

func (o *Ops) one(ctx context.Context, id, what string, fn func(context.Context, queue.Filter) (int64, error)) error {
	if id == "" {
		return &InputError{"delivery", "name the delivery"}
	}
	n, err := fn(ctx, queue.Filter{ID: id})
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: delivery %s is not waiting (delivered, dead, in flight or unknown): %w", what, id, ErrNotFound)
	}
	return nil
}

// SinkOverview is one sink at a glance.
type SinkOverview struct {
	SinkInfo
	// Configured is false for a sink no longer in the configuration
	// whose deliveries are still stored.
	Configured bool
	States     map[string]int
	Waiting    int
	// OldestWaiting is when the oldest waiting delivery was created.
	OldestWaiting time.Time
	// Blocked lists the subjects an ordered sink is held on.
	Blocked []queue.Blocked
}

// MaxBlocked bounds the blocked subjects listed per sink.
const MaxBlocked = 20

// Overview returns every configured sink, and every other sink with
// deliveries stored, with its figures.
func (o *Ops) Overview(ctx context.Context) ([]SinkOverview, error) {
	stats, err := o.store.SinkStats(ctx)
	if err != nil {
		return nil, err
	}
	var out []SinkOverview
	for _, si := range o.sinkInfo() {
		out = append(out, SinkOverview{SinkInfo: si, Configured: true, States: map[string]int{}})
	}
	for _, st := range stats {
		i := slices.IndexFunc(out, func(s SinkOverview) bool { return s.Name == st.Sink })
		if i < 0 {
			out = append(out, SinkOverview{SinkInfo: SinkInfo{Name: st.Sink}})
			i = len(out) - 1
		}
		out[i].States, out[i].OldestWaiting = st.States, st.OldestWaiting
		out[i].Waiting = st.States[queue.StatePending] + st.States[queue.StateFailed]
	}
	for i := range out {
		if out[i].Ordered && out[i].Waiting > 0 {
			if out[i].Blocked, err = o.store.Blocked(ctx, out[i].Name, MaxBlocked); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// MaxBulk bounds how many deliveries one bulk action changes.
const MaxBulk = 10000

// Bulk actions.
const (
	ActionReplay = "replay"
	ActionPurge  = "purge"
)

// BulkPlan is what a bulk action would change: the deliveries matching
// a filter when it was counted, at most MaxBulk.
type BulkPlan struct {
	Action string
	Query  DeliveryQuery
	// IDs are the deliveries matched (at most the bound); Matched
	// counts them, and Capped says more matched than the bound.
	IDs     []string
	Matched int
	Capped  bool

	// filter is Query as read when counted ("1h" ago then, not later).
	filter queue.Filter
}

// PlanBulk counts what a bulk replay or purge of everything q selects
// would change (the dry run), up to bound deliveries (MaxBulk when 0 or
// more). A purge never touches delivered deliveries unless q asks for
// them: it is for backlogs and dead letters.
func (o *Ops) PlanBulk(ctx context.Context, action string, q DeliveryQuery, bound int) (BulkPlan, error) {
	if action != ActionReplay && action != ActionPurge {
		return BulkPlan{}, &InputError{"action", "replay or purge"}
	}
	if bound <= 0 || bound > MaxBulk {
		bound = MaxBulk
	}
	q.Delivery, q.After, q.Limit = "", "", bound+1
	if action == ActionPurge && q.State == "" {
		q.State = strings.Join([]string{queue.StatePending, queue.StateFailed, queue.StateDead}, ",")
	}
	f, err := o.filter(q)
	if err != nil {
		return BulkPlan{}, err
	}
	infos, err := o.store.List(ctx, f)
	if err != nil {
		return BulkPlan{}, err
	}
	ds := make([]Delivery, len(infos))
	for i, d := range infos {
		ds[i] = deliveryOf(d)
	}
	f.Limit = 0
	plan := BulkPlan{Action: action, Query: q, filter: f}
	if len(ds) > bound {
		ds, plan.Capped = ds[:bound], true
	}
	for _, d := range ds {
		plan.IDs = append(plan.IDs, d.ID)
	}
	plan.Matched = len(plan.IDs)
	return plan, nil
}

// bulkBatch is how many deliveries one write of a bulk action changes:
// small enough to leave the writer to incoming events in between.
const bulkBatch = 200

// RunBulk carries out a plan batch by batch, calling progress after
// each with how many were changed so far, and records it in the audit
// log under actor ("admin"), with filter (the query as the operator
// wrote it). Each batch changes only those of the plan's deliveries that
// still match its filter. It stops early when ctx ends.
func (o *Ops) RunBulk(ctx context.Context, plan BulkPlan, actor, filter string, progress func(done int64)) (int64, error) {
	f := plan.filter
	var err error
	var done int64
	var runErr error
	for start := 0; start < len(plan.IDs); start += bulkBatch {
		if err := ctx.Err(); err != nil {
			runErr = err
			break
		}
		f.IDs = plan.IDs[start:min(start+bulkBatch, len(plan.IDs))]
		var n int64
		if plan.Action == ActionReplay {
			n, err = o.store.Replay(ctx, f)
		} else {
			n, err = o.store.Purge(ctx, f, false)
		}
		if err != nil {
			runErr = err
			break
		}
		done += n
		if progress != nil {
			progress(done)
		}
	}
	note := ""
	switch {
	case runErr != nil:
		note = "stopped: " + runErr.Error()
	case plan.Capped:
		note = fmt.Sprintf("bound reached: only the first %d matching were changed", len(plan.IDs))
	}
	audit := queue.Audit{At: o.now(), Actor: actor, Action: plan.Action, Filter: filter, Matched: int64(plan.Matched), Done: done, Note: note}
	if err := o.store.AddAudit(context.WithoutCancel(ctx), audit); err != nil {
		return done, errors.Join(runErr, fmt.Errorf("audit: %w", err))
	}
	return done, runErr
}

// Audit records an action in the audit log: the API's replays and
// purges by filter.
func (o *Ops) Audit(ctx context.Context, actor, action, filter string, matched, done int64) error {
	return o.store.AddAudit(ctx, queue.Audit{At: o.now(), Actor: actor, Action: action, Filter: filter, Matched: matched, Done: done})
}

// AuditEntry is an entry of the audit log.
type AuditEntry struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Filter  string    `json:"filter"`
	Matched int64     `json:"matched"`
	Done    int64     `json:"done"`
	Note    string    `json:"note,omitempty"`
}

// Audits returns the latest limit entries of the audit log, newest
// first.
func (o *Ops) Audits(ctx context.Context, limit int) ([]AuditEntry, error) {
	as, err := o.store.Audits(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]AuditEntry, len(as))
	for i, a := range as {
		out[i] = AuditEntry{At: a.At.UTC(), Actor: a.Actor, Action: a.Action, Filter: a.Filter, Matched: a.Matched, Done: a.Done, Note: a.Note}
	}
	return out, nil
}

// QueryString writes a delivery query as URL parameters, as the console
// and the audit log show it.
func (q DeliveryQuery) QueryString() string {
	v := url.Values{}
	for _, p := range []struct{ k, v string }{{"sink", q.Sink}, {"state", q.State}, {"status", q.Status}, {"error", q.Error},
		{"subject", q.Subject}, {"event", q.Event}, {"since", q.Since}, {"until", q.Until}} {
		if p.v != "" {
			v.Set(p.k, p.v)
		}
	}
	return v.Encode()
}

// Recent returns the latest n stored events (at most 1000), newest
// first, decoded: the playground's what-if runs them through rules.
func (o *Ops) Recent(ctx context.Context, n int) ([]*event.Event, error) {
	n = max(0, min(n, 1000))
	if n == 0 {
		return nil, nil
	}
	infos, err := o.store.Events(ctx, queue.EventFilter{Limit: n})
	if err != nil {
		return nil, err
	}
	out := make([]*event.Event, 0, len(infos))
	for _, info := range infos {
		var ev event.Event
		if err := json.Unmarshal(info.JSON, &ev); err != nil {
			continue // unreadable: left out of the what-if
		}
		out = append(out, &ev)
	}
	return out, nil
}
