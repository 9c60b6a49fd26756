package dryrun

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/lang"
)

// Suite is a file of rule test cases:
//
//	cases:
//	  - name: escalations reach Slack and the archive
//	    source: darwin                      # optional with one source
//	    file: events/escalated.json         # relative to this file; or body: {…} inline
//	    routes: [escalations]               # the routes that match, no more
//	    sinks: [ops-slack, archive]         # the sinks reached, no more
//	    expect:                             # fields of a sink's preview
//	      ops-slack:
//	        text: {contains: "Mariana"}     # or {equals: …}, {matches: "re"}, or a value to equal
//
// See docs/rules.md, "Testing rules".
type Suite struct {
	Cases []Case `yaml:"cases"`

	path string
	doc  *config.Document
}

// Case is one test case.
type Case struct {
	Name   string `yaml:"name"`
	Source string `yaml:"source"`
	// File or Body is the request body: File is read relative to the
	// cases file; Body is the body itself, a string as it is, anything
	// else encoded as JSON.
	File    string            `yaml:"file"`
	Body    any               `yaml:"body"`
	Headers map[string]string `yaml:"headers"`
	// Routes and Sinks, when given, are exactly the routes that must
	// match and the sinks that must be reached, in any order.
	Routes *[]string `yaml:"routes"`
	Sinks  *[]string `yaml:"sinks"`
	// Expect maps a sink to fields of its preview (dotted paths, as
	// lookup() takes them) and what they must be.
	Expect map[string]map[string]any `yaml:"expect"`

	body []byte
}

// matcherKeys are the keys of a matcher; a mapping in expect is always
// a matcher.
var matcherKeys = []string{"contains", "equals", "matches"}

// LoadSuite reads and checks a cases file. Its error is a *config.Error
// with every problem placed in the file.
func LoadSuite(path string) (*Suite, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cases: %w", err)
	}
	s := &Suite{path: path}
	doc, err := config.Decode(path, data, s)
	if doc == nil {
		return nil, err
	}
	s.doc = doc
	var problems []config.Problem
	if cerr, ok := err.(*config.Error); ok {
		problems = cerr.Problems
	}
	bad := func(p string, format string, args ...any) {
		problems = append(problems, doc.Problem(p, format, args...))
	}
	if len(s.Cases) == 0 {
		bad("cases", "no cases: list them under cases:")
	}
	names := map[string]int{}
	for i := range s.Cases {
		c := &s.Cases[i]
		p := fmt.Sprintf("cases[%d]", i)
		switch prev, dup := names[c.Name]; {
		case c.Name == "":
			bad(p+".name", "missing name")
		case dup:
			bad(p+".name", "duplicate case name %q (also cases[%d])", c.Name, prev)
		default:
			names[c.Name] = i
		}
		switch {
		case c.File != "" && doc.Has(p+".body"):
			bad(p+".file", "give file or body, not both")
		case c.File != "":
			f := c.File
			if !filepath.IsAbs(f) {
				f = filepath.Join(filepath.Dir(path), f)
			}
			if c.body, err = os.ReadFile(f); err != nil {
				bad(p+".file", "%v", err)
			}
		case doc.Has(p + ".body"):
			if c.body, err = encodeBody(c.Body); err != nil {
				bad(p+".body", "%v", err)
			}
		default:
			bad(p, "missing the event: file: (a body file, relative to this file) or body:")
		}
		if c.Routes == nil && c.Sinks == nil && len(c.Expect) == 0 {
			bad(p, "the case checks nothing: give routes:, sinks: or expect:")
		}
		for sink, fields := range c.Expect {
			for field, want := range fields {
				if err := checkMatcher(want); err != nil {
					bad(fmt.Sprintf("%s.expect.%s.%s", p, sink, field), "%v", err)
				}
			}
		}
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b config.Problem) int { return cmp.Compare(a.Line, b.Line) })
		return nil, &config.Error{Problems: problems}
	}
	return s, nil
}

