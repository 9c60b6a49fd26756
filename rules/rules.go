// Package rules routes events to sinks: each route matches event types
// by pattern and, optionally, a condition over the event.
package rules

import (
	"errors"
	"fmt"
	"strings"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
)

// Route is a route as configured.
type Route struct {
	Name  string
	Match []string
	When  string
	To    []string
}

// CompileError is a route that does not compile. Field is "match[i]" or
// "when"; Line and Column, when set, are positions inside that field's
// text.
type CompileError struct {
	Route        int
	Field        string
	Line, Column int
	Msg          string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("routes[%d].%s: %s", e.Route, e.Field, e.Msg)
}

// Set is a compiled, immutable set of routes, safe for concurrent use.
type Set struct {
	routes []route
}

type route struct {
	name     string
	patterns []string
	when     *lang.Condition
	to       []string
}

// Compile checks every pattern and compiles every condition, returning
// all problems (each a *CompileError) joined.
func Compile(routes []Route) (*Set, error) {
	s := &Set{}
	var errs []error
	for i, r := range routes {
		cr := route{name: r.Name, patterns: r.Match, to: r.To}
		for j, p := range r.Match {
			if err := ValidPattern(p); err != nil {
				errs = append(errs, &CompileError{Route: i, Field: fmt.Sprintf("match[%d]", j), Msg: err.Error()})
			}
		}
		if strings.TrimSpace(r.When) != "" {
			cond, err := lang.CompileCondition(r.When)
			if err != nil {
				ce := &CompileError{Route: i, Field: "when", Msg: err.Error()}
				var serr *lang.SyntaxError
				if errors.As(err, &serr) {
					ce.Line, ce.Column, ce.Msg = serr.Line, serr.Column, serr.Msg
				}
				errs = append(errs, ce)
			}
			cr.when = cond
		}
		s.routes = append(s.routes, cr)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// ValidPattern checks an event-type pattern; see event.ValidPattern.
func ValidPattern(p string) error { return event.ValidPattern(p) }

// MatchPattern reports whether eventType matches the pattern p; see
// event.MatchType.
func MatchPattern(p, eventType string) bool { return event.MatchType(p, eventType) }

// Target is a sink an event must reach, with the routes that named it.
type Target struct {
	Sink   string
	Routes []string
}

// RouteError is a condition that failed at run time; the route does not
// match.
type RouteError struct {
	Route string
	Err   error
}

func (e *RouteError) Error() string { return fmt.Sprintf("route %s: %v", e.Route, e.Err) }
func (e *RouteError) Unwrap() error { return e.Err }

// Match returns the sinks ev must reach, each once, in the order routes
// and their targets are configured. Conditions that fail at run time are
// returned as *RouteError and count as no match; the expression
// environment is decoded only if a matching route has a condition.
func (s *Set) Match(ev *event.Event) ([]Target, []error) {
	var (
		targets []Target
		errs    []error
		env     *event.Env
		envErr  error
	)
	for _, r := range s.routes {
		if !r.matches(ev.EventType) {
			continue
		}
		if r.when != nil {
			if env == nil && envErr == nil {
				env, envErr = ev.Env()
			}
			if envErr != nil {
				errs = append(errs, &RouteError{Route: r.name, Err: envErr})
				continue
			}
			ok, err := r.when.Eval(env)
			if err != nil {
				errs = append(errs, &RouteError{Route: r.name, Err: err})
				continue
			}
			if !ok {
				continue
			}
		}
		for _, sink := range r.to {
			targets = addTarget(targets, sink, r.name)
		}
	}
	return targets, errs
}

func (r *route) matches(eventType string) bool {
	for _, p := range r.patterns {
		if MatchPattern(p, eventType) {
			return true
		}
	}
	return false
}

func addTarget(ts []Target, sink, route string) []Target {
	for i := range ts {
		if ts[i].Sink == sink {
			ts[i].Routes = append(ts[i].Routes, route)
			return ts
		}
	}
	return append(ts, Target{Sink: sink, Routes: []string{route}})
}

// Verdict is what one route made of an event, and why.
type Verdict struct {
	Route   string `json:"route"`
	Matched bool   `json:"matched"`
	// Patterns are the route's match patterns; Pattern is the first one
	// the event type matched, empty when none did.
	Patterns []string `json:"patterns"`
	Pattern  string   `json:"pattern,omitempty"`
	// When explains the route's condition, when it has one and a
	// pattern matched: its value and the sub-expressions that decided
	// it, or the error that made the route miss.
	When *lang.Explanation `json:"when,omitempty"`
	// To are the sinks the route names.
	To []string `json:"to"`
}

// Explain tells, for every route in order, whether it matches ev and
// why not: no pattern matched the type, or the condition was false or
// failed. It decides as Match does.
func (s *Set) Explain(ev *event.Event) []Verdict {
	out := make([]Verdict, 0, len(s.routes))
	var env *event.Env
	var envErr error
	for _, r := range s.routes {
		v := Verdict{Route: r.name, Patterns: r.patterns, To: r.to}
		for _, p := range r.patterns {
			if MatchPattern(p, ev.EventType) {
				v.Pattern = p
				break
			}
		}
		if v.Pattern == "" {
			out = append(out, v)
			continue
		}
		if r.when == nil {
			v.Matched = true
			out = append(out, v)
			continue
		}
		if env == nil && envErr == nil {
			env, envErr = ev.Env()
		}
		if envErr != nil {
			v.When = &lang.Explanation{Expr: r.when.String(), Err: envErr}
		} else {
			v.When = r.when.Explain(env)
		}
		v.Matched = v.When.Err == nil && v.When.Value == true
		out = append(out, v)
	}
	return out
}

// Routes lists the routes' names, in order.
func (s *Set) Routes() []string {
	out := make([]string, len(s.routes))
	for i, r := range s.routes {
		out[i] = r.name
	}
	return out
}
