// Package slack is the slack sink: it posts a message per event to Slack,
// through an incoming webhook or as a bot (chat.postMessage), with slack-go.
//
// Messages are Block Kit layouts (a default per event family, or a
// template) with a text fallback for notifications. Values from the event
// are escaped so that a customer's text cannot mention @channel or forge
// links, and everything is fitted to Slack's limits. A bot posts a
// session's later events as replies in the thread its first message
// started, or folds a burst of events with the same key into one message
// it edits, and paces its posts per channel.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/rules"
	"github.com/switchyard/switchyard/sinks"
)

// DefaultChannelRate is Slack's pace for posting to one channel: about a
// message per second.
const (
	DefaultChannelRateN   = 1
	DefaultChannelRatePer = time.Second
)

// Options configures a sink. Exactly one of WebhookURL and Token is set.
type Options struct {
	// Name is the sink's name; it keys the threads it remembers.
	Name string
	// WebhookURL is an incoming webhook; it is a credential and never
	// appears in errors.
	WebhookURL string
	// Token is a bot token for chat.postMessage; it never appears in
	// errors.
	Token string
	// Channel renders the channel a bot posts to (required with Token).
	Channel *lang.Template
	// Text renders the message text: the message itself when there are
	// no Blocks, else its notification fallback. DefaultText when nil.
	Text *lang.Template
	// Blocks renders the message's blocks. When nil: the default Layout,
	// unless Text is set (then the message is the text alone).
	Blocks *Blocks
	// Link renders a URL the default layouts link to.
	Link *lang.Template
	// Platforms describes the platform behind each source, by source
	// name, for the default layouts and text.
	Platforms map[string]Platform
	// Threads (bot mode): a subject's first message starts a thread and
	// its later events reply in it.
	Threads bool
	// ReplyBroadcast lists event-type patterns whose replies are also
	// shown in the channel.
	ReplyBroadcast []string
	// Group, when set (bot mode, without Threads), folds a burst of
	// events with the same key into one message.
	Group *Group
	// State opens where threads, groups and the channels' pace are kept,
	// shared with the other replicas; in memory (one process, forgotten
	// when it ends) when nil.
	State OpenState
	// ChannelRateN posts per ChannelRatePer, per channel; Slack's 1/s
	// when zero.
	ChannelRateN   int
	ChannelRatePer time.Duration
	// APIURL is Slack's Web API, with a trailing slash; slack-go's
	// default when empty.
	APIURL string
	// Client sends the requests; sinks.NewHTTPClient() when nil.
	Client *http.Client
	Logger *slog.Logger
}

// Sink posts events to Slack.
type Sink struct {
	name      string
	url       string
	token     string
	api       *slackapi.Client
	channel   *lang.Template
	text      *lang.Template
	blocks    *Blocks
	link      *lang.Template
	platforms map[string]Platform
	threads   bool
	broadcast []string
	group     *Group
	openState OpenState
	rateN     int
	ratePer   time.Duration
	now       func() time.Time

	mu     sync.Mutex
	state  State // nil until Open
	pace   Pacer
	closed bool
	client *http.Client
	log    *slog.Logger
}

var (
	_ sinks.Sink   = (*Sink)(nil)
	_ sinks.Opener = (*Sink)(nil)
)