// encodeBody turns an inline body into request bytes.
func encodeBody(v any) ([]byte, error) {
	if s, ok := v.(string); ok {
		return []byte(s), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("cannot encode as JSON (keys must be strings): %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func checkMatcher(want any) error {
	m, ok := want.(map[string]any)
	if !ok {
		return nil
	}
	if len(m) == 0 {
		return fmt.Errorf("empty matcher: give %s", strings.Join(matcherKeys, ", "))
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		switch k {
		case "equals":
		case "contains", "matches":
			s, ok := m[k].(string)
			if !ok {
				return fmt.Errorf("%s: want a string", k)
			}
			if k == "matches" {
				if _, err := regexp.Compile(s); err != nil {
					return fmt.Errorf("matches: %v", err)
				}
			}
		default:
			return fmt.Errorf("unknown matcher %q: use %s (to compare a whole object, write {equals: {…}})", k, strings.Join(matcherKeys, ", "))
		}
	}
	return nil
}

// Report is the outcome of a suite.
type Report struct {
	Cases  []CaseResult `json:"cases"`
	Passed int          `json:"passed"`
	Failed int          `json:"failed"`
}

// CaseResult is one case's outcome: passed when Failures is empty.
type CaseResult struct {
	Name string `json:"name"`
	// At is the case's place in the file (file:line:col).
	At       string   `json:"at"`
	Failures []string `json:"failures,omitempty"`
	Result   *Result  `json:"result"`
}

// RunSuite runs every case. An error (a *config.Error placed in the
// cases file) means the suite could not run: an unknown source, route or
// sink.
func (r *Runner) RunSuite(s *Suite) (*Report, error) {
	var problems []config.Problem
	routes := r.Rules.Routes()
	var sinks []string
	for _, sk := range r.Sinks {
		sinks = append(sinks, sk.Name)
	}
	known := func(path, what string, list []string, names []string) {
		for j, n := range names {
			if !slices.Contains(list, n) {
				problems = append(problems, s.doc.Problem(fmt.Sprintf("%s[%d]", path, j), "unknown %s %q (the configuration has: %s)", what, n, strings.Join(list, ", ")))
			}
		}
	}
	for i, c := range s.Cases {
		p := fmt.Sprintf("cases[%d]", i)
		if _, err := r.Source(c.Source); err != nil {
			problems = append(problems, s.doc.Problem(p+".source", "%v", err))
		}
		if c.Routes != nil {
			known(p+".routes", "route", routes, *c.Routes)
		}
		if c.Sinks != nil {
			known(p+".sinks", "sink", sinks, *c.Sinks)
		}
		for _, sink := range slices.Sorted(maps.Keys(c.Expect)) {
			if !slices.Contains(sinks, sink) {
				problems = append(problems, s.doc.Problem(p+".expect."+sink, "unknown sink %q (the configuration has: %s)", sink, strings.Join(sinks, ", ")))
			}
		}
	}
	if len(problems) > 0 {
		return nil, &config.Error{Problems: problems}
	}

	rep := &Report{}
	for i, c := range s.Cases {
		pos := s.doc.Problem(fmt.Sprintf("cases[%d]", i), "")
		cr := CaseResult{Name: c.Name, At: fmt.Sprintf("%s:%d:%d", pos.File, pos.Line, pos.Column)}
		header := http.Header{}
		for k, v := range c.Headers {
			header.Set(k, v)
		}
		res, err := r.Run(Input{Name: c.Name, Source: c.Source, Body: c.body, Header: header})
		if err != nil {
			return nil, err
		}
		cr.Result = res
		cr.Failures = check(&c, res)
		if len(cr.Failures) == 0 {
			rep.Passed++
		} else {
			rep.Failed++
		}
		rep.Cases = append(rep.Cases, cr)
	}
	return rep, nil
}

// check compares a case's expectations with what happened; each failure
// is a line, followed by lines of detail indented by two spaces.
func check(c *Case, res *Result) []string {
	if res.Rejected != "" {
		return []string{"the source would reject the body (400): " + res.Rejected}
	}
	if res.Handshake {
		return []string{"the body is a handshake: answered, not routed"}
	}
	var out []string
	if c.Routes != nil {
		got := res.Matched()
		if !sameSet(*c.Routes, got) {
			out = append(out, fmt.Sprintf("routes: want %s, got %s", list(*c.Routes), list(got)))
			for _, v := range res.Routes {
				if slices.Contains(*c.Routes, v.Route) == v.Matched {
					continue
				}
				out = append(out, fmt.Sprintf("  %s: %s", v.Route, Reason(v)))
				if v.When != nil {
					out = append(out, v.When.Lines("    ")...)
				}
			}
		}
	}
	if c.Sinks != nil {
		if got := res.Reached(); !sameSet(*c.Sinks, got) {
			out = append(out, fmt.Sprintf("sinks: want %s, got %s", list(*c.Sinks), list(got)))
		}
	}
	for _, sink := range slices.Sorted(maps.Keys(c.Expect)) {
		i := slices.IndexFunc(res.Sinks, func(s SinkResult) bool { return s.Name == sink })
		if i < 0 {
			out = append(out, fmt.Sprintf("expect %s: the event does not reach %s", sink, sink))
			continue
		}
		sr := res.Sinks[i]
		if sr.Err != "" {
			out = append(out, fmt.Sprintf("expect %s: no preview: %s", sink, sr.Err))
			continue
		}
		payload, err := generic(sr.Payload)
		if err != nil {
			out = append(out, fmt.Sprintf("expect %s: %v", sink, err))
			continue
		}
		fields := c.Expect[sink]
		for _, field := range slices.Sorted(maps.Keys(fields)) {
			got, found := lang.Lookup(payload, field)
			if msg := match(fields[field], got, found); msg != "" {
				out = append(out, fmt.Sprintf("%s %s: %s", sink, field, msg))
			}
		}
	}
	return out
}

// match checks a field against a matcher; "" when it passes, else what
// was wanted and what was got.
func match(want any, got any, found bool) string {
	m, isMatcher := want.(map[string]any)
	if !isMatcher {
		m = map[string]any{"equals": want}
	}
	gotText := "no such field"
	if found {
		gotText = lang.Literal(got)
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		w := m[k]
		ok := found
		switch k {
		case "equals":
			wn, err := generic(w)
			ok = ok && err == nil && reflect.DeepEqual(wn, got)
		case "contains":
			ok = ok && strings.Contains(lang.Text(got), w.(string))
		case "matches":
			ok = ok && regexp.MustCompile(w.(string)).MatchString(lang.Text(got))
		}
		if !ok {
			return fmt.Sprintf("want %s %s, got %s", k, lang.Literal(w), gotText)
		}
	}
	return ""
}

// generic round-trips v through JSON, so a preview and a value from
// YAML compare alike (numbers as float64, objects as maps).
func generic(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

func list(s []string) string { return "[" + strings.Join(s, ", ") + "]" }

// Write writes the report for a terminal: a line per case, the
// failures of those that failed, and a summary.
func (rep *Report) Write(w io.Writer) error {
	var b bytes.Buffer
	for _, c := range rep.Cases {
		if len(c.Failures) == 0 {
			fmt.Fprintf(&b, "ok    %s\n", c.Name)
			continue
		}
		fmt.Fprintf(&b, "FAIL  %s (%s)\n", c.Name, c.At)
		for _, f := range c.Failures {
			fmt.Fprintf(&b, "      %s\n", f)
		}
	}
	fmt.Fprintf(&b, "\n%d cases: %d passed, %d failed\n", len(rep.Cases), rep.Passed, rep.Failed)
	_, err := w.Write(b.Bytes())
	return err
}
