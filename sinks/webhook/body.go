package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"mime"
	"net/url"
	"reflect"
	"strings"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/lang"
	"github.com/switchyard/switchyard/sinks"
)

const jsonType = "application/json"

// body is a shaped request body: an expression whose value is sent as
// JSON, or a template sent as contentType.
type body struct {
	expr        *lang.Expression
	tmpl        *lang.Template
	contentType string
	escape      func(string) string
	// json: the template writes JSON (checked before it is wrapped in a
	// CloudEvent, whose data it then is).
	json bool
}

// parseBody compiles src: an expression without contentType, a template
// with one.
func parseBody(src, contentType string) (*body, error) {
	if contentType == "" {
		e, err := lang.CompileExpression(src)
		if err != nil {
			if serr, ok := errors.AsType[*lang.SyntaxError](err); ok && strings.Contains(src, "{{") {
				serr.Msg += ` (without content_type, body is an expression such as {"note": data.summary}; to write a {{ }} template, set content_type)`
			}
			return nil, err
		}
		switch k := e.Kind(); k {
		case reflect.Map, reflect.Slice, reflect.Interface:
		default:
			return nil, &lang.SyntaxError{Line: 1, Column: 1, Msg: fmt.Sprintf(
				"gives a %s, want an object such as {\"note\": data.summary} (sent as JSON); to send text, write a {{ }} template and set content_type", k)}
		}
		return &body{expr: e, contentType: jsonType}, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("invalid media type %q: write it like text/plain or application/x-www-form-urlencoded", contentType)
	}
	if src == "" {
		return nil, errors.New("content_type without body: add body, a {{ }} template")
	}
	t, err := lang.ParseTemplate(src)
	if err != nil {
		return nil, err
	}
	b := &body{tmpl: t, contentType: contentType, escape: escapeFor(mt)}
	b.json = isJSON(mt)
	return b, nil
}

// escapeFor returns how a template body escapes event values for its
// media type, so that a value cannot change the document's structure:
// inside a JSON string, a form value, XML or HTML text. Other types get
// values as they are.
func escapeFor(mediaType string) func(string) string {
	switch {
	case isJSON(mediaType):
		return jsonString
	case mediaType == "application/x-www-form-urlencoded":
		return url.QueryEscape
	case mediaType == "application/xml", mediaType == "text/xml", mediaType == "text/html", strings.HasSuffix(mediaType, "+xml"):
		return html.EscapeString
	}
	return nil
}

func isJSON(mediaType string) bool {
	return mediaType == jsonType || strings.HasSuffix(mediaType, "+json")
}

// jsonString escapes v for the inside of a JSON string ("…").
func jsonString(v string) string {
	out, _ := sinks.MarshalJSON(v) // a string always encodes
	return string(out[1 : len(out)-1])
}

// renderBody returns the payload and its content type: the shaped body,
// or the normalized event (its data object for the CloudEvents formats,
// whose attributes carry the rest).
func (s *Sink) renderBody(ev *event.Event, env *event.Env) ([]byte, string, error) {
	if s.body == nil {
		if s.format == FormatJSON {
			b, err := ev.JSON()
			if err != nil {
				return nil, "", fmt.Errorf("encode event: %w", err)
			}
			return b, jsonType, nil
		}
		if data := bytes.TrimSpace(ev.Data); len(data) > 0 && !bytes.Equal(data, []byte("null")) {
			return data, jsonType, nil
		}
		return nil, "", nil // no data
	}
	b := s.body
	if b.expr != nil {
		v, err := b.expr.Eval(env)
		if err != nil {
			return nil, "", fmt.Errorf("body: %w", err)
		}
		if v == nil {
			return nil, "", errors.New("body: gave nil, want an object")
		}
		if k := reflect.TypeOf(v).Kind(); k != reflect.Map && k != reflect.Slice {
			return nil, "", fmt.Errorf("body: gave a %T, want an object", v)
		}
		out, err := sinks.MarshalJSON(v)
		if err != nil {
			return nil, "", fmt.Errorf("body: %w", err)
		}
		return out, jsonType, nil
	}
	text, err := b.tmpl.Render(env, b.escape)
	if err != nil {
		return nil, "", fmt.Errorf("body: %w", err)
	}
	return []byte(text), b.contentType, nil
}
