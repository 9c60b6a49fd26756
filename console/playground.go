package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/dryrun"
	"github.com/switchyard/switchyard/event"
)

// Playground limits.
const (
	maxPlaygroundYAML = 256 << 10
	maxPlaygroundBody = 256 << 10
	defaultWhatIf     = 100
	maxWhatIf         = 1000
)

type playgroundView struct {
	*base
	// The form, as in the URL.
	EventID, Source, Body, Mode, YAML string
	WhatIf                            int
	Sources                           []string
	Ran                               bool
	// Problems are the edited YAML's, each at its line and column.
	Problems []config.Problem
	Error    string
	// Running and Edited are the dry runs of the input (Edited only in
	// edited mode).
	Running, Edited *playResult
	// WhatIf counts, over the last events, the matches per route.
	WhatIfRows   []whatIfRow
	WhatIfEvents int
}

type playResult struct {
	Rejected  string
	Handshake bool
	EventType string
	Subject   string
	Routing   *routingView
	Sinks     []playSink
}

type playSink struct {
	Name, Type string
	Held       bool
	Routes     []string
	Payload    string
}

type whatIfRow struct {
	Route           string
	Running, Edited int
	Changed         bool
}

func (c *Console) playground(w http.ResponseWriter, r *http.Request, v *base) {
	v.Title = "Rules playground"
	q := r.URL.Query()
	view := &playgroundView{base: v, EventID: strings.TrimSpace(q.Get("event")), Source: q.Get("source"), Body: q.Get("body"),
		Mode: q.Get("mode"), YAML: q.Get("yaml"), Sources: c.sourceNames(), Ran: q.Get("run") != ""}
	view.WhatIf = defaultWhatIf
	if n, err := strconv.Atoi(q.Get("whatif")); err == nil {
		view.WhatIf = max(0, min(n, maxWhatIf))
	}
	if view.Mode != "edited" {
		view.Mode = "running"
	}
	if view.YAML == "" && c.opts.Config != nil {
		if out, err := c.opts.Config().Redacted(); err == nil {
			view.YAML = string(out)
		}
	}
	if !view.Ran {
		c.render(w, r, http.StatusOK, "playground", view)
		return
	}
	status := http.StatusOK
	if err := c.play(r, view); err != nil {
		view.Error, status = err.Error(), http.StatusBadRequest
	}
	if len(view.Problems) > 0 {
		status = http.StatusBadRequest
	}
	c.render(w, r, status, "playground", view)
}

// play runs the playground's input through the running configuration
// and, in edited mode, the edited one. Nothing is stored or sent.
func (c *Console) play(r *http.Request, view *playgroundView) error {
	if len(view.YAML) > maxPlaygroundYAML || len(view.Body) > maxPlaygroundBody {
		return fmt.Errorf("the configuration and the body may be at most %d KiB each", maxPlaygroundYAML>>10)
	}
	var stored *event.Event
	switch {
	case view.EventID != "":
		ev, err := c.opts.Ops.Event(r.Context(), view.EventID)
		if err != nil {
			return fmt.Errorf("event %s: %w", view.EventID, err)
		}
		stored = &event.Event{}
		if err := json.Unmarshal(ev.Event, stored); err != nil {
			return fmt.Errorf("event %s cannot be read: %w", view.EventID, err)
		}
	case strings.TrimSpace(view.Body) == "":
		return fmt.Errorf("choose a stored event (its id), or paste a body and choose its source")
	}
	runOn := func(run *dryrun.Runner) (*playResult, error) {
		var res *dryrun.Result
		if stored != nil {
			res = run.RunEvent(stored.ID, stored)
		} else {
			var err error
			if res, err = run.Run(dryrun.Input{Name: "pasted body", Source: view.Source, Body: []byte(view.Body)}); err != nil {
				return nil, err
			}
		}
		return playResultOf(res), nil
	}
	var recent []*event.Event
	if view.Mode == "edited" && view.WhatIf > 0 {
		var err error
		if recent, err = c.opts.Ops.Recent(r.Context(), view.WhatIf); err != nil {
			return err
		}
	}
	var runErr error
	running := map[string]int{}
	var order []string
	if err := c.withRunner(func(run *dryrun.Runner) {
		view.Running, runErr = runOn(run)
		order = run.Rules.Routes()
		countMatches(run, recent, running)
	}); err != nil {
		return err
	}
	if runErr != nil {
		return runErr
	}
	if view.Mode != "edited" {
		return nil
	}
	cfg, problems := parseEdited(view.YAML)
	if len(problems) > 0 {
		view.Problems = problems
		return nil
	}
	run, closeFn, err := c.opts.Preview(cfg)
	if err != nil {
		var cerr *config.Error
		if errorsAs(err, &cerr) {
			view.Problems = cerr.Problems
			return nil
		}
		return err
	}
	defer closeFn()
	if view.Edited, err = runOn(run); err != nil {
		return err
	}
	edited := map[string]int{}
	countMatches(run, recent, edited)
	for _, name := range run.Rules.Routes() {
		if !slices.Contains(order, name) {
			order = append(order, name)
		}
	}
	if len(recent) > 0 {
		view.WhatIfEvents = len(recent)
		for _, name := range order {
			view.WhatIfRows = append(view.WhatIfRows, whatIfRow{Route: name, Running: running[name], Edited: edited[name],
				Changed: running[name] != edited[name]})
		}
	}
	return nil
}

