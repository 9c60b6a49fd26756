package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/sinks/archive"
	"github.com/switchyard/switchyard/sinks/archive/archivetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// restrictedDSN is a fresh database that a role which may create tables
// in its public schema, but not extensions in the database, reaches:
// the archive cannot install unaccent and folds with its own table.
func restrictedDSN(t testing.TB, c *pgtest.Cluster) string {
	t.Helper()
	dsn := c.DSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DO $$ BEGIN
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'archiver') THEN CREATE ROLE archiver LOGIN; END IF;
	END $$`); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `GRANT USAGE, CREATE ON SCHEMA public TO archiver`); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(dsn, "postgres@", "archiver@", 1)
}

func backend(c *pgtest.Cluster, restricted bool) archivetest.Backend {
	return archivetest.Backend{
		New: func(t *testing.T) string {
			if restricted {
				return restrictedDSN(t, c)
			}
			return c.DSN(t)
		},
		Open: func(t *testing.T, dsn string, o archivetest.Options) archivetest.Sink {
			s, err := New(Options{DSN: dsn, Columns: o.Columns, Providers: o.Providers, Retention: o.Retention, Now: o.Now})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Reader: func(t *testing.T, dsn string) archive.Reader {
			r, err := OpenReader(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
		Replicas: true,
	}
}

// TestConformance runs the archive sinks' shared suite on PostgreSQL:
// as the database's owner (accents folded by unaccent), and as a role
// that may not install extensions (folded by switchyard's own table).
func TestConformance(t *testing.T) {
	c := pgtest.Shared(t)
	t.Run("unaccent", func(t *testing.T) { t.Parallel(); archivetest.Run(t, backend(c, false)) })
	t.Run("own folding", func(t *testing.T) { t.Parallel(); archivetest.Run(t, backend(c, true)) })
}
