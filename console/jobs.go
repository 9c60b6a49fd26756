package console

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/switchyard/switchyard/admin"
)

// planTTL is how long a dry run's count can be confirmed.
const planTTL = 10 * time.Minute

// jobs holds the dry runs awaiting confirmation (plans) and the bulk
// actions running or done (jobs), in memory.
type jobs struct {
	mu    sync.Mutex
	plans map[string]*plan
	m     map[string]*job
}

type plan struct {
	admin.BulkPlan
	id      string
	session string
	filter  string
	expires time.Time
}

// job is a bulk action: its plan, its progress, its outcome.
type job struct {
	ID     string
	Action string
	Filter string
	Total  int
	Capped bool
	// BackURL lists the deliveries the filter selects.
	BackURL string
	mu      sync.Mutex
	done    int64
	ended   bool
	err     string
	started time.Time
}

// jobView is a job's state, as the job page shows it.
type jobView struct {
	ID, Action, Filter, BackURL string
	Total                       int
	Capped                      bool
	Done                        int64
	Ended                       bool
	Error                       string
	Percent                     int
	Started                     time.Time
}

func (j *job) view() jobView {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := jobView{ID: j.ID, Action: j.Action, Filter: j.Filter, BackURL: j.BackURL, Total: j.Total, Capped: j.Capped,
		Done: j.done, Ended: j.ended, Error: j.err, Started: j.started}
	if j.Total > 0 {
		v.Percent = int(j.done * 100 / int64(j.Total))
	} else if j.ended {
		v.Percent = 100
	}
	return v
}

// maxJobs bounds the jobs remembered (finished ones are dropped first).
const maxJobs = 100

type planView struct {
	*base
	PlanID  string
	Action  string
	Matched int
	Capped  bool
	Bound   int
	F       deliveryFilter
	Filter  string
	BackURL string
}

// planBulk is the dry run: it counts what the action would change, and
// keeps the list for the confirmation.
func (c *Console) planBulk(w http.ResponseWriter, r *http.Request, v *base) {
	f := deliveryFilterOf(r.PostForm)
	action := r.PostFormValue("action")
	bound, _ := strconv.Atoi(r.PostFormValue("bound"))
	p, err := c.opts.Ops.PlanBulk(r.Context(), action, f.query(), bound)
	if err != nil {
		c.failErr(w, r, v, err)
		return
	}
	ck, _ := r.Cookie(sessionCookie)
	pl := &plan{BulkPlan: p, id: randomToken(), session: ck.Value, filter: f.query().QueryString(), expires: c.now().Add(planTTL)}
	c.jobs.mu.Lock()
	if c.jobs.plans == nil {
		c.jobs.plans = map[string]*plan{}
	}
	for id, old := range c.jobs.plans {
		if c.now().After(old.expires) {
			delete(c.jobs.plans, id)
		}
	}
	c.jobs.plans[pl.id] = pl
	c.jobs.mu.Unlock()
	v.Title = "Confirm " + action
	if bound <= 0 || bound > admin.MaxBulk {
		bound = admin.MaxBulk
	}
	c.render(w, r, http.StatusOK, "plan", &planView{base: v, PlanID: pl.id, Action: action, Matched: p.Matched, Capped: p.Capped,
		Bound: bound, F: f, Filter: pl.filter, BackURL: f.url()})
}

// runBulk starts a confirmed plan, once, and shows its progress.
func (c *Console) runBulk(w http.ResponseWriter, r *http.Request, v *base) {
	id := r.PostFormValue("plan")
	ck, _ := r.Cookie(sessionCookie)
	c.jobs.mu.Lock()
	pl := c.jobs.plans[id]
	delete(c.jobs.plans, id) // a plan runs once
	c.jobs.mu.Unlock()
	if pl == nil || pl.session != ck.Value || c.now().After(pl.expires) {
		c.fail(w, r, v, http.StatusConflict, "This count expired or was already carried out: count again.")
		return
	}
	j := &job{ID: randomToken()[:16], Action: pl.Action, Filter: pl.filter, Total: pl.Matched, Capped: pl.Capped,
		BackURL: "/ui/deliveries" + queryString("sink", pl.Query.Sink, "state", pl.Query.State, "status", pl.Query.Status,
			"error", pl.Query.Error, "subject", pl.Query.Subject, "event", pl.Query.Event, "since", pl.Query.Since, "until", pl.Query.Until),
		started: c.now()}
	c.jobs.mu.Lock()
	if len(c.jobs.m) >= maxJobs {
		for k, old := range c.jobs.m {
			if old.view().Ended {
				delete(c.jobs.m, k)
				break
			}
		}
	}
	c.jobs.m[j.ID] = j
	c.jobs.mu.Unlock()
	select {
	case <-c.quit:
		c.fail(w, r, v, http.StatusServiceUnavailable, "The gateway is stopping.")
		return
	default:
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_, err := c.opts.Ops.RunBulk(c.ctx, pl.BulkPlan, v.Role, pl.filter, func(done int64) {
			j.mu.Lock()
			j.done = done
			j.mu.Unlock()
		})
		j.mu.Lock()
		j.ended = true
		if err != nil {
			j.err = err.Error()
			c.log.Error("bulk action in the console failed", "action", j.Action, "filter", j.Filter, "done", j.done, "err", err)
		} else {
			c.log.Info("bulk action in the console", "action", j.Action, "filter", j.Filter, "matched", j.Total, "done", j.done)
		}
		j.mu.Unlock()
	}()
	http.Redirect(w, r, "/ui/jobs/"+j.ID, http.StatusSeeOther)
}

type jobPageView struct {
	*base
	J jobView
}

// jobPage shows a job's progress; htmx polls its progress fragment
// until the job ends.
func (c *Console) jobPage(w http.ResponseWriter, r *http.Request, v *base) {
	c.jobs.mu.Lock()
	j := c.jobs.m[r.PathValue("id")]
	c.jobs.mu.Unlock()
	if j == nil {
		c.fail(w, r, v, http.StatusNotFound, "No such job (jobs are forgotten when the gateway restarts; the audit log keeps what they did).")
		return
	}
	view := &jobPageView{base: v, J: j.view()}
	v.Title = "Bulk " + view.J.Action
	if r.Header.Get("HX-Request") != "" {
		c.renderFragment(w, http.StatusOK, "job", "progress", view)
		return
	}
	c.render(w, r, http.StatusOK, "job", view)
}
