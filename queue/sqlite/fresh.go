package sqlite

import (
	"time"

	"github.com/switchyard/switchyard/queue"
)

// Fresh deliveries: the deliveries this process has just accepted for an
// unordered sink are kept in memory, in the order accepted, so that
// leasing them needs no read of the queue. A read after a commit costs
// far more than a read of an unchanged database (SQLite re-reads the
// pages the commit changed): at a light load, one per event was a fifth
// of the gateway's CPU.
//
// The queue stays the truth. Lease reads it at least every freshWindow
// (retries come due there, and other processes' changes, such as a
// replay from the CLI, show there only); a delivery it returns leaves
// the fresh list, and one leased from the list is held like any other,
// so no delivery is handed out twice. An entry is added before its
// accept is written and becomes ready only once the write succeeded;
// operators' writes in this process (replay, purge, retry, give up)
// clear the list. Ordered sinks never use it: their order is the
// queue's, across subjects and retries.
type freshList struct {
	byID  map[string]*freshEntry
	order []*freshEntry
	head  int
}

type freshEntry struct {
	d     queue.Delivery // without its event (the cache has it)
	seq   int64          // the delivery's rowid, once written
	ready bool           // its accept succeeded
	gone  bool           // leased, or dropped
}

const (
	// freshWindow is how long Lease may serve from the fresh list
	// without reading the queue.
	freshWindow = 50 * time.Millisecond
	// maxFresh bounds each sink's list; past it, new deliveries are
	// found by reading the queue.
	maxFresh = 4096
)

// addFresh adds a delivery about to be written, not ready yet; false
// when the sink's list is full. Call with mu held.
func (l *leases) addFresh(d queue.Delivery) *freshEntry {
	f := l.fresh[d.Sink]
	if f == nil {
		f = &freshList{byID: map[string]*freshEntry{}}
		l.fresh[d.Sink] = f
	}
	if len(f.byID) >= maxFresh {
		return nil
	}
	e := &freshEntry{d: d}
	f.byID[d.ID] = e
	f.order = append(f.order, e)
	return e
}

// dropFresh forgets a fresh delivery (the queue handed it out, or its
// write failed). Call with mu held.
func (l *leases) dropFresh(sink, id string) {
	f := l.fresh[sink]
	if f == nil {
		return
	}
	if e, ok := f.byID[id]; ok {
		e.gone = true
		delete(f.byID, id)
	}
}

// clearFresh forgets every fresh delivery. Call with mu held.
func (l *leases) clearFresh() {
	for _, f := range l.fresh {
		for _, e := range f.byID {
			e.gone = true
		}
	}
	l.fresh = map[string]*freshList{}
}

// popFresh takes up to n ready fresh deliveries of sink, in the order
// accepted, stopping at one whose write has not returned yet. Call with
// mu held.
func (l *leases) popFresh(sink string, n int) []*freshEntry {
	f := l.fresh[sink]
	if f == nil {
		return nil
	}
	var out []*freshEntry
	for f.head < len(f.order) && len(out) < n {
		e := f.order[f.head]
		if !e.gone && !e.ready {
			break
		}
		f.order[f.head] = nil
		f.head++
		if e.gone {
			continue
		}
		e.gone = true
		delete(f.byID, e.d.ID)
		out = append(out, e)
	}
	if f.head > 64 && f.head > len(f.order)/2 {
		f.order = append(f.order[:0], f.order[f.head:]...)
		f.head = 0
	}
	return out
}

// readyFresh reports whether sink has a ready fresh delivery first in
// line. Call with mu held.
func (l *leases) readyFresh(sink string) bool {
	f := l.fresh[sink]
	if f == nil {
		return false
	}
	for i := f.head; i < len(f.order); i++ {
		if e := f.order[i]; !e.gone {
			return e.ready
		}
	}
	return false
}
