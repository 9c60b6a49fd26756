package app

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/delivery"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/queue/postgres"
	"github.com/switchyard/switchyard/receiver"
	"github.com/switchyard/switchyard/rules"
	"github.com/switchyard/switchyard/sinks"
	"github.com/switchyard/switchyard/sinks/archive"
	"github.com/switchyard/switchyard/sinks/file"
	pgarchive "github.com/switchyard/switchyard/sinks/postgres"
	"github.com/switchyard/switchyard/sinks/slack"
	"github.com/switchyard/switchyard/sinks/slack/pgstate"
	"github.com/switchyard/switchyard/sinks/sqlite"
	"github.com/switchyard/switchyard/sinks/webhook"
)

// Plan is everything a configuration describes, compiled and
// constructed, with nothing opened or started: what `switchyard check`
// validates and what New runs.
type Plan struct {
	Config  *config.Config
	Sources []receiver.Source
	Rules   *rules.Set
	// Sinks are the sinks to deliver to; a held sink (no destination
	// configured) is absent, and its deliveries wait.
	Sinks []delivery.Sink
	// Held names the held sinks.
	Held []string
	// Dedup is each source's inbound deduplication, by source name.
	Dedup map[string]Dedup
}

// Dedup is how a source's duplicate events are recognised.
type Dedup struct {
	// Key, when set, computes the dedup key from the event; otherwise
	// the provider's event id or a hash of the body is the key.
	Key    *lang.Expression
	Window time.Duration
}

// Build compiles cfg: sources, rules and sink templates. Its error is a
// *config.Error with every problem placed in the file.
func Build(cfg *config.Config, log *slog.Logger) (*Plan, error) {
	return build(cfg, log, false)
}

// BuildPreview is Build for `switchyard test`: held sinks are in Sinks
// too, built with a destination that does not resolve (heldURL), so
// that what they would send can be previewed. Nothing is opened; never
// deliver with the plan.
func BuildPreview(cfg *config.Config) (*Plan, error) {
	return build(cfg, nil, true)
}

// heldURL stands in for a held sink's destination in a preview: .invalid
// never resolves (RFC 2606).
const heldURL = "https://held.invalid/"

