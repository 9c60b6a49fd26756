package delivery

import (
	"fmt"
	"time"
)

// Rate is a number of attempts per period.
type Rate struct {
	N   int
	Per time.Duration
}

// Interval is the spacing between attempt starts; 0 when unlimited.
func (r Rate) Interval() time.Duration {
	if r.N <= 0 || r.Per <= 0 {
		return 0
	}
	return r.Per / time.Duration(r.N)
}

func (r Rate) String() string {
	if r.Interval() == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%d/%s", r.N, r.Per)
}

// pacer spaces attempt starts at least every apart, with no burst: a
// sink limited to 1/s never gets two attempts within a second, even
// after a quiet minute. Only the worker loop uses it.
type pacer struct {
	every time.Duration
	next  time.Time // no start before then
}

// allow returns how many of want attempts may start at now.
func (p *pacer) allow(now time.Time, want int) int {
	if p.every == 0 || want == 0 {
		return want
	}
	if now.Before(p.next) {
		return 0
	}
	return 1
}

// took records n attempts started at now.
func (p *pacer) took(now time.Time, n int) {
	if p.every == 0 || n == 0 {
		return
	}
	p.next = now.Add(time.Duration(n) * p.every)
}

// wait is how long until the next start is allowed.
func (p *pacer) wait(now time.Time) time.Duration {
	return max(p.next.Sub(now), 0)
}
