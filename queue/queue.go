// Package queue is the contract of Switchyard's durable store: events,
// their deliveries, leases and outcomes. Backends implement Store:
// queue/sqlite (the embedded default) and queue/postgres (several
// replicas on one database). queue/queuetest holds the conformance
// suite every backend runs; a behaviour added to one backend is added to
// the suite first.
//
// # Leases
//
// A worker leases due deliveries (Lease) and ends each lease by
// recording the attempt's outcome (Complete). A lease carries a fencing
// token (Delivery.Token): Complete and Renew act only while the
// delivery's current lease is the one holding that token. A lease lasts
// LeaseRequest.For, at least the attempt's timeout; when it expires
// without being renewed or completed, the delivery is due again and the
// next Lease hands it out under a new token. The late attempt's Complete
// then fails with ErrLeaseLost and changes nothing: the newer attempt
// owns the outcome. An expired lease that no one has taken over yet is
// still honoured, so a slow but successful attempt is recorded rather
// than sent again.
//
// When an outcome cannot be written (a full disk, a lock held by another
// process, a database that is unreachable), Complete returns the error
// and the lease stays with its holder, who keeps the outcome and writes
// it again with backoff (renewing the lease meanwhile): the delivery is
// not sent again before the lease expires. Health reports the failure
// until a write succeeds.
//
// A replay of a delivery whose attempt is in flight takes effect after
// that attempt: the attempt's outcome is recorded in its history, and
// the delivery stays due for the replay (Delivery.Replays tells the two
// apart).
package queue

import (
	"context"
	"errors"
	"time"

	"github.com/switchyard/switchyard/event"
)

// Delivery states.
const (
	StatePending   = "pending"   // not yet attempted
	StateFailed    = "failed"    // attempted, failed, will retry
	StateDelivered = "delivered" // done
	StateDead      = "dead"      // given up: kept for inspection and replay
)

// States lists the valid delivery states.
var States = []string{StatePending, StateFailed, StateDelivered, StateDead}

var (
	// ErrClosed is returned by operations on a closed store.
	ErrClosed = errors.New("queue closed")
	// ErrNotFound is an event or delivery the store does not hold.
	ErrNotFound = errors.New("not found")
	// ErrNoFilter refuses a replay or purge that would select every
	// delivery.
	ErrNoFilter = errors.New("name the deliveries: a delivery id, an event id or a sink")
	// ErrLeaseLost is returned by Complete and Renew when the delivery's
	// lease is no longer the caller's: it expired and another attempt
	// took it over, or the delivery was purged. Nothing was changed.
	ErrLeaseLost = errors.New("lease lost: another attempt holds the delivery")
	// ErrFailed is wrapped by every write after the store met a fault it
	// cannot vouch for (a failed fsync): what is on disk may differ from
	// what was committed, so the store refuses writes until a restart
	// recovers from what reached the disk.
	ErrFailed = errors.New("storage failed; restart switchyard to recover from what reached the disk")
)

