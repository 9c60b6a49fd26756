package sqlitedb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenPathsWithURICharacters(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"events#1.db", "100%.db", "a?mode=ro.db", "plain.db", "spa ce.db"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), name)
			db, err := Open(context.Background(), path, Options{Synchronous: "FULL"})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := Migrate(context.Background(), db, []string{"CREATE TABLE t (x)"}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("the database is not at %s: %v", path, err)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v1 := []string{"CREATE TABLE a (x)"}
	v2 := append(v1, "CREATE TABLE b (y)")
	for _, m := range [][]string{v1, v1, v2, v2} {
		if err := Migrate(ctx, db, m); err != nil {
			t.Fatal(err)
		}
	}
	var version int
	db.QueryRow("PRAGMA user_version").Scan(&version)
	if version != 2 {
		t.Fatalf("user_version = %d, want 2", version)
	}
	if err := Migrate(ctx, db, v1); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("downgrade: %v", err)
	}
	bad := append(v2, "CREATE TABLE a (z)") // fails: a exists
	if err := Migrate(ctx, db, bad); err == nil || !strings.Contains(err.Error(), "migration 3") {
		t.Fatalf("failing migration: %v", err)
	}
	db.QueryRow("PRAGMA user_version").Scan(&version)
	if version != 2 {
		t.Fatalf("a failed migration changed user_version to %d", version)
	}
}
