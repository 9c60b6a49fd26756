package config

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong (or, with Warning, doubtful) in a
// configuration file, with the place that caused it.
type Problem struct {
	File    string
	Line    int
	Column  int
	Path    string // e.g. "routes[2].when"; empty for syntax errors
	Msg     string
	Warning bool
}

// String formats the problem as "file:line:col: path: message".
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	}
	b.WriteString(": ")
	if p.Warning {
		b.WriteString("warning: ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is every problem found in a configuration, one per line.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func (c *Config) add(p Problem) {
	p.File = c.file
	if p.Warning {
		c.Warnings = append(c.Warnings, p)
	} else {
		c.problems = append(c.problems, p)
	}
}

// Problem returns a problem placed at the node the path was decoded
// from, or at its nearest decoded parent (for a key that is missing).
func (c *Config) Problem(path, format string, args ...any) Problem {
	p := Problem{File: c.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n := c.node(path); n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	return p
}

// Warning is Problem marked as a warning.
func (c *Config) Warning(path, format string, args ...any) Problem {
	p := c.Problem(path, format, args...)
	p.Warning = true
	return p
}

// ProblemIn places a problem inside the string value at path, at line
// and column (both 1-based) of that string, as an expression compiler
// reports them. Quoting and block styles shift the column; escape
// sequences inside quoted strings are not accounted for.
func (c *Config) ProblemIn(path string, line, col int, msg string) Problem {
	p := c.Problem(path, "%s", msg)
	n := c.node(path)
	if n == nil || n.Kind != yaml.ScalarNode || line < 1 || col < 1 {
		return p
	}
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// content starts on the next line, indented as its first line is
		p.Line = n.Line + line
		p.Column = col + c.indent(n.Line+1, n.Column+1)
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		p.Line = n.Line + line - 1
		p.Column = n.Column + col
		if line > 1 {
			p.Column = col
		}
	default:
		p.Line = n.Line + line - 1
		p.Column = n.Column + col - 1
		if line > 1 {
			p.Column = col
		}
	}
	return p
}

// indent is how many spaces start line (1-based) of the file; guess
// when the file is not known.
func (c *Config) indent(line, guess int) int {
	rest := c.src
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return guess
		}
		rest = rest[i+1:]
	}
	n := 0
	for n < len(rest) && rest[n] == ' ' {
		n++
	}
	if n == 0 {
		return guess
	}
	return n
}

// ProblemAtOffset is ProblemIn for a byte offset into the string value.
func (c *Config) ProblemAtOffset(path string, offset int, msg string) Problem {
	n := c.node(path)
	if n == nil || offset < 0 || offset > len(n.Value) {
		return c.Problem(path, "%s", msg)
	}
	before := n.Value[:offset]
	line := strings.Count(before, "\n") + 1
	col := utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:]) + 1
	return c.ProblemIn(path, line, col, msg)
}

func (c *Config) node(path string) *yaml.Node {
	for path != "" {
		if n, ok := c.nodes[path]; ok {
			return n
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return c.nodes[""]
}
