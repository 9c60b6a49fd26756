package slack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
)

// Blocks is a compiled Block Kit template: lists, maps and scalars as
// written, with every string a {{ }} template.
type Blocks struct {
	root any // []any of map[string]any, …, *lang.Template for strings
}

// BlocksError is a template that does not compile, at Path inside the
// blocks ("[0].text.text").
type BlocksError struct {
	Path string
	Err  error
}

func (e *BlocksError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *BlocksError) Unwrap() error { return e.Err }

// ParseBlocks compiles a list of blocks as decoded from YAML or JSON.
// Errors are *BlocksError, joined.
func ParseBlocks(list []any) (*Blocks, error) {
	var errs []error
	root := compileValue(list, "", &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Blocks{root: root}, nil
}

func compileValue(v any, path string, errs *[]error) any {
	switch v := v.(type) {
	case string:
		t, err := lang.ParseTemplate(v)
		if err != nil {
			*errs = append(*errs, &BlocksError{Path: path, Err: err})
			return v
		}
		if t.Static() {
			return v
		}
		return t
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = compileValue(item, fmt.Sprintf("%s[%d]", path, i), errs)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys) // errors in a stable order
		for _, k := range keys {
			out[k] = compileValue(v[k], path+"."+k, errs)
		}
		return out
	}
	return v
}

// Render evaluates every template against env. Values from the event
// are escaped for where they land (the template's own text never is):
// for mrkdwn by escape; as they are in plain_text, which Slack does not
// parse; percent-encoded in "url" and "image_url".
func (b *Blocks) Render(env *event.Env, escape func(string) string) ([]any, error) {
	v, err := renderValue(b.root, env, escape)
	if err != nil {
		return nil, err
	}
	list, _ := v.([]any)
	return list, nil
}

