// Package metrics holds Switchyard's Prometheus metrics. Its methods are
// the hooks the other packages call (receiver.Options.OnRequest,
// delivery.Options.OnAttempt, …); app wires them. Labels are bounded:
// sources, sinks and routes come from the configuration, outcomes and
// reasons from short fixed lists. Never an id.
package metrics

import (
	"context"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's collectors, registered on one Registerer.
type Metrics struct {
	requests       *prometheus.CounterVec
	verifyFailures *prometheus.CounterVec
	mapErrors      *prometheus.CounterVec
	events         *prometheus.CounterVec
	routed         *prometheus.CounterVec
	unrouted       *prometheus.CounterVec
	routeErrors    *prometheus.CounterVec
	attempts       *prometheus.CounterVec
	retries        *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	completed      *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	attemptTime    *prometheus.HistogramVec
	reloads        *prometheus.CounterVec
	reloadOK       prometheus.Gauge
	reloadAt       prometheus.Gauge
	reg            prometheus.Registerer
}

// Outcomes of an ingested event (Event).
const (
	Accepted  = "accepted"
	Duplicate = "duplicate"
	Refused   = "refused" // too many deliveries waiting: 503
	Failed    = "failed"  // the store could not commit: 503
)

// New creates the metrics and registers them on reg, with
// switchyard_build_info for version.
func New(reg prometheus.Registerer, version string) (*Metrics, error) {
	counter := func(subsystem, name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchyard", Subsystem: subsystem, Name: name, Help: help}, labels)
	}
	m := &Metrics{
		reg: reg,
		requests: counter("receiver", "requests_total",
			"Requests answered by the receiver, by source ((none) for no source's path), status class (2xx, 4xx, 5xx), status code and reason (accepted, mismatch, no_source, body_too_large, ...).",
			"source", "status", "code", "reason"),
		verifyFailures: counter("receiver", "verification_failures_total",
			"Requests refused by a source's verification, by reason.", "source", "reason"),
		mapErrors: counter("receiver", "mapping_errors_total",
			"Verified payloads a source could not map to an event (400), by event field.", "source", "field"),
		events: counter("ingest", "events_total",
			"Verified events by outcome: accepted, duplicate, refused (max_pending) or failed (store error).", "source", "outcome"),
		routed: counter("rules", "events_routed_total",
			"Accepted events each route matched.", "route"),
		unrouted: counter("rules", "events_unrouted_total",
			"Accepted events no route matched (stored, delivered nowhere).", "source"),
		routeErrors: counter("rules", "condition_errors_total",
			"Route conditions that failed at run time (counted as no match).", "route"),
		attempts: counter("delivery", "attempts_total",
			"Delivery attempts by sink and outcome: delivered, retry or dead.", "sink", "outcome"),
		retries: counter("delivery", "retries_total",
			"Failed attempts that will be retried.", "sink"),
		deadLetters: counter("delivery", "dead_letters_total",
			"Deliveries given up (dead), kept for replay.", "sink"),
		completed: counter("delivery", "completed_total",
			"Deliveries finished, by outcome: delivered or dead.", "sink", "outcome"),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "switchyard", Subsystem: "delivery", Name: "latency_seconds",
			Help:    "From an event's acceptance (or its delivery's replay) to its delivery, by sink.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
		}, []string{"sink"}),
		attemptTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "switchyard", Subsystem: "delivery", Name: "attempt_duration_seconds",
			Help:    "How long one attempt took, by sink and outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"sink", "outcome"}),
		reloads: counter("config", "reloads_total",
			"Configuration reloads by result: success or failure (the running configuration kept).", "result"),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "switchyard", Subsystem: "config", Name: "last_reload_successful",
			Help: "1 if the last reload succeeded (or none was tried), 0 if it failed."}),
		reloadAt: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "switchyard", Subsystem: "config", Name: "last_reload_success_timestamp_seconds",
			Help: "When the configuration running was loaded (Unix time)."}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "switchyard", Name: "build_info",
		Help:        "Always 1; labels tell the version and the Go version.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()}})
	build.Set(1)
	m.reloadOK.Set(1)
	m.reloadAt.SetToCurrentTime()
	for _, c := range []prometheus.Collector{m.requests, m.verifyFailures, m.mapErrors, m.events, m.routed, m.unrouted,
		m.routeErrors, m.attempts, m.retries, m.deadLetters, m.completed, m.latency, m.attemptTime, m.reloads,
		m.reloadOK, m.reloadAt, build} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Request counts a request the receiver answered: to a source's path,