// New returns a sink for opts.
func New(opts Options) (*Sink, error) {
	switch {
	case opts.WebhookURL == "" && opts.Token == "":
		return nil, errors.New("slack: set a webhook URL or a bot token")
	case opts.WebhookURL != "" && opts.Token != "":
		return nil, errors.New("slack: set a webhook URL or a bot token, not both")
	case opts.Token != "" && opts.Channel == nil:
		return nil, errors.New("slack: a bot token needs a channel")
	case opts.Token == "" && opts.Threads:
		return nil, errors.New("slack: threads need a bot token")
	}
	if g := opts.Group; g != nil {
		switch {
		case opts.Token == "":
			return nil, errors.New("slack: grouping edits messages (chat.update), which needs a bot token")
		case opts.Threads:
			return nil, errors.New("slack: a grouped sink does not thread")
		case g.By == nil:
			return nil, errors.New("slack: group: missing by")
		case g.Wait <= 0:
			return nil, errors.New("slack: group: wait must be more than 0")
		}
	}
	for _, p := range opts.ReplyBroadcast {
		if err := rules.ValidPattern(p); err != nil {
			return nil, fmt.Errorf("slack: reply_broadcast: %w", err)
		}
	}
	s := &Sink{
		name: opts.Name, url: opts.WebhookURL, token: opts.Token,
		channel: opts.Channel, text: opts.Text, blocks: opts.Blocks, link: opts.Link, platforms: opts.Platforms,
		threads: opts.Threads, broadcast: opts.ReplyBroadcast, group: opts.Group, openState: opts.State,
		client: opts.Client, log: opts.Logger, now: time.Now,
	}
	if s.openState == nil {
		s.openState = func(context.Context) (State, error) { return NewMemoryState(), nil }
	}
	if s.client == nil {
		s.client = sinks.NewHTTPClient()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	n, per := opts.ChannelRateN, opts.ChannelRatePer
	if n <= 0 || per <= 0 {
		n, per = DefaultChannelRateN, DefaultChannelRatePer
	}
	s.rateN, s.ratePer = n, per
	if s.token != "" {
		apiOpts := []slackapi.Option{slackapi.OptionHTTPClient(s.client)}
		if opts.APIURL != "" {
			apiOpts = append(apiOpts, slackapi.OptionAPIURL(opts.APIURL))
		}
		s.api = slackapi.New(s.token, apiOpts...)
	}
	return s, nil
}

// Open opens the sink's State: where its threads, groups and channels'
// pace are kept.
func (s *Sink) Open(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if s.state != nil {
		return nil
	}
	st, err := s.openState(ctx)
	if err != nil {
		return err
	}
	s.state, s.pace = st, st.Pacer(s.name, s.rateN, s.ratePer)
	return nil
}

// Close releases the State and idle connections.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.state == nil {
		s.closed = true
		return nil
	}
	s.closed = true
	return s.state.Close()
}

// errClosed is Send's error after Close.
var errClosed = errors.New("slack sink closed")

// Message is a rendered message.
type Message struct {
	// Channel is where a bot posts it; empty for a webhook.
	Channel string `json:"channel,omitempty"`
	// Text is the message (without blocks) or its notification fallback.
	Text string `json:"text"`
	// Blocks are the Block Kit blocks, fitted to Slack's limits.
	Blocks []any `json:"blocks,omitempty"`
}

// Render returns the message for ev, as it would be posted.
func (s *Sink) Render(ev *event.Event) (*Message, error) {
	env, err := ev.Env()
	if err != nil {
		return nil, err
	}
	return s.render(env)
}

// Preview is Render for `switchyard test`: the message the event would
// post (a grouped sink would then fold it into its group's message).
func (s *Sink) Preview(ev *event.Event) (any, error) { return s.Render(ev) }

func (s *Sink) render(env *event.Env) (*Message, error) {
	var err error
	m := &Message{}
	if s.channel != nil {
		ch, err := s.channel.Render(env, nil)
		if err != nil {
			return nil, fmt.Errorf("channel: %w", err)
		}
		if m.Channel = strings.TrimSpace(ch); m.Channel == "" {
			return nil, errors.New("channel: the template gave an empty channel")
		}
	}
	if s.text != nil {
		if m.Text, err = s.text.Render(env, Escape); err != nil {
			return nil, fmt.Errorf("text: %w", err)
		}
	} else {
		m.Text = DefaultText(env, s.platforms[env.Source])
	}
	m.Text = truncate(m.Text, maxMessageText)
	switch {
	case s.blocks != nil:
		if m.Blocks, err = s.blocks.Render(env, Escape); err != nil {
			return nil, fmt.Errorf("blocks: %w", err)
		}
	case s.text == nil:
		link := ""
		if s.link != nil {
			if link, err = s.link.Render(env, EscapeURL); err != nil {
				return nil, fmt.Errorf("link: %w", err)
			}
		}
		if m.Blocks, err = toGeneric(Layout(env, strings.TrimSpace(link), s.platforms[env.Source])); err != nil {
			return nil, fmt.Errorf("blocks: %w", err)
		}
	}
	if m.Blocks != nil {
		m.Blocks = limit(m.Blocks)
	}
	return m, nil
}