func build(cfg *config.Config, log *slog.Logger, preview bool) (*Plan, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Plan{Config: cfg, Dedup: map[string]Dedup{}}
	var problems []config.Problem

	for i, sc := range cfg.Sources {
		dd := Dedup{Window: sc.DedupWindow.D()}
		if sc.DedupKey != "" {
			key, err := lang.CompileExpression(sc.DedupKey)
			if err != nil {
				problems = append(problems, templateProblem(cfg, fmt.Sprintf("sources[%d].dedup_key", i), err))
			}
			dd.Key = key
		}
		p.Dedup[sc.Name] = dd
	}

	for i, sc := range cfg.Sources {
		secrets := make([]string, 0, 2)
		for _, s := range sc.AllSecrets() {
			secrets = append(secrets, s.Reveal())
		}
		src, err := receiver.NewSource(sourceConfig(sc, secrets))
		if err != nil {
			problems = append(problems, sourceProblems(cfg, i, err)...)
			continue
		}
		if src.Renamed != "" {
			log.Warn(renamedWarning(cfg, i, src.Renamed).String())
		}
		if src.Unauthenticated {
			log.Warn("source accepts unauthenticated requests (verify: {type: none}): anyone who can reach its path can post events",
				"source", sc.Name, "path", sc.Path)
		}
		p.Sources = append(p.Sources, src)
	}

	routes := make([]rules.Route, len(cfg.Routes))
	for i, r := range cfg.Routes {
		routes[i] = rules.Route{Name: r.Name, Match: r.Match, When: r.When, To: r.To}
	}
	set, err := rules.Compile(routes)
	if err != nil {
		problems = append(problems, ruleProblems(cfg, err)...)
	}
	p.Rules = set

	ua := "switchyard/" + Version
	for i, sc := range cfg.Sinks {
		path := fmt.Sprintf("sinks[%d]", i)
		var sink sinks.Sink
		held := sc.Held()
		if held {
			p.Held = append(p.Held, sc.Name)
			if !preview {
				if sc.HTTP != nil {
					// Compile the rest now: setting the URL later must
					// not reveal a mistake in the body or the secret.
					if s, probs := buildHTTP(cfg, path, sc, ua, heldURL); len(probs) > 0 {
						problems = append(problems, probs...)
					} else {
						s.Close()
					}
				}
				continue
			}
		}
		switch {
		case sc.Slack != nil:
			s, probs := buildSlack(cfg, path, sc, log, held)
			if len(probs) > 0 {
				problems = append(problems, probs...)
				continue
			}
			sink = s
		case sc.SQLite != nil:
			cols, probs := archiveColumns(cfg, path, sc.SQLite.Columns)
			if len(probs) > 0 {
				problems = append(problems, probs...)
				continue
			}
			sink = sqlite.New(sqlite.Options{
				Path:      sc.SQLite.Path,
				Columns:   cols,
				Retention: sc.SQLite.Retention.D(),
				Providers: providers(cfg),
				Logger:    log.With("sink", sc.Name),
			})
		case sc.Postgres != nil:
			cols, probs := archiveColumns(cfg, path, sc.Postgres.Columns)
			if len(probs) > 0 {
				problems = append(problems, probs...)
				continue
			}
			// Checks the DSN without connecting: check and test never
			// reach the database; serve does, at Open, and fails there.
			s, err := pgarchive.New(pgarchive.Options{
				DSN:       sc.Postgres.DSN.Reveal(),
				Columns:   cols,
				Retention: sc.Postgres.Retention.D(),
				Providers: providers(cfg),
				Logger:    log.With("sink", sc.Name),
			})
			if err != nil {
				problems = append(problems, cfg.Problem(path+".dsn", "%v", err))
				continue
			}
			sink = s
		case sc.HTTP != nil:
			url := sc.HTTP.URL
			if held {
				url = heldURL
			}
			s, probs := buildHTTP(cfg, path, sc, ua, url)
			if len(probs) > 0 {
				problems = append(problems, probs...)
				continue
			}
			sink = s
		case sc.File != nil:
			sink = file.New(file.Options{Path: sc.File.Path, Fsync: sc.File.Fsync == nil || *sc.File.Fsync})
		case sc.Stdout != nil:
			sink = file.New(file.Options{Writer: os.Stdout})
		default:
			continue // the type was already reported by config
		}
		p.Sinks = append(p.Sinks, delivery.Sink{
			Name:        sc.Name,
			Sink:        sink,
			Concurrency: sc.Concurrency,
			Timeout:     sc.Timeout.D(),
			Retry: delivery.Policy{
				MaxAttempts:    sc.Retry.MaxAttempts,
				InitialBackoff: sc.Retry.InitialBackoff.D(),
				MaxBackoff:     sc.Retry.MaxBackoff.D(),
				MaxAge:         sc.Retry.MaxAge.D(),
			},
			Ordered: sc.Ordered != nil && *sc.Ordered,
			Rate:    delivery.Rate{N: sc.Rate.N, Per: sc.Rate.Per.D()},
		})
	}
	if cfg.Storage.Backend == config.BackendPostgres && cfg.Storage.DSN != "" {
		// What the driver would refuse (an unknown sslmode, a bad port),
		// found without connecting.
		if err := postgres.CheckDSN(cfg.Storage.DSN.Reveal()); err != nil {
			problems = append(problems, cfg.Problem("storage.dsn", "%v", err))
		}
	}
	if len(problems) > 0 {
		p.Close()
		return nil, &config.Error{Problems: problems}
	}
	return p, nil
}

// Close releases what Build constructed (idle HTTP connections).
func (p *Plan) Close() error {
	var errs []error
	for _, s := range p.Sinks {
		errs = append(errs, s.Sink.Close())
	}
	return errors.Join(errs...)
}

