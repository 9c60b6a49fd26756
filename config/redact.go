package config

import (
	"bytes"
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"
)

// Redacted returns the configuration as YAML, as it was loaded (after
// ${VAR} expansion, comments kept), with every secret's value written
// <secret> and the password of any URL's user information removed: what
// the console shows. A secret read from a file (token_file:) shows its
// path.
func (c *Config) Redacted() ([]byte, error) {
	if c.root == nil {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c.redactNode(c.root)); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (c *Config) redactNode(n *yaml.Node) *yaml.Node {
	out := *n
	switch {
	case n.Kind == yaml.ScalarNode && c.secrets[n]:
		if n.Value != "" {
			out.Value, out.Style, out.Tag = redacted, 0, "!!str"
		}
	case n.Kind == yaml.ScalarNode:
		out.Value = redactURLs(n.Value)
	case n.Kind == yaml.AliasNode:
		// An alias repeats its anchor's value: write it out, redacted.
		return c.redactNode(n.Alias)
	}
	if len(n.Content) > 0 {
		out.Content = make([]*yaml.Node, len(n.Content))
		for i, child := range n.Content {
			out.Content[i] = c.redactNode(child)
		}
	}
	out.Anchor = ""
	return &out
}

// redactURLs removes the password from a URL's user information.
func redactURLs(s string) string {
	if !strings.Contains(s, "://") || !strings.Contains(s, "@") {
		return s
	}
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	u.User = url.UserPassword(u.User.Username(), "xxxxx")
	return strings.Replace(u.String(), "xxxxx", redacted, 1)
}
