package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Sink is a destination for events. Type selects which of Slack, SQLite
// and HTTP holds its settings; keys of other types are errors.
type Sink struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// Concurrency is how many deliveries to this sink run at once.
	Concurrency int `yaml:"concurrency"`
	// Timeout bounds each delivery attempt.
	Timeout Duration `yaml:"timeout"`
	Retry   Retry    `yaml:"retry"`
	// Ordered delivers the events of one subject (a Darwin session) one
	// at a time, in the order received. Default: true for slack, false
	// otherwise.
	Ordered *bool `yaml:"ordered"`
	// Rate limits how often deliveries start, such as "1/s"; no limit
	// when zero.
	Rate Rate `yaml:"rate"`

	Slack  *SlackSink  `yaml:"-"`
	SQLite *SQLiteSink `yaml:"-"`
	HTTP   *HTTPSink   `yaml:"-"`
}

// SlackSink posts to a Slack incoming webhook.
type SlackSink struct {
	// WebhookURL is a secret: the URL is the credential. Empty holds
	// the sink's deliveries until it is set.
	WebhookURL Secret `yaml:"webhook_url"`
	// Text is a {{ }} template; a readable default is used when empty.
	Text string `yaml:"text"`
}

// SQLiteSink archives events, and the Darwin sessions they describe,
// into a SQLite file analysts can query.
type SQLiteSink struct {
	Path string `yaml:"path"`
	// Columns adds a typed, indexed column to the sessions table per
	// entry: a name and an expression over the event, such as
	// lead_score: data.smartFields.leadScore.
	Columns map[string]string `yaml:"columns"`
	// Retention prunes events older than this, and sessions whose newest
	// event is; 0 keeps everything.
	Retention Duration `yaml:"retention"`
}

// HTTPSink posts the normalized event as JSON.
type HTTPSink struct {
	// URL receives the POST. Empty holds the sink's deliveries until it
	// is set. Put credentials in Headers, not in the URL.
	URL     string            `yaml:"url"`
	Headers map[string]Secret `yaml:"headers"`
}

// SinkTypes lists the valid values of a sink's type.
var SinkTypes = []string{"http", "slack", "sqlite"}

// Held reports whether the sink lacks its destination (an empty Slack
// webhook_url or HTTP url, typically an unset ${VAR:-}). A held sink's
// deliveries are queued and kept until the destination is configured.
func (s *Sink) Held() bool {
	switch {
	case s.Slack != nil:
		return s.Slack.WebhookURL == ""
	case s.HTTP != nil:
		return s.HTTP.URL == ""
	}
	return false
}

func (s *Sink) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping of keys to values, got %s", describe(n))
		return
	}
	// The type decides which keys are valid, so read it first.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			s.Type = n.Content[i+1].Value
		}
	}
	var specific reflect.Value
	switch s.Type {
	case "slack":
		s.Slack = &SlackSink{}
		specific = reflect.ValueOf(s.Slack).Elem()
	case "sqlite":
		s.SQLite = &SQLiteSink{}
		specific = reflect.ValueOf(s.SQLite).Elem()
	case "http":
		s.HTTP = &HTTPSink{}
		specific = reflect.ValueOf(s.HTTP).Elem()
	}

	common := reflect.ValueOf(s).Elem()
	commonFields := fieldsOf(common.Type())
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if d.field(common, commonFields, seen, k, val, path) {
			continue
		}
		if !specific.IsValid() {
			continue // the type is wrong or missing: reported once below
		}
		specificFields := fieldsOf(specific.Type())
		if d.field(specific, specificFields, seen, k, val, path) {
			continue
		}
		all := map[string][]int{}
		for name, idx := range commonFields {
			all[name] = idx
		}
		for name, idx := range specificFields {
			all[name] = idx
		}
		d.unknownKey(k, path, all, fmt.Sprintf("a sink of type %s", s.Type))
	}
	switch {
	case s.Type == "":
		d.errorf(n, path+".type", "missing type: one of %s", strings.Join(SinkTypes, ", "))
	case !specific.IsValid():
		msg := fmt.Sprintf("unknown sink type %q: one of %s", s.Type, strings.Join(SinkTypes, ", "))
		if near := nearest(s.Type, SinkTypes); near != "" {
			msg = fmt.Sprintf("unknown sink type %q; did you mean %q?", s.Type, near)
		}
		d.cfg.add(d.cfg.Problem(path+".type", "%s", msg))
	}
}

func (s *Sink) validate(c *Config, p string) {
	if s.Concurrency < 0 {
		c.add(c.Problem(p+".concurrency", "must be 1 or more"))
	}
	if s.Retry.MaxAttempts < 0 {
		c.add(c.Problem(p+".retry.max_attempts", "must be 0 (no limit) or more"))
	}
	if s.Retry.MaxBackoff < s.Retry.InitialBackoff {
		c.add(c.Problem(p+".retry.max_backoff", "must not be shorter than initial_backoff (%s)", s.Retry.InitialBackoff))
	}
	switch {
	case s.Slack != nil:
		if s.Slack.WebhookURL == "" {
			c.add(c.Warning(p+".webhook_url", "empty: deliveries to %q are held (kept, not sent) until it is set", s.Name))
		} else {
			c.checkURL(p+".webhook_url", s.Slack.WebhookURL.Reveal())
		}
	case s.SQLite != nil:
		if strings.TrimSpace(s.SQLite.Path) == "" {
			c.add(c.Problem(p+".path", "missing path of the SQLite archive file, for example ./data/archive.db"))
		}
		if r := s.SQLite.Retention.D(); r != 0 && r < time.Hour {
			c.add(c.Problem(p+".retention", "must be 0 (keep everything) or at least 1h, for example 180d"))
		}
		names := make([]string, 0, len(s.SQLite.Columns))
		for name := range s.SQLite.Columns {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if !columnRE.MatchString(name) {
				c.add(c.Problem(p+".columns."+name, "invalid column name %q: use lower-case letters, digits and _, starting with a letter (at most 63)", name))
			}
			if strings.TrimSpace(s.SQLite.Columns[name]) == "" {
				c.add(c.Problem(p+".columns."+name, "missing expression, for example data.smartFields.leadScore"))
			}
		}
	case s.HTTP != nil:
		if s.HTTP.URL == "" {
			c.add(c.Warning(p+".url", "empty: deliveries to %q are held (kept, not sent) until it is set", s.Name))
		} else {
			c.checkURL(p+".url", s.HTTP.URL)
		}
		names := make([]string, 0, len(s.HTTP.Headers))
		for name := range s.HTTP.Headers {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if !validHeaderName(name) {
				c.add(c.Problem(p+".headers."+name, "invalid HTTP header name %q", name))
			}
			if strings.ContainsAny(s.HTTP.Headers[name].Reveal(), "\r\n") {
				c.add(c.Problem(p+".headers."+name, "header value must not contain a line break"))
			}
		}
	}
}

// columnRE is what a configured archive column may be called; the sink
// also rejects names of its own columns.
var columnRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}
