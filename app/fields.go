package app

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/receiver/darwin"
)

// DataFieldWarnings warns, at its line and column, about each field of
// data that a route's when, or a sink's template or expression, reads
// and that Darwin never sends with the events that reach it: most
// likely a typo, which would be nil at run time. The event types come
// from the routes' match: patterns (for a sink, of the routes naming
// it). Only configurations whose sources are all Darwin are checked:
// other senders' payloads are not known. Expressions that do not
// compile are left to Build.
func DataFieldWarnings(cfg *config.Config) []config.Problem {
	for _, s := range cfg.Sources {
		if s.Provider != "darwin" || len(s.Map) > 0 {
			return nil
		}
	}
	var out []config.Problem
	check := func(path string, refs []lang.FieldRef, patterns []string, what string) {
		var known []string
		for _, p := range patterns {
			for _, f := range darwin.DataFields(p) {
				if !slices.Contains(known, f) {
					known = append(known, f)
				}
			}
		}
		if len(known) == 0 {
			return
		}
		for _, ref := range refs {
			i, siblings := unknownField(ref.Path, known)
			if i < 0 {
				continue
			}
			field := "data." + strings.Join(ref.Path[:i+1], ".")
			msg := fmt.Sprintf("%s: Darwin sends no such field with %s (a missing field is nil)", field, what)
			if near := config.Nearest(ref.Path[i], siblings); near != "" {
				msg += fmt.Sprintf("; did you mean %s?", "data."+strings.Join(append(slices.Clone(ref.Path[:i]), near), "."))
			}
			p := cfg.ProblemAtOffset(path, ref.Offsets[i], msg)
			p.Warning = true
			out = append(out, p)
		}
	}

	routed := map[string][]string{} // sink → the patterns of the routes naming it
	for i, r := range cfg.Routes {
		for _, to := range r.To {
			routed[to] = append(routed[to], r.Match...)
		}
		if r.When == "" {
			continue
		}
		if c, err := lang.CompileCondition(r.When); err == nil {
			check(fmt.Sprintf("routes[%d].when", i), c.DataRefs(), r.Match, "the events this route matches")
		}
	}
	for i, s := range cfg.Sinks {
		patterns := routed[s.Name]
		what := "the events routed to this sink"
		tmpl := func(key, src string) {
			if t, err := lang.ParseTemplate(src); err == nil && src != "" {
				check(fmt.Sprintf("sinks[%d].%s", i, key), t.DataRefs(), patterns, what)
			}
		}
		expr := func(key, src string) {
			if e, err := lang.CompileExpression(src); err == nil {
				check(fmt.Sprintf("sinks[%d].%s", i, key), e.DataRefs(), patterns, what)
			}
		}
		switch {
		case s.Slack != nil:
			tmpl("text", s.Slack.Text)
			tmpl("link", s.Slack.Link)
			tmpl("channel", s.Slack.Channel)
			if s.Slack.Group != nil {
				expr("group.by", s.Slack.Group.By)
			}
		case s.SQLite != nil:
			for _, name := range slices.Sorted(maps.Keys(s.SQLite.Columns)) {
				expr("columns."+name, s.SQLite.Columns[name])
			}
		case s.Postgres != nil:
			for _, name := range slices.Sorted(maps.Keys(s.Postgres.Columns)) {
				expr("columns."+name, s.Postgres.Columns[name])
			}
		case s.HTTP != nil:
			tmpl("url", s.HTTP.URL)
			for _, name := range slices.Sorted(maps.Keys(s.HTTP.Headers)) {
				tmpl("headers."+name, s.HTTP.Headers[name].Reveal())
			}
			switch {
			case s.HTTP.Body == "":
			case s.HTTP.ContentType != "":
				tmpl("body", s.HTTP.Body)
			default:
				expr("body", s.HTTP.Body)
			}
		}
	}
	return out
}

// unknownField returns the index of the first name of path that the
// known fields do not have, and the names known at that level; -1 when
// every name is known, or is inside an object of any members ("x.*").
func unknownField(path, known []string) (int, []string) {
	for i := range path {
		parent := strings.Join(path[:i], ".")
		if slices.Contains(known, parent+".*") && i > 0 {
			return -1, nil
		}
		prefix := strings.Join(path[:i+1], ".")
		found := false
		var siblings []string
		for _, k := range known {
			k = strings.TrimSuffix(k, ".*")
			if k == prefix || strings.HasPrefix(k, prefix+".") {
				found = true
			}
			if i == 0 || strings.HasPrefix(k, parent+".") {
				rest := strings.TrimPrefix(k, parent)
				rest = strings.TrimPrefix(rest, ".")
				name, _, _ := strings.Cut(rest, ".")
				if !slices.Contains(siblings, name) {
					siblings = append(siblings, name)
				}
			}
		}
		if !found {
			return i, siblings
		}
	}
	return -1, nil
}
