package sqlite

import (
	"sync"

	"github.com/switchyard/switchyard/event"
)

// eventCache keeps the most recently accepted events, so that leasing
// them moments later reads and decodes nothing. It is bounded by the
// size of the events' encoded form; the oldest go first. A miss costs
// only a read from the table.
type eventCache struct {
	mu    sync.Mutex
	max   int // bytes
	size  int
	byID  map[string]cached
	order []string // ids, oldest first (a ring of head..)
	head  int
}

type cached struct {
	ev   *event.Event
	size int
}

func newEventCache(maxBytes int) *eventCache {
	return &eventCache{max: maxBytes, byID: map[string]cached{}}
}

// put remembers ev, whose encoded form is size bytes. The cache keeps
// its own copy.
func (c *eventCache) put(ev *event.Event, size int) {
	if c.max <= 0 || size > c.max {
		return
	}
	cp := *ev
	cp.DedupKey = "" // not part of the stored event
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byID[ev.ID]; ok {
		return
	}
	for c.size+size > c.max && c.head < len(c.order) {
		old := c.order[c.head]
		c.order[c.head] = ""
		c.head++
		c.size -= c.byID[old].size
		delete(c.byID, old)
	}
	if c.head > len(c.order)/2 {
		c.order = append(c.order[:0], c.order[c.head:]...)
		c.head = 0
	}
	c.byID[ev.ID] = cached{ev: &cp, size: size}
	c.order = append(c.order, ev.ID)
	c.size += size
}

// get returns a copy of the event with id, or nil.
func (c *eventCache) get(id string) *event.Event {
	c.mu.Lock()
	e, ok := c.byID[id]
	c.mu.Unlock()
	if !ok {
		return nil
	}
	cp := *e.ev
	return &cp
}

// remove forgets the event with id (an event put before its write, which
// then failed or was a duplicate); its place in the ring is skipped when
// eviction reaches it.
func (c *eventCache) remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byID[id]; ok {
		c.size -= e.size
		delete(c.byID, id)
	}
}
