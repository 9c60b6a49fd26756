package slack

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
)

// Group folds a burst of events with the same key into one message (bot
// mode, without threads). The first event of a key posts its message as
// usual; each later event received within Wait of the first edits that
// message (chat.update) into a list of the burst's events. A Send
// returns nil only once Slack has the edited message, so a failed edit
// is retried like a failed post; events are kept by id, so a retried or
// replayed event is listed once.
type Group struct {
	// By computes an event's group key; nil or "" leaves the event on
	// its own.
	By *lang.Expression
	// Wait is how long after a group's first event later events still
	// join it. Times are the events' receive times, so retries and a
	// backlog fold as the events arrived.
	Wait time.Duration
	// DB is the SQLite file remembering each group's message (slack.db),
	// so that groups survive restarts.
	DB string
}

// Limits of a group's message: a header, then a section per event, and
// a context line for the events beyond them, within Slack's 50 blocks.
const (
	maxGroupLines  = maxBlocks - 1 // all events, when they fit
	shownGroupMore = maxBlocks - 2 // the events shown before "…and N more"
	maxGroupLine   = 500           // an event's line, before its link and time
	// groupTTL is how long a group's message is remembered; far beyond
	// the longest wait, for backlogs.
	groupTTL = 7 * 24 * time.Hour
)

// grouping is a sink's group state: the store and a lock per group.
type grouping struct {
	Group
	store *groups
	locks keyLocks
}

// groupItem is an event listed in a group's message.
type groupItem struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Line is the event's mrkdwn line; empty for events beyond those
	// shown.
	Line string `json:"line,omitempty"`
}

// groupState is a group's message and the events it lists, oldest first.
type groupState struct {
	ChannelID string
	TS        string
	StartedAt time.Time
	Items     []groupItem
}

func (g *groupState) has(id string) bool {
	for _, it := range g.Items {
		if it.ID == id {
			return true
		}
	}
	return false
}

// joins reports whether an event received at t belongs to the group:
// within wait of its first event. An event much older than the group (a
// replay) gets a message of its own.
func (g *groupState) joins(t time.Time, wait time.Duration) bool {
	d := t.Sub(g.StartedAt)
	return -wait < d && d < wait
}

// groups remembers, per sink, channel and key, the latest group's
// message, in slack.db.
type groups struct {
	db *sql.DB
}

func openGroups(ctx context.Context, path string) (*groups, error) {
	db, err := openDB(ctx, path, "groups", groupTTL)
	if err != nil {
		return nil, err
	}
	return &groups{db: db}, nil
}

func (s *groups) get(ctx context.Context, sink, channel, key string) (*groupState, error) {
	var g groupState
	var started, items string
	err := s.db.QueryRowContext(ctx,
		`SELECT channel_id, ts, started_at, items FROM groups WHERE sink = ? AND channel = ? AND key = ?`,
		sink, channel, key).Scan(&g.ChannelID, &g.TS, &started, &items)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if g.StartedAt, err = time.Parse(time.RFC3339Nano, started); err != nil {
		return nil, fmt.Errorf("group started_at: %w", err)
	}
	if err := json.Unmarshal([]byte(items), &g.Items); err != nil {
		return nil, fmt.Errorf("group items: %w", err)
	}
	return &g, nil
}

// put records a group, replacing the key's previous one.
func (s *groups) put(ctx context.Context, sink, channel, key string, g *groupState) error {
	items, err := json.Marshal(g.Items)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx,
		`INSERT INTO groups (sink, channel, key, channel_id, ts, started_at, items, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (sink, channel, key) DO UPDATE SET
		   channel_id = excluded.channel_id, ts = excluded.ts, started_at = excluded.started_at,
		   items = excluded.items, created_at = excluded.created_at`,
		sink, channel, key, g.ChannelID, g.TS, g.StartedAt.UTC().Format(time.RFC3339Nano), string(items),
		time.Now().UTC().Format(time.RFC3339))
	return err
}

func (s *groups) close() error { return s.db.Close() }

// keyLocks serializes the sends of one group: concurrent deliveries
// (different subjects) may share a key. Waiting for a lock ends with
// the attempt's context.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	held chan struct{} // holds a value while locked
	refs int
}

