package config

import (
	"reflect"

	"gopkg.in/yaml.v3"
)

// Document is a YAML file other than the configuration (a file of rule
// test cases), decoded as strictly as the configuration is.
type Document struct {
	c *Config // only its file, nodes and problems are used
}

// Decode decodes data, a YAML document that problems call file, into v,
// a pointer to a struct with yaml tags, as strictly as Load decodes a
// configuration: unknown or duplicate keys and mistyped values are
// problems placed at their line and column. Fields of type any take
// whatever the YAML holds; ${VAR} is not expanded. The error is an
// *Error listing every problem; the Document is returned with it unless
// the file is not YAML at all, so that callers can check the rest and
// report everything at once.
func Decode(file string, data []byte, v any) (*Document, error) {
	d := &Document{c: &Config{file: file, nodes: map[string]*yaml.Node{}}}
	root := d.c.parse(data, "the file is empty")
	if root == nil {
		return nil, &Error{Problems: d.c.problems}
	}
	(&decoder{cfg: d.c}).decode(root, reflect.ValueOf(v).Elem(), "")
	if len(d.c.problems) > 0 {
		return d, &Error{Problems: d.c.problems}
	}
	return d, nil
}

// Problem returns a problem placed at the node path was decoded from
// (such as "cases[2].source"), or at its nearest decoded parent.
func (d *Document) Problem(path, format string, args ...any) Problem {
	return d.c.Problem(path, format, args...)
}

// Has reports whether the file set path, even to null.
func (d *Document) Has(path string) bool { return d.c.given(path) }
