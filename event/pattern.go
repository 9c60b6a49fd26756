package event

import (
	"errors"
	"fmt"
	"strings"
)

// ValidPattern checks an event-type pattern: an exact type such as
// "session.forwarded.escalated", a prefix ending in ".*" such as
// "session.*" (every type below it, at any depth), or "*" for all.
func ValidPattern(p string) error {
	if p == "*" {
		return nil
	}
	if p == "" {
		return errors.New("empty pattern: write an event type, a prefix ending in .*, or *")
	}
	body := strings.TrimSuffix(p, ".*")
	for _, seg := range strings.Split(body, ".") {
		if seg == "" {
			return fmt.Errorf("invalid pattern %q: empty segment between dots", p)
		}
		if strings.Contains(seg, "*") {
			return fmt.Errorf("invalid pattern %q: * may only be the whole pattern or a last segment after a dot, as in session.*", p)
		}
		for _, r := range seg {
			if r <= ' ' || r == 0x7f {
				return fmt.Errorf("invalid pattern %q: contains a space or control character", p)
			}
		}
	}
	return nil
}

// MatchType reports whether eventType matches the pattern p. A prefix
// pattern "a.*" matches "a.b" and "a.b.c" but not "a" itself, as in
// Darwin's own subscriptions.
func MatchType(p, eventType string) bool {
	if p == "*" {
		return true
	}
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		return len(eventType) > len(prefix) && strings.HasPrefix(eventType, prefix)
	}
	return p == eventType
}
