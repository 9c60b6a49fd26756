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

// Layout returns the default Block Kit blocks for an event, chosen by its
// family: forwarded, analyzed and closed sessions, stage transitions,
// function calls, and a plain layout for the rest. link, if not empty,
// is shown as a link to the session. Values from the event are escaped;
// limits are applied when the message is rendered.
func Layout(env *event.Env, link string) []slackapi.Block {
	v := values{env: env}
	if link != "" {
		v.link = "<" + Escape(link) + "|Open in Darwin>"
	}
	var blocks []slackapi.Block
	switch t := env.EventType; {
	case strings.HasPrefix(t, "session.forwarded"):
		blocks = forwardedLayout(v)
	case t == "session.analyzed":
		blocks = analyzedLayout(v)
	case t == "session.closed" || strings.HasPrefix(t, "session.closed."):
		blocks = closedLayout(v)
	case t == "session.stage.transitioned":
		blocks = stageLayout(v)
	case strings.HasPrefix(t, "function.call."):
		blocks = functionLayout(v)
	default:
		blocks = []slackapi.Block{section(DefaultText(env))}
	}
	if v.link != "" && !strings.HasPrefix(env.EventType, "session.forwarded") {
		blocks = append(blocks, section(v.link))
	}
	return append(blocks, footer(v))
}

// values reads the event's data for layouts.
type values struct {
	env  *event.Env
	link string // mrkdwn, or empty
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
	line := fmt.Sprintf("%s `%s`", badge.emoji, Escape(strings.ToUpper(badge.label)))
	if to := v.md("forwardedToName"); to != "" {
		line += " forwarded to *" + to + "*"
	}
	blocks := []slackapi.Block{
		header(badge.emoji + " " + badge.label + ": " + v.title()),
		section(line),
	}
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
// time zone and format), the agent and the session.
func footer(v values) slackapi.Block {
	parts := []string{dateToken(v.env.Timestamp)}
	if v.env.Subject != "" {
		parts = append(parts, "session `"+Escape(v.env.Subject)+"`")
	}
	parts = append(parts, Escape(v.env.EventType))
	return slackapi.NewContextBlock("", mrkdwn(strings.Join(parts, " · ")))
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
