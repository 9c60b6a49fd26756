package slack

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// pacer is Pacer in memory, for one process: at most n posts per
// channel in any window of length per, a burst of n, then one each
// per/n on average. Posts reserve a slot before they start, so
// concurrent sends to one channel queue up.
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

func (p *pacer) window(channel string) *window {
	w := p.channels[channel]
	if w == nil {
		w = &window{}
		p.channels[channel] = w
	}
	return w
}

func (p *pacer) Reserve(_ context.Context, channel string) (Slot, error) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.window(channel)
	var at time.Time
	at, w.times = NextSlot(w.times, w.until, now, p.n, p.per)
	return Slot{At: at, Wait: at.Sub(now)}, nil
}

func (p *pacer) Release(_ context.Context, channel string, s Slot) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := p.channels[channel]; w != nil {
		if i := slices.IndexFunc(w.times, s.At.Equal); i >= 0 {
			w.times = slices.Delete(w.times, i, i+1)
		}
	}
	return nil
}

func (p *pacer) Block(_ context.Context, channel string, d time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.window(channel)
	w.until = later(w.until, time.Now().Add(d))
	return nil
}

// wait reserves a slot for channel and sleeps until it. When the slot is
// beyond ctx's deadline, it gives the slot back and returns a retryable
// *paceError at once, so the attempt ends in time and is retried.
func (s *Sink) wait(ctx context.Context, channel string) error {
	slot, err := s.pace.Reserve(ctx, channel)
	if err != nil {
		return fmt.Errorf("pace channel: %w", err)
	}
	if slot.Wait <= 0 {
		return nil
	}
	release := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.pace.Release(rctx, channel, slot); err != nil {
			s.log.Warn("give back a slack channel's slot", "err", err)
		}
	}
	if deadline, ok := ctx.Deadline(); ok && time.Now().Add(slot.Wait).After(deadline) {
		release()
		return &paceError{channel: channel, after: slot.Wait}
	}
	t := time.NewTimer(slot.Wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		release()
		return context.Cause(ctx)
	}
}

// block holds channel's posts back for d: Slack asked to wait.
func (s *Sink) block(ctx context.Context, channel string, d time.Duration) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.pace.Block(bctx, channel, d); err != nil {
		s.log.Warn("hold a slack channel back", "channel", channel, "err", err)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
