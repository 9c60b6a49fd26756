package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Changes is what a new configuration changes in a running one: what a
// reload applies, and what only a restart can.
type Changes struct {
	Sources Delta `json:"sources"`
	Sinks   Delta `json:"sinks"`
	Routes  Delta `json:"routes"`
	// Settings are the other settings that changed and are applied, such
	// as "storage.max_pending" (names only: some are secrets).
	Settings []string `json:"settings"`
	// NeedsRestart are the settings that changed but keep their running
	// value until a restart, such as "server.listen".
	NeedsRestart []string `json:"needs_restart"`
}

// Delta names the entries of a list (sources, sinks, routes) added,
// removed or modified, by name.
type Delta struct {
	Added    []string `json:"added"`
	Removed  []string `json:"removed"`
	Modified []string `json:"modified"`
}

// Empty reports whether nothing changed.
func (d Delta) Empty() bool { return len(d.Added)+len(d.Removed)+len(d.Modified) == 0 }

func (d Delta) String() string {
	var parts []string
	for _, p := range []struct {
		sign  string
		names []string
	}{{"+", d.Added}, {"-", d.Removed}, {"~", d.Modified}} {
		for _, n := range p.names {
			parts = append(parts, p.sign+n)
		}
	}
	return strings.Join(parts, " ")
}

// Empty reports whether the configurations are the same.
func (c Changes) Empty() bool {
	return c.Sources.Empty() && c.Sinks.Empty() && c.Routes.Empty() && len(c.Settings) == 0 && len(c.NeedsRestart) == 0
}

// Diff compares a running configuration with a new one. Only server.*,
// storage.* but max_pending, admin.listen and metrics.listener need a
// restart; everything else is reloaded in place.
func Diff(running, next *Config) Changes {
	var ch Changes
	ch.Sources = diffNamed(running.Sources, next.Sources, func(s Source) string { return s.Name })
	ch.Sinks = diffNamed(running.Sinks, next.Sinks, func(s Sink) string { return s.Name })
	ch.Routes = diffNamed(running.Routes, next.Routes, func(r Route) string { return r.Name })
	ch.NeedsRestart = diffFields("server", running.Server, next.Server)
	for _, f := range []struct {
		path    string
		a, b    any
		restart bool
	}{
		{"storage.backend", running.Storage.Backend, next.Storage.Backend, true},
		{"storage.dsn", running.Storage.DSN, next.Storage.DSN, true},
		{"storage.dir", running.Storage.Dir, next.Storage.Dir, true},
		{"storage.synchronous", running.Storage.Synchronous, next.Storage.Synchronous, true},
		{"storage.busy_timeout", running.Storage.BusyTimeout, next.Storage.BusyTimeout, true},
		{"storage.lease_ttl", running.Storage.LeaseTTL, next.Storage.LeaseTTL, true},
		{"storage.pool_size", running.Storage.PoolSize, next.Storage.PoolSize, true},
		{"storage.statement_timeout", running.Storage.StatementTimeout, next.Storage.StatementTimeout, true},
		{"storage.poll_interval", running.Storage.PollInterval, next.Storage.PollInterval, true},
		{"admin.listen", running.Admin.Listen, next.Admin.Listen, true},
		{"metrics.listener", running.Metrics.Listener, next.Metrics.Listener, true},
		{"storage.max_pending", running.Storage.MaxPending, next.Storage.MaxPending, false},
		{"admin.token", running.Admin.Token, next.Admin.Token, false},
		{"admin.viewer_token", running.Admin.ViewerToken, next.Admin.ViewerToken, false},
		{"log.events", running.Log.Events, next.Log.Events, false},
	} {
		switch {
		case f.a == f.b:
		case f.restart:
			ch.NeedsRestart = append(ch.NeedsRestart, f.path)
		default:
			ch.Settings = append(ch.Settings, f.path)
		}
	}
	return ch
}

// KeepRunning sets in c the settings only a restart applies (Restart)
// to their values in running, so that what is built from c matches
// what runs.
func (c *Config) KeepRunning(running *Config) {
	c.Server = running.Server
	c.Storage.Backend = running.Storage.Backend
	c.Storage.DSN = running.Storage.DSN
	c.Storage.Dir = running.Storage.Dir
	c.Storage.Synchronous = running.Storage.Synchronous
	c.Storage.BusyTimeout = running.Storage.BusyTimeout
	c.Storage.LeaseTTL = running.Storage.LeaseTTL
	c.Storage.PoolSize = running.Storage.PoolSize
	c.Storage.StatementTimeout = running.Storage.StatementTimeout
	c.Storage.PollInterval = running.Storage.PollInterval
	c.Admin.Listen = running.Admin.Listen
	c.Metrics.Listener = running.Metrics.Listener
}

func diffNamed[T any](old, next []T, name func(T) string) Delta {
	var d Delta
	before := map[string]T{}
	for _, v := range old {
		before[name(v)] = v
	}
	seen := map[string]bool{}
	for _, v := range next {
		n := name(v)
		seen[n] = true
		prev, ok := before[n]
		switch {
		case !ok:
			d.Added = append(d.Added, n)
		case !reflect.DeepEqual(prev, v):
			d.Modified = append(d.Modified, n)
		}
	}
	for _, v := range old {
		if n := name(v); !seen[n] {
			d.Removed = append(d.Removed, n)
		}
	}
	return d
}

// diffFields names the fields of two structs that differ, by YAML key.
func diffFields(prefix string, a, b any) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		key, _, _ := strings.Cut(va.Type().Field(i).Tag.Get("yaml"), ",")
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, fmt.Sprintf("%s.%s", prefix, key))
		}
	}
	slices.Sort(out)
	return out
}
