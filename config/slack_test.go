package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const slackBot = `sources:
  - name: darwin
    provider: darwin
    secret: darwin-webhook-secret
sinks:
  - name: ops
    type: slack
    token: ${SLACK_BOT_TOKEN}
    channel: '{{ data.channelName == "WhatsApp Vendas" ? "#sales" : "#support" }}'
    thread: subject
    reply_broadcast: [session.closed]
    channel_rate: 3/3s
    link: https://app.example.com/s/{{ subject }}
    blocks:
      - type: section
        text: {type: mrkdwn, text: "*{{ eventType }}*"}
        fields:
          - {type: mrkdwn, text: "{{ data.forwardedToName }}"}
routes:
  - name: r
    match: ["*"]
    to: [ops]
`

func TestSlackBot(t *testing.T) {
	t.Parallel()
	c, err := Parse("c.yaml", []byte(slackBot), env(map[string]string{"SLACK_BOT_TOKEN": "xoxb-1-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sinks[0]
	if s.Held() || s.Slack.Token.Reveal() != "xoxb-1-secret" || s.Slack.Thread != "subject" || !*s.Ordered {
		t.Errorf("sink = %+v", s)
	}
	if s.Slack.ChannelRate != (Rate{N: 3, Per: Duration(3 * time.Second)}) {
		t.Errorf("channel_rate = %v", s.Slack.ChannelRate)
	}
	b := s.Slack.Blocks
	if b.JSON || len(b.Value) != 1 {
		t.Fatalf("blocks = %+v", b)
	}
	sec := b.Value[0].(map[string]any)
	if sec["fields"].([]any)[0].(map[string]any)["text"] != "{{ data.forwardedToName }}" {
		t.Errorf("blocks = %#v", b.Value)
	}
	// Template errors inside blocks are placed at the leaf (app builds
	// them); the leaf's node must be known.
	p := c.ProblemIn("sinks[0].blocks[0].fields[0].text", 1, 4, "x")
	if p.Line != 18 || p.Column != 38 {
		t.Errorf("leaf position = %d:%d, want 18:38", p.Line, p.Column)
	}
	if s.Slack.Group != nil {
		t.Errorf("group = %+v, want none", s.Slack.Group)
	}
	if strings.Contains(c.Sinks[0].Slack.Token.String(), "xoxb") {
		t.Error("the token prints")
	}

	js := strings.Replace(slackBot, `    blocks:
      - type: section
        text: {type: mrkdwn, text: "*{{ eventType }}*"}
        fields:
          - {type: mrkdwn, text: "{{ data.forwardedToName }}"}
`, `    blocks: '[{"type":"divider"},{"type":"section","text":{"type":"mrkdwn","text":"{{ subject }}"}}]'
`, 1)
	c, err = Parse("c.yaml", []byte(js), env(map[string]string{"SLACK_BOT_TOKEN": "xoxb-1"}))
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Sinks[0].Slack.Blocks; !b.JSON || len(b.Value) != 2 {
		t.Errorf("JSON blocks = %+v", b)
	}
}

func TestSlackProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		old, new string
		want     string
	}{
		{"token and webhook", "    token: ${SLACK_BOT_TOKEN}\n", "    token: ${SLACK_BOT_TOKEN}\n    webhook_url: https://hooks.slack.com/services/x\n", `c.yaml:8:12: sinks[0].token: set webhook_url or token, not both`},
		{"token without channel", "    channel: '{{ data.channelName == \"WhatsApp Vendas\" ? \"#sales\" : \"#support\" }}'\n", "", `sinks[0].channel: missing channel`},
		{"webhook with channel", "    token: ${SLACK_BOT_TOKEN}\n", "    webhook_url: https://hooks.slack.com/services/x\n", `sinks[0].channel: an incoming webhook posts to the channel chosen when it was created`},
		{"bad thread mode", "thread: subject", "thread: session", `c.yaml:10:13: sinks[0].thread: unknown thread mode "session": one of off, subject`},
		{"broadcast without threads", "thread: subject", "thread: off", `sinks[0].reply_broadcast: replies need threads`},
		{"bad channel rate", "channel_rate: 3/3s", "channel_rate: fast", `c.yaml:12:19: sinks[0].channel_rate: invalid rate "fast"`},
		{"blocks not a list", "    blocks:\n      - type: section\n", "    blocks: {type: section}\n    x:\n      - type: section\n", `c.yaml:14:13: sinks[0].blocks: want a list of blocks, or a string of JSON, got a mapping`},
		{"block without type", "      - type: section\n        text:", "      - text:", `c.yaml:15:9: sinks[0].blocks[0].type: missing type`},
		{"group with webhook", "    token: ${SLACK_BOT_TOKEN}\n", "    webhook_url: https://hooks.slack.com/services/x\n    group: {by: data.forwardedToName, wait: 30s}\n", `c.yaml:9:12: sinks[0].group: grouping edits the group's message as events arrive (chat.update), which needs a bot token (token:)`},
		{"group with threads", "    thread: subject\n", "    thread: subject\n    group: {by: data.forwardedToName, wait: 30s}\n", `c.yaml:10:13: sinks[0].thread: a grouped sink does not thread: remove thread: subject, or group:`},
		{"group with reply_broadcast", "    thread: subject\n", "    group: {by: data.forwardedToName, wait: 30s}\n", `c.yaml:11:22: sinks[0].reply_broadcast: replies need threads, and a grouped sink does not thread`},
		{"group wait 0", "    thread: subject\n    reply_broadcast: [session.closed]\n", "    group:\n      by: data.forwardedToName\n      wait: 0s\n", `c.yaml:12:13: sinks[0].group.wait: must be more than 0 and at most 1h, such as 30s; got 0s`},
		{"group without wait", "    thread: subject\n    reply_broadcast: [session.closed]\n", "    group:\n      by: data.forwardedToName\n", `c.yaml:11:7: sinks[0].group.wait: must be more than 0 and at most 1h`},
		{"group wait too long", "    thread: subject\n    reply_broadcast: [session.closed]\n", "    group: {by: data.forwardedToName, wait: 2h}\n", `c.yaml:10:45: sinks[0].group.wait: must be more than 0 and at most 1h, such as 30s; got 2h0m0s`},
		{"group without by", "    thread: subject\n    reply_broadcast: [session.closed]\n", "    group: {wait: 30s}\n", `c.yaml:10:12: sinks[0].group.by: missing by: an expression giving the group key`},
		{"group unknown key", "    thread: subject\n    reply_broadcast: [session.closed]\n", "    group: {by: data.forwardedToName, wait: 30s, key: x}\n", `c.yaml:10:50: sinks[0].group.key: unknown key`},
		{"bad JSON blocks", "    blocks:\n      - type: section\n        text: {type: mrkdwn, text: \"*{{ eventType }}*\"}\n        fields:\n          - {type: mrkdwn, text: \"{{ data.forwardedToName }}\"}\n", "    blocks: '[{\"type\":'\n", `c.yaml:14:13: sinks[0].blocks: want a list of blocks in YAML, or a string of JSON`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			y := strings.Replace(slackBot, tc.old, tc.new, 1)
			if y == slackBot {
				t.Fatalf("the replacement of %q changed nothing", tc.old)
			}
			_, err := Parse("c.yaml", []byte(y), env(map[string]string{"SLACK_BOT_TOKEN": "xoxb-1-secret"}))
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Parse = %v, want problems", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("problems:\n%v\nwant one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "xoxb") {
				t.Errorf("problems show the token: %v", err)
			}
		})
	}
}