func renderValue(v any, env *event.Env, escape func(string) string) (any, error) {
	switch v := v.(type) {
	case *lang.Template:
		return v.Render(env, escape)
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			r, err := renderValue(item, env, escape)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, item := range v {
			esc := escape
			switch {
			case k == "url" || k == "image_url":
				esc = EscapeURL
			case k == "text" && v["type"] == "plain_text":
				esc = nil
			}
			r, err := renderValue(item, env, esc)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	}
	return v, nil
}

// Slack's Block Kit limits, in characters.
const (
	maxBlocks        = 50
	maxFields        = 10
	maxTextLen       = 3000 // a text object, a section's text
	maxFieldLen      = 2000 // a section field
	maxHeaderLen     = 150
	maxButtonLen     = 75
	maxMarkdownLen   = 12000 // a markdown block
	maxContextItems  = 10
	maxMessageText   = 4000 // Slack advises notifications text within this
	maxElementsItems = 25   // an actions block's elements
)

// limit makes blocks acceptable to Slack: texts beyond their limit are
// truncated with an ellipsis, surplus fields, context elements and
// blocks are dropped, and blocks left without content are removed (an
// empty text is refused by Slack).
func limit(blocks []any) []any {
	out := make([]any, 0, min(len(blocks), maxBlocks))
	for _, b := range blocks {
		m, ok := b.(map[string]any)
		if !ok {
			continue
		}
		if limitBlock(m) {
			out = append(out, m)
		}
		if len(out) == maxBlocks {
			break
		}
	}
	return out
}

// limitBlock fits one block to its limits and reports whether it is
// worth sending.
func limitBlock(b map[string]any) bool {
	switch b["type"] {
	case "section":
		hasText := limitText(b, "text", maxTextLen)
		if !hasText {
			delete(b, "text") // Slack refuses an empty text
		}
		fields, _ := b["fields"].([]any)
		fields = keepTexts(fields, maxFieldLen)
		if len(fields) > maxFields {
			fields = fields[:maxFields]
		}
		if len(fields) == 0 {
			delete(b, "fields")
		} else {
			b["fields"] = fields
		}
		if acc, ok := b["accessory"].(map[string]any); ok {
			limitNested(acc)
		}
		return hasText || len(fields) > 0
	case "header":
		return limitText(b, "text", maxHeaderLen)
	case "context":
		elems, _ := b["elements"].([]any)
		kept := elems[:0]
		for _, e := range elems {
			if m, ok := e.(map[string]any); ok && (m["type"] == "image" || fitText(m, maxTextLen)) {
				kept = append(kept, m)
			}
		}
		if len(kept) > maxContextItems {
			kept = kept[:maxContextItems]
		}
		b["elements"] = kept
		return len(kept) > 0
	case "markdown":
		if s, ok := b["text"].(string); ok {
			b["text"] = truncate(s, maxMarkdownLen)
			return strings.TrimSpace(s) != ""
		}
		return false
	case "actions":
		elems, _ := b["elements"].([]any)
		if len(elems) > maxElementsItems {
			b["elements"] = elems[:maxElementsItems]
		}
		limitNested(b)
		return len(elems) > 0
	}
	limitNested(b)
	return true
}

// limitText fits the text object under key and reports whether it has
// text.
func limitText(b map[string]any, key string, max int) bool {
	t, ok := b[key].(map[string]any)
	if !ok {
		return false
	}
	return fitText(t, max)
}

// fitText truncates a text object ({"type": "mrkdwn", "text": …}) and
// reports whether it has text.
func fitText(t map[string]any, max int) bool {
	s, ok := t["text"].(string)
	if !ok || strings.TrimSpace(s) == "" {
		return false
	}
	t["text"] = truncate(s, max)
	return true
}

func keepTexts(fields []any, max int) []any {
	var out []any
	for _, f := range fields {
		if m, ok := f.(map[string]any); ok && fitText(m, max) {
			out = append(out, m)
		}
	}
	return out
}

// limitNested truncates the text objects inside elements (buttons,
// accessories) to their limits.
func limitNested(v any) {
	switch v := v.(type) {
	case map[string]any:
		if t, ok := v["type"].(string); ok && (t == "plain_text" || t == "mrkdwn") {
			if s, ok := v["text"].(string); ok {
				v["text"] = truncate(s, maxTextLen)
			}
		}
		if v["type"] == "button" {
			if t, ok := v["text"].(map[string]any); ok {
				if s, ok := t["text"].(string); ok {
					t["text"] = truncate(s, maxButtonLen)
				}
			}
		}
		for _, item := range v {
			limitNested(item)
		}
	case []any:
		for _, item := range v {
			limitNested(item)
		}
	}
}

// truncate shortens s to at most max characters (as Slack counts them,
// in UTF-16 code units), ending with "…". It does not cut an escape
// (&amp;) or a control sequence (<…>) in two.
func truncate(s string, max int) string {
	if utf16Len(s) <= max {
		return s
	}
	budget := max - 1 // the ellipsis
	n, cut := 0, 0
	for i, r := range s {
		w := utf16.RuneLen(r)
		if w < 0 {
			w = 1
		}
		if n+w > budget {
			break
		}
		n += w
		cut = i + utf8.RuneLen(r)
	}
	kept := s[:cut]
	if i := strings.LastIndexByte(kept, '&'); i >= 0 && !strings.Contains(kept[i:], ";") && len(kept)-i <= 5 {
		kept = kept[:i]
	}
	if i := strings.LastIndexByte(kept, '<'); i >= 0 && !strings.Contains(kept[i:], ">") {
		kept = kept[:i]
	}
	return kept + "…"
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if w := utf16.RuneLen(r); w > 0 {
			n += w
		} else {
			n++
		}
	}
	return n
}

// rawBlock is a block as JSON, sent as is.
type rawBlock struct {
	typ  string
	json json.RawMessage
}

var _ slackapi.Block = rawBlock{}

func (b rawBlock) BlockType() slackapi.MessageBlockType { return slackapi.MessageBlockType(b.typ) }
func (b rawBlock) ID() string                           { return "" }
func (b rawBlock) MarshalJSON() ([]byte, error)         { return b.json, nil }

// toGeneric turns slack-go blocks into lists and maps, for limit.
func toGeneric(blocks []slackapi.Block) ([]any, error) {
	b, err := json.Marshal(blocks)
	if err != nil {
		return nil, err
	}
	var out []any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// encodeBlocks writes blocks as JSON without HTML escaping.
func encodeBlocks(blocks []any) ([]rawBlock, error) {
	out := make([]rawBlock, 0, len(blocks))
	for _, b := range blocks {
		raw, err := marshal(b)
		if err != nil {
			return nil, err
		}
		typ, _ := b.(map[string]any)["type"].(string)
		out = append(out, rawBlock{typ: typ, json: raw})
	}
	return out, nil
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
