package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/receiver/darwin"
)

// scrape fetches url (with token, if any) and parses the exposition
// format.
func scrape(t *testing.T, url, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mf
}

// value returns the value of the series of name with labels (name=value
// pairs), or -1 if absent. For a histogram, the sample count.
func value(mf map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := mf[name]
	if !ok {
		return -1
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestMetricsAfterAScriptedRun posts a known mix of requests and checks
// each metric moved by what it should.
func TestMetricsAfterAScriptedRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	crm := newRecorder(t)
	crm.status.Store(http.StatusServiceUnavailable) // the first attempts fail, then it recovers
	yaml := fmt.Sprintf(`
server: {listen: "127.0.0.1:0"}
storage: {dir: %s}
metrics: {listener: main}
sources:
  - {name: darwin, provider: darwin, secret: %s}
sinks:
  - {name: crm, type: http, url: %s/hook, retry: {initial_backoff: 20ms, max_backoff: 50ms}}
  - {name: later, type: http, url: ""}
routes:
  - {name: escalations, match: ["session.forwarded.*"], to: [crm]}
  - {name: closed, match: ["session.closed"], to: [later]}
`, dir, secret, crm.URL)
	os.WriteFile(dir+"/m.yaml", []byte(yaml), 0o600) // for the reload
	cfg, err := config.Parse(dir+"/m.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	a := serve(t, cfg, nil)

	mustAccept(t, a, sessionEvent(t, "s1", 1))
	mustAccept(t, a, sessionEvent(t, "s2", 1))
	mustAccept(t, a, sessionEvent(t, "s2", 1))                 // a duplicate
	mustAccept(t, a, fixture(t, "session_closed"))             // held: waits
	mustAccept(t, a, fixture(t, "session_stage_transitioned")) // no route
	if status, _ := post(t, a, fixture(t, "session_closed"), darwin.Sign([]byte("wrong"), []byte("x"))); status != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", status)
	}
	for path, want := range map[string]int{"/hooks/nobody": http.StatusNotFound, "/hooks/darwin": http.StatusMethodNotAllowed} {
		method := http.MethodPost
		if want == http.StatusMethodNotAllowed {
			method = http.MethodPut
		}
		req, _ := http.NewRequest(method, "http://"+a.Addr()+path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	eventually(t, "a failed attempt", func() bool {
		return value(scrape(t, "http://"+a.Addr()+"/metrics", ""), "switchyard_delivery_retries_total", "sink", "crm") >= 1
	})
	crm.status.Store(http.StatusOK)
	eventually(t, "both escalations delivered", func() bool { return len(crm.Bodies()) == 2 })
	if _, err := a.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}

	var mf map[string]*dto.MetricFamily
	eventually(t, "the delivered attempts counted", func() bool {
		mf = scrape(t, "http://"+a.Addr()+"/metrics", "")
		return value(mf, "switchyard_delivery_completed_total", "sink", "crm", "outcome", "delivered") == 2
	})
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"switchyard_receiver_requests_total", []string{"source", "darwin", "status", "2xx", "code", "200", "reason", "accepted"}, 4},
		{"switchyard_receiver_requests_total", []string{"source", "darwin", "status", "2xx", "code", "200", "reason", "duplicate"}, 1},
		{"switchyard_receiver_requests_total", []string{"source", "darwin", "status", "4xx", "code", "401", "reason", "mismatch"}, 1},
		{"switchyard_receiver_requests_total", []string{"source", "(none)", "status", "4xx", "code", "404", "reason", "no_source"}, 1},
		{"switchyard_receiver_requests_total", []string{"source", "darwin", "status", "4xx", "code", "405", "reason", "method_not_allowed"}, 1},
		{"switchyard_receiver_verification_failures_total", []string{"source", "darwin", "reason", "mismatch"}, 1},
		{"switchyard_ingest_events_total", []string{"source", "darwin", "outcome", "accepted"}, 4},
		{"switchyard_ingest_events_total", []string{"source", "darwin", "outcome", "duplicate"}, 1},
		{"switchyard_rules_events_routed_total", []string{"route", "escalations"}, 2},
		{"switchyard_rules_events_routed_total", []string{"route", "closed"}, 1},
		{"switchyard_rules_events_unrouted_total", []string{"source", "darwin"}, 1},
		{"switchyard_delivery_attempts_total", []string{"sink", "crm", "outcome", "delivered"}, 2},
		{"switchyard_delivery_latency_seconds", []string{"sink", "crm"}, 2},
		{"switchyard_delivery_attempt_duration_seconds", []string{"sink", "crm", "outcome", "delivered"}, 2},
		{"switchyard_delivery_dead_letters_total", []string{"sink", "crm"}, -1}, // none
		{"switchyard_queue_pending_deliveries", []string{"sink", "later"}, 1},
		{"switchyard_queue_pending_deliveries", []string{"sink", "crm"}, 0},
		{"switchyard_config_reloads_total", []string{"result", "success"}, 1},
		{"switchyard_config_last_reload_successful", nil, 1},
		{"switchyard_build_info", []string{"version", Version}, 1},
	} {
		if got := value(mf, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := value(mf, "switchyard_delivery_attempts_total", "sink", "crm", "outcome", "retry"); got < 1 {
		t.Errorf("retry attempts = %v, want at least 1", got)
	}
	if got := value(mf, "switchyard_queue_oldest_pending_age_seconds"); got <= 0 {
		t.Errorf("oldest pending age = %v, want > 0 (the held delivery)", got)
	}
	// No series is labelled with an id.
	for name, f := range mf {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if v := l.GetValue(); len(v) > 4 && (v[:4] == "evt_" || v[:4] == "dlv_") {
					t.Errorf("%s has an id label %s=%s", name, l.GetName(), v)
				}
			}
		}
	}
}
