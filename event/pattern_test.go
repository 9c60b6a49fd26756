package event

import (
	"strings"
	"testing"
)

func TestMatchType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, eventType string
		want               bool
	}{
		{"*", "session.opened", true},
		{"*", "anything", true},
		{"session.opened", "session.opened", true},
		{"session.opened", "session.opened.x", false},
		{"session.opened", "session.open", false},
		{"session.*", "session.opened", true},
		{"session.*", "session.forwarded.escalated", true},
		{"session.*", "session", false},
		{"session.*", "sessions.opened", false},
		{"session.forwarded.*", "session.forwarded.qualified", true},
		{"session.forwarded.*", "session.forwarded", false},
		{"session.forwarded.*", "session.closed", false},
		{"function.call.*", "function.call.sendEmail", true},
		{"function.*", "function.call.sendEmail", true},
		{"function.call.sendEmail", "function.call.sendemail", false},
	} {
		if got := MatchType(tc.pattern, tc.eventType); got != tc.want {
			t.Errorf("MatchType(%q, %q) = %v, want %v", tc.pattern, tc.eventType, got, tc.want)
		}
	}
}

func TestValidPattern(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"*", "session.*", "session.forwarded.escalated", "function.call.send_email"} {
		if err := ValidPattern(ok); err != nil {
			t.Errorf("ValidPattern(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "session.", ".session", "session..x", "session*", "*.opened", "session.*.x", "session.**", "session opened", "**"} {
		if err := ValidPattern(bad); err == nil {
			t.Errorf("ValidPattern(%q) passed", bad)
		}
	}
}

func FuzzValidPattern(f *testing.F) {
	for _, s := range []string{"*", "session.*", "a.b.c", "a..b", ".*", "*.*"} {
		f.Add(s, "session.opened")
	}
	f.Fuzz(func(t *testing.T, p, typ string) {
		if ValidPattern(p) != nil {
			return
		}
		// A valid pattern without wildcards matches exactly itself.
		if !strings.Contains(p, "*") && MatchType(p, typ) != (p == typ) {
			t.Fatalf("MatchType(%q, %q) disagrees with equality", p, typ)
		}
		if MatchType(p, typ) && p != "*" && !strings.HasPrefix(typ, strings.TrimSuffix(p, "*")) {
			t.Fatalf("MatchType(%q, %q) matched without the prefix", p, typ)
		}
	})
}
