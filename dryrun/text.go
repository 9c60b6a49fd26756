package dryrun

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/switchyard/switchyard/rules"
)

// WriteText writes results for a terminal: per event, each route and
// why it matched or not, then each sink reached with its payload as
// indented JSON.
func WriteText(w io.Writer, results []*Result) error {
	var b bytes.Buffer
	for i, res := range results {
		if i > 0 {
			b.WriteByte('\n')
		}
		writeResult(&b, res)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func writeResult(b *bytes.Buffer, res *Result) {
	fmt.Fprintf(b, "== %s (source %s)\n", res.Input, res.Source)
	switch {
	case res.Rejected != "":
		fmt.Fprintf(b, "rejected: the source would answer 400: %s\n", res.Rejected)
		return
	case res.Handshake:
		fmt.Fprintf(b, "a handshake: answered by the source, not stored or routed\n")
		return
	}
	ev := res.Event
	fmt.Fprintf(b, "event %s", ev.EventType)
	if ev.Subject != "" {
		fmt.Fprintf(b, ", subject %s", ev.Subject)
	}
	b.WriteString("\n\nroutes:\n")
	if len(res.Routes) == 0 {
		b.WriteString("  (none configured)\n")
	}
	width := 0
	for _, v := range res.Routes {
		width = max(width, len(v.Route))
	}
	for _, v := range res.Routes {
		fmt.Fprintf(b, "  %-*s  %s\n", width, v.Route, Reason(v))
		if v.When != nil {
			for _, line := range v.When.Lines("      ") {
				b.WriteString(line)
				b.WriteByte('\n')
			}
		}
	}
	if len(res.Sinks) == 0 {
		b.WriteString("\nsinks: none; the event would be stored and delivered nowhere\n")
		return
	}
	b.WriteString("\nsinks:\n")
	for _, s := range res.Sinks {
		fmt.Fprintf(b, "  %s (%s", s.Name, s.Type)
		if s.Held {
			b.WriteString(", held")
		}
		fmt.Fprintf(b, ") from %s\n", strings.Join(s.Routes, ", "))
		if s.Err != "" {
			fmt.Fprintf(b, "    no preview: %s\n", s.Err)
			continue
		}
		out, err := indentJSON(s.Payload, "    ")
		if err != nil {
			fmt.Fprintf(b, "    no preview: %v\n", err)
			continue
		}
		b.WriteString("    ")
		b.Write(out)
		b.WriteByte('\n')
	}
}

// Reason says in a line whether a route matched and why, or why not.
func Reason(v rules.Verdict) string {
	switch {
	case v.Pattern == "":
		return fmt.Sprintf("missed: the type matches none of %s", strings.Join(v.Patterns, ", "))
	case v.When == nil:
		return "matched: " + v.Pattern
	case v.Matched:
		return fmt.Sprintf("matched: %s, and when is true", v.Pattern)
	case v.When.Err != nil:
		return fmt.Sprintf("missed: %s matches, but when failed (a failed condition is no match)", v.Pattern)
	}
	return fmt.Sprintf("missed: %s matches, but when is false", v.Pattern)
}

// WriteJSON writes results (a []*Result, or a *Report) as indented
// JSON.
func WriteJSON(w io.Writer, v any) error {
	out, err := indentJSON(v, "")
	if err != nil {
		return err
	}
	_, err = w.Write(append(out, '\n'))
	return err
}

// indentJSON encodes v without HTML escaping, indented by two spaces
// after prefix on every line but the first.
func indentJSON(v any, prefix string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent(prefix, "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
