package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/switchyard/switchyard/sinks/archive"
	"github.com/switchyard/switchyard/sinks/archive/archivetest"
)

// TestConformance runs the archive sinks' shared suite on SQLite.
func TestConformance(t *testing.T) {
	t.Parallel()
	archivetest.Run(t, archivetest.Backend{
		New: func(t *testing.T) string { return filepath.Join(t.TempDir(), "archive.db") },
		Open: func(t *testing.T, path string, o archivetest.Options) archivetest.Sink {
			return New(Options{Path: path, Columns: o.Columns, Providers: o.Providers, Retention: o.Retention, Now: o.Now})
		},
		Reader: func(t *testing.T, path string) archive.Reader {
			r, err := OpenReader(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
	})
}