// Send posts the event's message. Slack's 429, 5xx and transient ok:false
// codes are retried (honouring Retry-After); other refusals (a revoked
// token or webhook, an unknown channel, invalid blocks) are permanent.
func (s *Sink) Send(ctx context.Context, d *sinks.Delivery) error {
	if err := s.Open(ctx); err != nil {
		return err
	}
	env, err := d.Event.Env()
	if err != nil {
		return sinks.Permanent(fmt.Errorf("render: %w", err))
	}
	m, err := s.render(env)
	if err != nil {
		return sinks.Permanent(fmt.Errorf("render: %w", err))
	}
	blocks, err := encodeBlocks(m.Blocks)
	if err != nil {
		return sinks.Permanent(fmt.Errorf("encode blocks: %w", err))
	}
	if s.api == nil {
		return s.sendWebhook(ctx, m, blocks)
	}
	if s.group != nil {
		key, err := s.groupKey(env)
		if err != nil {
			return sinks.Permanent(fmt.Errorf("render: group.by: %w", err))
		}
		if key != "" {
			ev := d.Event
			if ev.ID == "" {
				e := *ev
				e.ID = d.ID
				ev = &e
			}
			return s.sendGrouped(ctx, ev, env, m, blocks, key)
		}
	}
	return s.post(ctx, d.Event, m, blocks)
}

func (s *Sink) sendWebhook(ctx context.Context, m *Message, blocks []rawBlock) error {
	if err := s.wait(ctx, ""); err != nil {
		return err
	}
	msg := &slackapi.WebhookMessage{Text: m.Text}
	if len(blocks) > 0 {
		msg.Blocks = &slackapi.Blocks{BlockSet: asBlocks(blocks)}
	}
	return s.rateLimited(ctx, "", s.postWebhook(ctx, msg))
}

// maxReason bounds the part of a refusal's body kept as its reason.
const maxReason = 200

// postWebhook posts msg to the incoming webhook. A refusal keeps Slack's
// reason, the body of its answer (no_service, channel_not_found,
// invalid_token, …): it is what tells an operator what to fix.
// slack-go's webhook call drops it.
func (s *Sink) postWebhook(ctx context.Context, msg *slackapi.WebhookMessage) error {
	raw, err := json.Marshal(msg)
	if err != nil {
		return sinks.Permanent(fmt.Errorf("encode message: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(raw))
	if err != nil {
		return sinks.Permanent(sinks.Redact(err, s.url, strings.TrimPrefix(s.url, "https://")))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		// Network errors name the URL, which is the credential.
		return sinks.Redact(err, s.url, strings.TrimPrefix(s.url, "https://"))
	}
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxReason))
	reason := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(string(body)))
	return &sinks.HTTPError{Status: resp.StatusCode, After: sinks.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), Body: reason}
}

// post sends through chat.postMessage, in the subject's thread if it has
// one. Ordering makes threads work: with ordered: true (slack's default)
// a subject's deliveries are attempted one at a time in the cluster, so
// the first message's ts is stored before the next event of its session
// is sent. The State makes them safe anyway: a subject's first messages
// start its thread one at a time (on every replica), and one that finds
// the thread started meanwhile replies in it.
func (s *Sink) post(ctx context.Context, ev *event.Event, m *Message, blocks []rawBlock) error {
	opts := []slackapi.MsgOption{slackapi.MsgOptionText(m.Text, false)}
	if len(blocks) > 0 {
		opts = append(opts, slackapi.MsgOptionBlocks(asBlocks(blocks)...))
	}
	if !s.threads || ev.Subject == "" {
		_, _, err := s.send(ctx, m.Channel, m.Channel, opts...)
		return err
	}
	k := ThreadKey{Sink: s.name, Channel: m.Channel, Subject: ev.Subject}
	t, ok, err := s.state.Thread(ctx, k)
	if err != nil {
		return fmt.Errorf("look up thread: %w", err)
	}
	if ok {
		err := s.reply(ctx, ev, m, t, opts)
		if !threadGone(err) {
			return err
		}
		// The thread's first message was deleted: start a new thread.
		if err := s.state.ForgetThread(ctx, k, t); err != nil {
			return fmt.Errorf("forget deleted thread: %w", err)
		}
	}
	t, started, err := s.state.StartThread(ctx, k, func(ctx context.Context) (Thread, error) {
		channelID, ts, err := s.send(ctx, m.Channel, m.Channel, opts...)
		return Thread{ChannelID: channelID, TS: ts}, err
	})
	var rec *RecordError
	switch {
	case errors.As(err, &rec):
		// Posted: retrying would post it again. Later events of the
		// session start a thread of their own.
		s.log.Warn("remember slack thread", "event_id", ev.ID, "err", rec.Err)
		return nil
	case err != nil:
		return err
	case started:
		return nil
	}
	// Another send started the subject's thread meanwhile: reply in it.
	return s.reply(ctx, ev, m, t, opts)
}

// reply posts in thread t.
func (s *Sink) reply(ctx context.Context, ev *event.Event, m *Message, t Thread, opts []slackapi.MsgOption) error {
	reply := append(opts[:len(opts):len(opts)], slackapi.MsgOptionTS(t.TS))
	if s.broadcasts(ev.EventType) {
		reply = append(reply, slackapi.MsgOptionBroadcast())
	}
	_, _, err := s.send(ctx, m.Channel, t.ChannelID, reply...)
	return err
}

