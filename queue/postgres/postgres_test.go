package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/logbuf"
	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/queue"
)

func testEvent(subject string, n int) *event.Event {
	now := time.Now()
	return &event.Event{
		ID: event.NewID("evt_", now), Source: "darwin", EventType: "session.forwarded.escalated",
		Subject: subject, Timestamp: now, ReceivedAt: now,
		Data:     json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)),
		DedupKey: fmt.Sprintf("key-%s-%d-%d", subject, n, now.UnixNano()),
	}
}

func acceptN(t *testing.T, s *Store, sink string, subjects, per int) [][]string {
	t.Helper()
	ids := make([][]string, subjects)
	for i := range per {
		for j := range subjects {
			acc, err := s.Accept(context.Background(), queue.Incoming{Event: testEvent(fmt.Sprint("sess-", j), i),
				Targets: []queue.Target{{Sink: sink, Routes: []string{"r"}}}})
			if err != nil {
				t.Fatal(err)
			}
			ids[j] = append(ids[j], acc.EventID)
		}
	}
	return ids
}

// TestLeasesRaceAcrossReplicas has six workers on three stores lease and
// complete an ordered sink's deliveries as fast as they can: the sink's
// concurrency holds across them, never more than one delivery of a
// subject is in flight, and each subject is delivered in order.
func TestLeasesRaceAcrossReplicas(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Shared(t).DSN(t)
	stores := []*Store{open(t, dsn, Options{}), open(t, dsn, Options{}), open(t, dsn, Options{})}
	const subjects, per, concurrency = 8, 12, 3
	want := acceptN(t, stores[0], "slack", subjects, per)

	var (
		mu        sync.Mutex
		inFlight  int
		bySubject = map[string]int{}
		maxFlight int
		delivered = map[string][]string{}
		problems  []string
		done      atomic.Int64
	)
	var wg sync.WaitGroup
	for w := range 6 {
		s := stores[w%3]
		wg.Go(func() {
			ctx := context.Background()
			deadline := time.Now().Add(60 * time.Second)
			for done.Load() < subjects*per && time.Now().Before(deadline) {
				ds, err := s.Lease(ctx, queue.LeaseRequest{Sink: "slack", Limit: 2, For: time.Minute, Ordered: true, Concurrency: concurrency})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, d := range ds {
					inFlight++
					bySubject[d.Subject]++
					maxFlight = max(maxFlight, inFlight)
					if bySubject[d.Subject] > 1 {
						problems = append(problems, fmt.Sprintf("two deliveries of %s in flight", d.Subject))
					}
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
				for _, d := range ds {
					mu.Lock()
					inFlight--
					bySubject[d.Subject]--
					delivered[d.Subject] = append(delivered[d.Subject], d.EventID)
					mu.Unlock()
					if err := s.Complete(ctx, &d, queue.Outcome{State: queue.StateDelivered, Status: 200}); err != nil {
						t.Error(err)
						return
					}
					done.Add(1)
				}
				if len(ds) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	if len(problems) > 0 {
		t.Fatalf("%d problems, first: %s", len(problems), problems[0])
	}
	if maxFlight > concurrency {
		t.Fatalf("%d deliveries in flight at once, over the sink's concurrency of %d", maxFlight, concurrency)
	}
	for j, ids := range want {
		if got := delivered[fmt.Sprint("sess-", j)]; !slices.Equal(got, ids) {
			t.Fatalf("sess-%d delivered %v, want %v", j, got, ids)
		}
	}
	t.Logf("%d deliveries by 6 workers on 3 stores, at most %d in flight", subjects*per, maxFlight)
}

// TestSchemaRefusesNewer: a database migrated by a newer switchyard is
// refused, with what to do; replicas starting together migrate once.
func TestSchema(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Shared(t).DSN(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(context.Background(), dsn, Options{StatementTimeout: 5 * time.Second, PoolSize: 2})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("replicas starting together: %v", err)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows, version int
	if err := conn.QueryRow(context.Background(), `SELECT count(*), max(version) FROM queue_schema`).Scan(&rows, &version); err != nil || rows != 1 || version != SchemaVersion {
		t.Fatalf("queue_schema: %d rows, version %d, %v; want one row at %d", rows, version, err, SchemaVersion)
	}
	if _, err := conn.Exec(context.Background(), `UPDATE queue_schema SET version = 99`); err != nil {
		t.Fatal(err)
	}
	for _, client := range []bool{false, true} {
		_, err := Open(context.Background(), dsn, Options{Client: client})
		if err == nil || !strings.Contains(err.Error(), "version 99, newer than this switchyard's") || !strings.Contains(err.Error(), "upgrade switchyard") {
			t.Fatalf("open a newer schema (client %v): %v", client, err)
		}
	}
	// A client never creates the schema.
	empty := pgtest.Shared(t).DSN(t)
	if _, err := Open(context.Background(), empty, Options{Client: true}); err == nil || !strings.Contains(err.Error(), "no switchyard queue in this database") {
		t.Fatalf("client on an empty database: %v", err)
	}
}

// TestUnreachable: a database that cannot be reached fails the open
// quickly, saying which database, and never with its password.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, err = Open(context.Background(), "postgres://switchyard:hunter2-secret@"+addr+"/queue?sslmode=disable", Options{})
	if err == nil {
		t.Fatal("opened a database no one serves")
	}
	if took := time.Since(start); took > DefaultConnectTimeout+time.Second {
		t.Fatalf("failing took %v", took)
	}
	msg := err.Error()
	if strings.Contains(msg, "hunter2") || !strings.Contains(msg, "cannot reach the database") || !strings.Contains(msg, "/queue user=switchyard") {
		t.Fatalf("error = %q", msg)
	}
	if _, err := Open(context.Background(), "postgres://u:hunter2-secret@[bad", Options{}); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("a malformed dsn: %v", err)
	}
}

// TestNotify: work accepted or replayed on one store wakes the others
// (NOTIFY, within takeoverDelay), not the store that did it.
func TestNotify(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Shared(t).DSN(t)
	woken := make(chan string, 16)
	open(t, dsn, Options{OnNotify: func(sink string) { woken <- sink }})
	self := make(chan string, 16)
	other := open(t, dsn, Options{OnNotify: func(sink string) { self <- sink }})
	wait := func(what string) string {
		t.Helper()
		select {
		case sink := <-woken:
			return sink
		case <-time.After(5 * time.Second):
			t.Fatalf("no notification of %s", what)
			return ""
		}
	}
	// The listener connects in the background: retry until it hears.
	deadline := time.Now().Add(10 * time.Second)
	for {
		acc, err := other.Accept(context.Background(), queue.Incoming{Event: testEvent("s", 1), Targets: []queue.Target{{Sink: "crm"}}})
		if err != nil || acc.Duplicate {
			t.Fatal(err)
		}
		select {
		case sink := <-woken:
			if sink != "crm" {
				t.Fatalf("woken for %q, want crm", sink)
			}
		case <-time.After(200 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
			t.Fatal("no notification of an accepted event")
		}
		break
	}
	// The accepting store does not wake itself: its own workers were
	// told directly.
	time.Sleep(300 * time.Millisecond)
	select {
	case sink := <-self:
		t.Fatalf("the accepting store woke itself for %q", sink)
	default:
	}
	client, err := Open(context.Background(), dsn, Options{Client: true, StatementTimeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if n, err := client.Replay(context.Background(), queue.Filter{Sink: "crm", States: []string{queue.StatePending}}); err != nil || n == 0 {
		t.Fatalf("replay = %d, %v", n, err)
	}
	if sink := wait("a replay by the CLI"); sink != "crm" {
		t.Fatalf("woken for %q, want crm", sink)
	}
}

// TestNotifyBurstWakesOnce: a burst of announcements from another
// replica wakes a store's workers for a sink a few times, not once per
// event: the announcing replica leases its own new work, and each wake
// of the others costs a lease that queues for the sink's lock.
func TestNotifyBurstWakesOnce(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Shared(t).DSN(t)
	var wakes atomic.Int32
	heard := make(chan struct{}, 1)
	open(t, dsn, Options{OnNotify: func(sink string) {
		wakes.Add(1)
		select {
		case heard <- struct{}{}:
		default:
		}
	}})
	other := open(t, dsn, Options{})
	n := 0
	accept := func() {
		t.Helper()
		n++
		if _, err := other.Accept(context.Background(), queue.Incoming{Event: testEvent("s", n), Targets: []queue.Target{{Sink: "crm"}}}); err != nil {
			t.Fatal(err)
		}
	}
	// The listener connects in the background: wait until it hears.
	deadline := time.Now().Add(10 * time.Second)
	for {
		accept()
		select {
		case <-heard:
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no notification of an accepted event")
			}
			continue
		}
		break
	}
	time.Sleep(100 * time.Millisecond)
	wakes.Store(0)
	const burst = 40
	start := time.Now()
	for range burst {
		accept()
	}
	took := time.Since(start)
	time.Sleep(200 * time.Millisecond)
	got := int(wakes.Load())
	// One wake per takeoverDelay the burst spanned, and one more.
	most := int(took/takeoverDelay) + 2
	if got == 0 || got > most || got >= burst/2 {
		t.Fatalf("%d announcements in %v woke the other store %d times, want 1 to %d", burst, took, got, most)
	}
	t.Logf("%d announcements in %v: %d wakes", burst, took, got)
}

// TestGroupCommit: concurrent accepts share transactions.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.Shared(t).DSN(t), Options{PoolSize: 16})
	const clients, each = 64, 20
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Accept(context.Background(), queue.Incoming{Event: testEvent(fmt.Sprint("c", c), i),
					Targets: []queue.Target{{Sink: "crm"}, {Sink: "slack"}}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	commits, writes := s.Stats()
	t.Logf("%d accepts from %d concurrent clients in %d transactions: %.1f per commit", writes, clients, commits, float64(writes)/float64(commits))
	if writes != clients*each || commits*2 > writes {
		t.Fatalf("%d writes in %d commits: want at least two writes per commit on average", writes, commits)
	}
	if w := s.Waiting("crm"); w != clients*each {
		t.Fatalf("Waiting = %d, want %d", w, clients*each)
	}
}

// TestWaitingExactUnderRecounts: recounts running while writes commit
// neither miss nor double any of them.
func TestWaitingExactUnderRecounts(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.Shared(t).DSN(t), Options{})
	stop := make(chan struct{})
	var recounts sync.WaitGroup
	recounts.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.recount(context.Background()); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var wg sync.WaitGroup
	for c := range 16 {
		wg.Go(func() {
			for i := range 25 {
				acc, err := s.Accept(context.Background(), queue.Incoming{Event: testEvent(fmt.Sprint("c", c), i), Targets: []queue.Target{{Sink: "crm"}}})
				if err != nil {
					t.Error(err)
					return
				}
				if i%5 == 0 {
					if _, err := s.Purge(context.Background(), queue.Filter{Sink: "crm", ID: acc.Deliveries[0]}, false); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	recounts.Wait()
	counted, err := s.WaitingBySink(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Waiting("crm"); got != counted["crm"] || got != 16*20 {
		t.Fatalf("Waiting = %d, the database counts %d, want %d", got, counted["crm"], 16*20)
	}
}

// TestTextColumnsKeepOddEvents: fields text columns cannot hold (a NUL
// byte, invalid UTF-8) are stored and delivered exactly.
func TestTextColumnsKeepOddEvents(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.Shared(t).DSN(t), Options{})
	ev := testEvent("sess\x00one", 1)
	ev.AgentName = "Ana \xff"
	ev.DedupKey = "key\x00\xfe"
	ctx := context.Background()
	acc, err := s.Accept(ctx, queue.Incoming{Event: ev, Targets: []queue.Target{{Sink: "crm"}}})
	if err != nil {
		t.Fatal(err)
	}
	again := *ev
	again.ID = ev.ID + "x"
	if dup, err := s.Accept(ctx, queue.Incoming{Event: &again, Targets: []queue.Target{{Sink: "crm"}}}); err != nil || !dup.Duplicate || dup.EventID != acc.EventID {
		t.Fatalf("the same odd key again = %+v, %v", dup, err)
	}
	ds, err := s.Lease(ctx, queue.LeaseRequest{Sink: "crm", Limit: 1, For: time.Minute, Ordered: true})
	if err != nil || len(ds) != 1 {
		t.Fatalf("lease = %+v, %v", ds, err)
	}
	// A NUL byte is kept; invalid UTF-8 becomes U+FFFD, as any JSON the
	// event is sent as would have it.
	got := ds[0].Event
	if got.Subject != ev.Subject || got.AgentName != "Ana \uFFFD" || !got.ReceivedAt.Equal(ev.ReceivedAt) || string(got.Data) != string(ev.Data) {
		t.Fatalf("leased %+v, want %+v", got, ev)
	}
}

// TestDatabaseDown: while the server is down, writes fail within the
// statement timeout and Health says so; once it is back, the store
// writes again and Health clears without a write of its own kind.
func TestDatabaseDown(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	s := open(t, c.DSN(t), Options{StatementTimeout: time.Second})
	ctx := context.Background()
	if _, err := s.Accept(ctx, queue.Incoming{Event: testEvent("s", 1), Targets: []queue.Target{{Sink: "crm"}}}); err != nil {
		t.Fatal(err)
	}
	c.Kill()
	start := time.Now()
	_, err := s.Accept(ctx, queue.Incoming{Event: testEvent("s", 2), Targets: []queue.Target{{Sink: "crm"}}})
	if err == nil {
		t.Fatal("accepted with the database down")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the failing accept took %v", took)
	}
	if s.Health() == nil {
		t.Fatal("Health is nil with the database down")
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for s.Health() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Health still %v after the database came back", s.Health())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s.Accept(ctx, queue.Incoming{Event: testEvent("s", 3), Targets: []queue.Target{{Sink: "crm"}}}); err != nil {
		t.Fatalf("accept after the database came back: %v", err)
	}
}

// TestWarnsWithoutSynchronousCommit: a database that answers COMMIT
// before its WAL is on disk is named in a warning at start.
func TestWarnsWithoutSynchronousCommit(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Shared(t).DSN(t)
	for _, c := range []struct {
		dsn  string
		warn bool
	}{{dsn, false}, {dsn + "&synchronous_commit=off", true}} {
		var logs logbuf.Buffer
		open(t, c.dsn, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if got := strings.Contains(logs.String(), "synchronous_commit is off"); got != c.warn {
			t.Fatalf("%s: warned %v, want %v:\n%s", c.dsn, got, c.warn, logs.String())
		}
	}
}

// TestReplicaRecords: heartbeats list the live replicas; a second
// process using a live replica's name is told; a replica that leaves is
// no longer listed.
func TestReplicaRecords(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.Shared(t).DSN(t), Options{})
	ctx := context.Background()
	a := queue.Replica{Name: "gw-1:8080", Instance: "a", Version: "v1", ConfigDigest: "d1", Started: time.Now().Truncate(time.Millisecond)}
	b := queue.Replica{Name: "gw-2:8080", Instance: "b", Version: "v1", ConfigDigest: "d2", Started: a.Started}
	for _, r := range []queue.Replica{a, b, a} {
		if err := s.Heartbeat(ctx, r, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.Replicas(ctx, time.Minute)
	if err != nil || len(list) != 2 || list[0].Name != a.Name || list[1].ConfigDigest != "d2" || !list[0].Started.Equal(a.Started) ||
		time.Since(list[0].Heartbeat) > time.Minute {
		t.Fatalf("replicas = %+v, %v", list, err)
	}
	clash := a
	clash.Instance = "c"
	if err := s.Heartbeat(ctx, clash, time.Minute); !errors.Is(err, queue.ErrReplicaName) {
		t.Fatalf("a second process under a live name: %v, want ErrReplicaName", err)
	}
	if err := s.Leave(ctx, a); err != nil { // no longer a's record: kept
		t.Fatal(err)
	}
	if err := s.Leave(ctx, b); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.Replicas(ctx, time.Minute); len(list) != 1 || list[0].Instance != "c" {
		t.Fatalf("after b left: %+v", list)
	}
}

// TestDatabasePaused: a server that stops answering (its processes
// stopped, connections open) enforces no statement timeout; the store's
// own deadlines still fail every call within about the timeout, so that
// the sender gets 503 and workers and shutdown never hang.
func TestDatabasePaused(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	s := open(t, c.DSN(t), Options{StatementTimeout: 500 * time.Millisecond})
	ctx := context.Background()
	if _, err := s.Accept(ctx, queue.Incoming{Event: testEvent("s", 1), Targets: []queue.Target{{Sink: "crm"}}}); err != nil {
		t.Fatal(err)
	}
	c.Pause()
	defer c.Resume()
	for name, call := range map[string]func() error{
		"accept": func() error {
			_, err := s.Accept(ctx, queue.Incoming{Event: testEvent("s", 2), Targets: []queue.Target{{Sink: "crm"}}})
			return err
		},
		"lease": func() error {
			_, err := s.Lease(ctx, queue.LeaseRequest{Sink: "crm", Limit: 1, For: time.Minute, Concurrency: 1})
			return err
		},
		"next due": func() error { _, _, err := s.NextDue(ctx, "crm", true); return err },
	} {
		start := time.Now()
		if err := call(); err == nil {
			t.Fatalf("%s succeeded with the database paused", name)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("%s failed after %v", name, took)
		}
	}
	if s.Health() == nil {
		t.Fatal("Health is nil with the database paused")
	}
	c.Resume()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := s.Accept(ctx, queue.Incoming{Event: testEvent("s", 3), Targets: []queue.Target{{Sink: "crm"}}})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("accept after the database resumed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNextDueReadsTheHead: NextDue reads the head of the due index, not
// every waiting delivery, on a table no ANALYZE has seen yet (a new
// database, before autovacuum first comes by) as on one it has.
func TestNextDueReadsTheHead(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Shared(t).DSN(t)
	s := open(t, dsn, Options{PoolSize: 16})
	const clients, each = 50, 60
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Accept(context.Background(), queue.Incoming{Event: testEvent(fmt.Sprint("c", c), i),
					Targets: []queue.Target{{Sink: "crm", Routes: []string{"r"}}}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, analyzed := range []bool{false, true} {
		if analyzed {
			if _, err := conn.Exec(ctx, "ANALYZE queue_deliveries"); err != nil {
				t.Fatal(err)
			}
		}
		for _, ordered := range []bool{false, true} {
			var plan []map[string]any
			if err := conn.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+sqlNextDue(ordered), "crm", ms(time.Now())).Scan(&plan); err != nil {
				t.Fatal(err)
			}
			if most := mostRows(plan[0]["Plan"].(map[string]any)); most > 10 {
				t.Errorf("analyzed %v, ordered %v: a plan node returned %v rows of %d waiting deliveries: NextDue reads past the head of the due index\n%v",
					analyzed, ordered, most, clients*each, plan)
			}
		}
	}
	if _, ok, err := s.NextDue(ctx, "crm", false); err != nil || !ok {
		t.Fatalf("NextDue = %v, %v; want a due time", ok, err)
	}
	if _, ok, err := s.NextDue(ctx, "nothing-waits", true); err != nil || ok {
		t.Fatalf("NextDue of a sink without deliveries = %v, %v; want none", ok, err)
	}
}

// mostRows is the most rows any node of an EXPLAIN (FORMAT JSON) plan
// returned (per loop).
func mostRows(node map[string]any) float64 {
	most, _ := node["Actual Rows"].(float64)
	kids, _ := node["Plans"].([]any)
	for _, k := range kids {
		most = max(most, mostRows(k.(map[string]any)))
	}
	return most
}
