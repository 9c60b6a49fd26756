package lang

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr/vm"

	"github.com/switchyard/switchyard/event"
)

// Template is a string with {{ expr }} placeholders. Each placeholder is
// an expression over the event; its value is written as text: strings as
// they are, nil as nothing, numbers in their shortest form, times in
// RFC 3339, lists and objects as JSON.
type Template struct {
	src   string
	parts []part
}

type part struct {
	lit    string
	prog   *vm.Program // nil for a literal part
	code   string      // the placeholder's expression
	offset int         // where code starts in the template, in bytes
}

// ParseTemplate compiles every placeholder of src. A failure is a
// *SyntaxError whose line and column are positions in src.
func ParseTemplate(src string) (*Template, error) {
	t := &Template{src: src}
	rest, offset := src, 0
	for rest != "" {
		open := strings.Index(rest, "{{")
		if open < 0 {
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, part{lit: rest[:open]})
		}
		body := rest[open+2:]
		end := closing(body)
		if end < 0 {
			return nil, at(src, offset+open, "unclosed {{: add }} after the expression")
		}
		code := body[:end]
		if strings.TrimSpace(code) == "" {
			return nil, at(src, offset+open, "empty {{ }}")
		}
		prog, err := compile(code)
		if err != nil {
			serr := err.(*SyntaxError)
			// Move the position from the placeholder into the template.
			pos := offset + open + 2 + offsetOf(code, serr.Line, serr.Column)
			return nil, at(src, pos, serr.Msg)
		}
		t.parts = append(t.parts, part{prog: prog, code: code, offset: offset + open + 2})
		consumed := open + 2 + end + 2
		rest, offset = rest[consumed:], offset+consumed
	}
	return t, nil
}

// MustParseTemplate is ParseTemplate for templates written in Go code.
func MustParseTemplate(src string) *Template {
	t, err := ParseTemplate(src)
	if err != nil {
		panic(fmt.Sprintf("lang: template %q: %v", src, err))
	}
	return t
}

// closing finds the "}}" ending a placeholder, skipping string literals
// so that {{ "}}" }} works.
func closing(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote != '`' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			return i
		}
	}
	return -1
}

// at makes a SyntaxError at a byte offset of src.
func at(src string, offset int, msg string) *SyntaxError {
	before := src[:offset]
	line := strings.Count(before, "\n") + 1
	col := utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:]) + 1
	return &SyntaxError{Line: line, Column: col, Msg: msg}
}

// offsetOf converts a 1-based line and rune column of s to a byte offset.
func offsetOf(s string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(s[off:], '\n')
		if i < 0 {
			return len(s)
		}
		off += i + 1
	}
	for c := 1; c < col && off < len(s); c++ {
		_, size := utf8.DecodeRuneInString(s[off:])
		off += size
	}
	return off
}

// String returns the template's source.
func (t *Template) String() string { return t.src }

// Static reports whether the template has no placeholders.
func (t *Template) Static() bool {
	for _, p := range t.parts {
		if p.prog != nil {
			return false
		}
	}
	return true
}

// Literals returns the template's literal text, the parts between its
// placeholders, in order: the text that came from the configuration
// rather than from an event.
func (t *Template) Literals() []string {
	var out []string
	for _, p := range t.parts {
		if p.prog == nil {
			out = append(out, p.lit)
		}
	}
	return out
}

// Cut splits t around the first sep in its literal text, as strings.Cut
// splits a string: a sep written inside a placeholder, or produced by
// one, does not count. The parts' positions stay those in t. A URL template cut at "?" gives its path and its
// query, for escaping each placeholder as its place needs.
func (t *Template) Cut(sep string) (before, after *Template, found bool) {
	for i, p := range t.parts {
		if p.prog != nil {
			continue
		}
		j := strings.Index(p.lit, sep)
		if j < 0 {
			continue
		}
		before = &Template{parts: append(slices.Clip(t.parts[:i]), part{lit: p.lit[:j]})}
		after = &Template{parts: append([]part{{lit: p.lit[j+len(sep):]}}, t.parts[i+1:]...)}
		before.parts, after.parts = dropEmpty(before.parts), dropEmpty(after.parts)
		before.src, after.src = before.source(), after.source()
		return before, after, true
	}
	return t, &Template{}, false
}

func dropEmpty(parts []part) []part {
	return slices.DeleteFunc(parts, func(p part) bool { return p.prog == nil && p.lit == "" })
}

// source writes the parts back as template source.
func (t *Template) source() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.prog == nil {
			b.WriteString(p.lit)
		} else {
			b.WriteString("{{" + p.code + "}}")
		}
	}
	return b.String()
}

// Render evaluates the placeholders against env. If escape is not nil it
// is applied to each placeholder's text (never to the literal parts), so
// payload text cannot inject markup the template's author did not write.
func (t *Template) Render(env *event.Env, escape func(string) string) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.prog == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := run(p.prog, env)
		if err != nil {
			return "", err
		}
		s := Text(v)
		if escape != nil {
			s = escape(s)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// Text writes an expression's value as template text.
func Text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int:
		return strconv.Itoa(v)
	case time.Time:
		return v.Format(time.RFC3339Nano)
	case time.Duration:
		return v.String()
	case fmt.Stringer:
		return v.String()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}
