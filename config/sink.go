package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Sink is a destination for events. Type selects which of Slack, SQLite,
// PostgreSQL
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
	// Postgres is the archive of SQLite in a PostgreSQL database.
	Postgres *PostgresSink `yaml:"-"`
	HTTP     *HTTPSink     `yaml:"-"`
	File     *FileSink     `yaml:"-"`
	Stdout   *StdoutSink   `yaml:"-"`
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
	// APIURL is the Web API a bot posts to: Slack's by default; a
	// Slack-compatible server or a test server otherwise (token mode).
	APIURL string `yaml:"api_url"`
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

// PostgresSink archives what SQLiteSink does, in the same tables, in a
// PostgreSQL database: one archive for any number of gateway replicas.
type PostgresSink struct {
	// DSN is the database's connection string, a secret (dsn_file):
	// postgres://user:pass@host:5432/archive?sslmode=verify-full.
	DSN Secret `yaml:"dsn"`
	// Columns adds a column to the sessions table per entry, as
	// SQLiteSink's; its type is the first value's.
	Columns map[string]string `yaml:"columns"`
	// Retention prunes events older than this, and sessions whose newest
	// event is; 0 keeps everything.
	Retention Duration `yaml:"retention"`
}

// HTTPSink sends each event to a URL: the normalized event as JSON, or
// a request shaped by templates and expressions, optionally signed and
// as CloudEvents.
type HTTPSink struct {
	// URL receives the requests. Empty holds the sink's deliveries until
	// it is set. It may hold {{ }} templates after the host (in the path
	// and the query), never in the scheme or host. Put credentials in
	// Headers, not in the URL.
	URL string `yaml:"url"`
	// Method is POST (the default), PUT or PATCH.
	Method string `yaml:"method"`
	// Headers are added to every request; values are {{ }} templates.
	Headers map[string]Secret `yaml:"headers"`
	// Body shapes the request body: an expression giving an object, sent
	// as JSON; or, with ContentType, a {{ }} template sent as that type.
	// Without it, the normalized event.
	Body        string `yaml:"body"`
	ContentType string `yaml:"content_type"`
	// Format is json (the default), cloudevents (structured) or
	// cloudevents-binary (ce-* headers).
	Format string `yaml:"format"`
	// Sign signs every request.
	Sign *HTTPSign `yaml:"sign"`
	// TLS adjusts how https:// URLs are verified and authenticated.
	TLS *HTTPTLS `yaml:"tls"`
	// FollowRedirects follows 307 and 308 redirects on the same host (up
	// to 5, never to http://); others, and every redirect when false,
	// fail the delivery.
	FollowRedirects bool `yaml:"follow_redirects"`
}

// HTTPSign is how an http sink signs its requests: scheme
// standard-webhooks (Secret, and Secrets while the receiver rotates) or
// hmac (Header, Algorithm, Encoding, Prefix).
type HTTPSign struct {
	Scheme    string   `yaml:"scheme"`
	Secret    Secret   `yaml:"secret"`
	Secrets   []Secret `yaml:"secrets"`
	Header    string   `yaml:"header"`
	Algorithm string   `yaml:"algorithm"`
	Encoding  string   `yaml:"encoding"`
	Prefix    string   `yaml:"prefix"`
}

// AllSecrets returns Secret followed by Secrets.
func (s *HTTPSign) AllSecrets() []Secret {
	return append([]Secret{s.Secret}, s.Secrets...)
}

// HTTPSignSchemes lists the valid values of an http sink's sign.scheme.
var HTTPSignSchemes = []string{"standard-webhooks", "hmac"}

// HTTPFormats lists the valid values of an http sink's format.
var HTTPFormats = []string{"json", "cloudevents", "cloudevents-binary"}

