package console

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/queue"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// deliveryFilter is the deliveries page's filter, as in its URL.
type deliveryFilter struct {
	Sink, State, Status, Error, Subject, Event, Since, Until string
}

func deliveryFilterOf(q url.Values) deliveryFilter {
	return deliveryFilter{Sink: q.Get("sink"), State: q.Get("state"), Status: q.Get("status"), Error: q.Get("error"),
		Subject: q.Get("subject"), Event: q.Get("event"), Since: q.Get("since"), Until: q.Get("until")}
}

func (f deliveryFilter) query() admin.DeliveryQuery {
	return admin.DeliveryQuery{Sink: f.Sink, State: f.State, Status: f.Status, Error: f.Error, Subject: f.Subject,
		Event: f.Event, Since: f.Since, Until: f.Until}
}

func (f deliveryFilter) url(extra ...string) string {
	v, _ := url.ParseQuery(f.query().QueryString())
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	if len(v) == 0 {
		return "/ui/deliveries"
	}
	return "/ui/deliveries?" + v.Encode()
}

// Empty reports whether the filter selects everything.
func (f deliveryFilter) Empty() bool { return f == deliveryFilter{} }

type deliveriesView struct {
	*base
	F             deliveryFilter
	Sinks, States []string
	Page          admin.DeliveryPage
	listing
	Audit   []admin.AuditEntry
	MaxBulk int
}

func (c *Console) deliveries(w http.ResponseWriter, r *http.Request, v *base) {
	v.Title = "Deliveries"
	q := r.URL.Query()
	f := deliveryFilterOf(q)
	if f.State == queue.StateDead && len(q) == 1 {
		v.Title = "Dead letters"
	}
	view := &deliveriesView{base: v, F: f, States: queue.States, MaxBulk: admin.MaxBulk}
	for _, s := range c.sinkNames() {
		view.Sinks = append(view.Sinks, s)
	}
	query := f.query()
	query.After, query.Limit = q.Get("after"), pageSize
	page, err := c.opts.Ops.DeliveryPage(r.Context(), query)
	if err := view.paged(err, page.Next, query.After, f.url); err != nil {
		c.failErr(w, r, v, err)
		return
	}
	view.Page = page
	if view.Audit, err = c.opts.Ops.Audits(r.Context(), 20); err != nil {
		c.failErr(w, r, v, err)
		return
	}
	c.render(w, r, view.status(), "deliveries", view)
}

func (c *Console) sinkNames() []string {
	var out []string
	if c.opts.Config != nil {
		for _, s := range c.opts.Config().Sinks {
			out = append(out, s.Name)
		}
	}
	return out
}

// back returns where an action goes after: the page it was posted
// from, when that is in the console.
func back(r *http.Request, fallback string) string {
	if b := r.PostFormValue("back"); b != "" {
		return safeNext(b)
	}
	return fallback
}

func (c *Console) replayDelivery(w http.ResponseWriter, r *http.Request, v *base) {
	id := r.PathValue("id")
	res, err := c.opts.Ops.Replay(r.Context(), admin.DeliveryQuery{Delivery: id})
	if err != nil {
		c.failErr(w, r, v, err)
		return
	}
	c.log.Info("replay requested in the console", "delivery_id", id, "requeued", res.Requeued)
	http.Redirect(w, r, back(r, "/ui/deliveries"), http.StatusSeeOther)
}

func (c *Console) retryNow(w http.ResponseWriter, r *http.Request, v *base) {
	id := r.PathValue("id")
	if err := c.opts.Ops.RetryNow(r.Context(), id); err != nil {
		c.failErr(w, r, v, err)
		return
	}
	c.log.Info("retry now requested in the console", "delivery_id", id)
	http.Redirect(w, r, back(r, "/ui/deliveries"), http.StatusSeeOther)
}

func (c *Console) giveUp(w http.ResponseWriter, r *http.Request, v *base) {
	id := r.PathValue("id")
	if err := c.opts.Ops.GiveUp(r.Context(), id); err != nil {
		c.failErr(w, r, v, err)
		return
	}
	c.log.Info("delivery given up in the console", "delivery_id", id)
	http.Redirect(w, r, back(r, "/ui/deliveries"), http.StatusSeeOther)
}

type sessionView struct {
	*base
	S admin.Session
}

func (c *Console) session(w http.ResponseWriter, r *http.Request, v *base) {
	s, err := c.opts.Ops.Session(r.Context(), r.PathValue("subject"))
	if err != nil {
		c.failErr(w, r, v, err)
		return
	}
	v.Title = "Session " + s.Subject
	c.render(w, r, http.StatusOK, "session", &sessionView{base: v, S: s})
}

// URL is the deliveries page with this filter.
func (f deliveryFilter) URL() string { return f.url() }
