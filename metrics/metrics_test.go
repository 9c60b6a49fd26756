package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRequestLabels: a request is counted by source, status class,
// code and reason; a status outside HTTP's range is "other", never a
// label value of its own.
func TestRequestLabels(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := New(reg, "test")
	if err != nil {
		t.Fatal(err)
	}
	m.Request("darwin", 200, "accepted")
	m.Request("darwin", 401, "mismatch")
	m.Request("darwin", 401, "mismatch")
	m.Request("(none)", 413, "body_too_large")
	m.Request("darwin", 999, "internal")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[[4]string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_receiver_requests_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if len(l) != 4 {
				t.Errorf("labels %v, want source, status, code, reason", l)
			}
			got[[4]string{l["source"], l["status"], l["code"], l["reason"]}] = s.GetCounter().GetValue()
		}
	}
	want := map[[4]string]float64{
		{"darwin", "2xx", "200", "accepted"}:       1,
		{"darwin", "4xx", "401", "mismatch"}:       2,
		{"(none)", "4xx", "413", "body_too_large"}: 1,
		{"darwin", "other", "other", "internal"}:   1,
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%v = %v, want %v", k, got[k], v)
		}
	}
}