// NewSource builds one configured source on its own, as Build does: for
// tools that act as its sender (switchyard send).
func NewSource(sc config.Source) (receiver.Source, error) {
	secrets := make([]string, 0, 2)
	for _, s := range sc.AllSecrets() {
		secrets = append(secrets, s.Reveal())
	}
	return receiver.NewSource(sourceConfig(sc, secrets))
}

func sourceConfig(sc config.Source, secrets []string) receiver.SourceConfig {
	c := receiver.SourceConfig{
		Name: sc.Name, Path: sc.Path, Provider: sc.Provider, Secrets: secrets,
		Map: sc.Map, Subject: sc.Subject, CanonicalJSON: sc.CanonicalJSON, IPAllow: sc.IPAllow, TrustedProxies: sc.TrustedProxies,
	}
	if v := sc.Verify; v != nil {
		keys := v.PublicKeys
		if v.PublicKey != "" {
			keys = append([]string{v.PublicKey}, keys...)
		}
		c.Verify = &receiver.VerifyConfig{
			Type: v.Type, Header: v.Header, Algorithm: v.Algorithm, Encoding: v.Encoding, Prefix: v.Prefix,
			Signed: v.Signed, TimestampHeader: v.TimestampHeader, IDHeader: v.IDHeader, Tolerance: v.Tolerance.D(),
			Query: v.Query, Username: v.Username, PublicKeys: keys, PublicURL: v.PublicURL,
			VerifyToken: v.VerifyToken.Reveal(),
		}
	}
	return c
}

// SourceWarnings warns about each source whose provider is named by the
// name it had before: it still works, and the warning names the name
// that replaces it.
func SourceWarnings(cfg *config.Config) []config.Problem {
	var out []config.Problem
	for i, sc := range cfg.Sources {
		if now := receiver.CanonicalProvider(sc.Provider); now != sc.Provider {
			out = append(out, renamedWarning(cfg, i, now))
		}
	}
	return out
}

func renamedWarning(cfg *config.Config, i int, now string) config.Problem {
	return cfg.Warning(fmt.Sprintf("sources[%d].provider", i),
		"%q is the old name of this provider: write provider: %s (the old name still works, and may be removed in a later release)",
		cfg.Sources[i].Provider, now)
}

// sourceProblems places a source's build errors at the settings they
// are about: sources[i].verify.header, sources[i].map.eventType (inside
// the expression), ...
func sourceProblems(cfg *config.Config, i int, err error) []config.Problem {
	var out []config.Problem
	for _, e := range unwrapAll(err) {
		var ce *receiver.ConfigError
		if !errors.As(e, &ce) {
			out = append(out, cfg.Problem(fmt.Sprintf("sources[%d]", i), "%v", e))
			continue
		}
		path := fmt.Sprintf("sources[%d].%s", i, ce.Field)
		if ce.Field == "secret" && len(cfg.Sources[i].Secrets) > 0 && cfg.Sources[i].Secret == "" {
			path = fmt.Sprintf("sources[%d].secrets", i)
		}
		if ce.Line > 0 {
			out = append(out, cfg.ProblemIn(path, ce.Line, ce.Column, ce.Msg))
		} else {
			out = append(out, cfg.Problem(path, "%s", ce.Msg))
		}
	}
	return out
}

