package delivery

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/queue/sqlite"
)

// readCounter counts the reads a dispatcher makes of a real queue.
type readCounter struct {
	*sqlite.Store
	leases, nextDues atomic.Int64
}

func (q *readCounter) Lease(ctx context.Context, r queue.LeaseRequest) ([]queue.Delivery, error) {
	q.leases.Add(1)
	return q.Store.Lease(ctx, r)
}

func (q *readCounter) NextDue(ctx context.Context, sink string, ordered bool) (time.Time, bool, error) {
	q.nextDues.Add(1)
	return q.Store.NextDue(ctx, sink, ordered)
}

// TestFewReadsPerEventAtALightLoad: events arriving one at a time, each
// waking the worker, cost about one read of the queue each: the end of
// a successful attempt to an unordered sink wakes no one (it used to
// cost a lease and a NextDue more per event).
func TestFewReadsPerEventAtALightLoad(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	q := &readCounter{Store: store}
	sink := &fakeSink{}
	d := New(q, []Sink{{Name: "crm", Sink: sink, Concurrency: 8, Timeout: time.Second, Retry: fast}}, Options{Idle: time.Hour})
	d.Start()
	defer d.Stop(context.Background())
	const n = 40
	for i := range n {
		accept(t, store, "s", "crm")
		d.Notify("crm")
		eventually(t, "delivered", func() bool { return len(sink.Calls()) == i+1 })
		time.Sleep(2 * time.Millisecond) // the attempt's end has passed
	}
	reads := q.leases.Load() + q.nextDues.Load()
	if reads > n*3/2 {
		t.Fatalf("%d reads of the queue (%d leases, %d NextDue) for %d events one at a time: want about one each",
			reads, q.leases.Load(), q.nextDues.Load(), n)
	}
	t.Logf("%d leases, %d NextDue for %d events", q.leases.Load(), q.nextDues.Load(), n)
}
