package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/queue"
)

// BenchmarkAccept measures accepting events of about 1.3 KB with one
// target from 64 concurrent requests, with group commit and, as the
// baseline of the same run, one transaction per request. It reports
// events/s and the writes per commit.
func BenchmarkAccept(b *testing.B) {
	for _, grouped := range []bool{true, false} {
		b.Run(fmt.Sprintf("grouped=%v", grouped), func(b *testing.B) {
			s := open(b, pgtest.Shared(b).DSN(b), Options{PoolSize: 16})
			// The baseline: each request in a transaction of its own, up
			// to the pool's 16 at once (PostgreSQL still shares WAL
			// flushes between concurrent commits).
			s.ungrouped = !grouped
			summary := strings.Repeat("O cliente pediu reembolso do pedido e foi encaminhado. ", 20)
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(32) // 64 on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(n.Add(1))
					ev := testEvent(fmt.Sprint("sess-", i%500), i)
					ev.Data = []byte(fmt.Sprintf(`{"sessionId":"sess-%d","summary":%q}`, i%500, summary))
					if _, err := s.Accept(context.Background(), queue.Incoming{Event: ev, Targets: []queue.Target{{Sink: "hook", Routes: []string{"all"}}}}); err != nil {
						b.Error(err)
					}
				}
			})
			commits, writes := s.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(writes)/float64(max(commits, 1)), "writes/commit")
		})
	}
}