// buildHTTP compiles an http sink's templates, expressions and signing
// keys, loads its TLS files, and constructs it for url. Problems are
// placed at their settings, inside templates where the position is known.
func buildHTTP(cfg *config.Config, path string, sc config.Sink, ua, url string) (*webhook.Sink, []config.Problem) {
	c := sc.HTTP
	var problems []config.Problem
	opts := sinks.HTTPOptions{FollowRedirects: c.FollowRedirects}
	if t := c.TLS; t != nil {
		opts.CAFile, opts.CertFile, opts.KeyFile, opts.InsecureSkipVerify = t.CAFile, t.ClientCertFile, t.ClientKeyFile, t.InsecureSkipVerify
	}
	client, err := sinks.NewHTTPClientWith(opts)
	if err != nil {
		// Reported with the rest: the templates still compile, with a
		// client that is only closed.
		field := ""
		if oe, ok := errors.AsType[*sinks.OptionError](err); ok {
			field, err = "."+oe.Field, oe.Err
		}
		problems = append(problems, cfg.Problem(path+".tls"+field, "%v", err))
		client = sinks.NewHTTPClient()
	}
	headers := make(map[string]string, len(c.Headers))
	for k, v := range c.Headers {
		headers[k] = v.Reveal()
	}
	wo := webhook.Options{
		URL: url, Method: c.Method, Headers: headers,
		Body: c.Body, ContentType: c.ContentType, Format: c.Format,
		Client: client, UserAgent: ua,
	}
	if g := c.Sign; g != nil {
		wo.Sign = &webhook.Sign{Scheme: g.Scheme, Header: g.Header, Algorithm: g.Algorithm, Encoding: g.Encoding, Prefix: g.Prefix}
		for _, s := range g.AllSecrets() {
			wo.Sign.Secrets = append(wo.Sign.Secrets, s.Reveal())
		}
	}
	s, err := webhook.New(wo)
	for _, e := range unwrapAll(err) {
		if ce, ok := errors.AsType[*webhook.ConfigError](e); ok {
			problems = append(problems, templateProblem(cfg, path+"."+ce.Field, ce.Err))
		} else if e != nil {
			problems = append(problems, cfg.Problem(path, "%v", e))
		}
	}
	if len(problems) > 0 {
		client.CloseIdleConnections()
		return nil, problems
	}
	return s, nil
}

// buildSlack compiles a slack sink's templates and constructs it. Its
// threads, groups and channels' pace live where slackState says. A held sink (for a
// preview) gets a stand-in destination: a bot token when a channel is
// set, else heldURL.
func buildSlack(cfg *config.Config, path string, sc config.Sink, log *slog.Logger, held bool) (sinks.Sink, []config.Problem) {
	c := sc.Slack
	var problems []config.Problem
	tmpl := func(key, src string) *lang.Template {
		if src == "" {
			return nil
		}
		t, err := lang.ParseTemplate(src)
		if err != nil {
			problems = append(problems, templateProblem(cfg, path+"."+key, err))
		}
		return t
	}
	opts := slack.Options{
		Name:           sc.Name,
		WebhookURL:     c.WebhookURL.Reveal(),
		Token:          c.Token.Reveal(),
		Channel:        tmpl("channel", c.Channel),
		Text:           tmpl("text", c.Text),
		Link:           tmpl("link", c.Link),
		ReplyBroadcast: c.ReplyBroadcast,
		ChannelRateN:   c.ChannelRate.N,
		ChannelRatePer: c.ChannelRate.Per.D(),
		Platforms:      platforms(cfg),
		APIURL:         apiURL(c.APIURL),
		Logger:         log.With("sink", sc.Name),
	}
	switch {
	case held && c.Channel != "":
		opts.Token = "held"
	case held:
		opts.WebhookURL = heldURL
	}
	if c.Blocks.Value != nil {
		b, err := slack.ParseBlocks(c.Blocks.Value)
		for _, e := range unwrapAll(err) {
			var be *slack.BlocksError
			switch {
			case e == nil:
			case !errors.As(e, &be):
				problems = append(problems, cfg.Problem(path+".blocks", "%v", e))
			case c.Blocks.JSON:
				problems = append(problems, cfg.Problem(path+".blocks", "%s: %v", be.Path, be.Err))
			default:
				problems = append(problems, templateProblem(cfg, path+".blocks"+be.Path, be.Err))
			}
		}
		opts.Blocks = b
	}
	for i, p := range c.ReplyBroadcast {
		if err := rules.ValidPattern(p); err != nil {
			problems = append(problems, cfg.Problem(fmt.Sprintf("%s.reply_broadcast[%d]", path, i), "%v", err))
		}
	}
	if g := c.Group; g != nil {
		// A grouped sink does not thread (config rejects thread: subject).
		by, err := lang.CompileExpression(g.By)
		if err != nil {
			problems = append(problems, templateProblem(cfg, path+".group.by", err))
		}
		opts.Group = &slack.Group{By: by, Wait: g.Wait.D()}
	} else if opts.Token != "" && c.Thread != "off" {
		opts.Threads = true
	}
	opts.State = slackState(cfg, sc, opts)
	if len(problems) > 0 {
		return nil, problems
	}
	s, err := slack.New(opts)
	if err != nil {
		return nil, []config.Problem{cfg.Problem(path, "%v", err)}
	}
	return s, nil
}

