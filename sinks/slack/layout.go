package slack

import (
	"fmt"
	"slices"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
)

// Platform is what the layouts say about the platform an event came
// from: its provider picks the layout, its name labels links ("Open in
// Darwin") and its subject noun the footer ("session 6651…").
type Platform struct {
	// Provider is the source's provider: darwin, docssmith, chat-inbox, …
	Provider string
	// Name is the product's name; links read "Open" without one.
	Name string
	// Subject names what an event's subject is there: "session",
	// "conversation"; "subject" when empty.
	Subject string
}

// Layout returns the default Block Kit blocks for an event from
// platform p, chosen by its family: for Darwin, forwarded, analyzed and
// closed sessions, stage transitions and function calls; the chat
// inbox's new messages; DocsSmith Demo2's messages and other objects;
// and a plain layout for the rest. link, if not empty, is shown as a
// link into the platform. Values from the event are escaped; limits are
// applied when the message is rendered.
func Layout(env *event.Env, link string, p Platform) []slackapi.Block {
	v := values{env: env, platform: p}
	if link != "" {
		label := "Open"
		if p.Name != "" {
			label += " in " + p.Name
		}
		v.link = "<" + Escape(link) + "|" + Escape(label) + ">"
	}
	var blocks []slackapi.Block
	linked := false // the layout shows the link itself
	switch t := env.EventType; {
	case p.Provider == "chat-inbox":
		blocks, linked = chatInboxLayout(v), true
	case p.Provider == "docssmith":
		blocks, linked = docssmithLayout(v), true
	case strings.HasPrefix(t, "session.forwarded"):
		blocks, linked = forwardedLayout(v), true
	case t == "session.analyzed":
		blocks = analyzedLayout(v)
	case t == "session.closed" || strings.HasPrefix(t, "session.closed."):
		blocks = closedLayout(v)
	case t == "session.stage.transitioned":
		blocks = stageLayout(v)
	case strings.HasPrefix(t, "function.call."):
		blocks = functionLayout(v)
	default:
		blocks = []slackapi.Block{section(DefaultText(env, p))}
	}
	if v.link != "" && !linked {
		blocks = append(blocks, section(v.link))
	}
	return append(blocks, footer(v))
}

// values reads the event's data for layouts.
type values struct {
	env      *event.Env
	platform Platform
	link     string // mrkdwn, or empty
}

// at is the value at a path inside data, as text, unescaped: "" when
// anything on the way is missing or null.
func (v values) at(path ...string) string {
	var cur any = v.env.Data
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[k]
	}
	if cur == nil {
		return ""
	}
	if m, ok := cur.(map[string]any); ok {
		// An object where a name is expected (an agent): its name.
		if n, ok := m["name"].(string); ok {
			return strings.TrimSpace(n)
		}
	}
	return strings.TrimSpace(lang.Text(cur))
}

// raw is the data field as text, unescaped: for plain_text.
func (v values) raw(key string) string {
	if x, ok := v.env.Data[key]; ok && x != nil {
		return strings.TrimSpace(lang.Text(x))
	}
	return ""
}

// md is the data field as text escaped for mrkdwn.
func (v values) md(key string) string { return Escape(v.raw(key)) }

// title names the conversation: its title, else the subject.
func (v values) title() string {
	if t := v.raw("conversationTitle"); t != "" {
		return t
	}
	if v.env.Subject != "" {
		return v.env.Subject
	}
	return v.env.EventType
}

var forwardBadges = map[string]struct{ emoji, label string }{
	"escalated": {":rotating_light:", "Escalated"},
	"qualified": {":white_check_mark:", "Qualified"},
	"recovered": {":recycle:", "Recovered"},
}

func forwardedLayout(v values) []slackapi.Block {
	kind := v.raw("forwardType")
	if kind == "" {
		kind = strings.TrimPrefix(strings.TrimPrefix(v.env.EventType, "session.forwarded"), ".")
	}
	badge, ok := forwardBadges[strings.ToLower(kind)]
	if !ok {
		badge.emoji, badge.label = ":arrow_right:", "Forwarded"
		if kind != "" {
			badge.label = kind
		}
	}
	// Each thing once: the kind in the header, whom to in a field.
	blocks := []slackapi.Block{header(badge.emoji + " " + badge.label + ": " + v.title())}
	blocks = appendFields(blocks, []field{
		{"Forwarded to", v.md("forwardedToName")},
		{"Channel", v.md("channelName")},
		{"Agent", Escape(v.env.AgentName)},
		{"Link", v.link},
	})
	if sum := v.md("summary"); sum != "" {
		blocks = append(blocks, section("*Summary*\n"+quote(sum)))
	}
	return blocks
}

