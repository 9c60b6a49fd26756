// Package dryrun runs events through a configuration's sources, routes
// and sinks without sending or storing anything, for `switchyard test`:
// which routes matched and why the others did not, and what each sink
// reached would send. It also runs files of rule test cases (see Suite).
package dryrun

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/receiver"
	"github.com/switchyard/switchyard/rules"
)

// Sink is a configured sink as the dry run sees it.
type Sink struct {
	Name string
	Type string // slack, sqlite, http
	// Held is set for a sink without a destination yet: events wait
	// for it, and the preview shows what it would send.
	Held bool
	// Sink is previewed if it implements Preview (see previewer).
	Sink any
}

// previewer is what a sink implements to show what it would send for an
// event, without sending it.
type previewer interface {
	Preview(ev *event.Event) (any, error)
}

// Runner runs events through a compiled configuration.
type Runner struct {
	Sources []receiver.Source
	Rules   *rules.Set
	Sinks   []Sink
	// Now is the receive time given to events; time.Now when nil.
	Now func() time.Time

	n int // events run, for their ids
}

// Input is one request body to run, as a source would receive it.
type Input struct {
	// Name says where it came from, such as a file name.
	Name string
	// Source names the source that normalizes it; empty for the only
	// source.
	Source string
	Body   []byte
	Header http.Header
}

// Result is what the configuration does with one event.
type Result struct {
	Input  string `json:"input"`
	Source string `json:"source"`
	// Rejected is why the source would refuse the body (a 400), if it
	// would; nothing else is then set.
	Rejected string `json:"rejected,omitempty"`
	// Handshake is set when the body is a platform's setup request,
	// answered and not stored.
	Handshake bool            `json:"handshake,omitempty"`
	Event     *event.Event    `json:"event,omitempty"`
	Routes    []rules.Verdict `json:"routes,omitempty"`
	// Sinks are the sinks the event reaches, in the order deliveries
	// would be created.
	Sinks []SinkResult `json:"sinks,omitempty"`
}

// SinkResult is a sink an event reaches, and what it would send.
type SinkResult struct {
	Name   string   `json:"sink"`
	Type   string   `json:"type"`
	Held   bool     `json:"held,omitempty"`
	Routes []string `json:"routes"`
	// Payload is the sink's preview; Err why there is none.
	Payload any    `json:"payload,omitempty"`
	Err     string `json:"error,omitempty"`
}

// UsageError is an input the dry run cannot start with, such as an
// unknown source.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Source returns the source named name, or the only one when name is
// empty.
func (r *Runner) Source(name string) (*receiver.Source, error) {
	names := make([]string, len(r.Sources))
	for i := range r.Sources {
		names[i] = r.Sources[i].Name
		if r.Sources[i].Name == name || name == "" && len(r.Sources) == 1 {
			return &r.Sources[i], nil
		}
	}
	if name == "" {
		return nil, &UsageError{fmt.Sprintf("the configuration has %d sources: pick one with --source (%s)", len(names), strings.Join(names, ", "))}
	}
	return nil, &UsageError{fmt.Sprintf("no source %q (sources: %s)", name, strings.Join(names, ", "))}
}

// Run normalizes in.Body as its source would, matches the event against
// the routes, and previews it for every sink it reaches. The body is not
// verified: no signature is needed. Each event gets the id evt_test_<n>
// and the receive time Now.
func (r *Runner) Run(in Input) (*Result, error) {
	src, err := r.Source(in.Source)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	req := receiver.NewRequest(in.Body, in.Header, now().UTC())
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res := &Result{Input: in.Name, Source: src.Name}
	if src.Handshake != nil {
		reply, err := src.Handshake(req)
		if err != nil {
			res.Rejected = err.Error()
			return res, nil
		}
		if reply != nil {
			res.Handshake = true
			return res, nil
		}
	}
	ev, err := src.Normalize(req)
	if err != nil {
		res.Rejected = err.Error()
		return res, nil
	}
	r.n++
	ev.Source = src.Name
	ev.ID = fmt.Sprintf("evt_test_%d", r.n)
	r.route(res, ev)
	return res, nil
}

// RunEvent matches an event already normalized (a stored one) against
// the routes and previews it for every sink it reaches, as Run does
// after normalizing a body. It changes nothing in ev.
func (r *Runner) RunEvent(name string, ev *event.Event) *Result {
	res := &Result{Input: name, Source: ev.Source}
	r.route(res, ev)
	return res
}

func (r *Runner) route(res *Result, ev *event.Event) {
	res.Event = ev
	res.Routes = r.Rules.Explain(ev)
	targets, _ := r.Rules.Match(ev) // failed conditions are in Routes
	for _, t := range targets {
		res.Sinks = append(res.Sinks, r.preview(t, ev))
	}
}

func (r *Runner) preview(t rules.Target, ev *event.Event) SinkResult {
	out := SinkResult{Name: t.Sink, Routes: t.Routes}
	i := slices.IndexFunc(r.Sinks, func(s Sink) bool { return s.Name == t.Sink })
	if i < 0 {
		out.Err = "no such sink"
		return out
	}
	s := r.Sinks[i]
	out.Type, out.Held = s.Type, s.Held
	p, ok := s.Sink.(previewer)
	if !ok {
		out.Err = "this sink has no preview"
		return out
	}
	payload, err := p.Preview(ev)
	if err != nil {
		out.Err = err.Error()
		return out
	}
	out.Payload = payload
	return out
}

// Matched lists the routes that matched, in configuration order.
func (res *Result) Matched() []string {
	var out []string
	for _, v := range res.Routes {
		if v.Matched {
			out = append(out, v.Route)
		}
	}
	return out
}

// Reached lists the sinks the event reaches.
func (res *Result) Reached() []string {
	var out []string
	for _, s := range res.Sinks {
		out = append(out, s.Name)
	}
	return out
}

// SplitBodies splits a file into request bodies: several JSON values one
// after another (JSON Lines, or values separated by any white space) are
// one body each, as they are written; anything else, including a
// single JSON array, is one body, as a sender would post it.
func SplitBodies(data []byte) [][]byte {
	dec := json.NewDecoder(bytes.NewReader(data))
	var bodies [][]byte
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return [][]byte{data}
		}
		bodies = append(bodies, []byte(raw))
	}
	if len(bodies) < 2 {
		return [][]byte{data}
	}
	return bodies
}