// Store is a durable queue of events and their deliveries. Its methods
// are safe for concurrent use. Every write is durable when it returns
// nil: fsynced on the local disk, or committed in the database.
type Store interface {
	// Accept stores the event and one pending delivery per target in one
	// transaction. An event whose source and dedup key were stored within
	// the dedup window is a duplicate: nothing is written and the
	// original id is returned.
	Accept(ctx context.Context, in Incoming) (Accepted, error)

	// Lease claims up to r.Limit due deliveries of r.Sink, each under a
	// new lease (see the package documentation).
	Lease(ctx context.Context, r LeaseRequest) ([]Delivery, error)
	// Renew extends d's lease to last d from now; ErrLeaseLost when the
	// lease is no longer d's.
	Renew(ctx context.Context, d *Delivery, extend time.Duration) error
	// Complete records an attempt's outcome and ends its lease;
	// ErrLeaseLost when the lease is no longer d's. On any other error
	// the lease stays with the caller.
	Complete(ctx context.Context, d *Delivery, o Outcome) error
	// NextDue returns when the earliest waiting delivery of sink that no
	// lease holds is due, or false if there is none. With ordered, only
	// deliveries at the head of their subject count.
	NextDue(ctx context.Context, sink string, ordered bool) (time.Time, bool, error)

	// Waiting returns how many deliveries of sink wait (pending or
	// failed), from memory: exact for this process's writes, and
	// refreshed from the store at least every 10 s. Backpressure
	// (storage.max_pending) reads it on every request.
	Waiting(sink string) int64
	// WaitingBySink counts the waiting deliveries per sink, in the store.
	WaitingBySink(ctx context.Context) (map[string]int64, error)
	// OldestPending returns when the oldest waiting delivery was
	// created; ok is false when none waits.
	OldestPending(ctx context.Context) (at time.Time, ok bool, err error)
	// Counts returns how many deliveries are in each state, per sink.
	Counts(ctx context.Context) (map[string]map[string]int, error)

	// List returns the deliveries f selects, most recently changed first;
	// f.After continues a list after a delivery's Cursor.
	List(ctx context.Context, f Filter) ([]DeliveryInfo, error)
	// Attempts returns the recorded attempts of a delivery, oldest first.
	Attempts(ctx context.Context, deliveryID string) ([]AttemptInfo, error)
	// Replay queues the deliveries f selects again, due now, with a fresh
	// attempt count and max_age, and returns how many. ErrNoFilter
	// unless f names deliveries (ID, IDs), an event or a sink.
	Replay(ctx context.Context, f Filter) (int64, error)
	// Purge deletes the deliveries f selects that no attempt holds, and
	// returns how many; with dryRun it only counts them. f must name a
	// sink or deliveries (ID, IDs); ErrNoFilter otherwise.
	Purge(ctx context.Context, f Filter, dryRun bool) (int64, error)
	// RetryNow makes the waiting (pending or failed) deliveries f
	// selects due now, keeping their attempt count and max_age, and
	// returns how many. ErrNoFilter as for Replay.
	RetryNow(ctx context.Context, f Filter) (int64, error)
	// GiveUp makes the waiting deliveries f selects dead, as an attempt
	// that gives up would, except any with an attempt in flight, and
	// returns how many. ErrNoFilter as for Replay.
	GiveUp(ctx context.Context, f Filter) (int64, error)

	// Events returns the events f selects, newest first (by receive
	// time, then by the order stored); f.After continues a list after an
	// event's Cursor.
	Events(ctx context.Context, f EventFilter) ([]EventInfo, error)
	// Event returns one stored event with the request it came in
	// (EventInfo.Request), or ErrNotFound.
	Event(ctx context.Context, id string) (EventInfo, error)

	// Session returns the deliveries of the events with subject, every
	// sink's, in the order they were accepted: the order an ordered sink
	// attempts them in.
	Session(ctx context.Context, subject string) ([]DeliveryInfo, error)
	// Blocked returns the subjects of sink whose oldest waiting delivery
	// has failed at least once: on an ordered sink it holds the
	// subject's later deliveries back. At most limit (0: no limit), the
	// longest held first.
	Blocked(ctx context.Context, sink string, limit int) ([]Blocked, error)
	// SinkStats returns, for every sink with deliveries, how many are in
	// each state and when the oldest waiting one was created.
	SinkStats(ctx context.Context) ([]SinkStats, error)

	// AddAudit records an operator's bulk action; Audits returns the
	// latest limit entries, newest first.
	AddAudit(ctx context.Context, a Audit) error
	Audits(ctx context.Context, limit int) ([]Audit, error)

	// Prune deletes events received before their source's dedup window,
	// with their delivered deliveries, keeping any event with a delivery
	// waiting or dead. It returns how many events were deleted.
	Prune(ctx context.Context, window func(source string) time.Duration) (int64, error)

	// Health is nil while the store writes; otherwise the error of the
	// last failed write (or ErrFailed, wrapped, once the store refuses
	// writes). /healthz answers 503 with it.
	Health() error
	// Describe names the store for logs: "sqlite data/queue.db".
	Describe() string
	// Close waits for queued writes and closes the store. It is safe to
	// call more than once.
	Close() error
}

// Target is a sink an accepted event must reach.
type Target struct {
	Sink   string
	Routes []string
	// Ordered says that the sink attempts a subject's deliveries one at
	// a time, in order (LeaseRequest.Ordered): a backend may keep the
	// deliveries of unordered sinks where it leases them cheaply.
	Ordered bool
}

// Incoming is an event to accept.
type Incoming struct {
	Event   *event.Event
	Targets []Target
	// DedupWindow is how long an event's dedup key makes a later event
	// with the same key a duplicate; zero is for as long as the event is
	// stored.
	DedupWindow time.Duration
}

// Accepted is the outcome of Accept.
type Accepted struct {
	// EventID is the stored event's id: the incoming event's, or for a
	// duplicate the id of the event first stored with the same key.
	EventID   string
	Duplicate bool
	// Deliveries are the ids of the deliveries created, one per target.
	Deliveries []string
}