func analyzedLayout(v values) []slackapi.Block {
	blocks := []slackapi.Block{header(":memo: Analyzed: " + v.title())}
	if sum := v.md("summary"); sum != "" {
		blocks = append(blocks, section(quote(sum)))
	}
	blocks = appendFields(blocks, []field{
		{"Channel", v.md("channelName")},
		{"Forwarded to", v.md("forwardedToName")},
		{"Forward type", v.md("forwardType")},
	})
	if smart, ok := v.env.Data["smartFields"].(map[string]any); ok && len(smart) > 0 {
		blocks = append(blocks, section("*Smart fields*"))
		blocks = appendFields(blocks, mapFields(smart))
	}
	return blocks
}

func closedLayout(v values) []slackapi.Block {
	label := "Closed"
	if v.env.EventType == "session.closed.unforwarded" {
		label = "Closed without forwarding"
	}
	blocks := []slackapi.Block{header(":lock: " + label + ": " + v.title())}
	return appendFields(blocks, []field{
		{"Channel", v.md("channelName")},
		{"Forwarded to", v.md("forwardedToName")},
		{"Forward type", v.md("forwardType")},
		{"Last human activity", dateText(v.raw("lastHumanActivityAt"))},
	})
}

func stageLayout(v values) []slackapi.Block {
	from, to := v.md("previousStage"), v.md("stage")
	line := ":arrows_counterclockwise: *" + Escape(v.title()) + "* moved"
	if from != "" {
		line += " from *" + from + "*"
	}
	if to != "" {
		line += " to *" + to + "*"
	}
	return appendFields([]slackapi.Block{section(line)}, []field{{"Channel", v.md("channelName")}})
}

var statusEmoji = map[string]string{
	"success": ":white_check_mark:",
	"error":   ":x:",
	"failed":  ":x:",
	"failure": ":x:",
}

func functionLayout(v values) []slackapi.Block {
	name := v.md("functionName")
	if name == "" {
		name = Escape(strings.TrimPrefix(v.env.EventType, "function.call."))
	}
	line := ":gear: Function `" + name + "`"
	if st := v.raw("functionStatus"); st != "" {
		emoji := statusEmoji[strings.ToLower(st)]
		if emoji == "" {
			emoji = ":grey_question:"
		}
		line += " " + emoji + " " + Escape(st)
	}
	blocks := []slackapi.Block{section(line)}
	if inputs, ok := v.env.Data["inputs"].(map[string]any); ok && len(inputs) > 0 {
		blocks = append(blocks, section("*Inputs*"))
		blocks = appendFields(blocks, mapFields(inputs))
	}
	return blocks
}

// footer is the context line of every layout: when (in the reader's own
// time zone and format), the subject (a Darwin session, a conversation),
// the event type, and the platform's id of the event, to find it in the
// platform's own logs.
func footer(v values) slackapi.Block {
	parts := []string{dateToken(v.env.Timestamp)}
	if v.env.Subject != "" {
		noun := v.platform.Subject
		if noun == "" {
			noun = "subject"
		}
		parts = append(parts, Escape(noun)+" `"+Escape(v.env.Subject)+"`")
	}
	parts = append(parts, Escape(v.env.EventType))
	if v.env.ExternalID != "" {
		parts = append(parts, "id `"+Escape(v.env.ExternalID)+"`")
	}
	return slackapi.NewContextBlock("", mrkdwn(strings.Join(parts, " · ")))
}

// chatInboxLayout is the chat inbox's newMessage (and any other event
// it sends, which carries the same message and conversation): who wrote,
// what, on which channel, and the conversation's state.
func chatInboxLayout(v values) []slackapi.Block {
	customer := v.at("conversation", "customer", "name")
	sender := v.at("message", "sender", "name")
	who := customer
	if who == "" {
		who = sender
	}
	if who == "" {
		who = v.title()
	}
	label := "New message"
	if v.env.EventType != "newMessage" {
		label = v.env.EventType
	}
	blocks := []slackapi.Block{header(":speech_balloon: " + label + ": " + who)}
	text := Escape(v.at("message", "content"))
	var media []string
	for _, k := range []string{"imageUrl", "videoUrl", "documentUrl", "audioUrl"} {
		if u := v.at("message", k); u != "" {
			media = append(media, "<"+Escape(u)+"|"+strings.TrimSuffix(k, "Url")+">")
		}
	}
	if len(media) > 0 {
		text = strings.TrimSpace(text + "\n" + strings.Join(media, " · "))
	}
	if text != "" {
		blocks = append(blocks, section(quote(text)))
	}
	contact := Escape(customer)
	if email := v.at("conversation", "customer", "email"); email != "" {
		contact = strings.TrimSpace(contact + " " + Escape("<"+email+">"))
	}
	from := ""
	if sender != "" && sender != customer {
		from = Escape(sender)
	}
	channel := Escape(v.at("conversation", "Channel", "name"))
	if medium := v.at("conversation", "Channel", "medium"); medium != "" {
		channel = strings.TrimSpace(channel + " (" + Escape(medium) + ")")
	}
	return appendFields(blocks, []field{
		{"Customer", contact},
		{"From", from},
		{"Channel", channel},
		{"Status", Escape(v.at("conversation", "status"))},
		{"Agent", Escape(v.at("conversation", "agent"))},
		{"Link", v.link},
	})
}

