package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// TestClusters starts the shared cluster and one of the test's own, and
// checks each serves a fresh database with fsync on; a killed cluster
// starts again with its data.
func TestClusters(t *testing.T) {
	for name, c := range map[string]*Cluster{"shared": Shared(t), "own": Start(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dsn := c.DSN(t)
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			var fsync string
			if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "on" {
				t.Fatalf("fsync = %q, %v", fsync, err)
			}
			if _, err := conn.Exec(ctx, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)"); err != nil {
				t.Fatal(err)
			}
			conn.Close(ctx)
			if name != "own" {
				return
			}
			c.Kill()
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			conn, err = pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var x int
			if err := conn.QueryRow(ctx, "SELECT x FROM t").Scan(&x); err != nil || x != 42 {
				t.Fatalf("after a crash: %d, %v", x, err)
			}
		})
	}
}
