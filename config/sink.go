package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
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

// SlackSink posts to Slack: through an incoming webhook (WebhookURL), or
// as a bot with chat.postMessage (Token and Channel).
type SlackSink struct {
	// WebhookURL is a secret: the URL is the credential. Empty (and no
	// Token) holds the sink's deliveries until one is set.
	WebhookURL Secret `yaml:"webhook_url"`
	// Token is a bot token (xoxb-…), used with Channel; an alternative to
	// WebhookURL.
	Token Secret `yaml:"token"`
	// Channel is where the bot posts: a {{ }} template giving a channel
	// name (#ops) or id. Token mode only.
	Channel string `yaml:"channel"`
	// Text is a {{ }} template: the message (without Blocks) or its
	// notification fallback (with Blocks). A readable default is used
	// when empty.
	Text string `yaml:"text"`
	// Blocks is a Block Kit template: a list of blocks, or a string of
	// JSON, whose string values are {{ }} templates. Without it (and
	// without Text) a default layout per event family is posted.
	Blocks SlackBlocks `yaml:"blocks"`
	// Link is a {{ }} template for a URL the default layouts show, such
	// as the session in Darwin's inbox.
	Link string `yaml:"link"`
	// Thread is "subject" (token mode's default: a session's messages
	// form one thread) or "off".
	Thread string `yaml:"thread"`
	// ReplyBroadcast lists event-type patterns whose thread replies are
	// also shown in the channel.
	ReplyBroadcast []string `yaml:"reply_broadcast"`
	// ChannelRate paces posts per channel; 1/s (Slack's limit) when zero.
	ChannelRate Rate `yaml:"channel_rate"`
	// Group folds a burst of events with the same key into one message,
	// edited as they arrive (token mode; a grouped sink does not thread).
	Group *SlackGroup `yaml:"group"`
}

// SlackGroup folds the events of a burst into one message: the first
// event of a key posts it, later ones received within Wait of the first
// are added to it (chat.update).
type SlackGroup struct {
	// By is an expression giving an event's group key, such as
	// data.forwardedToName; nil or "" leaves the event on its own.
	By string `yaml:"by"`
	// Wait is how long after a group's first event (by receive time)
	// later events still join it.
	Wait Duration `yaml:"wait"`
}

// MaxSlackGroupWait bounds a group's wait: longer, a "burst" is a
// channel's whole day, edited into one message.
const MaxSlackGroupWait = Duration(time.Hour)

// SlackBlocks is a Block Kit template as written: a YAML list or a JSON
// string, decoded into lists, maps, strings, numbers and booleans.
type SlackBlocks struct {
	// Value is the list of blocks; nil when not set.
	Value []any
	// JSON reports that the blocks were written as a JSON string, so
	// positions inside them are not known.
	JSON bool
}

// SlackThreadModes lists the valid values of a Slack sink's thread.
var SlackThreadModes = []string{"off", "subject"}

func (b *SlackBlocks) decodeNode(d *decoder, n *yaml.Node, path string) {
	switch {
	case isNull(n):
		return
	case n.Kind == yaml.ScalarNode:
		var v any
		if err := json.Unmarshal([]byte(n.Value), &v); err != nil {
			d.errorf(n, path, "want a list of blocks in YAML, or a string of JSON: %v", err)
			return
		}
		list, ok := v.([]any)
		if !ok {
			d.errorf(n, path, "want a JSON list of blocks, got %s", jsonKind(v))
			return
		}
		for i, block := range list {
			if m, ok := block.(map[string]any); !ok {
				d.errorf(n, fmt.Sprintf("%s[%d]", path, i), "block %d: want an object, got %s", i, jsonKind(block))
			} else if t, ok := m["type"].(string); !ok || t == "" {
				d.errorf(n, fmt.Sprintf("%s[%d]", path, i), "block %d: missing \"type\"", i)
			}
		}
		b.Value, b.JSON = list, true
	case n.Kind == yaml.SequenceNode:
		list := make([]any, len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if item.Kind == yaml.AliasNode {
				item = item.Alias
			}
			if item.Kind != yaml.MappingNode {
				d.errorf(item, p, "want a block (a mapping with a type), got %s", describe(item))
				continue
			}
			list[i] = d.generic(item, p)
			if t, ok := list[i].(map[string]any)["type"].(string); !ok || t == "" {
				d.errorf(item, p+".type", "missing type, such as section, header or context")
			}
		}
		b.Value = list
	default:
		d.errorf(n, path, "want a list of blocks, or a string of JSON, got %s", describe(n))
	}
}