var docssmithActions = map[string]string{"created": ":new:", "updated": ":pencil2:", "deleted": ":wastebasket:"}

// docssmithLayout is a DocsSmith Demo2 event: its type in words ("Message
// updated"), the message text when there is one, who it is about, and
// the payload's other plain values.
func docssmithLayout(v values) []slackapi.Block {
	kind, action, _ := strings.Cut(v.env.EventType, ".")
	emoji := docssmithActions[action]
	if kind == "message" {
		emoji = ":speech_balloon:"
	}
	if emoji == "" {
		emoji = ":bell:"
	}
	label := strings.ToUpper(kind[:min(1, len(kind))]) + kind[min(1, len(kind)):]
	if action != "" {
		label += " " + action
	}
	who := v.at("contact", "username")
	if who == "" {
		who = v.at("username")
	}
	if who == "" {
		who = v.at("name")
	}
	title := emoji + " " + label
	if who != "" {
		title += ": " + who
	}
	blocks := []slackapi.Block{header(title)}
	if msg := v.md("message"); msg != "" {
		blocks = append(blocks, section(quote(msg)))
	}
	fields := []field{
		{"Contact", Escape(v.at("contact", "username"))},
		{"Phone", Escape(v.at("contact", "phone_number"))},
		{"Conversation", codeText(v.at("conversation_id"))},
	}
	// For other objects than messages (a conversation, a contact, a
	// group), the payload's plain values.
	skip := map[string]bool{"message": true, "conversation_id": true, "contact": true}
	keys := make([]string, 0, len(v.env.Data))
	for k, x := range v.env.Data {
		if kind == "message" {
			break
		}
		switch x.(type) {
		case string, float64, bool:
			if !skip[k] {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		val := v.raw(k)
		if strings.HasSuffix(k, "_at") {
			val = unixText(v.env.Data[k])
		} else {
			val = Escape(val)
		}
		fields = append(fields, field{k, val})
	}
	fields = append(fields, field{"Link", v.link})
	return appendFields(blocks, fields)
}

func codeText(s string) string {
	if s == "" {
		return ""
	}
	return "`" + Escape(s) + "`"
}

// unixText shows a Unix-seconds number (DocsSmith Demo2's times) with
// Slack's date formatting; anything else as text.
func unixText(x any) string {
	if f, ok := x.(float64); ok && f > 0 && f < 1e11 {
		return dateToken(time.Unix(int64(f), 0))
	}
	return dateText(lang.Text(x))
}

// dateToken formats t with Slack's date formatting, which each reader
// sees in their own locale and time zone; the fallback is UTC.
func dateToken(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmt.Sprintf("<!date^%d^{date_short_pretty} at {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

// dateText is dateToken for an RFC 3339 value from the data, or the
// value escaped when it is not a time.
func dateText(s string) string {
	if s == "" {
		return ""
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Escape(s)
	}
	return dateToken(t)
}

type field struct{ label, value string }

// appendFields adds sections of fields (at most ten each), skipping
// empty values.
func appendFields(blocks []slackapi.Block, fields []field) []slackapi.Block {
	var objs []*slackapi.TextBlockObject
	for _, f := range fields {
		if f.value != "" {
			objs = append(objs, mrkdwn("*"+Escape(f.label)+"*\n"+f.value))
		}
	}
	for chunk := range slices.Chunk(objs, maxFields) {
		blocks = append(blocks, slackapi.NewSectionBlock(nil, chunk, nil))
	}
	return blocks
}

// mapFields lists a data object's entries as fields, by key.
func mapFields(m map[string]any) []field {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]field, 0, len(keys))
	for _, k := range keys {
		out = append(out, field{k, Escape(lang.Text(m[k]))})
	}
	return out
}

func header(text string) slackapi.Block {
	return slackapi.NewHeaderBlock(slackapi.NewTextBlockObject(slackapi.PlainTextType, text, true, false))
}

func section(text string) slackapi.Block {
	return slackapi.NewSectionBlock(mrkdwn(text), nil, nil)
}

func mrkdwn(text string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.MarkdownType, text, false, false)
}

// quote makes text a mrkdwn block quote.
func quote(text string) string {
	return "> " + strings.ReplaceAll(text, "\n", "\n> ")
}
