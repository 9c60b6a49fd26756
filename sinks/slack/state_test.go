package slack_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/switchyard/switchyard/sinks/slack"
	"github.com/switchyard/switchyard/sinks/slack/statetest"
)

// TestStateConformance runs the State contract on the in-memory and the
// SQLite state (one process each).
func TestStateConformance(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		statetest.Run(t, statetest.Backend{New: func(t *testing.T) func(*testing.T) slack.State {
			st := slack.NewMemoryState()
			return func(*testing.T) slack.State { return st }
		}})
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		statetest.Run(t, statetest.Backend{Durable: true, New: func(t *testing.T) func(*testing.T) slack.State {
			path := filepath.Join(t.TempDir(), "slack.db")
			return func(t *testing.T) slack.State {
				st, err := slack.SQLiteState(path)(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				return st
			}
		}})
	})
}
