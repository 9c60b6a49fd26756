package slack

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// State is where a sink keeps what its posts share with every other
// gateway replica delivering to the same Slack: the thread of each
// subject, the message of each group, and the pace of each channel.
// Implementations: in memory (NewMemoryState, one process), SQLite
// (SQLiteState: slack.db in the storage directory, one gateway) and
// PostgreSQL (package pgstate: the queue's database, any number of
// replicas). statetest holds their contract.
type State interface {
	ThreadStore
	GroupStore
	// Pacer paces sink's channels: at most n posts in any period per.
	Pacer(sink string, n int, per time.Duration) Pacer
	Close() error
}

// OpenState opens a sink's State; Open calls it.
type OpenState func(ctx context.Context) (State, error)

// ThreadKey names a subject's thread: per sink, channel (as the channel
// template gave it) and subject (a Darwin session).
type ThreadKey struct{ Sink, Channel, Subject string }

// Thread is the message that started a subject's thread: the channel id
// Slack answered with (replies go there) and its ts.
type Thread struct{ ChannelID, TS string }

// ThreadStore remembers each subject's thread.
type ThreadStore interface {
	// Thread returns the subject's thread; ok is false when it has none.
	Thread(ctx context.Context, k ThreadKey) (t Thread, ok bool, err error)
	// StartThread starts the subject's thread with start, which posts
	// its first message, unless the subject has a thread by the time no
	// other StartThread of k (on any replica) runs: then it returns
	// that thread and started is false, without calling start. The
	// thread start returns is recorded; if recording fails after start
	// succeeded, StartThread returns the thread, started true and a
	// *RecordError.
	StartThread(ctx context.Context, k ThreadKey, start func(context.Context) (Thread, error)) (t Thread, started bool, err error)
	// ForgetThread drops the subject's thread t, which Slack no longer
	// has; a newer thread of the subject is kept.
	ForgetThread(ctx context.Context, k ThreadKey, t Thread) error
}

// GroupKey names a group: per sink, channel and group.by's value.
type GroupKey struct{ Sink, Channel, Key string }

// GroupStore remembers each group's message.
type GroupStore interface {
	// WithGroup runs fn with the group's state (nil when it has none)
	// while no other WithGroup of k runs on any replica, and records
	// the state fn returns (nil: none to record). If fn fails nothing is
	// recorded; if recording fails, WithGroup returns a *RecordError.
	WithGroup(ctx context.Context, k GroupKey, fn func(context.Context, *GroupState) (*GroupState, error)) error
}

// Pacer spaces the posts to a sink's channels.
type Pacer interface {
	// Reserve books the channel's next slot for a post and returns how
	// long until it starts.
	Reserve(ctx context.Context, channel string) (Slot, error)
	// Release gives back a slot that will not be used.
	Release(ctx context.Context, channel string, s Slot) error
	// Block holds the channel's posts back for d: Slack asked to wait.
	Block(ctx context.Context, channel string, d time.Duration) error
}

// Slot is a reserved time to post: At on the pacer's clock, Wait from
// the reservation.
type Slot struct {
	At   time.Time
	Wait time.Duration
}

// RecordError is a post or edit Slack has, that could not be recorded.
type RecordError struct{ Err error }

func (e *RecordError) Error() string { return "record: " + e.Err.Error() }
func (e *RecordError) Unwrap() error { return e.Err }

// NextSlot is the pacing rule every Pacer applies: given the slots
// booked (in order; those older than per before now no longer count)
// and a block until, the next post may start at the latest of now,
// until, the last slot, and the n-th last slot plus per. It returns
// that time and the slots to keep, with it appended.
func NextSlot(slots []time.Time, until, now time.Time, n int, per time.Duration) (time.Time, []time.Time) {
	keep := 0
	for keep < len(slots) && !slots[keep].After(now.Add(-per)) {
		keep++
	}
	slots = slots[keep:]
	at := later(now, until)
	if len(slots) > 0 {
		at = later(at, slots[len(slots)-1])
	}
	if len(slots) >= n {
		at = later(at, slots[len(slots)-n].Add(per))
	}
	return at, append(slots, at)
}