// HTTPTLS is an http sink's TLS settings.
type HTTPTLS struct {
	// CAFile holds the PEM certificates of the authorities to trust
	// instead of the system's.
	CAFile string `yaml:"ca_file"`
	// ClientCertFile and ClientKeyFile are a PEM client certificate and
	// key, for servers that require one (mutual TLS).
	ClientCertFile string `yaml:"client_cert_file"`
	ClientKeyFile  string `yaml:"client_key_file"`
	// InsecureSkipVerify accepts any server certificate: for tests only,
	// and warned about at every start and check.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// FileSink appends a JSON line per delivery to a file.
type FileSink struct {
	Path string `yaml:"path"`
	// Fsync flushes every line to disk before the delivery counts as
	// done (the default); false survives a crash of switchyard but not
	// of the machine.
	Fsync *bool `yaml:"fsync"`
}

// StdoutSink writes a JSON line per delivery to standard output. It has
// no settings.
type StdoutSink struct{}

// SinkTypes lists the valid values of a sink's type.
var SinkTypes = []string{"file", "http", "postgres", "slack", "sqlite", "stdout"}

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
	case "postgres":
		s.Postgres = &PostgresSink{}
		specific = reflect.ValueOf(s.Postgres).Elem()
	case "http":
		s.HTTP = &HTTPSink{}
		specific = reflect.ValueOf(s.HTTP).Elem()
	case "file":
		s.File = &FileSink{}
		specific = reflect.ValueOf(s.File).Elem()
	case "stdout":
		s.Stdout = &StdoutSink{}
		specific = reflect.ValueOf(s.Stdout).Elem()
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
		if c.Storage.Backend == BackendPostgres {
			c.add(c.Warning(p+".type", "with storage.backend postgres, each replica writes its own SQLite archive, each with the events it delivered: for one archive, use type: postgres (docs/sinks/postgres.md)"))
		}
		c.validateArchive(p, s.SQLite.Retention, s.SQLite.Columns)
	case s.Postgres != nil:
		switch {
		case s.Postgres.DSN != "":
		case c.given(p + ".dsn"):
			c.add(c.Problem(p+".dsn", "is empty (an unset ${VAR:-}?): set the archive database's connection string"))
		default:
			c.add(c.Problem(p+".dsn", "missing dsn (or dsn_file): the archive database's connection string, for example ${ARCHIVE_DSN} holding postgres://user:pass@host:5432/archive?sslmode=verify-full"))
		}
		c.validateArchive(p, s.Postgres.Retention, s.Postgres.Columns)
	case s.HTTP != nil:
		s.HTTP.validate(c, p, s.Name)
	case s.File != nil:
		if strings.TrimSpace(s.File.Path) == "" {
			c.add(c.Problem(p+".path", "missing path of the file lines are appended to, for example ./data/deliveries.jsonl"))
		}
	}
}

// validateArchive checks the settings the archive sinks share.
func (c *Config) validateArchive(p string, retention Duration, columns map[string]string) {
	if r := retention.D(); r != 0 && r < time.Hour {
		c.add(c.Problem(p+".retention", "must be 0 (keep everything) or at least 1h, for example 180d"))
	}
	names := make([]string, 0, len(columns))
	for name := range columns {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !columnRE.MatchString(name) {
			c.add(c.Problem(p+".columns."+name, "invalid column name %q: use lower-case letters, digits and _, starting with a letter (at most 63)", name))
		}
		if strings.TrimSpace(columns[name]) == "" {
			c.add(c.Problem(p+".columns."+name, "missing expression, for example data.smartFields.leadScore"))
		}
	}
}

func (h *HTTPSink) validate(c *Config, p, name string) {
	if h.URL == "" {
		c.add(c.Warning(p+".url", "empty: deliveries to %q are held (kept, not sent) until it is set", name))
	} else {
		c.checkTemplateURL(p+".url", h.URL)
	}
	if h.ContentType != "" && h.Body == "" {
		c.add(c.Problem(p+".content_type", "content_type without body: add body, a {{ }} template, or remove content_type"))
	}
	if h.Format != "" && !slices.Contains(HTTPFormats, h.Format) {
		c.add(c.Problem(p+".format", "%s", oneOf("format", h.Format, HTTPFormats)))
	}
	// Headers the sink sets itself: a configured one would be lost, or
	// would break the delivery's identity, signature or format.
	own := map[string]string{
		"X-Switchyard-Delivery": "the delivery id",
		"X-Switchyard-Event":    "the event id",
		"X-Switchyard-Attempt":  "the attempt number",
		"Idempotency-Key":       "the delivery id",
		"Host":                  "the URL's host",
		"Content-Length":        "the body's length",
		"Transfer-Encoding":     "the HTTP client",
		"Connection":            "the HTTP client",
	}
	switch {
	case h.ContentType != "":
		own["Content-Type"] = "content_type"
	case h.Format == "cloudevents" || h.Format == "cloudevents-binary":
		own["Content-Type"] = "the CloudEvents format"
	}
	if g := h.Sign; g != nil {
		switch g.Scheme {
		case "standard-webhooks":
			for _, n := range []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"} {
				own[n] = "the Standard Webhooks signature"
			}
		case "hmac":
			if g.Header != "" {
				own[http.CanonicalHeaderKey(g.Header)] = "sign.header"
			}
		}
	}
	for _, hn := range slices.Sorted(maps.Keys(h.Headers)) {
		canon := http.CanonicalHeaderKey(hn)
		switch {
		case !validHeaderName(hn):
			c.add(c.Problem(p+".headers."+hn, "invalid HTTP header name %q", hn))
		case own[canon] != "":
			c.add(c.Problem(p+".headers."+hn, "%s is set by switchyard (%s): remove it here", canon, own[canon]))
		case h.Format == "cloudevents-binary" && strings.HasPrefix(canon, "Ce-"):
			c.add(c.Problem(p+".headers."+hn, "ce-* headers carry the CloudEvent's attributes in format cloudevents-binary: remove it here"))
		}
		if strings.ContainsAny(h.Headers[hn].Reveal(), "\r\n") {
			c.add(c.Problem(p+".headers."+hn, "header value must not contain a line break"))
		}
	}
	if g := h.Sign; g != nil {
		h.Sign.validate(c, p+".sign")
	}
	if t := h.TLS; t != nil {
		if u, err := url.Parse(h.URL); err == nil && u.Scheme == "http" {
			c.add(c.Problem(p+".tls", "tls applies to https:// URLs; this one is http://"))
		}
		if t.InsecureSkipVerify {
			c.add(c.Warning(p+".tls.insecure_skip_verify", "INSECURE: sink %q does not verify the server's TLS certificate: anyone on the network path can read and change its deliveries, credentials and signatures. Trust a private CA with tls.ca_file instead", name))
		}
	}
}

