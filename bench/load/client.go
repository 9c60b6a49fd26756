package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/switchyard/switchyard/receiver/darwin"
)

// loadResult is what a load run observed.
type loadResult struct {
	Latencies  []time.Duration // requests started in the measured window, sorted
	Measured   int             // 2xx answers to requests started in the window
	Window     time.Duration
	Accepted   int            // 2xx answers, warm-up included
	Errors     int            // non-2xx answers and transport errors, warm-up included
	ErrorKinds map[string]int // "status 503", "timeout", …
	IDs        []string       // ids from 2xx answers, when collecting
	Duplicates int            // 2xx answers with "duplicate": true
	Wrapped    bool           // more requests than events: some were re-sent
}

// percentile is the q-quantile of the sorted latencies (nearest rank).
func (r *loadResult) percentile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(r.Latencies))+0.5) - 1
	return r.Latencies[max(0, min(i, len(r.Latencies)-1))]
}

// load drives the servers at addrs with conns connections, spread
// evenly over them (connection w sends to addrs[w % len(addrs)]). Closed loop (rate 0), each
// sends its next event as soon as the previous one is answered; open
// loop, events are sent at rate per second, each at its scheduled time
// (or as soon as a connection is free), and its latency counts from
// that time. After warmup it measures for window. onOpen runs when the
// window opens, with a function counting the 2xx answers so far;
// onClose when it closes. With collectIDs it keeps the id of every 2xx
// answer ({"id": …}).
func load(addrs []string, events []signedEvent, conns, rate int, warmup, window time.Duration, collectIDs bool,
	onOpen func(accepted func() int), onClose func()) *loadResult {
	clients := make([]*fasthttp.HostClient, len(addrs))
	for i, addr := range addrs {
		clients[i] = &fasthttp.HostClient{
			Addr:                      addr,
			MaxConns:                  (conns + len(addrs) - 1) / len(addrs),
			ReadTimeout:               10 * time.Second,
			WriteTimeout:              10 * time.Second,
			MaxIdemponentCallAttempts: 1,
			NoDefaultUserAgentHeader:  true,
		}
	}
	start := time.Now()
	open, end := start.Add(warmup), start.Add(warmup+window)
	var accepted atomic.Int64
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		time.Sleep(time.Until(open))
		onOpen(func() int { return int(accepted.Load()) })
		time.Sleep(time.Until(end))
		onClose()
	}()
	defer func() { <-closed }()

	var next atomic.Uint64
	// scheduled is when request i is due in the open loop.
	scheduled := func(i uint64) time.Time {
		return start.Add(time.Duration(float64(i) * float64(time.Second) / float64(rate)))
	}
	results := make([]*loadResult, conns)
	var wg sync.WaitGroup
	for w := range conns {
		r := &loadResult{ErrorKinds: map[string]int{}}
		results[w] = r
		client, addr := clients[w%len(addrs)], addrs[w%len(addrs)]
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://" + addr + hookPath)
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType("application/json")
			for {
				i := next.Add(1) - 1
				t0 := time.Now()
				if rate > 0 {
					t0 = scheduled(i)
					if wait := time.Until(t0); wait > 0 {
						time.Sleep(wait)
					}
				}
				if !t0.Before(end) {
					return
				}
				if i >= uint64(len(events)) {
					r.Wrapped = true
				}
				ev := events[i%uint64(len(events))]
				req.SetBodyRaw(ev.Body)
				req.Header.Set(darwin.SignatureHeader, ev.Signature)
				err := client.Do(req, resp)
				elapsed := time.Since(t0)
				measured := !t0.Before(open)
				if measured {
					r.Latencies = append(r.Latencies, elapsed)
				}
				switch code := resp.StatusCode(); {
				case err != nil:
					r.Errors++
					r.ErrorKinds[errorKind(err)]++
					continue
				case code < 200 || code > 299:
					r.Errors++
					r.ErrorKinds[fmt.Sprintf("status %d", code)]++
					continue
				}
				if collectIDs {
					var a struct {
						ID        string `json:"id"`
						Duplicate bool   `json:"duplicate"`
					}
					if err := json.Unmarshal(resp.Body(), &a); err != nil || a.ID == "" {
						r.Errors++
						r.ErrorKinds["2xx without an id"]++
						continue
					}
					r.IDs = append(r.IDs, a.ID)
					if a.Duplicate {
						r.Duplicates++
					}
				}
				r.Accepted++
				accepted.Add(1)
				if measured {
					r.Measured++
				}
			}
		})
	}
	wg.Wait()

	total := &loadResult{Window: window, ErrorKinds: map[string]int{}}
	for _, r := range results {
		total.Latencies = append(total.Latencies, r.Latencies...)
		total.Measured += r.Measured
		total.Accepted += r.Accepted
		total.Errors += r.Errors
		for k, n := range r.ErrorKinds {
			total.ErrorKinds[k] += n
		}
		total.IDs = append(total.IDs, r.IDs...)
		total.Duplicates += r.Duplicates
		total.Wrapped = total.Wrapped || r.Wrapped
	}
	slices.Sort(total.Latencies)
	return total
}

func errorKind(err error) string {
	if err == fasthttp.ErrTimeout {
		return "timeout"
	}
	return err.Error()
}