// memoryState is State in memory: threads and groups of one process,
// forgotten when it ends.
type memoryState struct {
	mu      sync.Mutex
	threads map[ThreadKey]Thread
	groups  map[GroupKey]*GroupState
	locks   keyLocks
	pacers  pacers
}

// NewMemoryState returns a State in memory, for one process: what a
// sink without a storage (tests, switchyard test) uses.
func NewMemoryState() State {
	return &memoryState{threads: map[ThreadKey]Thread{}, groups: map[GroupKey]*GroupState{}}
}

func (m *memoryState) Thread(_ context.Context, k ThreadKey) (Thread, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.threads[k]
	return t, ok, nil
}

func (m *memoryState) StartThread(ctx context.Context, k ThreadKey, start func(context.Context) (Thread, error)) (Thread, bool, error) {
	return startThread(ctx, &m.locks, k, m.Thread, start, func(_ context.Context, t Thread) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.threads[k] = t
		return nil
	})
}

func (m *memoryState) ForgetThread(_ context.Context, k ThreadKey, t Thread) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.threads[k] == t {
		delete(m.threads, k)
	}
	return nil
}

func (m *memoryState) WithGroup(ctx context.Context, k GroupKey, fn func(context.Context, *GroupState) (*GroupState, error)) error {
	return withGroup(ctx, &m.locks, k, fn,
		func(context.Context) (*GroupState, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.groups[k].clone(), nil
		},
		func(_ context.Context, g *GroupState) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.groups[k] = g.clone()
			return nil
		})
}

func (m *memoryState) Pacer(sink string, n int, per time.Duration) Pacer {
	return m.pacers.get(sink, n, per)
}

// pacers are the in-memory pacers of a State, one per sink and pace.
type pacers struct {
	mu sync.Mutex
	m  map[string]*pacer
}

func (p *pacers) get(sink string, n int, per time.Duration) *pacer {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := fmt.Sprintf("%s\x00%d/%s", sink, n, per)
	if p.m == nil {
		p.m = map[string]*pacer{}
	}
	if p.m[key] == nil {
		p.m[key] = newPacer(n, per)
	}
	return p.m[key]
}

func (m *memoryState) Close() error { return nil }

// startThread is StartThread for the stores of one process: a lock per
// key in memory.
func startThread(ctx context.Context, locks *keyLocks, k ThreadKey,
	get func(context.Context, ThreadKey) (Thread, bool, error),
	start func(context.Context) (Thread, error),
	put func(context.Context, Thread) error,
) (Thread, bool, error) {
	unlock, err := locks.lock(ctx, "t\x00"+k.Sink+"\x00"+k.Channel+"\x00"+k.Subject)
	if err != nil {
		return Thread{}, false, err
	}
	defer unlock()
	if t, ok, err := get(ctx, k); err != nil || ok {
		return t, false, err
	}
	t, err := start(ctx)
	if err != nil {
		return Thread{}, false, err
	}
	// Posted: record it even if the attempt's deadline just passed.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := put(pctx, t); err != nil {
		return t, true, &RecordError{Err: err}
	}
	return t, true, nil
}

// withGroup is WithGroup for the stores of one process.
func withGroup(ctx context.Context, locks *keyLocks, k GroupKey, fn func(context.Context, *GroupState) (*GroupState, error),
	get func(context.Context) (*GroupState, error), put func(context.Context, *GroupState) error,
) error {
	unlock, err := locks.lock(ctx, "g\x00"+k.Sink+"\x00"+k.Channel+"\x00"+k.Key)
	if err != nil {
		return err
	}
	defer unlock()
	g, err := get(ctx)
	if err != nil {
		return err
	}
	next, err := fn(ctx, g)
	if err != nil || next == nil {
		return err
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := put(pctx, next); err != nil {
		return &RecordError{Err: err}
	}
	return nil
}