// or refused before reaching one (source receiver.NoSource). reason is
// one of receiver.Reasons.
func (m *Metrics) Request(source string, status int, reason string) {
	code := "other"
	if status >= 100 && status < 600 {
		code = strconv.Itoa(status)
	}
	m.requests.WithLabelValues(source, statusClass(status), code, reason).Inc()
}

func statusClass(status int) string {
	if status < 100 || status >= 600 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}

// VerifyFailure counts a request a source refused.
func (m *Metrics) VerifyFailure(source, reason string) {
	m.verifyFailures.WithLabelValues(source, reason).Inc()
}

// MapError counts a payload a source could not map.
func (m *Metrics) MapError(source, field string) {
	if field == "" {
		field = "body"
	}
	m.mapErrors.WithLabelValues(source, field).Inc()
}

// Event counts an ingested event by outcome (Accepted, …).
func (m *Metrics) Event(source, outcome string) { m.events.WithLabelValues(source, outcome).Inc() }

// Routed counts an accepted event: once for each route it matched, or
// as unrouted.
func (m *Metrics) Routed(source string, routes []string) {
	if len(routes) == 0 {
		m.unrouted.WithLabelValues(source).Inc()
	}
	for _, r := range routes {
		m.routed.WithLabelValues(r).Inc()
	}
}

// RouteError counts a route condition that failed at run time.
func (m *Metrics) RouteError(route string) { m.routeErrors.WithLabelValues(route).Inc() }

// Attempt records a delivery attempt whose outcome was stored. state is
// the delivery's state after it: delivered, failed or dead.
func (m *Metrics) Attempt(sink, state string, took, waited time.Duration) {
	outcome := state
	switch state {
	case "failed":
		outcome = "retry"
		m.retries.WithLabelValues(sink).Inc()
	case "dead":
		m.deadLetters.WithLabelValues(sink).Inc()
		m.completed.WithLabelValues(sink, outcome).Inc()
	case "delivered":
		m.completed.WithLabelValues(sink, outcome).Inc()
		m.latency.WithLabelValues(sink).Observe(waited.Seconds())
	}
	m.attempts.WithLabelValues(sink, outcome).Inc()
	m.attemptTime.WithLabelValues(sink, outcome).Observe(took.Seconds())
}

// Reload records a configuration reload.
func (m *Metrics) Reload(ok bool) {
	if !ok {
		m.reloads.WithLabelValues("failure").Inc()
		m.reloadOK.Set(0)
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.reloadOK.Set(1)
	m.reloadAt.SetToCurrentTime()
}

// Queue is what the queue gauges read, at each scrape.
type Queue interface {
	WaitingBySink(ctx context.Context) (map[string]int64, error)
	OldestPending(ctx context.Context) (time.Time, bool, error)
}

// WatchQueue registers the queue gauges: deliveries waiting per sink
// (sinks() names the configured ones, shown even at 0) and the age of
// the oldest. They are read from q at each scrape.
func (m *Metrics) WatchQueue(q Queue, sinks func() []string, now func() time.Time) error {
	return m.reg.Register(&queueCollector{q: q, sinks: sinks, now: now})
}

var (
	pendingDesc = prometheus.NewDesc("switchyard_queue_pending_deliveries",
		"Deliveries waiting (pending, or failed and due again), by sink; includes held and removed sinks.", []string{"sink"}, nil)
	oldestDesc = prometheus.NewDesc("switchyard_queue_oldest_pending_age_seconds",
		"Age of the oldest delivery waiting; 0 when none waits.", nil, nil)
)

type queueCollector struct {
	q     Queue
	sinks func() []string
	now   func() time.Time
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- oldestDesc
}

// scrapeTimeout bounds the queue reads of one scrape.
const scrapeTimeout = 5 * time.Second

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	waiting, err := c.q.WaitingBySink(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(pendingDesc, err)
	} else {
		for _, s := range c.sinks() {
			if _, ok := waiting[s]; !ok {
				waiting[s] = 0
			}
		}
		for s, n := range waiting {
			ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(n), s)
		}
	}
	at, ok, err := c.q.OldestPending(ctx)
	switch {
	case err != nil:
		ch <- prometheus.NewInvalidMetric(oldestDesc, err)
	case !ok:
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, 0)
	default:
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, max(c.now().Sub(at).Seconds(), 0))
	}
}
