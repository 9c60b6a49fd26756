package console

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/dryrun"
	"github.com/switchyard/switchyard/event"
)

type eventView struct {
	*base
	E admin.Event
	// Raw is the request body, indented when it is JSON; Header its
	// headers as stored (without secrets).
	Raw, Header string
	RawJSON     bool
	// Normalized is the event as stored, indented.
	Normalized string
	// Routing is what the running rules make of the event now.
	Routing *routingView
	// Payloads are the payloads rendered for each sink, by name.
	Payloads map[string]string
	Sinks    []string
}

// routingView is a dry run's outcome as the pages show it.
type routingView struct {
	Routes []routeView
	Error  string
}

type routeView struct {
	Name    string
	Matched bool
	Reason  string
	// Lines are the condition's explanation, as switchyard test prints
	// it: each sub-expression with its value.
	Lines []string
	To    []string
}

func routingOf(res *dryrun.Result) *routingView {
	rv := &routingView{}
	for _, v := range res.Routes {
		r := routeView{Name: v.Route, Matched: v.Matched, Reason: dryrun.Reason(v), To: v.To}
		if v.When != nil {
			for _, l := range v.When.Lines("") {
				r.Lines = append(r.Lines, l)
			}
		}
		rv.Routes = append(rv.Routes, r)
	}
	return rv
}

// payloadText writes a sink's preview as the page shows it.
func payloadText(s dryrun.SinkResult) string {
	if s.Err != "" {
		return "no preview: " + s.Err
	}
	if str, ok := s.Payload.(string); ok {
		return str
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.Payload); err != nil {
		return "no preview: " + err.Error()
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func (c *Console) event(w http.ResponseWriter, r *http.Request, v *base) {
	ev, err := c.opts.Ops.Event(r.Context(), r.PathValue("id"))
	if err != nil {
		c.failErr(w, r, v, err)
		return
	}
	v.Title = "Event " + ev.ID
	view := &eventView{base: v, E: ev, Payloads: map[string]string{}}
	if ev.Request != nil {
		view.Raw, view.RawJSON = pretty([]byte(ev.Request.Body))
		view.Header = ev.Request.Header
	}
	view.Normalized, _ = pretty(ev.Event)
	var stored event.Event
	if err := json.Unmarshal(ev.Event, &stored); err != nil {
		view.Routing = &routingView{Error: "the stored event cannot be read: " + err.Error()}
	} else if err := c.withRunner(func(run *dryrun.Runner) {
		res := run.RunEvent(ev.ID, &stored)
		view.Routing = routingOf(res)
		for _, s := range res.Sinks {
			view.Payloads[s.Name] = payloadText(s)
		}
	}); err != nil {
		view.Routing = &routingView{Error: err.Error()}
	}
	for _, d := range ev.Deliveries {
		view.Sinks = append(view.Sinks, d.Sink)
	}
	c.render(w, r, http.StatusOK, "event", view)
}

// replayEvent replays an event's delivery to one sink (form field sink)
// or all of them.
func (c *Console) replayEvent(w http.ResponseWriter, r *http.Request, v *base) {
	id := r.PathValue("id")
	q := admin.DeliveryQuery{Event: id}
	if sink := r.PostFormValue("sink"); sink != "" {
		q.Sink = sink
	}
	res, err := c.opts.Ops.Replay(r.Context(), q)
	if err != nil {
		c.failErr(w, r, v, err)
		return
	}
	c.log.Info("replay requested in the console", "event_id", id, "sink", q.Sink, "requeued", res.Requeued)
	http.Redirect(w, r, "/ui/events/"+id+"?replayed="+itoa(res.Requeued), http.StatusSeeOther)
}