func (l *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*keyLock{}
	}
	k := l.locks[key]
	if k == nil {
		k = &keyLock{held: make(chan struct{}, 1)}
		l.locks[key] = k
	}
	k.refs++
	l.mu.Unlock()
	select {
	case k.held <- struct{}{}:
		return func() {
			<-k.held
			l.release(key, k)
		}, nil
	case <-ctx.Done():
		l.release(key, k)
		return nil, context.Cause(ctx)
	}
}

func (l *keyLocks) release(key string, k *keyLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k.refs--; k.refs == 0 {
		delete(l.locks, key)
	}
}

// groupKey returns the event's group key; "" when it is not grouped.
func (s *Sink) groupKey(env *event.Env) (string, error) {
	v, err := s.group.By.Eval(env)
	if err != nil {
		return "", err
	}
	if v == nil {
		return "", nil
	}
	return strings.TrimSpace(lang.Text(v)), nil
}

// sendGrouped posts the event as a group's first message, or adds it to
// its group's message.
func (s *Sink) sendGrouped(ctx context.Context, ev *event.Event, env *event.Env, m *Message, blocks []rawBlock, key string) error {
	unlock, err := s.group.locks.lock(ctx, m.Channel+"\x00"+key)
	if err != nil {
		return err
	}
	defer unlock()
	g, err := s.group.store.get(ctx, s.name, m.Channel, key)
	if err != nil {
		return fmt.Errorf("look up group: %w", err)
	}
	at := ev.ReceivedAt
	if at.IsZero() {
		at = s.now()
	}
	item := groupItem{ID: ev.ID, Type: ev.EventType}
	if g != nil && g.has(item.ID) {
		return nil // already listed: a retry after the group was stored, or a replay
	}
	gone := false
	if g != nil && g.joins(at, s.group.Wait) {
		if len(g.Items) < maxGroupLines {
			if item.Line, err = s.groupLine(ev, env, m); err != nil {
				return err
			}
		}
		next := *g
		next.Items = append(g.Items[:len(g.Items):len(g.Items)], item)
		err := s.update(ctx, m.Channel, key, &next)
		if err == nil {
			if err := s.group.store.put(ctx, s.name, m.Channel, key, &next); err != nil {
				// Slack shows it; retrying edits the same list again.
				return fmt.Errorf("remember slack group: %w", err)
			}
			return nil
		}
		if !messageGone(err) {
			return err
		}
		// The group's message was deleted, or can no longer be edited:
		// start a new group.
		gone = true
	}
	channelID, ts, err := s.postMessage(ctx, m.Channel, m, blocks)
	if err != nil {
		return err
	}
	if g != nil && !gone && at.Before(g.StartedAt) {
		// An event older than the key's group (a replay, a long retry)
		// is posted on its own; the group goes on.
		return nil
	}
	if item.Line, err = s.groupLine(ev, env, m); err != nil {
		s.log.Warn("render slack group line", "event_id", ev.ID, "err", err)
	}
	// Posted: record it even if the attempt's deadline just passed.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	ng := &groupState{ChannelID: channelID, TS: ts, StartedAt: at, Items: []groupItem{item}}
	if err := s.group.store.put(pctx, s.name, m.Channel, key, ng); err != nil {
		// Posted: retrying would post it again. The key's next event
		// starts a group of its own.
		s.log.Warn("remember slack group", "event_id", ev.ID, "err", err)
	}
	return nil
}

// postMessage posts a new message (not a reply) to channel.
func (s *Sink) postMessage(ctx context.Context, channel string, m *Message, blocks []rawBlock) (channelID, ts string, err error) {
	opts := []slackapi.MsgOption{slackapi.MsgOptionText(m.Text, false)}
	if len(blocks) > 0 {
		opts = append(opts, slackapi.MsgOptionBlocks(asBlocks(blocks)...))
	}
	if err := s.pace.wait(ctx, channel); err != nil {
		return "", "", err
	}
	channelID, ts, err = s.api.PostMessageContext(ctx, channel, opts...)
	return channelID, ts, s.rateLimited(channel, classify(err, s.token))
}

