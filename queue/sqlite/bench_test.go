package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/queue"

	"github.com/switchyard/switchyard/event"
)

// BenchmarkLifecycle measures what the queue costs an event end to end:
// 32 concurrent requests accept events of about 1.3 KB with one target
// each, while one deliverer leases them 32 at a time and completes each
// attempt, as the dispatcher does. It reports accepted-and-delivered
// events per second: the gateway's ceiling from its store. Each event
// carries its request (body and headers), stored for the console, as
// the receiver gives it; request=none leaves it out, to measure what
// storing it costs.
func BenchmarkLifecycle(b *testing.B) {
	for _, ordered := range []bool{false, true} {
		b.Run(fmt.Sprintf("ordered=%v", ordered), func(b *testing.B) { benchmarkLifecycle(b, ordered, true) })
	}
	b.Run("ordered=false/request=none", func(b *testing.B) { benchmarkLifecycle(b, false, false) })
}

// benchHeader is what a webhook's kept headers look like.
const benchHeader = "Accept-Encoding: gzip\nContent-Length: 1400\nContent-Type: application/json\nUser-Agent: Darwin-Webhooks/1.0\nX-Forwarded-For: 203.0.113.9\n"

func benchmarkLifecycle(b *testing.B, ordered, request bool) {
	s, err := Open(context.Background(), b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	summary := strings.Repeat("O cliente pediu reembolso do pedido e foi encaminhado. ", 20)
	var seq atomic.Int64
	var delivered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for delivered.Load() < int64(b.N) {
			ds, err := s.Lease(ctx, queue.LeaseRequest{Sink: "hook", Limit: 32, For: time.Minute, Ordered: ordered})
			if err != nil {
				b.Error(err)
				return
			}
			if len(ds) == 0 {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				continue
			}
			var cw sync.WaitGroup
			for _, d := range ds {
				cw.Go(func() {
					if err := s.Complete(ctx, &d, queue.Outcome{State: queue.StateDelivered, Status: 200}); err != nil {
						b.Error(err)
					}
					delivered.Add(1)
				})
			}
			cw.Wait()
		}
	})
	b.ReportAllocs()
	b.SetParallelism(32)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			now := time.Now()
			data, _ := json.Marshal(map[string]any{"sessionId": fmt.Sprintf("sess-%d", n%500), "summary": summary})
			ev := &event.Event{
				ID: event.NewID("evt_", now), Source: "darwin", EventType: "session.forwarded.escalated",
				Subject: fmt.Sprintf("sess-%d", n%500), Timestamp: now, ReceivedAt: now,
				Data: data, DedupKey: fmt.Sprintf("key:%d", n),
			}
			if request {
				// The body the data came in (built cheaply: the benchmark
				// measures the store, not JSON encoding).
				body := append(append([]byte(`{"eventType":"session.forwarded.escalated","timestamp":"2026-11-21T14:40:15.777Z","data":`), data...), '}')
				ev.Request = &event.Request{Body: body, Header: benchHeader}
			}
			if _, err := s.Accept(ctx, queue.Incoming{Event: ev, Targets: []queue.Target{{Sink: "hook", Routes: []string{"all"}}}}); err != nil {
				b.Error(err)
			}
		}
	})
	deadline := time.After(time.Minute)
	for delivered.Load() < int64(b.N) {
		select {
		case <-deadline:
			b.Fatalf("delivered %d of %d", delivered.Load(), b.N)
		case <-time.After(time.Millisecond):
		}
	}
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
