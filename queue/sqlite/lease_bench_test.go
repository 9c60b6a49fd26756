package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/queue"
)

// BenchmarkLeaseAtALightLoad measures one lease as a light load makes
// them: one event accepted, leased and completed at a time, so that
// every lease follows a commit.
func BenchmarkLeaseAtALightLoad(b *testing.B) {
	c := newClock()
	s, err := Open(context.Background(), b.TempDir(), Options{Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 2000 { // a store with some history
		s.Accept(ctx, queue.Incoming{Event: newEvent(c, fmt.Sprint("old", i)), Targets: targets("a")})
		ds, _ := s.Lease(ctx, queue.LeaseRequest{Sink: "a", Limit: 1, For: time.Minute})
		s.Complete(ctx, &ds[0], queue.Outcome{State: queue.StateDelivered})
	}
	b.ReportAllocs()
	var leased time.Duration
	i := 0
	for b.Loop() {
		i++
		s.Accept(ctx, queue.Incoming{Event: newEvent(c, fmt.Sprint(i)), Targets: targets("a")})
		t0 := time.Now()
		ds, err := s.Lease(ctx, queue.LeaseRequest{Sink: "a", Limit: 8, For: time.Minute})
		leased += time.Since(t0)
		if err != nil || len(ds) != 1 {
			b.Fatal(ds, err)
		}
		s.Complete(ctx, &ds[0], queue.Outcome{State: queue.StateDelivered})
	}
	b.ReportMetric(float64(leased.Microseconds())/float64(i), "lease-µs")
}

func BenchmarkLeaseNoWrites(b *testing.B) {
	c := newClock()
	s, err := Open(context.Background(), b.TempDir(), Options{Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 2000 {
		s.Accept(ctx, queue.Incoming{Event: newEvent(c, fmt.Sprint("old", i)), Targets: targets("a")})
	}
	ds, _ := s.Lease(ctx, queue.LeaseRequest{Sink: "a", Limit: 2000, For: time.Hour})
	_ = ds
	b.ReportAllocs()
	for b.Loop() {
		s.Lease(ctx, queue.LeaseRequest{Sink: "b", Limit: 8, For: time.Minute})
	}
}