// countMatches counts, per route, the events that route matches.
func countMatches(run *dryrun.Runner, evs []*event.Event, into map[string]int) {
	for _, ev := range evs {
		targets, _ := run.Rules.Match(ev)
		seen := map[string]bool{}
		for _, t := range targets {
			for _, rt := range t.Routes {
				if !seen[rt] {
					seen[rt] = true
					into[rt]++
				}
			}
		}
	}
}

func playResultOf(res *dryrun.Result) *playResult {
	out := &playResult{Rejected: res.Rejected, Handshake: res.Handshake}
	if res.Event == nil {
		return out
	}
	out.EventType, out.Subject = res.Event.EventType, res.Event.Subject
	out.Routing = routingOf(res)
	for _, s := range res.Sinks {
		out.Sinks = append(out.Sinks, playSink{Name: s.Name, Type: s.Type, Held: s.Held, Routes: s.Routes, Payload: payloadText(s)})
	}
	return out
}

// editedFile names the edited configuration in its problems.
const editedFile = "edited.yaml"

// secretRE finds the redacted secrets of the configuration shown (the
// key before them, when on the same line).
var secretRE = regexp.MustCompile(`(?:([A-Za-z_][A-Za-z0-9_-]*)["']?\s*:\s*)?(["']?)<secret>(["']?)`)

// parseEdited parses a configuration edited in the page. The page's
// text shows secrets as <secret>: each is replaced by a stand-in of the
// right shape (a URL for *url keys), so the file validates; nothing
// real is used, and a preview sends nothing anyway. Secrets from files
// (*_file keys) are refused: the page must not read the gateway's
// files. ${VAR} references read as empty: nor its environment. Problems
// are placed in the text as edited.
func parseEdited(text string) (*config.Config, []config.Problem) {
	if probs := fileKeys(text); len(probs) > 0 {
		return nil, probs
	}
	// Replace, line by line, and remember the shifts to place problems
	// in the text as written.
	lines := strings.Split(text, "\n")
	shifts := make([][][2]int, len(lines)) // per line: (column after which, delta)
	n := 0
	for i, line := range lines {
		var b strings.Builder
		last := 0
		for _, m := range secretRE.FindAllStringSubmatchIndex(line, -1) {
			key := ""
			if m[2] >= 0 {
				key = strings.ToLower(line[m[2]:m[3]])
			}
			start := strings.Index(line[m[0]:m[1]], "<secret>") + m[0]
			n++ // each stand-in differs: two tokens must not be equal
			stand := fmt.Sprintf("redacted-secret-%016d", n)
			switch {
			case strings.HasSuffix(key, "url"):
				stand = "https://redacted.invalid/"
			case key == "dsn":
				stand = "postgres://redacted.invalid/switchyard"
			}
			b.WriteString(line[last:start])
			b.WriteString(stand)
			last = start + len("<secret>")
			shifts[i] = append(shifts[i], [2]int{start + 1, len(stand) - len("<secret>")})
		}
		b.WriteString(line[last:])
		lines[i] = b.String()
	}
	cfg, err := config.Parse(editedFile, []byte(strings.Join(lines, "\n")), func(string) (string, bool) { return "", true })
	if err == nil {
		return cfg, nil
	}
	var cerr *config.Error
	if !errorsAs(err, &cerr) {
		return nil, []config.Problem{{File: editedFile, Msg: err.Error()}}
	}
	probs := slices.Clone(cerr.Problems)
	for i := range probs {
		p := &probs[i]
		if p.Line < 1 || p.Line > len(shifts) {
			continue
		}
		for _, s := range shifts[p.Line-1] {
			if p.Column > s[0] {
				p.Column = max(s[0], p.Column-s[1])
			}
		}
	}
	return nil, probs
}

// fileKeys refuses keys ending in _file, at their positions.
func fileKeys(text string) []config.Problem {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader([]byte(text))).Decode(&doc); err != nil {
		return nil // config.Parse reports syntax errors
	}
	var probs []config.Problem
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if k := n.Content[i]; strings.HasSuffix(k.Value, "_file") {
					probs = append(probs, config.Problem{File: editedFile, Line: k.Line, Column: k.Column,
						Msg: k.Value + ": the playground reads no files: write the secret as <secret> (any stand-in does; nothing is sent)"})
				}
			}
		}
		for _, child := range n.Content {
			walk(child)
		}
	}
	walk(&doc)
	return probs
}
