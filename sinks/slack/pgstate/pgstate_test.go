package pgstate

import (
	"context"
	"testing"

	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/sinks/slack"
	"github.com/switchyard/switchyard/sinks/slack/statetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openState(t testing.TB, dsn string) slack.State {
	t.Helper()
	st, err := Open(dsn, Options{})(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestConformance runs the State contract on PostgreSQL, its handles
// standing for replicas on one database.
func TestConformance(t *testing.T) {
	c := pgtest.Shared(t)
	statetest.Run(t, statetest.Backend{Replicas: true, Durable: true, New: func(t *testing.T) func(*testing.T) slack.State {
		dsn := c.DSN(t)
		return func(t *testing.T) slack.State { return openState(t, dsn) }
	}})
}
