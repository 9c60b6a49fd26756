package postgres

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Channel is the NOTIFY channel on which replicas announce new work:
// each notification's payload is the announcing store's id and a sink.
const Channel = "switchyard_queue"

// listenCheck is how often the listening connection is checked while
// no notification comes.
const listenCheck = 10 * time.Second

// announce tells the other replicas that sinks have new work. It never
// blocks: the notifier sends what has gathered, one statement at a time,
// outside the writes' transactions (a transaction that notifies holds a
// database-wide lock through its commit, which would serialize the
// replicas' commits).
func (s *Store) announce(sinks ...string) {
	if s.client {
		// A command: no notifier runs, and the command is about to end.
		s.notify(sinks)
		return
	}
	for _, sink := range sinks {
		select {
		case s.notes <- sink:
		default:
			// Full: the notifier is behind, and will send a batch soon;
			// polling finds what a dropped one would have announced.
		}
	}
}

// notifier sends announcements, coalescing those that gather while it
// sends.
func (s *Store) notifier() {
	for {
		var first string
		select {
		case first = <-s.notes:
		case <-s.closing:
			return
		}
		set := map[string]bool{first: true}
	more:
		for {
			select {
			case sink := <-s.notes:
				set[sink] = true
			default:
				break more
			}
		}
		s.notify(slices.Collect(maps.Keys(set)))
	}
}

// notify sends one announcement per sink.
func (s *Store) notify(sinks []string) {
	if len(sinks) == 0 {
		return
	}
	payloads := make([]string, len(sinks))
	for i, sink := range sinks {
		payloads[i] = s.origin + " " + sink
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, Channel, payloads); err != nil {
		s.log.Debug("notify replicas", "err", err)
	}
}

// takeoverDelay is how long a replica waits before acting on another
// replica's announcement. The announcing replica leases its own new
// work at once; the others only need to look when it cannot keep up, or
// for a replay from the CLI. Acting on every announcement made every
// replica lease (and queue for the sink's lock) once per event: at three
// replicas, three leases per event. Announcements that come during the
// delay share one wake.
const takeoverDelay = 25 * time.Millisecond

// wakeSoon calls onNotify for sink after takeoverDelay, once for all the
// announcements of sink that come meanwhile.
func (s *Store) wakeSoon(sink string) {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	if s.waking == nil {
		s.waking = map[string]bool{}
	}
	if s.waking[sink] {
		return
	}
	s.waking[sink] = true
	time.AfterFunc(takeoverDelay, func() {
		s.wakeMu.Lock()
		delete(s.waking, sink)
		s.wakeMu.Unlock()
		if !s.isClosed() {
			s.onNotify(sink)
		}
	})
}

// listener LISTENs on its own connection and calls OnNotify for each
// announcement of another store; after the connection is lost, it
// connects again and wakes every sink, since announcements may have
// been missed meanwhile.
func (s *Store) listener() {
	if s.onNotify == nil {
		return
	}
	backoff := 100 * time.Millisecond
	lost := false
	var last string
	for !s.isClosed() {
		err := s.listenOnce(func() {
			backoff = 100 * time.Millisecond
			if lost {
				s.onNotify("")
				lost = false
			}
			if last != "" {
				s.log.Info("listening for other replicas' work again")
				last = ""
			}
		})
		if s.isClosed() {
			return
		}
		lost = true
		if err != nil && err.Error() != last {
			s.log.Warn("listen for other replicas' work; polling meanwhile", "err", err)
			last = err.Error()
		}
		select {
		case <-s.closing:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *Store) listenOnce(listening func()) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ConnConfig.ConnectTimeout+s.timeout)
	conn, err := pgx.ConnectConfig(ctx, s.cfg.ConnConfig)
	if err == nil {
		_, err = conn.Exec(ctx, "LISTEN "+Channel)
	}
	cancel()
	if err != nil {
		if conn != nil {
			conn.Close(context.Background())
		}
		return err
	}
	s.listenMu.Lock()
	if s.isClosed() {
		s.listenMu.Unlock()
		conn.Close(context.Background())
		return nil
	}
	s.listen = conn
	s.listenMu.Unlock()
	defer func() {
		s.listenMu.Lock()
		s.listen = nil
		s.listenMu.Unlock()
		conn.Close(context.Background())
	}()
	listening()
	for {
		// A connection the network lost without a word would wait for
		// ever: now and then, make sure the server still answers.
		ctx, cancel := context.WithTimeout(context.Background(), listenCheck)
		n, err := conn.WaitForNotification(ctx)
		cancel()
		if err != nil && pgconn.Timeout(err) && !s.isClosed() {
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			err = conn.Ping(ctx)
			cancel()
			if err == nil {
				continue
			}
		}
		if err != nil {
			return err
		}
		origin, sink, ok := strings.Cut(n.Payload, " ")
		if ok && origin != s.origin {
			s.wakeSoon(sink)
		}
	}
}
