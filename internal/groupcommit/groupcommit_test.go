package groupcommit

import (
	"slices"
	"sync"
	"testing"
)

func TestLoopBatchesAndDrainsOnStop(t *testing.T) {
	t.Parallel()
	ops := make(chan int, 100)
	stop := make(chan struct{})
	var batches [][]int
	for i := range 10 {
		ops <- i
	}
	close(stop) // queued before Stop: still committed
	Loop[int]{Ops: ops, Stop: stop, Max: 4, Commit: func(b []int) { batches = append(batches, slices.Clone(b)) }}.Run()
	var all []int
	for _, b := range batches {
		if len(b) > 4 {
			t.Fatalf("batch of %d, max 4", len(b))
		}
		all = append(all, b...)
	}
	if !slices.Equal(all, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) || len(batches) != 3 {
		t.Fatalf("batches = %v, want 10 requests in order in 3 batches", batches)
	}
}

func TestLoopGroupsConcurrentRequests(t *testing.T) {
	t.Parallel()
	ops := make(chan chan struct{})
	stop := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		Loop[chan struct{}]{Ops: ops, Stop: stop, Max: 64, Commit: func(b []chan struct{}) {
			mu.Lock()
			sizes = append(sizes, len(b))
			mu.Unlock()
			for _, c := range b {
				close(c)
			}
		}}.Run()
	}()
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			c := make(chan struct{})
			ops <- c
			<-c
		})
	}
	wg.Wait()
	close(stop)
	<-done
	if len(sizes) >= 200 {
		t.Fatalf("%d commits for 200 concurrent requests: nothing was grouped", len(sizes))
	}
}
