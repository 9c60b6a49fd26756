package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/sinks"
)

// TestPaceChannel sends 30 events to one channel from 4 workers at once
// (in a synctest bubble, against an in-memory Slack): every event
// arrives, and no window of the rate's period holds more posts than the
// rate allows. Another channel is not held back by the busy one.
func TestPaceChannel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		n    int
		per  time.Duration
	}{
		{"default 1/s", 0, 0},
		{"bursts 3/3s", 3, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				f := &fakeAPI{}
				s := newSink(t, Options{
					Token:          testToken,
					Channel:        lang.MustParseTemplate("{{ data.channel }}"),
					APIURL:         "http://slack.test/",
					Client:         &http.Client{Transport: memTransport{f}},
					ChannelRateN:   tc.n,
					ChannelRatePer: tc.per,
				})
				n, per := tc.n, tc.per
				if n == 0 {
					n, per = DefaultChannelRateN, DefaultChannelRatePer
				}
				start := time.Now()
				const events = 30
				var wg sync.WaitGroup
				work := make(chan int)
				var mu sync.Mutex
				var errs []error
				for range 4 {
					wg.Go(func() {
						for i := range work {
							// Each attempt has the default 10s timeout; a
							// paced-out attempt is retried, as delivery does.
							for {
								ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
								err := s.Send(ctx, &sinks.Delivery{ID: fmt.Sprint(i), Attempt: 1, Event: channelEvent(i, "#busy")})
								cancel()
								if err == nil {
									break
								}
								if !retryable(err) {
									mu.Lock()
									errs = append(errs, err)
									mu.Unlock()
									break
								}
								var ra interface{ RetryAfter() time.Duration }
								if errors.As(err, &ra) {
									time.Sleep(ra.RetryAfter())
								}
							}
						}
					})
				}
				for i := range events {
					work <- i
				}
				// The quiet channel posts at once, busy as #busy is.
				quietStart := time.Now()
				if err := s.Send(context.Background(), &sinks.Delivery{ID: "q", Attempt: 1, Event: channelEvent(99, "#quiet")}); err != nil {
					t.Errorf("Send to #quiet = %v", err)
				}
				if d := time.Since(quietStart); d > 0 {
					t.Errorf("#quiet waited %v behind #busy", d)
				}
				close(work)
				wg.Wait()
				for _, err := range errs {
					t.Errorf("Send = %v", err)
				}

				var times []time.Time
				for _, p := range f.received(t) {
					if p.Channel == "#busy" {
						times = append(times, p.At)
					}
				}
				if len(times) != events {
					t.Fatalf("#busy got %d posts, want %d", len(times), events)
				}
				for i := n; i < len(times); i++ {
					if gap := times[i].Sub(times[i-n]); gap < per {
						t.Errorf("posts %d and %d are %v apart: more than %d in %v", i-n, i, gap, n, per)
					}
				}
				// Not slower than needed either: one period per n posts.
				if took, limit := time.Since(start), time.Duration(events/n)*per+per; took > limit {
					t.Errorf("30 posts took %v, want at most %v", took, limit)
				}
			})
		})
	}
}

func channelEvent(i int, channel string) *event.Event {
	return &event.Event{
		ID: fmt.Sprintf("evt_%d", i), Source: "darwin", EventType: "session.opened",
		Subject: fmt.Sprintf("s%d", i), Timestamp: received, ReceivedAt: received,
		Data: []byte(fmt.Sprintf(`{"channel":%q,"conversationTitle":"Cliente %d"}`, channel, i)),
	}
}
