package console_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/console"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/queue"
)

// TestLiveTailOnce: the events page's live tail sends each new event
// once, among events received within one millisecond too: the store
// filters receive times to the millisecond, so each tick asks again for
// the millisecond of the newest event sent.
func TestLiveTailOnce(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		s, _ := b.open(t)
		h, cookie := consoleOn(t, s, console.Options{LiveEvery: 20 * time.Millisecond})
		srv := httptest.NewServer(h)
		defer srv.Close()
		at := time.Now().Truncate(time.Millisecond)
		var ids []string
		for i := range 3 { // 0.0, 0.3 and 0.6 ms into one millisecond
			when := at.Add(time.Duration(i) * 300 * time.Microsecond)
			ev := &event.Event{ID: event.NewID("evt_", when), Source: "darwin", EventType: "session.closed", Subject: "s",
				Timestamp: when, ReceivedAt: when, Data: []byte(`{}`), DedupKey: fmt.Sprint("tail-", i)}
			acc, err := s.Accept(context.Background(), queue.Incoming{Event: ev, Targets: []queue.Target{{Sink: "crm", Routes: []string{"all"}}}})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, acc.EventID)
		}
		// Eight ticks of the stream: the first sends the three, the
		// others must send nothing again.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/ui/live/events", nil)
		req.AddCookie(cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("live events: %d", resp.StatusCode)
		}
		rows := map[string]int{}
		ticks := 0
		sc := bufio.NewScanner(resp.Body)
		for ticks < 8 && sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "event: ") {
				ticks++
			}
			for _, id := range ids {
				if strings.Contains(line, `href="/ui/events/`+id+`"`) {
					rows[id]++
				}
			}
		}
		if ticks < 8 {
			t.Fatalf("the stream ended after %d ticks: %v", ticks, sc.Err())
		}
		for _, id := range ids {
			if rows[id] != 1 {
				t.Errorf("event %s sent %d times in %d ticks, want once", id, rows[id], ticks)
			}
		}
	})
}
