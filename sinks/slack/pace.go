package slack

import (
	"context"
	"slices"
	"sync"
	"time"
)

// pacer allows at most n posts per channel in any window of length per:
// a burst of n, then one each per/n on average. Posts reserve a slot
// before they start, so concurrent sends to one channel queue up.
type pacer struct {
	n   int
	per time.Duration

	mu       sync.Mutex
	channels map[string]*window
}

type window struct {
	times []time.Time // reserved slots, in order
	until time.Time   // no post before this (a 429's Retry-After)
}

func newPacer(n int, per time.Duration) *pacer {
	return &pacer{n: n, per: per, channels: map[string]*window{}}
}

// reserve returns the time the next post to channel may start, and
// records it. A slot is given back with release if it is not used.
func (p *pacer) reserve(channel string, now time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.channels[channel]
	if w == nil {
		w = &window{}
		p.channels[channel] = w
	}
	// Slots are handed out in order; only those within per of now can
	// constrain the next one.
	keep := 0
	for keep < len(w.times) && !w.times[keep].After(now.Add(-p.per)) {
		keep++
	}
	w.times = w.times[keep:]
	at := later(now, w.until)
	if len(w.times) > 0 {
		at = later(at, w.times[len(w.times)-1])
	}
	if len(w.times) >= p.n {
		at = later(at, w.times[len(w.times)-p.n].Add(p.per))
	}
	w.times = append(w.times, at)
	return at
}

// release gives back a slot reserved for at and not used.
func (p *pacer) release(channel string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := p.channels[channel]; w != nil {
		if i := slices.IndexFunc(w.times, at.Equal); i >= 0 {
			w.times = slices.Delete(w.times, i, i+1)
		}
	}
}

// block stops posts to channel until t: Slack asked to wait.
func (p *pacer) block(channel string, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.channels[channel]
	if w == nil {
		w = &window{}
		p.channels[channel] = w
	}
	w.until = later(w.until, t)
}

// wait reserves a slot for channel and sleeps until it. When the slot is
// beyond ctx's deadline, it gives the slot back and returns a retryable
// *paceError at once, so the attempt ends in time and is retried.
func (p *pacer) wait(ctx context.Context, channel string) error {
	now := time.Now()
	at := p.reserve(channel, now)
	d := at.Sub(now)
	if d <= 0 {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok && at.After(deadline) {
		p.release(channel, at)
		return &paceError{channel: channel, after: d}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		p.release(channel, at)
		return context.Cause(ctx)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