// Delivery is a leased delivery: one attempt to send Event to Sink.
type Delivery struct {
	ID      string
	EventID string
	Sink    string
	Routes  []string
	Subject string
	// Attempt is this attempt's number, from 1 (again from 1 after a
	// replay).
	Attempt   int
	CreatedAt time.Time
	// Since is when the current run of attempts began: CreatedAt, or the
	// last replay. A sink's max_age counts from it.
	Since time.Time
	// LastError is the previous attempt's error, as recorded ("" for a
	// first attempt).
	LastError string
	Event     *event.Event

	// Token is the lease's fencing token: Complete and Renew act only
	// while the delivery's lease holds it.
	Token int64
	// Replays is how many times the delivery had been replayed when it
	// was leased: a replay during the attempt keeps it due afterwards.
	Replays int
}

// LeaseRequest says which deliveries to lease.
type LeaseRequest struct {
	Sink  string
	Limit int
	// For is how long the lease lasts: no other Lease returns the
	// delivery until then, unless it is completed first. It is at least
	// the attempt's timeout.
	For time.Duration
	// Ordered leases only the oldest waiting delivery of each subject,
	// so a subject's deliveries are attempted one at a time, in the
	// order they were accepted. Deliveries without a subject are not
	// held back.
	Ordered bool
	// Concurrency, when above zero, bounds how many deliveries of Sink
	// are under a lease at once, counting every process that shares the
	// storage: Lease returns fewer than Limit while others hold leases.
	// An expired lease no longer counts.
	Concurrency int
	// Every, when above zero, spaces the starts of Sink's attempts at
	// least Every apart, counting every process that shares the storage:
	// Lease returns at most one delivery, and none until Every has
	// passed since the last one it returned.
	Every time.Duration
}

// Outcome is the result of an attempt.
type Outcome struct {
	State string // StateDelivered, StateFailed (retry at NextAt) or StateDead
	// NextAt is when a failed delivery is due again.
	NextAt time.Time
	// Error and Status describe the failure (Status is the HTTP status,
	// 0 if there was none).
	Error  string
	Status int
	// Took is how long the attempt ran.
	Took time.Duration
}

// DeliveryInfo is a delivery's stored state.
type DeliveryInfo struct {
	ID         string
	EventID    string
	EventType  string
	Source     string
	Sink       string
	Subject    string
	Routes     []string
	State      string
	Attempts   int
	Replays    int
	LastError  string
	LastStatus int
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// NextAt is when a waiting delivery is due.
	NextAt time.Time
	// Cursor continues a list after this delivery (Filter.After): an
	// opaque string of the backend's.
	Cursor string
}

// Blocked is a subject whose oldest waiting delivery to a sink has
// failed: an ordered sink sends none of the subject's later deliveries
// until it is delivered or dead.
type Blocked struct {
	Sink    string
	Subject string
	// Head is the delivery holding the subject back.
	Head DeliveryInfo
	// Behind counts the subject's other deliveries waiting for the sink.
	Behind int
}

// SinkStats is a sink's deliveries at a glance.
type SinkStats struct {
	Sink string
	// States counts the deliveries in each state.
	States map[string]int
	// OldestWaiting is when the oldest waiting (pending or failed)
	// delivery was created; zero when none waits.
	OldestWaiting time.Time
}

// Audit is an operator's bulk action, as the audit log keeps it.
type Audit struct {
	At time.Time
	// Actor is who acted: the role of the token used ("admin"), never
	// the token.
	Actor string
	// Action is what was done: "replay" or "purge".
	Action string
	// Filter is the selection, as the operator wrote it (a URL query).
	Filter string
	// Matched counts what the selection matched when the action began;
	// Done what the action changed.
	Matched int64
	Done    int64
	// Note says how it ended: "" when it went through, else why it
	// stopped (an error, the bound reached).
	Note string
}

// AttemptInfo is one recorded attempt of a delivery.
type AttemptInfo struct {
	// Attempt is the attempt's number in its run (from 1 again after a
	// replay); Replays is the run (how many replays came before it).
	Attempt int
	Replays int
	// At is when the attempt ended, Took how long it ran.
	At   time.Time
	Took time.Duration
	// State is the outcome: delivered, failed or dead.
	State  string
	Status int
	Error  string
}

