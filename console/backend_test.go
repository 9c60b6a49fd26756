package console_test

import (
	"context"
	"testing"

	"github.com/switchyard/switchyard/console/demo"
	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/queue/postgres"
	"github.com/switchyard/switchyard/queue/sqlite"
)

// The console works on every storage backend: each test that reads a
// real store runs once per backend, as a subtest named after it, with
// one body. PostgreSQL is one throwaway cluster for the package
// (pgtest.Shared) and a fresh database per gateway or store; outside CI,
// without PostgreSQL installed, its subtests skip with one line.

// backend is a storage backend the console's tests run on.
type backend struct {
	name     string
	postgres bool
}

var backends = []backend{{name: "sqlite"}, {name: "postgres", postgres: true}}

// eachBackend runs fn as a subtest on each backend, the backends in
// parallel: a gateway and a browser tab each.
func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// start runs a demo gateway on b for one test, in a temporary directory
// and, on PostgreSQL, a fresh database.
func (b backend) start(t testing.TB) *demo.Gateway {
	t.Helper()
	var o demo.Options
	if b.postgres {
		o.PostgresDSN = pgtest.Shared(t).DSN(t)
	}
	g, err := demo.Start(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	return g
}

// open opens an empty store on b, closed when the test ends, and
// returns with it its database's DSN on PostgreSQL.
func (b backend) open(t testing.TB) (s queue.Store, dsn string) {
	t.Helper()
	var err error
	if b.postgres {
		dsn = pgtest.Shared(t).DSN(t)
		s, err = postgres.Open(context.Background(), dsn, postgres.Options{})
	} else {
		s, err = sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{Synchronous: "normal"})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dsn
}
