package postgres

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/sinks"
	"github.com/switchyard/switchyard/sinks/archive"
	"github.com/switchyard/switchyard/sinks/sqlite"
)

// BenchmarkArchiveWrites measures archived events per second with
// deliveries sent concurrently (sink concurrency 16), on PostgreSQL
// folding accents with unaccent and with the own table, and, as the
// baseline of the same run, on SQLite:
//
//	CI=true go test -run '^$' -bench ArchiveWrites -benchtime 3000x ./sinks/postgres/
//
// events: function calls (an events row only). sessions: each event a
// new analyzed session (events row, sessions row, search index).
func BenchmarkArchiveWrites(b *testing.B) {
	c := pgtest.Shared(b)
	for _, kind := range []string{"events", "sessions"} {
		for _, backend := range []string{"sqlite", "postgres-unaccent", "postgres-table"} {
			b.Run(kind+"/"+backend, func(b *testing.B) {
				s, _ := benchSink(b, c, backend)
				base := analyzed("base", "s", "Mariana Costa (+55 11 98765-4321)",
					"Mariana procura apartamento de 2 quartos na Zona Sul de São Paulo. Pediu reembolso do sinal; sessão transferida.")
				if kind == "events" {
					base.EventType = "function.call.agendarVisita"
				}
				var n atomic.Int64
				b.ReportAllocs()
				b.ResetTimer()
				report := cpuMeter(b, c)
				b.SetParallelism(8) // 16 on 2 cores
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := n.Add(1)
						ev := *base
						ev.ID = fmt.Sprintf("evt_%09d", i)
						ev.Subject = fmt.Sprintf("sess_%09d", i)
						if err := s.Send(context.Background(), &sinks.Delivery{ID: ev.ID, Attempt: 1, Event: &ev}); err != nil {
							b.Error(err)
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
				report()
			})
		}
	}
}

type benchArchive interface {
	sinks.Sink
	sinks.Opener
}

// benchSink opens an archive of backend, and returns it with its name:
// a file path or a DSN.
func benchSink(b *testing.B, c *pgtest.Cluster, backend string) (benchArchive, string) {
	var s benchArchive
	var name string
	var err error
	switch backend {
	case "sqlite":
		name = filepath.Join(b.TempDir(), "archive.db")
		s = sqlite.New(sqlite.Options{Path: name})
	case "postgres-unaccent":
		name = c.DSN(b)
		s, err = New(Options{DSN: name})
	case "postgres-table":
		name = restrictedDSN(b, c)
		s, err = New(Options{DSN: name})
	}
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, name
}

// BenchmarkArchiveSearch measures a search of 20,000 sessions (each
// word matches about 1 in 50) on the same three archives.
//
//	CI=true go test -run '^$' -bench ArchiveSearch ./sinks/postgres/
func BenchmarkArchiveSearch(b *testing.B) {
	c := pgtest.Shared(b)
	words := []string{"reembolso", "visita", "garagem", "cobrança", "sessão"}
	for _, backend := range []string{"sqlite", "postgres-unaccent", "postgres-table"} {
		b.Run(backend, func(b *testing.B) {
			s, name := benchSink(b, c, backend)
			const sessions = 20000
			errs := make(chan error, sessions)
			sem := make(chan struct{}, 16)
			for i := range sessions {
				sem <- struct{}{}
				go func() {
					defer func() { <-sem }()
					summary := fmt.Sprintf("Cliente %d quer falar sobre o contrato %d e a %s número %d.", i, i%97, words[i%len(words)], i%50)
					ev := analyzed(fmt.Sprint("e", i), fmt.Sprint("s", i), fmt.Sprint("Cliente ", i), summary)
					errs <- s.Send(context.Background(), &sinks.Delivery{ID: ev.ID, Attempt: 1, Event: ev})
				}()
			}
			for range sessions {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			var r archive.Reader
			var err error
			if backend == "sqlite" {
				r, err = sqlite.OpenReader(context.Background(), name)
			} else {
				r, err = OpenReader(context.Background(), name)
			}
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			b.ReportAllocs()
			report := cpuMeter(b, c)
			defer report()
			for b.Loop() {
				hits, err := r.Search(context.Background(), "sessao 42", 20)
				if err != nil || len(hits) == 0 {
					b.Fatal(hits, err)
				}
			}
		})
	}
}
