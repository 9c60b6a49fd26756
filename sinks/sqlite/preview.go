package sqlite

import (
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/sinks/archive"
)

// Rows is what archiving an event writes (see archive.Rows).
type Rows = archive.Rows

// Preview returns the rows Send would write for ev, without opening
// the archive: a *Rows.
func (s *Sink) Preview(ev *event.Event) (any, error) {
	return s.mapper.Preview(ev), nil
}
