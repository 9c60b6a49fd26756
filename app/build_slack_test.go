package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/sinks"
)

// TestSlackStateFollowsStorage: with storage.backend postgres a Slack
// sink keeps its threads in the queue's database (storage.dsn), shared by
// the replicas; with sqlite, in storage.dir/slack.db.
func TestSlackStateFollowsStorage(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.DSN(t)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.yaml")
			os.WriteFile(path, []byte(fmt.Sprintf(`storage: {backend: %s, dsn: %q, dir: %q}
sources: [{name: darwin, provider: darwin, secret: x}]
sinks: [{name: ops, type: slack, token: xoxb-1, channel: "#ops"}]
routes: [{name: all, match: ["*"], to: [ops]}]
`, backend, dsn, dir)), 0o600)
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := Build(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer plan.Close()
			if err := plan.Sinks[0].Sink.(sinks.Opener).Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, statErr := os.Stat(filepath.Join(dir, "slack.db"))
			conn, err := pgx.Connect(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			var inPostgres bool
			if err := conn.QueryRow(context.Background(), `SELECT to_regclass('slack_threads') IS NOT NULL`).Scan(&inPostgres); err != nil {
				t.Fatal(err)
			}
			if backend == "postgres" && (!inPostgres || statErr == nil) {
				t.Errorf("postgres: slack_threads in the database %v, slack.db written %v; want the database only", inPostgres, statErr == nil)
			}
			if backend == "sqlite" && (inPostgres || statErr != nil) {
				t.Errorf("sqlite: slack_threads in the database %v, slack.db: %v; want slack.db only", inPostgres, statErr)
			}
		})
	}
}
