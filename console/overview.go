package console

import (
	"net/http"
	"slices"
	"time"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/queue"
)

type overviewView struct {
	*base
	Live  string // the live fragment's URL
	Stats *overviewStats
}

// overviewStats is the overview's live part, rendered whole every few
// seconds.
type overviewStats struct {
	At      time.Time
	Sources []sourceRow
	Sinks   []sinkRow
	Blocked []queue.Blocked
	// EventsChart and DeliveriesChart are the last hour per minute, for
	// console.js: {"x": [unix seconds], "series": {name: [counts]}}.
	EventsChart     chartData
	DeliveriesChart chartData
	Error           string
}

type sourceRow struct {
	Name                          string
	Accepted, Duplicate, Rejected int64 // last five minutes
	HourAccepted                  int64
	// Reasons are the last hour's rejections by reason.
	Reasons []reasonCount
}

type reasonCount struct {
	Reason string
	N      int64
}

type sinkRow struct {
	admin.SinkOverview
	Delivered, Failing, Dead int64 // attempts in the last five minutes
	Age                      time.Duration
}

type chartData struct {
	X      []int64            `json:"x"`
	Series map[string][]int64 `json:"series"`
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, v *base) {
	v.Title = "Overview"
	c.render(w, r, http.StatusOK, "overview", &overviewView{base: v, Live: "/ui/live/overview", Stats: c.overviewStats(r)})
}

func (c *Console) overviewStats(r *http.Request) *overviewStats {
	now := c.now()
	st := &overviewStats{At: now}
	snap := c.opts.Rates.snapshot()
	names := []string{}
	if c.opts.Config != nil {
		for _, s := range c.opts.Config().Sources {
			names = append(names, s.Name)
		}
	}
	for _, cnt := range snap.Sources {
		if !slices.Contains(names, cnt.Name) {
			names = append(names, cnt.Name)
		}
	}
	for _, cnt := range snap.Rejects {
		if !slices.Contains(names, cnt.Name) {
			names = append(names, cnt.Name)
		}
	}
	for _, name := range names {
		row := sourceRow{Name: name}
		for _, cnt := range snap.Sources {
			if cnt.Name == name {
				row.Accepted, row.Duplicate = cnt.Last5["accepted"], cnt.Last5["duplicate"]
				row.Rejected += cnt.Last5["refused"] + cnt.Last5["failed"]
				row.HourAccepted = cnt.Hour["accepted"]
				for _, o := range []string{"refused", "failed"} {
					if n := cnt.Hour[o]; n > 0 {
						row.Reasons = append(row.Reasons, reasonCount{"503 " + o, n})
					}
				}
			}
		}
		for _, cnt := range snap.Rejects {
			if cnt.Name != name {
				continue
			}
			for reason, n := range cnt.Hour {
				if n > 0 {
					row.Reasons = append(row.Reasons, reasonCount{reason, n})
				}
				row.Rejected += cnt.Last5[reason]
			}
		}
		slices.SortFunc(row.Reasons, func(a, b reasonCount) int { return int(b.N - a.N) })
		st.Sources = append(st.Sources, row)
	}
	sinks, err := c.opts.Ops.Overview(r.Context())
	if err != nil {
		c.log.Error("console overview", "err", err)
		st.Error = "The store could not be read; see the gateway's log."
	}
	for _, s := range sinks {
		row := sinkRow{SinkOverview: s}
		for _, cnt := range snap.Sinks {
			if cnt.Name == s.Name {
				row.Delivered, row.Failing, row.Dead = cnt.Last5[queue.StateDelivered], cnt.Last5[queue.StateFailed], cnt.Last5[queue.StateDead]
			}
		}
		if !s.OldestWaiting.IsZero() {
			row.Age = now.Sub(s.OldestWaiting)
		}
		st.Sinks = append(st.Sinks, row)
		st.Blocked = append(st.Blocked, s.Blocked...)
	}
	for _, m := range snap.Minutes {
		st.EventsChart.X = append(st.EventsChart.X, m.Unix())
	}
	st.DeliveriesChart.X = st.EventsChart.X
	series := func(keys ...string) []int64 {
		out := make([]int64, window)
		for _, k := range keys {
			for i, n := range snap.Series[k] {
				out[i] += n
			}
		}
		return out
	}
	var rejectKeys []string
	for k := range snap.Series {
		if len(k) > 7 && k[:7] == "reject/" {
			rejectKeys = append(rejectKeys, k)
		}
	}
	st.EventsChart.Series = map[string][]int64{
		"accepted":  series("source/accepted"),
		"duplicate": series("source/duplicate"),
		"rejected":  series(append(rejectKeys, "source/refused", "source/failed")...),
	}
	st.DeliveriesChart.Series = map[string][]int64{
		"delivered": series("sink/delivered"),
		"failed":    series("sink/failed"),
		"dead":      series("sink/dead"),
	}
	return st
}

// snapshot is Snapshot on nil rates too.
func (r *Rates) snapshot() Snapshot {
	if r == nil {
		return NewRates(nil).Snapshot()
	}
	return r.Snapshot()
}

// liveOverview streams the overview's live part as server-sent events
// ("stats"), every LiveEvery, until the browser leaves or the console
// closes.
func (c *Console) liveOverview(w http.ResponseWriter, r *http.Request, v *base) {
	c.stream(w, r, func(send func(event, html string) error) error {
		var buf bytesBuffer
		c.renderFragmentTo(&buf, "overview", "stats", c.overviewStats(r))
		return send("stats", buf.String())
	})
}
