// Package config loads Switchyard's YAML configuration strictly: unknown
// keys, bad values and dangling references are reported together, each
// with its file, line and column.
package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is a whole Switchyard configuration.
type Config struct {
	Server  Server   `yaml:"server"`
	Storage Storage  `yaml:"storage"`
	Sources []Source `yaml:"sources"`
	Sinks   []Sink   `yaml:"sinks"`
	Routes  []Route  `yaml:"routes"`
	Admin   Admin    `yaml:"admin"`
	Metrics Metrics  `yaml:"metrics"`
	Log     Log      `yaml:"log"`

	// Warnings are doubtful but valid settings, such as a sink that no
	// route uses; they never stop a load.
	Warnings []Problem `yaml:"-"`

	file  string
	src   []byte // the file, to place problems inside block scalars
	nodes map[string]*yaml.Node
	root  *yaml.Node
	// secrets are the nodes whose values are secrets, for Redacted.
	secrets  map[*yaml.Node]bool
	problems []Problem
}

// File is the path the configuration was loaded from.
func (c *Config) File() string { return c.file }

// Server configures the HTTP edge.
type Server struct {
	Listen          string   `yaml:"listen"`
	BodyLimit       ByteSize `yaml:"body_limit"`
	ReadTimeout     Duration `yaml:"read_timeout"`
	WriteTimeout    Duration `yaml:"write_timeout"`
	IdleTimeout     Duration `yaml:"idle_timeout"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// ReplicaName names this gateway among the replicas sharing a
	// PostgreSQL queue; its host name and listen port when empty (see
	// ReplicaName).
	ReplicaName string `yaml:"replica_name"`
}

// Storage configures the queue: the embedded SQLite default, or
// PostgreSQL for several replicas.
type Storage struct {
	// Backend is sqlite (the default: storage.dir, one gateway) or
	// postgres (storage.dsn, any number of replicas).
	Backend string `yaml:"backend"`
	// DSN is the PostgreSQL connection string (backend postgres):
	// postgres://user:pass@host:5432/db?sslmode=...
	DSN Secret `yaml:"dsn"`
	Dir string `yaml:"dir"`
	// Synchronous is SQLite's synchronous level for the queue: "full"
	// (an answered event survives power loss) or "normal" (it survives
	// a process crash; a power loss may lose the last commits).
	Synchronous string `yaml:"synchronous"`
	// BusyTimeout is how long a write waits for another process (a
	// backup, the replay command) holding the database's write lock
	// before it fails: the event gets 503, an outcome is kept and
	// written again later.
	BusyTimeout Duration `yaml:"busy_timeout"`
	// MaxPending is how many deliveries may wait before new events are
	// refused with 503; 0 is no limit.
	MaxPending int `yaml:"max_pending"`
	// LeaseTTL is how long a delivery attempt's lease lasts without
	// renewal (postgres; renewed every third of it while the attempt
	// runs): a replica that stops renewing (killed, paused, cut off)
	// loses its attempts to the others after it.
	LeaseTTL Duration `yaml:"lease_ttl"`
	// PoolSize bounds each replica's connections to the database
	// (postgres), besides one kept for LISTEN.
	PoolSize int `yaml:"pool_size"`
	// StatementTimeout bounds each statement, and each transaction left
	// idle, on the database (postgres): a database that is unreachable
	// or too slow fails a write (an event gets 503) within it.
	StatementTimeout Duration `yaml:"statement_timeout"`
	// PollInterval is how often a worker looks for due deliveries when
	// no notification woke it (postgres): what another replica queued
	// while the notification channel was down, leases that expired.
	PollInterval Duration `yaml:"poll_interval"`
}

// Admin configures the admin API: off unless both Listen and Token are
// set.
type Admin struct {
	// Listen is the admin API's own address, such as "127.0.0.1:9090":
	// keep it off the internet.
	Listen string `yaml:"listen"`
	// Token is the bearer token every admin request must carry.
	Token Secret `yaml:"token"`
	// ViewerToken, when set, opens the console (and the API's reads)
	// read-only: it sees everything and changes nothing.
	ViewerToken Secret `yaml:"viewer_token"`
}

// Enabled reports whether the admin API is served.
func (a Admin) Enabled() bool { return a.Listen != "" && a.Token != "" }

// Where /metrics is served: Metrics.Listener.
const (
	MetricsOnAdmin = "admin" // the admin listener, behind its token (default)
	MetricsOnMain  = "main"  // server.listen, without a token
	MetricsOff     = "off"
)

// MetricsPath is where Prometheus metrics are served.
const MetricsPath = "/metrics"

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Listener is where /metrics is served: admin, main or off.
	Listener string `yaml:"listener"`
}

// Log configures what is logged.
type Log struct {
	// Events logs one info line per accepted event; off by default,
	// when accepted events are logged at debug level only.
	Events bool `yaml:"events"`
}

// Source is a platform posting webhooks to Switchyard.
type Source struct {
	Name     string `yaml:"name"`
	Provider string `yaml:"provider"`
	// Path is where the source is served; "/hooks/<name>" by default.
	Path string `yaml:"path"`
	// Secret verifies signatures. Secrets holds extra secrets accepted
	// while rotating: any one that verifies passes.
	Secret  Secret   `yaml:"secret"`
	Secrets []Secret `yaml:"secrets"`
	// DedupKey is an expression over the event giving the key that
	// makes a later event a duplicate; the provider's event id, or a
	// hash of the body, when empty.
	DedupKey string `yaml:"dedup_key"`
	// DedupWindow is how long a key makes later events duplicates, and
	// how long delivered events are kept.
	DedupWindow Duration `yaml:"dedup_window"`
	// Verify overrides the provider's verification, setting by setting,
	// or describes it for providers without one.
	Verify *SourceVerify `yaml:"verify"`
	// Map normalizes payloads with expressions over the request, one per
	// event field (eventType, id, subject, timestamp, agentId,
	// agentName, data), replacing the provider's mapping.
	Map map[string]string `yaml:"map"`
	// Subject is an expression over the normalized event giving its
	// subject (what ordering, Slack threads and the archive's sessions
	// group by), in place of the provider's.
	Subject string `yaml:"subject"`
	// CanonicalJSON also accepts HMAC signatures of the compact JSON
	// re-serialization of the body. Weaker; off by default.
	CanonicalJSON bool `yaml:"canonical_json"`
	// IPAllow lists the networks (CIDR) allowed to post; TrustedProxies
	// the proxies whose X-Forwarded-For is believed.
	IPAllow        []string `yaml:"ip_allow"`
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// SourceVerify is a source's verify: block. Which keys apply depends on
// type: hmac, token, basic, ed25519 or none (see docs/configuration.md).
type SourceVerify struct {
	Type            string   `yaml:"type"`
	Header          string   `yaml:"header"`
	Algorithm       string   `yaml:"algorithm"`
	Encoding        string   `yaml:"encoding"`
	Prefix          string   `yaml:"prefix"`
	Signed          string   `yaml:"signed"`
	TimestampHeader string   `yaml:"timestamp_header"`
	IDHeader        string   `yaml:"id_header"`
	Tolerance       Duration `yaml:"tolerance"`
	Query           string   `yaml:"query"`
	Username        string   `yaml:"username"`
	PublicKey       string   `yaml:"public_key"`
	PublicKeys      []string `yaml:"public_keys"`
	PublicURL       string   `yaml:"public_url"`
	// VerifyToken answers Meta's subscription check (GET with
	// hub.verify_token and hub.challenge); provider meta only.
	VerifyToken Secret `yaml:"verify_token"`
}

// AllSecrets returns Secret followed by Secrets, without empty entries.
func (s *Source) AllSecrets() []Secret {
	var out []Secret
	for _, sec := range append([]Secret{s.Secret}, s.Secrets...) {
		if sec != "" {
			out = append(out, sec)
		}
	}
	return out
}

// Route sends events whose type matches, and for which When holds, to
// the sinks in To.
type Route struct {
	Name  string   `yaml:"name"`
	Match []string `yaml:"match"`
	When  string   `yaml:"when"`
	To    []string `yaml:"to"`
}

// Retry is a sink's retry policy.
type Retry struct {
	// MaxAttempts ends retrying after this many attempts; 0 means no
	// limit other than MaxAge.
	MaxAttempts    int      `yaml:"max_attempts"`
	InitialBackoff Duration `yaml:"initial_backoff"`
	MaxBackoff     Duration `yaml:"max_backoff"`
	// MaxAge ends retrying once a delivery is this old.
	MaxAge Duration `yaml:"max_age"`
}

// Defaults, documented in docs/configuration.md and config.example.yaml.
const (
	DefaultListen           = ":8080"
	DefaultBodyLimit        = ByteSize(1 << 20)
	DefaultReadTimeout      = Duration(10 * time.Second)
	DefaultWriteTimeout     = Duration(10 * time.Second)
	DefaultIdleTimeout      = Duration(60 * time.Second)
	DefaultShutdownTimeout  = Duration(30 * time.Second)
	DefaultStorageDir       = "./data"
	BackendSQLite           = "sqlite"
	BackendPostgres         = "postgres"
	DefaultSynchronous      = "full"
	DefaultMaxPending       = 100000
	DefaultLeaseTTL         = Duration(30 * time.Second)
	DefaultPoolSize         = 16
	DefaultStatementTimeout = Duration(5 * time.Second)
	DefaultPollInterval     = Duration(time.Second)
	DefaultBusyTimeout      = Duration(5 * time.Second)
	DefaultDedupWindow      = Duration(24 * time.Hour)
	DefaultSinkTimeout      = Duration(10 * time.Second)
	DefaultConcurrency      = 4
	// DefaultSQLiteConcurrency is higher: the archive commits concurrent
	// deliveries together, so more of them in flight means bigger
	// batches, not more contention.
	DefaultSQLiteConcurrency = 16
	DefaultInitialBackoff    = Duration(time.Second)
	DefaultMaxBackoff        = Duration(5 * time.Minute)
	DefaultMaxAge            = Duration(72 * time.Hour)
)

// Load reads, expands and validates the configuration at path. The
// error, if any, is an *Error listing every problem.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load for bytes already read; file names them in problems and
// lookup resolves ${VAR} references.
func Parse(file string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	c, err := ParseAll(file, data, lookup)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LoadAll is Load for `switchyard check`: with problems, it also returns
// the configuration as far as it could be decoded (unknown keys left
// out, bad values at their defaults), so that the caller can compile it
// and report the problems compiling finds together with these. The
// configuration is nil only when the file is not YAML at all. Never run
// a configuration that came with an error.
func LoadAll(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseAll(path, data, os.LookupEnv)
}

// ParseAll is LoadAll for bytes already read.
func ParseAll(file string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	c := &Config{file: file, nodes: map[string]*yaml.Node{}, secrets: map[*yaml.Node]bool{}}
	c.setDefaults()

	root := c.parse(data, "the file is empty; see config.example.yaml")
	if root == nil {
		return nil, &Error{Problems: c.problems}
	}
	c.expandEnv(root, lookup)
	c.root = root
	d := &decoder{cfg: c}
	d.decode(root, reflect.ValueOf(c).Elem(), "")
	c.applyDefaults()
	c.validate()
	if len(c.problems) > 0 {
		return c, &Error{Problems: c.problems}
	}
	return c, nil
}

// parse parses data into a node tree; nil after adding a problem (empty
// saying what to do with an empty file) if it cannot.
func (c *Config) parse(data []byte, empty string) *yaml.Node {
	c.src = data
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			c.add(Problem{Msg: empty})
		} else {
			c.add(syntaxProblem(err))
		}
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	return root
}

var lineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxProblem turns a yaml.v3 parse error ("yaml: line 3: ...") into
// a Problem with that line.
func syntaxProblem(err error) Problem {
	msg := err.Error()
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		var line int
		fmt.Sscanf(m[1], "%d", &line)
		return Problem{Line: line, Column: 1, Msg: "YAML syntax: " + m[2]}
	}
	return Problem{Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

func (c *Config) setDefaults() {
	c.Server = Server{
		Listen:          DefaultListen,
		BodyLimit:       DefaultBodyLimit,
		ReadTimeout:     DefaultReadTimeout,
		WriteTimeout:    DefaultWriteTimeout,
		IdleTimeout:     DefaultIdleTimeout,
		ShutdownTimeout: DefaultShutdownTimeout,
	}
	c.Storage = Storage{Backend: BackendSQLite, Dir: DefaultStorageDir, Synchronous: DefaultSynchronous, MaxPending: DefaultMaxPending, BusyTimeout: DefaultBusyTimeout,
		LeaseTTL: DefaultLeaseTTL, PoolSize: DefaultPoolSize, StatementTimeout: DefaultStatementTimeout, PollInterval: DefaultPollInterval}
	c.Metrics = Metrics{Listener: MetricsOnAdmin}
}

// applyDefaults fills what list entries left unset.
func (c *Config) applyDefaults() {
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Path == "" && s.Name != "" {
			s.Path = "/hooks/" + s.Name
		}
		if s.DedupWindow == 0 {
			s.DedupWindow = DefaultDedupWindow
		}
	}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		if s.Timeout == 0 {
			s.Timeout = DefaultSinkTimeout
		}
		if s.Concurrency == 0 {
			s.Concurrency = DefaultConcurrency
			switch s.Type {
			case "slack":
				s.Concurrency = 1 // keep a channel's messages in order
			case "sqlite", "postgres":
				s.Concurrency = DefaultSQLiteConcurrency
			}
		}
		if s.Retry.InitialBackoff == 0 {
			s.Retry.InitialBackoff = DefaultInitialBackoff
		}
		if s.Retry.MaxBackoff == 0 {
			s.Retry.MaxBackoff = DefaultMaxBackoff
		}
		if s.Retry.MaxAge == 0 {
			s.Retry.MaxAge = DefaultMaxAge
		}
		if s.Ordered == nil {
			ordered := s.Type == "slack" // a channel reads a session's updates in order
			s.Ordered = &ordered
		}
		if s.File != nil && s.File.Fsync == nil {
			fsync := true
			s.File.Fsync = &fsync
		}
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func (c *Config) validate() {
	if c.Server.Listen == "" {
		c.add(c.Problem("server.listen", "must not be empty; for example \":8080\""))
	}
	if c.Server.BodyLimit <= 0 {
		c.add(c.Problem("server.body_limit", "must be larger than 0"))
	}
	c.validateStorage()
	if strings.TrimSpace(c.Storage.Dir) == "" {
		c.add(c.Problem("storage.dir", "must not be empty"))
	}
	if sync := strings.ToLower(c.Storage.Synchronous); sync != "full" && sync != "normal" {
		c.add(c.Problem("storage.synchronous", "unknown level %q: full (survives power loss) or normal (survives a crash of switchyard)", c.Storage.Synchronous))
	}
	if c.Storage.BusyTimeout <= 0 {
		c.add(c.Problem("storage.busy_timeout", "must be longer than 0; for example 5s"))
	}
	if c.Storage.MaxPending < 0 {
		c.add(c.Problem("storage.max_pending", "must be 0 (no limit) or more"))
	}
	if len(c.Sources) == 0 && !c.given("sources") {
		c.add(c.Problem("sources", "no sources: add at least one under sources:"))
	}

	c.validateOps()

	names := map[string]string{}
	paths := c.reservedPaths()
	for i, s := range c.Sources {
		p := fmt.Sprintf("sources[%d]", i)
		c.checkName(names, p, s.Name, "source")
		if s.Provider == "" {
			c.add(c.Problem(p+".provider", "missing provider; for Darwin write provider: darwin"))
		}
		// A secret that expands to nothing (an unset ${VAR:-}) must not
		// quietly turn verification off: fail closed.
		if c.given(p+".secret") && s.Secret == "" {
			c.add(c.Problem(p+".secret", "is empty (an unset ${VAR:-}?): an empty secret verifies nothing"))
		}
		for j, sec := range s.Secrets {
			if sec == "" {
				c.add(c.Problem(fmt.Sprintf("%s.secrets[%d]", p, j), "is empty (an unset ${VAR:-}?): an empty secret verifies nothing"))
			}
		}
		c.warnShortSecret(p+".secret", s.Secret, false)
		for j, sec := range s.Secrets {
			c.warnShortSecret(fmt.Sprintf("%s.secrets[%d]", p, j), sec, false)
		}
		if c.given(p+".verify.verify_token") && s.Verify != nil && s.Verify.VerifyToken == "" {
			c.add(c.Problem(p+".verify.verify_token", "is empty (an unset ${VAR:-}?): remove it, or set the token entered in Meta's dashboard"))
		}
		if !strings.HasPrefix(s.Path, "/") {
			c.add(c.Problem(p+".path", "must start with /"))
		} else if at := strings.IndexFunc(s.Path, unsafeInPath); at >= 0 {
			// The receiver compares the path as sent, not decoded.
			c.add(c.Problem(p+".path", "%q has a character no request can carry as is (%q): write the path as senders send it, percent-encoded: %s",
				s.Path, []rune(s.Path[at:])[0], (&url.URL{Path: s.Path}).EscapedPath()))
		} else {
			c.checkPath(paths, i)
		}
	}

	sinks := map[string]bool{}
	names = map[string]string{}
	for i, s := range c.Sinks {
		p := fmt.Sprintf("sinks[%d]", i)
		if c.checkName(names, p, s.Name, "sink") {
			sinks[s.Name] = true
		}
		s.validate(c, p)
	}

	used := map[string]bool{}
	names = map[string]string{}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		c.checkName(names, p, r.Name, "route")
		if len(r.Match) == 0 && !c.given(p+".match") {
			c.add(c.Problem(p+".match", "missing match: list event types such as [\"session.forwarded.*\"], or [\"*\"] for all"))
		}
		if len(r.To) == 0 && !c.given(p+".to") {
			c.add(c.Problem(p+".to", "missing to: list the sinks this route delivers to"))
		}
		for j, to := range r.To {
			switch {
			case sinks[to]:
				used[to] = true
			case to == "":
				c.add(c.Problem(fmt.Sprintf("%s.to[%d]", p, j), "empty sink name"))
			default:
				c.add(c.Problem(fmt.Sprintf("%s.to[%d]", p, j), "unknown sink %q%s", to, suggest(to, keys(sinks))))
			}
		}
	}
	for i, s := range c.Sinks {
		if s.Name != "" && !used[s.Name] {
			c.add(c.Warning(fmt.Sprintf("sinks[%d].name", i), "sink %q is not used by any route", s.Name))
		}
	}
}

// PathKey is how the receiver matches a request's path to a source's:
// without regard to case or trailing slashes, as its router matches its
// own paths (/healthz, /metrics). Two paths with the same key cannot
// both be served.
func PathKey(path string) string {
	key := strings.TrimRight(strings.ToLower(path), "/")
	if key == "" {
		return "/"
	}
	return key
}

// unsafeInPath reports a character a request line carries only
// percent-encoded (or, for ? and #, not in the path at all).
func unsafeInPath(r rune) bool { return r <= ' ' || r >= 0x7f || r == '?' || r == '#' }

// servedPath is a path taken, by a source or by the receiver itself.
type servedPath struct {
	path string // as written (or defaulted)
	// source is the index of the source serving it; -1 for the
	// receiver's own paths, described by what.
	source int
	what   string
}

// reservedPaths are the receiver's own paths on server.listen.
func (c *Config) reservedPaths() map[string]servedPath {
	paths := map[string]servedPath{
		PathKey("/healthz"): {path: "/healthz", source: -1, what: "the health check GET /healthz"},
	}
	if c.Metrics.Listener == MetricsOnMain {
		paths[PathKey(MetricsPath)] = servedPath{path: MetricsPath, source: -1,
			what: fmt.Sprintf("the metrics GET %s, served there because metrics.listener is main%s", MetricsPath, c.at("metrics.listener"))}
	}
	return paths
}

// checkPath reports a source path that collides with a path already
// served, placed at the later one and pointing at the earlier: with
// one source on /hooks/GitHub and another on /hooks/github/, one
// would silently receive the other's requests.
func (c *Config) checkPath(paths map[string]servedPath, i int) {
	s := c.Sources[i]
	p := fmt.Sprintf("sources[%d].path", i)
	key := PathKey(s.Path)
	first, dup := paths[key]
	if !dup {
		paths[key] = servedPath{path: s.Path, source: i}
		return
	}
	const why = "paths match without regard to case or a trailing slash"
	mine := fmt.Sprintf("%q", s.Path)
	prob := c.Problem(p, "")
	if !c.given(p) {
		// A default path: place it at the name it comes from.
		mine = fmt.Sprintf("default path %q (from name %q)", s.Path, s.Name)
		prob = c.Problem(fmt.Sprintf("sources[%d].name", i), "")
		prob.Path = p
	}
	if first.source < 0 {
		prob.Msg = fmt.Sprintf("%s collides with %s: %s; choose another path", mine, first.what, why)
	} else {
		fp := fmt.Sprintf("sources[%d].path", first.source)
		theirs := fmt.Sprintf("%s %q%s", fp, first.path, c.at(fp))
		if !c.given(fp) {
			theirs = fmt.Sprintf("sources[%d]'s default path %q%s", first.source, first.path, c.at(fmt.Sprintf("sources[%d].name", first.source)))
		}
		prob.Msg = fmt.Sprintf("%s collides with %s: %s; give each source its own path", mine, theirs, why)
	}
	c.add(prob)
}

// at is " (file:line:col)" of the node at path, to point at it from a
// problem placed elsewhere; empty when the file does not set it.
func (c *Config) at(path string) string {
	n, ok := c.nodes[path]
	if !ok {
		return ""
	}
	return fmt.Sprintf(" (%s:%d:%d)", c.file, n.Line, n.Column)
}

// MinSecret is the shortest HMAC secret or token (in bytes) that check
// accepts without a warning.
const MinSecret = 16

// warnShortSecret warns about a signing secret or token shorter than
// MinSecret bytes: one signed request is enough to guess a short HMAC
// key offline, and a short token can be guessed online. A Standard
// Webhooks secret (whsec_ and base64) is measured decoded, as it is
// used. Only the length is shown, never the secret.
// ours is set for a key Switchyard signs with, which no platform
// chooses.
func (c *Config) warnShortSecret(path string, sec Secret, ours bool) {
	key := sec.Reveal()
	if key == "" {
		return // an error of its own
	}
	n, how := len(key), ""
	if b64, ok := strings.CutPrefix(key, "whsec_"); ok {
		if k, err := base64.StdEncoding.DecodeString(b64); err == nil {
			n, how = len(k), " once decoded from whsec_"
		}
	}
	if n < MinSecret {
		ask := ", or ask the platform for a longer one"
		if ours {
			ask = ""
		}
		c.add(c.Warning(path, "only %s%s: a secret this short can be guessed from one signed request; use at least %d random bytes (openssl rand -hex 32)%s", plural(n, "byte"), how, MinSecret, ask))
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// MinAdminToken is the shortest admin token accepted.
const MinAdminToken = 16

// validateOps checks the admin, metrics and log sections.
func (c *Config) validateOps() {
	a := c.Admin
	switch {
	case a.Listen != "" && a.Token == "":
		c.add(c.Problem("admin.token", "admin.listen is set but no token: set admin.token (or token_file) to a long random string, or remove admin.listen"))
	case a.Token != "" && len(a.Token.Reveal()) < MinAdminToken:
		c.add(c.Problem("admin.token", "too short: use at least %d random characters (openssl rand -hex 32)", MinAdminToken))
	case a.Listen == "" && a.Token != "":
		c.add(c.Warning("admin.token", "admin.listen is not set: the admin API is off"))
	}
	switch {
	case a.ViewerToken == "":
	case len(a.ViewerToken.Reveal()) < MinAdminToken:
		c.add(c.Problem("admin.viewer_token", "too short: use at least %d random characters (openssl rand -hex 32)", MinAdminToken))
	case a.ViewerToken == a.Token:
		c.add(c.Problem("admin.viewer_token", "is the same as admin.token: the viewer token must differ, or it could do what the admin token does"))
	case a.Token == "":
		c.add(c.Warning("admin.viewer_token", "admin.token is not set: the admin API and console are off"))
	}
	if a.Listen != "" && a.Listen == c.Server.Listen && !strings.HasSuffix(a.Listen, ":0") {
		c.add(c.Problem("admin.listen", "must differ from server.listen: the admin API has its own listener"))
	}
	switch c.Metrics.Listener {
	case MetricsOnAdmin, MetricsOnMain, MetricsOff:
	default:
		c.add(c.Problem("metrics.listener", "unknown listener %q: admin (the admin API's, behind its token), main (server.listen, no token) or off", c.Metrics.Listener))
	}
}

// given reports whether the file set path, even to a value that was
// rejected: a malformed value is reported once, not also as missing.
func (c *Config) given(path string) bool {
	_, ok := c.nodes[path]
	return ok
}

// checkName reports a missing, malformed or duplicated name.
func (c *Config) checkName(seen map[string]string, path, name, what string) bool {
	switch {
	case name == "":
		c.add(c.Problem(path+".name", "missing name"))
	case !nameRE.MatchString(name):
		c.add(c.Problem(path+".name", "invalid %s name %q: use letters, digits, '.', '_' and '-'", what, name))
	case seen[name] != "":
		c.add(c.Problem(path+".name", "duplicate %s name %q (also %s)", what, name, seen[name]))
	default:
		seen[name] = path
		return true
	}
	return false
}

func suggest(s string, candidates []string) string {
	if near := nearest(s, candidates); near != "" {
		return fmt.Sprintf("; did you mean %q?", near)
	}
	if len(candidates) > 0 {
		return "; defined: " + strings.Join(candidates, ", ")
	}
	return ""
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkURL reports a URL that is not absolute http(s) with a host. The
// URL itself is not repeated: it may carry a token.
func (c *Config) checkURL(path, raw string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.add(c.Problem(path, "must be an absolute http:// or https:// URL"))
	}
}