// apiURL is a Slack Web API base as slack-go wants it: with a trailing
// slash; "" keeps slack-go's default.
func apiURL(u string) string {
	if u != "" && !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}

// providers names each source's provider, by source name.
// archiveColumns compiles an archive sink's configured columns.
func archiveColumns(cfg *config.Config, path string, src map[string]string) (map[string]*lang.Expression, []config.Problem) {
	cols := map[string]*lang.Expression{}
	var problems []config.Problem
	for name, text := range src {
		cpath := path + ".columns." + name
		if err := archive.CheckColumnName(name); err != nil {
			problems = append(problems, cfg.Problem(cpath, "%v", err))
			continue
		}
		e, err := lang.CompileExpression(text)
		if err != nil {
			problems = append(problems, templateProblem(cfg, cpath, err))
			continue
		}
		cols[name] = e
	}
	return cols, problems
}

func providers(cfg *config.Config) map[string]string {
	out := make(map[string]string, len(cfg.Sources))
	for _, sc := range cfg.Sources {
		out[sc.Name] = receiver.CanonicalProvider(sc.Provider)
	}
	return out
}

// platforms describes the platform behind each source, for the Slack
// layouts.
func platforms(cfg *config.Config) map[string]slack.Platform {
	out := make(map[string]slack.Platform, len(cfg.Sources))
	for _, sc := range cfg.Sources {
		provider := receiver.CanonicalProvider(sc.Provider)
		name, subject := receiver.PlatformOf(provider)
		out[sc.Name] = slack.Platform{Provider: provider, Name: name, Subject: subject}
	}
	return out
}

// slackState is where a Slack sink keeps its threads, groups and
// channels' pace. With storage.backend postgres, in the queue's database,
// shared by every replica: one thread per session, one message per
// group, and each channel's pace (a 429's pause included) for the whole
// cluster. With sqlite (one gateway per storage.dir), threads and groups
// in storage.dir/slack.db, the pace in memory.
func slackState(cfg *config.Config, sc config.Sink, opts slack.Options) slack.OpenState {
	if cfg.Storage.Backend == config.BackendPostgres {
		return pgstate.Open(cfg.Storage.DSN.Reveal(), pgstate.Options{
			MaxConns: int32(max(sc.Concurrency, 1) + 2),
			Logger:   opts.Logger,
		})
	}
	if opts.Threads || opts.Group != nil {
		return slack.SQLiteState(filepath.Join(cfg.Storage.Dir, "slack.db"))
	}
	return nil // in memory: nothing to remember
}

func ruleProblems(cfg *config.Config, err error) []config.Problem {
	var out []config.Problem
	for _, e := range unwrapAll(err) {
		var ce *rules.CompileError
		if !errors.As(e, &ce) {
			out = append(out, cfg.Problem("routes", "%v", e))
			continue
		}
		path := fmt.Sprintf("routes[%d].%s", ce.Route, ce.Field)
		if ce.Line > 0 {
			out = append(out, cfg.ProblemIn(path, ce.Line, ce.Column, ce.Msg))
		} else {
			out = append(out, cfg.Problem(path, "%s", ce.Msg))
		}
	}
	return out
}

func templateProblem(cfg *config.Config, path string, err error) config.Problem {
	var serr *lang.SyntaxError
	if errors.As(err, &serr) {
		return cfg.ProblemIn(path, serr.Line, serr.Column, serr.Msg)
	}
	return cfg.Problem(path, "%v", err)
}

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
