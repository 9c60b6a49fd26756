// Package archive is what the archive sinks (sqlite, postgres) share,
// so that the same events give the same rows in either: how an event
// becomes an events row and an update of its session, the rule merging
// a session's updates in any order, configured columns, the export
// formats and their where filter, and the search language.
package archive

import (
	"context"
	"io"
	"time"
)

// TimeFormat is how times are written: ISO 8601 in UTC with
// milliseconds, which sorts as text. The sqlite archive stores times so;
// the postgres archive stores timestamptz values and exports them so.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// Hit is a session found by a search.
type Hit struct {
	SessionID   string
	Channel     string
	Title       string
	ForwardType string
	LastEventAt string
	// Snippet is the matching text with matches in [brackets].
	Snippet string
}

// ExportOptions selects what an export writes.
type ExportOptions struct {
	// Format is "csv" or "jsonl".
	Format string
	// Table is "sessions" (default) or "events".
	Table string
	// Since keeps events with a timestamp, or sessions with a last event,
	// at or after it; zero keeps all.
	Since time.Time
	// Where, compiled by CompileWhere, keeps the rows it is true for.
	Where *Where
}

// Reader is an archive opened for reading: what `switchyard archive`
// does with either backend.
type Reader interface {
	Search(ctx context.Context, query string, limit int) ([]Hit, error)
	Columns(ctx context.Context, table string) ([]string, error)
	Export(ctx context.Context, w io.Writer, o ExportOptions) (int, error)
	Close() error
}
