package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkArchiveWrites measures archived events per second, with
// deliveries sent concurrently as the delivery workers do (sink
// concurrency 16), and one at a time for comparison.
//
//	go test -run '^$' -bench ArchiveWrites -benchtime 5000x ./sinks/sqlite/
//
// events: function calls (an events row only). sessions: each event a
// new analyzed session (events row, sessions row, search index), with
// the search index on and, for comparison, off.
func BenchmarkArchiveWrites(b *testing.B) {
	for _, bc := range []struct {
		name     string
		fixture  string
		fts      bool
		parallel int
	}{
		{"events/concurrent", "function_call", true, 16},
		{"sessions/fts=on/concurrent", "session_analyzed", true, 16},
		{"sessions/fts=off/concurrent", "session_analyzed", false, 16},
		{"sessions/fts=on/serial", "session_analyzed", true, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "archive.db")
			s := New(Options{Path: path, Columns: columnExprs(b, storyColumns)})
			ctx := context.Background()
			if err := s.Open(ctx); err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if !bc.fts {
				for _, trg := range []string{"sessions_fts_ai", "sessions_fts_bu", "sessions_fts_au", "sessions_fts_bd"} {
					if _, err := s.db.Exec("DROP TRIGGER " + trg); err != nil {
						b.Fatal(err)
					}
				}
			}
			base := load(b, bc.fixture, "base").ev
			var n atomic.Int64
			send := func() {
				i := n.Add(1)
				ev := *base
				ev.ID = fmt.Sprintf("evt_%09d", i)
				ev.Subject = fmt.Sprintf("sess_%09d", i)
				if err := s.Send(ctx, delivery(&ev, 1)); err != nil {
					b.Error(err)
				}
			}
			b.ReportAllocs()
			if bc.parallel == 1 {
				for b.Loop() {
					send()
				}
			} else {
				b.SetParallelism(max(1, bc.parallel/runtimeProcs()))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						send()
					}
				})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