// generic decodes a node into lists, maps and scalars, keeping each
// node's position for problems found later (template syntax).
func (d *decoder) generic(n *yaml.Node, path string) any {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.cfg.nodes[path] = n
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if _, dup := m[k.Value]; dup {
				d.errorf(k, join(path, k.Value), "duplicate key %q", k.Value)
				continue
			}
			m[k.Value] = d.generic(val, join(path, k.Value))
		}
		return m
	case yaml.SequenceNode:
		list := make([]any, len(n.Content))
		for i, item := range n.Content {
			list[i] = d.generic(item, fmt.Sprintf("%s[%d]", path, i))
		}
		return list
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil
		case "!!bool":
			if b, err := strconv.ParseBool(n.Value); err == nil {
				return b
			}
		case "!!int", "!!float":
			if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
				return f
			}
		}
		return n.Value
	}
	return nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
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

// Held reports whether the sink lacks its destination (a Slack sink with
// neither webhook_url nor token, or an empty HTTP url, typically an unset
// ${VAR:-}). A held sink's
// deliveries are queued and kept until the destination is configured.
func (s *Sink) Held() bool {
	switch {
	case s.Slack != nil:
		return s.Slack.WebhookURL == "" && s.Slack.Token == ""
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
		s.Slack.validate(c, p, s.Name)
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

func (s *SlackSink) validate(c *Config, p, name string) {
	switch {
	case s.WebhookURL != "" && s.Token != "":
		c.add(c.Problem(p+".token", "set webhook_url or token, not both"))
	case s.WebhookURL != "":
		c.checkURL(p+".webhook_url", s.WebhookURL.Reveal())
		if s.Channel != "" {
			c.add(c.Problem(p+".channel", "an incoming webhook posts to the channel chosen when it was created; to choose the channel, use token: (a bot token) instead of webhook_url:"))
		}
		if s.Thread == "subject" {
			c.add(c.Problem(p+".thread", "threads need a bot token (token:): an incoming webhook does not say which message it posted"))
		}
		if len(s.ReplyBroadcast) > 0 {
			c.add(c.Problem(p+".reply_broadcast", "replies need threads, and threads need a bot token (token:)"))
		}
		if s.Group != nil {
			c.add(c.Problem(p+".group", "grouping edits the group's message as events arrive (chat.update), which needs a bot token (token:): an incoming webhook cannot edit what it posted"))
		}
	case s.Token != "":
		if !strings.HasPrefix(s.Token.Reveal(), "xox") {
			c.add(c.Warning(p+".token", "does not look like a Slack token (xoxb-…)"))
		}
		if strings.TrimSpace(s.Channel) == "" {
			c.add(c.Problem(p+".channel", "missing channel: the bot posts to it, for example \"#ops\", a channel id, or a {{ }} template"))
		}
		switch {
		case s.Group != nil && s.Thread == "subject":
			c.add(c.Problem(p+".thread", "a grouped sink does not thread: remove thread: subject, or group:"))
		case s.Group != nil && len(s.ReplyBroadcast) > 0:
			c.add(c.Problem(p+".reply_broadcast", "replies need threads, and a grouped sink does not thread: remove it, or group:"))
		case s.Thread == "off" && len(s.ReplyBroadcast) > 0:
			c.add(c.Problem(p+".reply_broadcast", "replies need threads: remove it, or set thread: subject"))
		}
	default:
		c.add(c.Warning(p+".webhook_url", "empty, and no token: deliveries to %q are held (kept, not sent) until one is set", name))
	}
	if s.Thread != "" && !slices.Contains(SlackThreadModes, s.Thread) {
		c.add(c.Problem(p+".thread", "unknown thread mode %q: one of %s", s.Thread, strings.Join(SlackThreadModes, ", ")))
	}
	if g := s.Group; g != nil {
		if strings.TrimSpace(g.By) == "" {
			c.add(c.Problem(p+".group.by", "missing by: an expression giving the group key, such as data.forwardedToName"))
		}
		if g.Wait <= 0 || g.Wait > MaxSlackGroupWait {
			c.add(c.Problem(p+".group.wait", "must be more than 0 and at most 1h, such as 30s; got %s", g.Wait))
		}
	}
}