// update edits the group's message to list its items.
func (s *Sink) update(ctx context.Context, channel, key string, g *groupState) error {
	text, list := groupMessage(key, g.Items)
	blocks, err := encodeBlocks(limit(list))
	if err != nil {
		return fmt.Errorf("encode group blocks: %w", err)
	}
	if err := s.pace.wait(ctx, channel); err != nil {
		return err
	}
	_, _, _, err = s.api.UpdateMessageContext(ctx, g.ChannelID, g.TS,
		slackapi.MsgOptionText(text, false), slackapi.MsgOptionBlocks(asBlocks(blocks)...))
	return s.rateLimited(channel, classify(err, s.token))
}

// messageGone reports an error saying the message to edit is gone or
// can no longer be edited.
func messageGone(err error) bool {
	var api *APIError
	return errors.As(err, &api) &&
		(api.Code == "message_not_found" || api.Code == "cant_update_message" || api.Code == "edit_window_closed")
}

// groupLine is an event's line in a group's message: the first line of
// its text, its link and its time.
func (s *Sink) groupLine(ev *event.Event, env *event.Env, m *Message) (string, error) {
	line, _, _ := strings.Cut(m.Text, "\n")
	parts := []string{truncate(strings.TrimSpace(line), maxGroupLine)}
	if s.link != nil {
		link, err := s.link.Render(env, EscapeURL)
		if err != nil {
			return "", fmt.Errorf("link: %w", err)
		}
		if link = strings.TrimSpace(link); link != "" {
			parts = append(parts, "<"+Escape(link)+"|Open>")
		}
	}
	if d := dateToken(ev.Timestamp); d != "" {
		parts = append(parts, d)
	}
	return truncate(strings.Join(parts, " · "), maxTextLen), nil
}

// groupMessage is the text and blocks of a group's message: a header
// counting the events, then a line per event, oldest first.
func groupMessage(key string, items []groupItem) (string, []any) {
	title := groupTitle(key, items)
	blocks := []any{map[string]any{
		"type": "header",
		"text": map[string]any{"type": "plain_text", "text": title, "emoji": true},
	}}
	shown := items
	if len(items) > maxGroupLines {
		shown = items[:shownGroupMore]
	}
	for _, it := range shown {
		line := it.Line
		if line == "" {
			line = "`" + Escape(it.ID) + "`"
		}
		blocks = append(blocks, map[string]any{
			"type": "section",
			"text": map[string]any{"type": "mrkdwn", "text": line},
		})
	}
	if more := len(items) - len(shown); more > 0 {
		blocks = append(blocks, map[string]any{
			"type":     "context",
			"elements": []any{map[string]any{"type": "mrkdwn", "text": fmt.Sprintf("…and %d more", more)}},
		})
	}
	return truncate(Escape(title), maxMessageText), blocks
}

// groupTitle counts the events by their family: "5 forwarded sessions →
// Carla Mendes", "3 events · WhatsApp Vendas".
func groupTitle(key string, items []groupItem) string {
	noun, sep := "", " · "
	for i, it := range items {
		n, s := groupNoun(it.Type)
		if i > 0 && n != noun {
			n, s = "events", " · "
		}
		noun, sep = n, s
		if noun == "events" {
			break
		}
	}
	if len(items) == 1 {
		noun = strings.TrimSuffix(noun, "s")
	}
	return fmt.Sprintf("%d %s%s%s", len(items), noun, sep, key)
}

func groupNoun(eventType string) (noun, sep string) {
	switch t := eventType; {
	case strings.HasPrefix(t, "session.forwarded"):
		return "forwarded sessions", " → "
	case t == "session.analyzed":
		return "analyzed sessions", " · "
	case t == "session.closed" || strings.HasPrefix(t, "session.closed."):
		return "closed sessions", " · "
	case t == "session.stage.transitioned":
		return "stage transitions", " · "
	case strings.HasPrefix(t, "function.call."):
		return "function calls", " · "
	case t == "newMessage", strings.HasPrefix(t, "message."):
		return "messages", " · "
	}
	return "events", " · "
}
