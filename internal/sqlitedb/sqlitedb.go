// Package sqlitedb opens SQLite databases the way Switchyard uses them
// (WAL, a busy timeout, immediate write transactions) and migrates their
// schema with PRAGMA user_version.
package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers "sqlite3"
)

// Options configures a connection pool.
type Options struct {
	// Synchronous is SQLite's synchronous level: FULL or NORMAL.
	Synchronous string
	BusyTimeout time.Duration
	// QueryOnly opens a pool that cannot write.
	QueryOnly bool
	// ForeignKeys enforces REFERENCES clauses.
	ForeignKeys bool
}

// escaper escapes the characters that end or change a file name inside a
// SQLite URI ("events#1.db" would otherwise open "events").
var escaper = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// DSN returns the go-sqlite3 data source name for path.
func DSN(path string, o Options) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_txlock", "immediate")
	if o.Synchronous != "" {
		q.Set("_synchronous", o.Synchronous)
	}
	busy := o.BusyTimeout
	if busy <= 0 {
		busy = 5 * time.Second
	}
	q.Set("_busy_timeout", fmt.Sprint(busy.Milliseconds()))
	if o.ForeignKeys {
		q.Set("_foreign_keys", "1")
	}
	if o.QueryOnly {
		q.Set("_query_only", "1")
	}
	return "file:" + escaper.Replace(path) + "?" + q.Encode()
}

// Open opens a pool for path and checks that the file can be opened.
func Open(ctx context.Context, path string, o Options) (*sql.DB, error) {
	db, err := sql.Open("sqlite3", DSN(path, o))
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Migrate applies migrations[v:] in one transaction, where v is the
// database's user_version, and sets user_version to len(migrations).
// migrations[i] moves the schema from version i to i+1; released
// migrations never change. A database newer than this binary is an error.
func Migrate(ctx context.Context, db *sql.DB, migrations []string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this switchyard knows (%d): upgrade switchyard", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return err
	}
	return tx.Commit()
}