func TestSlackGroup(t *testing.T) {
	t.Parallel()
	y := strings.Replace(slackBot, "    thread: subject\n    reply_broadcast: [session.closed]\n", "    group: {by: data.forwardedToName, wait: 30s}\n", 1)
	c, err := Parse("c.yaml", []byte(y), env(map[string]string{"SLACK_BOT_TOKEN": "xoxb-1"}))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sinks[0].Slack
	if s.Group == nil || s.Group.By != "data.forwardedToName" || s.Group.Wait != Duration(30*time.Second) || s.Thread != "" {
		t.Errorf("slack = %+v, group %+v", s, s.Group)
	}
	// The expression is compiled by app: its node must be known.
	if p := c.ProblemIn("sinks[0].group.by", 1, 6, "x"); p.Line != 10 || p.Column != 22 {
		t.Errorf("by position = %d:%d, want 10:22", p.Line, p.Column)
	}
}

func TestSlackHeld(t *testing.T) {
	t.Parallel()
	y := strings.Replace(slackBot, "${SLACK_BOT_TOKEN}", "${SLACK_BOT_TOKEN:-}", 1)
	c, err := Parse("c.yaml", []byte(y), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Sinks[0].Held() {
		t.Error("a slack sink without webhook_url or token is not held")
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0].String(), "held") {
		t.Errorf("warnings = %v", c.Warnings)
	}
}

// TestSlackAPIURL: api_url points a bot at a Slack-compatible server; it
// must be an absolute URL, and means nothing to an incoming webhook.
func TestSlackAPIURL(t *testing.T) {
	t.Parallel()
	base := "sources: [{name: d, provider: darwin, secret: x}]\nroutes: [{name: r, match: [\"*\"], to: [ops]}]\nsinks:\n  - {name: ops, type: slack, "
	c, err := Parse("c.yaml", []byte(base+`token: xoxb-1, channel: "#ops", api_url: "http://127.0.0.1:9999/api/"}`), env(nil))
	if err != nil || c.Sinks[0].Slack.APIURL != "http://127.0.0.1:9999/api/" {
		t.Fatalf("api_url: %v %+v", err, c)
	}
	for _, tc := range []struct{ sink, want string }{
		{`token: xoxb-1, channel: "#ops", api_url: "slack.local/api"}`, "sinks[0].api_url: must be an absolute http:// or https:// URL"},
		{`webhook_url: "https://hooks.slack.com/services/T/B/C", api_url: "http://x/api/"}`, "sinks[0].api_url: an incoming webhook posts to its own URL"},
	} {
		_, err := Parse("c.yaml", []byte(base+tc.sink), env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.sink, err, tc.want)
		}
	}
}
