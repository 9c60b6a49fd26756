package pgtest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
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

// TestNew starts a cluster as a benchmark does, without a test's
// cleanup: its settings reach the server, PID is the server's, and
// Remove stops it and deletes its files.
func TestNew(t *testing.T) {
	Require(t)
	c, err := New("work_mem=5MB")
	if err != nil {
		t.Fatal(err)
	}
	removed := false
	defer func() {
		if !removed {
			c.Remove()
		}
	}()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var workMem string
	var backend int
	if err := conn.QueryRow(ctx, "SELECT current_setting('work_mem'), pg_backend_pid()").Scan(&workMem, &backend); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if workMem != "5MB" {
		t.Errorf("work_mem = %q, want 5MB (the setting given to New)", workMem)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", backend))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if fields[1] != strconv.Itoa(c.PID()) {
		t.Errorf("the backend's parent is %s, PID() is %d", fields[1], c.PID())
	}
	c.Remove()
	removed = true
	if c.PID() != 0 {
		t.Errorf("PID() = %d after Remove, want 0", c.PID())
	}
	if _, err := os.Stat(c.Dir()); !os.IsNotExist(err) {
		t.Errorf("%s after Remove: %v, want it gone", c.Dir(), err)
	}
}
