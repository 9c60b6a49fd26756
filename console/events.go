package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/queue"
)

// pageSize is how many rows a list page shows.
const pageSize = 50

// eventFilter is the events page's filter, as in its URL.
type eventFilter struct {
	Source, Type, Subject, State, Since, Until, Text, Where string
	Tail                                                    bool
}

func eventFilterOf(q url.Values) eventFilter {
	return eventFilter{Source: q.Get("source"), Type: q.Get("type"), Subject: q.Get("subject"), State: q.Get("state"),
		Since: q.Get("since"), Until: q.Get("until"), Text: q.Get("text"), Where: q.Get("where"), Tail: q.Get("tail") == "1"}
}

func (f eventFilter) query() admin.EventQuery {
	return admin.EventQuery{Source: f.Source, Type: f.Type, Subject: f.Subject, State: f.State, Since: f.Since, Until: f.Until,
		Text: f.Text, Where: f.Where, Limit: pageSize}
}

// values writes the filter back as URL parameters.
func (f eventFilter) values() url.Values {
	v := url.Values{}
	for _, p := range [][2]string{{"source", f.Source}, {"type", f.Type}, {"subject", f.Subject}, {"state", f.State},
		{"since", f.Since}, {"until", f.Until}, {"text", f.Text}, {"where", f.Where}} {
		if p[1] != "" {
			v.Set(p[0], p[1])
		}
	}
	return v
}

func (f eventFilter) url(extra ...string) string {
	v := f.values()
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	if len(v) == 0 {
		return "/ui/events"
	}
	return "/ui/events?" + v.Encode()
}

type eventsView struct {
	*base
	F       eventFilter
	Sources []string
	States  []string
	Page    admin.EventPage
	// NextURL is the next page; FirstURL the newest, when this page is
	// not the first.
	NextURL, FirstURL string
	// TailURL toggles the live tail; LiveURL is its stream.
	TailURL, LiveURL string
	// Error is a filter written wrong, with where it is wrong.
	Error string
}

func (c *Console) events(w http.ResponseWriter, r *http.Request, v *base) {
	v.Title = "Events"
	q := r.URL.Query()
	f := eventFilterOf(q)
	view := &eventsView{base: v, F: f, States: queue.States, Sources: c.sourceNames()}
	query := f.query()
	query.After = q.Get("after")
	page, err := c.opts.Ops.EventPage(r.Context(), query)
	switch {
	case admin.IsInput(err):
		view.Error = err.Error()
	case err != nil:
		c.failErr(w, r, v, err)
		return
	}
	view.Page = page
	if page.Next != "" {
		view.NextURL = f.url("after", page.Next)
	}
	if query.After != "" {
		view.FirstURL = f.url()
	}
	if f.Tail {
		view.TailURL = f.url()
		view.LiveURL = "/ui/live/events?" + f.values().Encode()
	} else {
		view.TailURL = f.url("tail", "1")
	}
	status := http.StatusOK
	if view.Error != "" {
		status = http.StatusBadRequest
	}
	c.render(w, r, status, "events", view)
}

func (c *Console) sourceNames() []string {
	var out []string
	if c.opts.Config != nil {
		for _, s := range c.opts.Config().Sources {
			out = append(out, s.Name)
		}
	}
	return out
}

// tailBatch bounds the rows a live tail sends at once.
const tailBatch = 50

// liveEvents streams the events page's new rows ("rows", newest first)
// as they are stored: each tick asks for those received since the
// millisecond of the newest one read, and sends those not sent yet.
func (c *Console) liveEvents(w http.ResponseWriter, r *http.Request, v *base) {
	f := eventFilterOf(r.URL.Query())
	since := c.now().Add(-time.Second)
	seen := map[string]bool{}
	c.stream(w, r, func(send func(event, html string) error) error {
		q := f.query()
		q.Since, q.Until, q.After, q.Limit = since.UTC().Format(time.RFC3339Nano), "", "", tailBatch
		page, err := c.opts.Ops.EventPage(r.Context(), q)
		if err != nil {
			return err
		}
		var fresh []admin.Event
		for _, ev := range page.Events {
			if !seen[ev.ID] {
				fresh = append(fresh, ev)
			}
		}
		if len(page.Events) > 0 {
			// The next ask starts at the millisecond of the newest event
			// read (the store filters receive times to the millisecond):
			// remember every event from it on, sent now or before, and
			// forget the older ones.
			newest := slices.MaxFunc(page.Events, func(a, b admin.Event) int { return a.ReceivedAt.Compare(b.ReceivedAt) }).ReceivedAt
			since = newest.Truncate(time.Millisecond)
			seen = map[string]bool{}
			for _, ev := range page.Events {
				if !ev.ReceivedAt.Before(since) {
					seen[ev.ID] = true
				}
			}
		}
		if len(fresh) == 0 {
			return send("ping", "")
		}
		var buf strings.Builder
		for _, ev := range fresh {
			c.renderFragmentTo(&buf, "events", "row", &rowView{base: v, E: ev})
		}
		return send("rows", buf.String())
	})
}

// rowView is one row of the events table.
type rowView struct {
	*base
	E admin.Event
}