// WithDelivered is a delivery's recorded attempts and, after them, the
// attempt that delivered it when only the delivery records it (a first
// attempt that delivers writes no attempt row): last is that attempt
// as the delivery has it, its state, attempts, replays, time and status.
func WithDelivered(recorded []AttemptInfo, last AttemptInfo) []AttemptInfo {
	if last.State != StateDelivered || last.Attempt == 0 {
		return recorded
	}
	if n := len(recorded); n > 0 && recorded[n-1].Replays == last.Replays && recorded[n-1].Attempt == last.Attempt {
		return recorded
	}
	return append(recorded, last)
}

// Filter selects deliveries. Zero fields select everything.
type Filter struct {
	// ID selects one delivery; IDs several.
	ID      string
	IDs     []string
	EventID string
	Sink    string
	// Subject selects the deliveries of one subject (a session).
	Subject string
	// States are the states to select; any state when empty.
	States []string
	// Status selects deliveries whose last attempt got this HTTP
	// status; 0 selects any.
	Status int
	// Error selects deliveries whose last error contains it (letters
	// A-Z matched without regard to case).
	Error string
	// Since selects deliveries whose state changed at or after it;
	// Before those whose state changed before it.
	Since  time.Time
	Before time.Time
	// After continues List after the delivery with this Cursor.
	After string
	// Limit bounds List (newest first); 0 is no limit.
	Limit int
}

// EventInfo is a stored event.
type EventInfo struct {
	ID     string
	Source string
	// ExternalID is the id the platform gave the event, if any.
	ExternalID string
	EventType  string
	Subject    string
	ReceivedAt time.Time
	// JSON is the normalized event as stored.
	JSON []byte
	// Request is the request the event came in, as stored (only from
	// Event; nil for events stored without one).
	Request *event.Request
	// Cursor continues a list after this event (EventFilter.After): an
	// opaque string of the backend's.
	Cursor string
}

// EventFilter selects events. Zero fields select everything.
type EventFilter struct {
	Source string
	// EventType is a pattern as routes write them: a type, a prefix
	// ending in ".*" ("session.*" matches "session.closed" but not
	// "session"), or "*".
	EventType string
	Subject   string
	// States selects events with a delivery in one of these states.
	States []string
	// Since selects events received at or after it, Until those
	// received before it.
	Since time.Time
	Until time.Time
	// Text selects events whose title or summary (TextFields) contains
	// it (letters A-Z matched without regard to case).
	Text string
	// After continues the list after the event with this Cursor.
	After string
	// Limit bounds the list (newest first); 0 is no limit.
	Limit int
}

// TextFields are the fields of an event's data that EventFilter.Text
// searches: its title and its summary, as Darwin names them.
var TextFields = []string{"conversationTitle", "title", "summary"}

// MaxError bounds a recorded error.
const MaxError = 1000

// SameError reports whether err is the error recorded as last, as
// Complete records it (long errors are cut).
func SameError(last, err string) bool { return last != "" && last == Truncate(err, MaxError) }

// Truncate cuts s to at most n bytes on a rune boundary, marking the
// cut with an ellipsis.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// Replica is a gateway serving from a store that several share, as its
// last heartbeat recorded it.
type Replica struct {
	// Name is server.replica_name; Instance tells apart two processes
	// that (wrongly) share a name.
	Name     string
	Instance string
	Version  string
	// ConfigDigest is the SHA-256 of its configuration file, in hex.
	ConfigDigest string
	Started      time.Time
	Heartbeat    time.Time
}

// ErrReplicaName is returned by a heartbeat whose replica name another
// live process uses: their records overwrite each other.
var ErrReplicaName = errors.New("another live replica uses this name: give each its own server.replica_name")

// Record is a stored event with its deliveries, as `switchyard storage
// copy` moves it from one store to another.
type Record struct {
	// Event is the event as stored, with its dedup key.
	Event      *event.Event
	Deliveries []RecordDelivery
}

// RecordDelivery is a delivery with everything a store keeps of it.
type RecordDelivery struct {
	DeliveryInfo
	// ReplayedAt is the last replay (zero if none); Took the last
	// attempt's duration.
	ReplayedAt time.Time
	Took       time.Duration
	// History is the recorded attempts, oldest first.
	History []AttemptInfo
}

// FormatTime is how a store keeps an event's optional times (its
// timestamp, its received time as the platform sent it) as text: the
// zero time as "", to the nanosecond otherwise. ParseTime reads it back.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

// ParseTime reads a time FormatTime wrote.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}
