package main

import (
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/switchyard/switchyard/sinks/webhook"
)

// sink is the HTTP destination of target c: it answers 200 to every
// delivery and counts them by event id (X-Switchyard-Event).
type sink struct {
	ln  net.Listener
	srv *fasthttp.Server

	mu          sync.Mutex
	seen        map[string]int // deliveries per event id
	requests    int
	first, last time.Time // of the deliveries
}

func startSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln, seen: map[string]int{}}
	s.srv = &fasthttp.Server{Handler: s.handle, NoDefaultServerHeader: true}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *sink) url() string { return "http://" + s.ln.Addr().String() + "/events" }

func (s *sink) handle(ctx *fasthttp.RequestCtx) {
	id := string(ctx.Request.Header.Peek(webhook.EventHeader))
	s.mu.Lock()
	s.seen[id]++
	s.requests++
	s.last = time.Now()
	if s.first.IsZero() {
		s.first = s.last
	}
	s.mu.Unlock()
	ctx.SetStatusCode(fasthttp.StatusOK)
}

// missing returns the ids the sink has not received.
func (s *sink) missing(ids []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, id := range ids {
		if s.seen[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// counts returns the deliveries received, the distinct events among
// them, and the rate of distinct events from the first delivery to the
// last.
func (s *sink) counts() (requests, distinct int, perSecond float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.last.Sub(s.first); d > 0 {
		perSecond = float64(len(s.seen)) / d.Seconds()
	}
	return s.requests, len(s.seen), perSecond
}

// distinct counts the events received.
func (s *sink) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func (s *sink) close() error { return s.srv.Shutdown() }