// send posts to channelID (a name or an id) at the pace of channel (as
// configured: the pace's key).
func (s *Sink) send(ctx context.Context, channel, channelID string, opts ...slackapi.MsgOption) (respChannel, ts string, err error) {
	if err := s.wait(ctx, channel); err != nil {
		return "", "", err
	}
	respChannel, ts, err = s.api.PostMessageContext(ctx, channelID, opts...)
	return respChannel, ts, s.rateLimited(ctx, channel, classify(err, s.token))
}

// rateLimited holds the channel's posts back for as long as Slack asked:
// a 429's Retry-After, or a second for a 429 without one and for an
// ok:false "ratelimited" (which comes with no wait).
func (s *Sink) rateLimited(ctx context.Context, channel string, err error) error {
	var (
		he  *sinks.HTTPError
		api *APIError
	)
	switch {
	case errors.As(err, &he) && he.Status == http.StatusTooManyRequests:
		wait := he.After
		if wait <= 0 {
			wait = rateLimitWait
		}
		s.block(ctx, channel, wait)
	case errors.As(err, &api) && api.RetryAfter() > 0:
		s.block(ctx, channel, api.RetryAfter())
	}
	return err
}

func (s *Sink) broadcasts(eventType string) bool {
	for _, p := range s.broadcast {
		if rules.MatchPattern(p, eventType) {
			return true
		}
	}
	return false
}

func asBlocks(raw []rawBlock) []slackapi.Block {
	out := make([]slackapi.Block, len(raw))
	for i, b := range raw {
		out[i] = b
	}
	return out
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Escape makes text inert in Slack mrkdwn: "&", "<" and ">" are the
// characters Slack's control sequences (<!channel>, <url|label>) need.
func Escape(s string) string { return escaper.Replace(s) }

// EscapeURL percent-encodes everything but letters, digits and "-._~",
// for values placed in a URL: an event cannot change the URL's
// structure or break out of a <url|label> link.
func EscapeURL(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// DefaultText is the message when no text template is configured: what
// happened, to which conversation, and where it went. With blocks it is
// the notification text.
func DefaultText(env *event.Env, p Platform) string {
	v := values{env: env, platform: p}
	switch p.Provider {
	case "chat-inbox":
		who := v.at("conversation", "customer", "name")
		if who == "" {
			who = v.at("message", "sender", "name")
		}
		text := fmt.Sprintf("*%s*", Escape(env.EventType))
		if who != "" {
			text += ": " + Escape(who)
		}
		if ch := v.at("conversation", "Channel", "name"); ch != "" {
			text += " (" + Escape(ch) + ")"
		}
		if msg := v.at("message", "content"); msg != "" {
			text += "\n" + quote(Escape(msg))
		}
		return text
	case "docssmith":
		text := fmt.Sprintf("*%s*", Escape(env.EventType))
		if who := v.at("contact", "username"); who != "" {
			text += ": " + Escape(who)
		}
		if msg := v.md("message"); msg != "" {
			text += "\n" + quote(msg)
		}
		return text
	}
	str := func(key string) string {
		if v, ok := env.Data[key]; ok && v != nil {
			return Escape(lang.Text(v))
		}
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%s*", Escape(env.EventType))
	title := str("conversationTitle")
	if title == "" {
		title = Escape(env.Subject)
	}
	if title != "" {
		fmt.Fprintf(&b, ": %s", title)
	}
	if to := str("forwardedToName"); to != "" {
		fmt.Fprintf(&b, " → %s", to)
	}
	if fn := str("functionName"); fn != "" {
		fmt.Fprintf(&b, " `%s`", fn)
		if st := str("functionStatus"); st != "" {
			fmt.Fprintf(&b, " (%s)", st)
		}
	}
	var meta []string
	if ch := str("channelName"); ch != "" {
		meta = append(meta, ch)
	}
	if ft := str("forwardType"); ft != "" {
		meta = append(meta, ft)
	}
	if env.AgentName != "" {
		meta = append(meta, "agent "+Escape(env.AgentName))
	}
	if len(meta) > 0 {
		fmt.Fprintf(&b, "\n%s", strings.Join(meta, " · "))
	}
	if sum := str("summary"); sum != "" {
		fmt.Fprintf(&b, "\n> %s", strings.ReplaceAll(sum, "\n", "\n> "))
	}
	return b.String()
}
