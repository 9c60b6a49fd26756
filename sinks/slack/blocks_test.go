package slack

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
)

func TestLimitFitsSlack(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 5000)
	var blocks []any
	fields := make([]any, 14)
	for i := range fields {
		fields[i] = map[string]any{"type": "mrkdwn", "text": "f"}
	}
	fields[0] = map[string]any{"type": "mrkdwn", "text": ""} // dropped: Slack refuses empty text
	blocks = append(blocks,
		map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": long}},
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": long}, "fields": fields},
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": " "}},
		map[string]any{"type": "context", "elements": []any{map[string]any{"type": "mrkdwn", "text": ""}}},
	)
	for range 60 {
		blocks = append(blocks, map[string]any{"type": "divider"})
	}
	got := limit(blocks)
	if len(got) != maxBlocks {
		t.Fatalf("%d blocks, want %d", len(got), maxBlocks)
	}
	header := got[0].(map[string]any)["text"].(map[string]any)["text"].(string)
	if n := utf16Len(header); n != maxHeaderLen || !strings.HasSuffix(header, "…") {
		t.Errorf("header is %d long (%q…), want %d ending in an ellipsis", n, header[:10], maxHeaderLen)
	}
	sec := got[1].(map[string]any)
	if text := sec["text"].(map[string]any)["text"].(string); utf16Len(text) != maxTextLen {
		t.Errorf("section text is %d long, want %d", utf16Len(text), maxTextLen)
	}
	if f := sec["fields"].([]any); len(f) != maxFields {
		t.Errorf("%d fields, want %d", len(f), maxFields)
	}
	if typ := got[2].(map[string]any)["type"]; typ != "divider" {
		t.Errorf("block 2 is %v: the empty section and context were not dropped", typ)
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"abcdefghijk", 5, "abcd…"},
		{"ab &amp; cd", 6, "ab …"},                  // not "ab &a…"
		{"see <!date^1^{time}|x> now", 12, "see …"}, // not half a date
		{"ããããã", 3, "ãã…"},
		{"😀😀😀", 4, "😀…"}, // an emoji is two UTF-16 units
	} {
		if got := truncate(tc.in, tc.max); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func TestParseBlocksErrors(t *testing.T) {
	t.Parallel()
	var list []any
	if err := json.Unmarshal([]byte(`[{"type":"section","text":{"type":"mrkdwn","text":"ok {{ data.x }}"}},
		{"type":"section","fields":[{"type":"mrkdwn","text":"a"},{"type":"mrkdwn","text":"{{ data.x + }}"}]}]`), &list); err != nil {
		t.Fatal(err)
	}
	_, err := ParseBlocks(list)
	var be *BlocksError
	if !errors.As(err, &be) || be.Path != "[1].fields[1].text" {
		t.Fatalf("ParseBlocks = %v, want a BlocksError at [1].fields[1].text", err)
	}
	var serr *lang.SyntaxError
	if !errors.As(err, &serr) || serr.Line != 1 || serr.Column < 10 {
		t.Errorf("error %v has no position inside the template", err)
	}
}

// Values land escaped for their place: mrkdwn escaped, plain_text as
// is (Slack does not parse it), URLs percent-encoded.
func TestBlocksRenderEscapesByPlace(t *testing.T) {
	t.Parallel()
	b, err := ParseBlocks([]any{
		map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": "{{ data.t }}"}},
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "*{{ data.t }}*"},
			"accessory": map[string]any{"type": "button", "text": map[string]any{"type": "plain_text", "text": "Go"}, "url": "https://x.example.com/?q={{ data.t }}&a=1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Render(&event.Env{Data: map[string]any{"t": "<!channel> & x"}}, Escape)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := marshal(got)
	for _, want := range []string{
		`"text":"<!channel> & x","type":"plain_text"`,
		`"text":"*&lt;!channel&gt; &amp; x*"`,
		`"url":"https://x.example.com/?q=%3C%21channel%3E%20%26%20x&a=1"`,
	} {
		if !strings.Contains(string(j), want) {
			t.Errorf("rendered %s, want it to contain %s", j, want)
		}
	}
}
