package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/switchyard/switchyard/sinks/archive"
)

// quote quotes an identifier checked by archive.CheckColumnName.
func quote(name string) string { return archive.Quote(name) }

// addColumns adds the configured columns sessions lacks, with an index
// each, and records them with their expressions in archive_columns.
// Columns no longer configured stay, no longer filled.
func (s *Sink) addColumns(ctx context.Context, db *sql.DB) error {
	if len(s.columns) == 0 {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	existing := map[string]bool{}
	rows, err := tx.QueryContext(ctx, "SELECT name FROM pragma_table_info('sessions')")
	if err != nil {
		return err
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		existing[strings.ToLower(n)] = true
	}
	rows.Close()
	now := s.opts.Now().UTC().Format(TimeFormat)
	for _, c := range s.columns {
		if !existing[c.Name] {
			// No declared type: each value keeps the type of the
			// expression's result (REAL, INTEGER for booleans, TEXT).
			if _, err := tx.ExecContext(ctx, "ALTER TABLE sessions ADD COLUMN "+quote(c.Name)); err != nil {
				return fmt.Errorf("add column %s: %w", c.Name, err)
			}
		} else {
			var known int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM archive_columns WHERE name = ?", c.Name).Scan(&known); err != nil {
				return err
			}
			if known == 0 {
				return fmt.Errorf("column %q: sessions already has a column of that name that is not a configured column", c.Name)
			}
		}
		if _, err := tx.ExecContext(ctx, "CREATE INDEX IF NOT EXISTS "+quote("sessions_c_"+c.Name)+" ON sessions ("+quote(c.Name)+")"); err != nil {
			return fmt.Errorf("index column %s: %w", c.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO archive_columns (name, expr, added_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET expr = excluded.expr`, c.Name, c.Expr.String(), now); err != nil {
			return err
		}
	}
	return tx.Commit()
}
