package main

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestParseVariants(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, backends, replicas string
		want                     []variant
		labelled                 bool
	}{
		{"the default", "sqlite", "1", []variant{{backendSQLite, 1}}, false},
		{"the issue's table", "sqlite,postgres", "1,2,3",
			[]variant{{backendSQLite, 1}, {backendPostgres, 1}, {backendPostgres, 2}, {backendPostgres, 3}}, true},
		{"sqlite first, whatever the order", "postgres, sqlite", "2",
			[]variant{{backendSQLite, 1}, {backendPostgres, 2}}, true},
		{"sqlite runs one gateway", "sqlite", "3", []variant{{backendSQLite, 1}}, false},
		{"postgres alone is labelled", "postgres", "1", []variant{{backendPostgres, 1}}, true},
		{"repeated counts once", "postgres", "2,2,1", []variant{{backendPostgres, 2}, {backendPostgres, 1}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVariants(tc.backends, tc.replicas)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("parseVariants(%q, %q) = %v, want %v", tc.backends, tc.replicas, got, tc.want)
			}
			if labelled(got) != tc.labelled {
				t.Errorf("labelled = %v, want %v", labelled(got), tc.labelled)
			}
		})
	}
	for _, bad := range [][2]string{{"mysql", "1"}, {"sqlite", "0"}, {"postgres", "two"}, {"postgres", ""}} {
		if _, err := parseVariants(bad[0], bad[1]); err == nil {
			t.Errorf("parseVariants(%q, %q): no error", bad[0], bad[1])
		}
	}
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u:p@db:5432/app?sslmode=disable", "postgres://u:p@db:5432/bench_1?sslmode=disable"},
		{"postgresql://db/", "postgresql://db/bench_1"},
		{"host=db user=u dbname=app", "host=db user=u dbname=app dbname=bench_1"},
	} {
		got, err := withDatabase(tc.dsn, "bench_1")
		if err != nil || got != tc.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tc.dsn, got, err, tc.want)
		}
	}
}

// TestReplicaRatios: the CPU per event compared across replicas is the
// one measured until every event was delivered when every postgres row
// has it, else the window's; PostgreSQL×1's events/s is compared with
// SQLite×1's.
func TestReplicaRatios(t *testing.T) {
	t.Parallel()
	us := func(n int) time.Duration { return time.Duration(n) * time.Microsecond }
	fs := []figures{
		{v: variant{backendSQLite, 1}, rate: 8000, gateways: us(150), total: us(150), life: us(200), lifeOK: true},
		{v: variant{backendPostgres, 1}, rate: 4000, gateways: us(150), total: us(300), life: us(250), lifeDB: us(250), lifeOK: true},
		{v: variant{backendPostgres, 2}, rate: 3000, gateways: us(200), total: us(300), life: us(300), lifeDB: us(300), lifeOK: true},
	}
	q := ratiosOfFigures(fs)
	if !q.hasRow || q.rate != 0.5 {
		t.Errorf("rate = %v (%v), want 0.5", q.rate, q.hasRow)
	}
	if !q.life || q.growth[2] != 1.2 || q.gwGrowth[2] != 1.2 {
		t.Errorf("accepted+delivered: growth %v, gateways %v, life %v; want 1.2, 1.2, true", q.growth, q.gwGrowth, q.life)
	}
	fs[2].lifeOK = false // not drained: compare the windows
	q = ratiosOfFigures(fs)
	if q.life || q.growth[2] != 1 || math.Abs(q.gwGrowth[2]-4.0/3) > 1e-9 {
		t.Errorf("in window: growth %v, gateways %v, life %v; want 1, 1.33, false", q.growth, q.gwGrowth, q.life)
	}
}

// TestMedianFigures: medians per figure; errors and lost are the worst
// run's, not the median's.
func TestMedianFigures(t *testing.T) {
	t.Parallel()
	fs := []figures{
		{rate: 10, p99: time.Millisecond, replicaCores: []float64{0.1, 0.2}, errors: 0, lost: 0, dbMeasured: true, lifeOK: true},
		{rate: 30, p99: 3 * time.Millisecond, replicaCores: []float64{0.3, 0.6}, errors: 5, lost: 0, dbMeasured: true, lifeOK: false},
		{rate: 20, p99: 2 * time.Millisecond, replicaCores: []float64{0.2, 0.4}, errors: 0, lost: 1, dbMeasured: true, lifeOK: true},
	}
	m := medianFigures(fs)
	if m.rate != 20 || m.p99 != 2*time.Millisecond || !slices.Equal(m.replicaCores, []float64{0.2, 0.4}) {
		t.Errorf("medians: rate %v, p99 %v, cores %v", m.rate, m.p99, m.replicaCores)
	}
	if m.errors != 5 || m.lost != 1 || m.lifeOK || !m.dbMeasured {
		t.Errorf("worst: errors %d, lost %d, lifeOK %v, dbMeasured %v", m.errors, m.lost, m.lifeOK, m.dbMeasured)
	}
	if fs[0].replicaCores[0] != 0.1 {
		t.Error("medianFigures changed its input")
	}
}

// TestRunFigures: each row's events/s as a share of SQLite×1's in the
// same run; rows without a SQLite×1 have none.
func TestRunFigures(t *testing.T) {
	t.Parallel()
	mk := func(v variant, events int) *row {
		return &row{target: "c", res: &loadResult{Measured: events, Window: 10 * time.Second},
			cl: clusterRow{variant: v, labelled: true}}
	}
	rows := []*row{mk(variant{backendSQLite, 1}, 80000), mk(variant{backendPostgres, 1}, 40000), mk(variant{backendPostgres, 2}, 30000)}
	fs := runFigures(rows, []int{0, 1, 2})
	for i, want := range []float64{1, 0.5, 0.375} {
		if fs[i].share != want {
			t.Errorf("%s: share %v, want %v", fs[i].v, fs[i].share, want)
		}
	}
	if fs := runFigures(rows, []int{1, 2}); fs[0].share != 0 {
		t.Errorf("without SQLite×1: share %v, want 0", fs[0].share)
	}
}
