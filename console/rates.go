package console

import (
	"slices"
	"sync"
	"time"
)

// Rates counts what happened in the last hour, minute by minute: events
// per source by outcome, requests refused per source by reason, and
// attempts per sink by outcome. The gateway feeds it from the hooks
// that feed its metrics; the overview reads it. Keys come from the
// configuration and short fixed lists, so it stays small.
type Rates struct {
	now func() time.Time
	mu  sync.Mutex
	// series by kind ("source", "reject", "sink"), then name, then
	// outcome.
	series map[rateKey]*series
}

type rateKey struct{ kind, name, outcome string }

// window is how many minutes are kept.
const window = 60

// series counts per minute; counts[m % window] is minute m (Unix time
// in minutes) when minutes[m % window] == m.
type series struct {
	counts  [window]int64
	minutes [window]int64
}

func (s *series) add(minute, n int64) {
	i := minute % window
	if s.minutes[i] != minute {
		s.minutes[i], s.counts[i] = minute, 0
	}
	s.counts[i] += n
}

// last returns the counts of the window minutes up to minute, oldest
// first.
func (s *series) last(minute int64) [window]int64 {
	var out [window]int64
	for k := range int64(window) {
		m := minute - window + 1 + k
		if i := m % window; m >= 0 && s.minutes[i] == m {
			out[k] = s.counts[i]
		}
	}
	return out
}

// NewRates returns empty rates on the clock now (time.Now when nil).
func NewRates(now func() time.Time) *Rates {
	if now == nil {
		now = time.Now
	}
	return &Rates{now: now, series: map[rateKey]*series{}}
}

func (r *Rates) add(kind, name, outcome string) {
	if r == nil {
		return
	}
	minute := r.now().Unix() / 60
	r.mu.Lock()
	defer r.mu.Unlock()
	k := rateKey{kind, name, outcome}
	s := r.series[k]
	if s == nil {
		s = &series{}
		r.series[k] = s
	}
	s.add(minute, 1)
}

// Event counts an event of source by outcome (accepted, duplicate,
// refused, failed).
func (r *Rates) Event(source, outcome string) { r.add("source", source, outcome) }

// Rejected counts a request of source refused with reason: its
// verification failed (mismatch, missing, …) or its body could not be
// mapped ("mapping").
func (r *Rates) Rejected(source, reason string) { r.add("reject", source, reason) }

// Attempt counts an attempt of sink by the delivery's state after it
// (delivered, failed, dead).
func (r *Rates) Attempt(sink, state string) { r.add("sink", sink, state) }

// Counts is what one name did in the last hour, by outcome.
type Counts struct {
	Name string
	// Last5 counts the last five minutes, Hour the last hour, by
	// outcome.
	Last5 map[string]int64
	Hour  map[string]int64
}

// Total returns the sum over outcomes of the last five minutes.
func (c Counts) Total5(outcomes ...string) int64 {
	var n int64
	for _, o := range outcomes {
		n += c.Last5[o]
	}
	return n
}

// Snapshot is the rates at a moment.
type Snapshot struct {
	Sources []Counts
	Rejects []Counts
	Sinks   []Counts
	// Minutes are the start of each minute of the last hour, oldest
	// first; Series the per-minute totals over every name, by kind and
	// outcome ("source/accepted", "sink/delivered").
	Minutes []time.Time
	Series  map[string][window]int64
}

// Snapshot returns the counts now.
func (r *Rates) Snapshot() Snapshot {
	now := r.now()
	minute := now.Unix() / 60
	snap := Snapshot{Series: map[string][window]int64{}}
	for k := range int64(window) {
		snap.Minutes = append(snap.Minutes, time.Unix((minute-window+1+k)*60, 0))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	byKind := map[string]map[string]*Counts{"source": {}, "reject": {}, "sink": {}}
	for k, s := range r.series {
		last := s.last(minute)
		c := byKind[k.kind][k.name]
		if c == nil {
			c = &Counts{Name: k.name, Last5: map[string]int64{}, Hour: map[string]int64{}}
			byKind[k.kind][k.name] = c
		}
		agg := snap.Series[k.kind+"/"+k.outcome]
		for i, n := range last {
			c.Hour[k.outcome] += n
			if i >= window-5 {
				c.Last5[k.outcome] += n
			}
			agg[i] += n
		}
		snap.Series[k.kind+"/"+k.outcome] = agg
	}
	list := func(m map[string]*Counts) []Counts {
		out := make([]Counts, 0, len(m))
		for _, c := range m {
			out = append(out, *c)
		}
		slices.SortFunc(out, func(a, b Counts) int {
			if a.Name < b.Name {
				return -1
			}
			if a.Name > b.Name {
				return 1
			}
			return 0
		})
		return out
	}
	snap.Sources, snap.Rejects, snap.Sinks = list(byKind["source"]), list(byKind["reject"]), list(byKind["sink"])
	return snap
}