func (g *HTTPSign) validate(c *Config, p string) {
	switch g.Scheme {
	case "":
		c.add(c.Problem(p+".scheme", "missing scheme: one of %s", strings.Join(HTTPSignSchemes, ", ")))
	case "standard-webhooks":
		for _, k := range []struct{ key, v string }{{"header", g.Header}, {"algorithm", g.Algorithm}, {"encoding", g.Encoding}, {"prefix", g.Prefix}} {
			if k.v != "" {
				c.add(c.Problem(p+"."+k.key, "only for scheme hmac: Standard Webhooks fixes its headers and HMAC-SHA256 in base64"))
			}
		}
	case "hmac":
		if g.Header == "" {
			c.add(c.Problem(p+".header", "missing header: the header carrying the signature, such as X-Signature"))
		} else if !validHeaderName(g.Header) {
			c.add(c.Problem(p+".header", "invalid HTTP header name %q", g.Header))
		}
		if len(g.Secrets) > 0 {
			c.add(c.Problem(p+".secrets", "an hmac header carries one signature: remove secrets, or use scheme standard-webhooks"))
		}
	default:
		c.add(c.Problem(p+".scheme", "%s", oneOf("scheme", g.Scheme, HTTPSignSchemes)))
	}
	// An empty secret (an unset ${VAR:-}) must not sign with an empty key.
	if g.Secret == "" {
		if c.given(p + ".secret") {
			c.add(c.Problem(p+".secret", "is empty (an unset ${VAR:-}?): an empty key proves nothing"))
		} else {
			c.add(c.Problem(p+".secret", "missing secret (or secret_file): the key requests are signed with"))
		}
	}
	c.warnShortSecret(p+".secret", g.Secret, true)
	for i, sec := range g.Secrets {
		if sec == "" {
			c.add(c.Problem(fmt.Sprintf("%s.secrets[%d]", p, i), "is empty (an unset ${VAR:-}?): an empty key proves nothing"))
		}
		c.warnShortSecret(fmt.Sprintf("%s.secrets[%d]", p, i), sec, true)
	}
}

// checkTemplateURL is checkURL for a URL that may hold {{ }} templates
// after its host. A template in the scheme or host is reported where it
// starts: an event must never choose where its delivery goes.
func (c *Config) checkTemplateURL(path, raw string) {
	open := strings.Index(raw, "{{")
	if open < 0 {
		c.checkURL(path, raw)
		return
	}
	hostEnd := len(raw)
	if i := strings.Index(raw, "://"); i >= 0 {
		if j := strings.IndexAny(raw[i+3:], "/?#"); j >= 0 {
			hostEnd = i + 3 + j
		}
	}
	if open < hostEnd {
		c.add(c.ProblemAtOffset(path, open, "a template may not choose the scheme or host: write them out, and use {{ }} in the path or the query only"))
		return
	}
	c.checkURL(path, raw[:hostEnd])
}

// oneOf describes a value that is not one of valid.
func oneOf(what, v string, valid []string) string {
	if near := nearest(v, valid); near != "" {
		return fmt.Sprintf("unknown %s %q; did you mean %q?", what, v, near)
	}
	return fmt.Sprintf("unknown %s %q: one of %s", what, v, strings.Join(valid, ", "))
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
		if s.APIURL != "" {
			c.add(c.Problem(p+".api_url", "an incoming webhook posts to its own URL: api_url is the Web API a bot (token:) posts to"))
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
	if s.APIURL != "" && s.WebhookURL == "" {
		c.checkURL(p+".api_url", s.APIURL)
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
