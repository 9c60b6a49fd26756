package slack

import (
	"context"
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
}

// Limits of a group's message: a header, then a section per event, and
// a context line for the events beyond them, within Slack's 50 blocks.
const (
	maxGroupLines  = maxBlocks - 1 // all events, when they fit
	shownGroupMore = maxBlocks - 2 // the events shown before "…and N more"
	maxGroupLine   = 500           // an event's line, before its link and time
)

// GroupItem is an event listed in a group's message.
type GroupItem struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Line is the event's mrkdwn line; empty for events beyond those
	// shown.
	Line string `json:"line,omitempty"`
}

// GroupState is a group's message (the channel id Slack answered with,
// its ts), when its first event was received, and the events it lists,
// oldest first.
type GroupState struct {
	ChannelID string
	TS        string
	StartedAt time.Time
	Items     []GroupItem
}

func (g *GroupState) clone() *GroupState {
	if g == nil {
		return nil
	}
	c := *g
	c.Items = append([]GroupItem(nil), g.Items...)
	return &c
}

func (g *GroupState) has(id string) bool {
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
func (g *GroupState) joins(t time.Time, wait time.Duration) bool {
	d := t.Sub(g.StartedAt)
	return -wait < d && d < wait
}

// keyLocks serializes, in one process, what must not run at once for a
// key: the sends of one group (concurrent deliveries of different
// subjects may share a key), the first messages of one subject. Waiting
// for a lock ends with the attempt's context.
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
// its group's message. The group is held meanwhile on every replica, so
// that two events of one burst never post two messages.
func (s *Sink) sendGrouped(ctx context.Context, ev *event.Event, env *event.Env, m *Message, blocks []rawBlock, key string) error {
	at := ev.ReceivedAt
	if at.IsZero() {
		at = s.now()
	}
	item := GroupItem{ID: ev.ID, Type: ev.EventType}
	posted := false
	err := s.state.WithGroup(ctx, GroupKey{Sink: s.name, Channel: m.Channel, Key: key}, func(ctx context.Context, g *GroupState) (*GroupState, error) {
		var err error
		if g != nil && g.has(item.ID) {
			return nil, nil // already listed: a retry after the group was stored, or a replay
		}
		gone := false
		if g != nil && g.joins(at, s.group.Wait) {
			if len(g.Items) < maxGroupLines {
				if item.Line, err = s.groupLine(ev, env, m); err != nil {
					return nil, err
				}
			}
			next := g.clone()
			next.Items = append(next.Items, item)
			err := s.update(ctx, m.Channel, key, next)
			if err == nil {
				return next, nil
			}
			if !messageGone(err) {
				return nil, err
			}
			// The group's message was deleted, or can no longer be
			// edited: start a new group.
			gone = true
		}
		channelID, ts, err := s.postMessage(ctx, m.Channel, m, blocks)
		if err != nil {
			return nil, err
		}
		posted = true
		if g != nil && !gone && at.Before(g.StartedAt) {
			// An event older than the key's group (a replay, a long
			// retry) is posted on its own; the group goes on.
			return nil, nil
		}
		if item.Line, err = s.groupLine(ev, env, m); err != nil {
			s.log.Warn("render slack group line", "event_id", ev.ID, "err", err)
		}
		return &GroupState{ChannelID: channelID, TS: ts, StartedAt: at, Items: []GroupItem{item}}, nil
	})
	var rec *RecordError
	switch {
	case errors.As(err, &rec) && posted:
		// Posted: retrying would post it again. The key's next event
		// starts a group of its own.
		s.log.Warn("remember slack group", "event_id", ev.ID, "err", rec.Err)
		return nil
	case errors.As(err, &rec):
		// Slack shows the edit; retrying edits the same list again.
		return fmt.Errorf("remember slack group: %w", rec.Err)
	}
	return err
}

// postMessage posts a new message (not a reply) to channel.
func (s *Sink) postMessage(ctx context.Context, channel string, m *Message, blocks []rawBlock) (channelID, ts string, err error) {
	opts := []slackapi.MsgOption{slackapi.MsgOptionText(m.Text, false)}
	if len(blocks) > 0 {
		opts = append(opts, slackapi.MsgOptionBlocks(asBlocks(blocks)...))
	}
	if err := s.wait(ctx, channel); err != nil {
		return "", "", err
	}
	channelID, ts, err = s.api.PostMessageContext(ctx, channel, opts...)
	return channelID, ts, s.rateLimited(ctx, channel, classify(err, s.token))
}

// update edits the group's message to list its items.
func (s *Sink) update(ctx context.Context, channel, key string, g *GroupState) error {
	text, list := groupMessage(key, g.Items)
	blocks, err := encodeBlocks(limit(list))
	if err != nil {
		return fmt.Errorf("encode group blocks: %w", err)
	}
	if err := s.wait(ctx, channel); err != nil {
		return err
	}
	_, _, _, err = s.api.UpdateMessageContext(ctx, g.ChannelID, g.TS,
		slackapi.MsgOptionText(text, false), slackapi.MsgOptionBlocks(asBlocks(blocks)...))
	return s.rateLimited(ctx, channel, classify(err, s.token))
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
func groupMessage(key string, items []GroupItem) (string, []any) {
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
func groupTitle(key string, items []GroupItem) string {
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
