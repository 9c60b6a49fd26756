package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDeliverySettings(t *testing.T) {
	t.Parallel()
	src := strings.Replace(valid, "    retry: {max_attempts: 5", "    ordered: true\n    rate: 30/m\n    retry: {max_attempts: 5", 1)
	src = strings.Replace(src, "storage:\n  dir: /tmp/sy\n", "storage:\n  dir: /tmp/sy\n  synchronous: normal\n  max_pending: 50\n", 1)
	src = strings.Replace(src, "    secret: ${DARWIN_SECRET}\n", "    secret: ${DARWIN_SECRET}\n    dedup_key: data.sessionId + eventType\n    dedup_window: 2h\n", 1)
	c, err := Parse("c.yaml", []byte(src), env(map[string]string{"DARWIN_SECRET": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.Synchronous != "normal" || c.Storage.MaxPending != 50 {
		t.Errorf("storage = %+v", c.Storage)
	}
	if s := c.Sources[0]; s.DedupKey != "data.sessionId + eventType" || s.DedupWindow != Duration(2*time.Hour) {
		t.Errorf("source dedup = %q %v", s.DedupKey, s.DedupWindow)
	}
	slack, archive, crm := c.Sinks[0], c.Sinks[1], c.Sinks[2]
	if !*slack.Ordered || *archive.Ordered || !*crm.Ordered {
		t.Errorf("ordered = %v %v %v, want the slack default true, sqlite false, crm as set", *slack.Ordered, *archive.Ordered, *crm.Ordered)
	}
	if crm.Rate != (Rate{N: 30, Per: Duration(time.Minute)}) || !slack.Rate.IsZero() {
		t.Errorf("rate = %v, %v", crm.Rate, slack.Rate)
	}

	d, err := Parse("c.yaml", []byte(valid), env(map[string]string{"DARWIN_SECRET": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if d.Storage.Synchronous != DefaultSynchronous || d.Storage.MaxPending != DefaultMaxPending || d.Sources[0].DedupWindow != DefaultDedupWindow {
		t.Errorf("defaults: storage %+v, dedup window %v", d.Storage, d.Sources[0].DedupWindow)
	}
}

func TestDeliverySettingProblems(t *testing.T) {
	t.Parallel()
	src := strings.Replace(valid, "    retry: {max_attempts: 5", "    rate: fast\n    ordered: maybe\n    retry: {max_attempts: 5", 1)
	src = strings.Replace(src, "storage:\n  dir: /tmp/sy\n", "storage:\n  dir: /tmp/sy\n  synchronous: off\n  max_pending: -1\n", 1)
	_, err := Parse("c.yaml", []byte(src), env(map[string]string{"DARWIN_SECRET": "x"}))
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v", err)
	}
	got := cerr.Error()
	for _, want := range []string{
		`c.yaml:6:16: storage.synchronous: unknown level "off"`,
		`c.yaml:7:16: storage.max_pending: must be 0 (no limit) or more`,
		`c.yaml:24:11: sinks[2].rate: invalid rate "fast": write it like 1/s`,
		`c.yaml:25:14: sinks[2].ordered: want true or false`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Rate
		err  bool
	}{
		{in: "1/s", want: Rate{1, Duration(time.Second)}},
		{in: " 30 / m ", want: Rate{30, Duration(time.Minute)}},
		{in: "500/h", want: Rate{500, Duration(time.Hour)}},
		{in: "5/10s", want: Rate{5, Duration(10 * time.Second)}},
		{in: "0/s", err: true},
		{in: "-1/s", err: true},
		{in: "1/fortnight", err: true},
		{in: "1/0s", err: true},
		{in: "1", err: true},
	} {
		got, err := ParseRate(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
