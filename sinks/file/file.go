// Package file is the file and stdout sinks: each delivery appends one
// line of JSON, {"deliveryId": …, "attempt": …, "event": {…}}, for
// debugging routes and for piping events into other tools.
//
// Delivery is at least once, as everywhere: Send returns once the line
// is written (and, for a file with Fsync, on disk), and a crash between
// the write and the queue's acknowledgement writes the line again on the
// next attempt, with the same deliveryId. Readers drop repeats by it.
package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/sinks"
)

// Options configures a sink: Path for a file, else Writer (stdout).
type Options struct {
	// Path is the file lines are appended to; created (with its
	// directory) if missing, never truncated, and created anew when a
	// rotation renames or removes it.
	Path string
	// Fsync flushes each write to disk before Send returns; concurrent
	// sends share one fsync. Files only.
	Fsync bool
	// Writer receives the lines when Path is empty, such as os.Stdout.
	// Each line is one Write.
	Writer io.Writer
}

// Sink appends a line per delivery. Send is safe for concurrent use:
// lines never interleave.
type Sink struct {
	path  string
	fsync bool

	mu      sync.Mutex // guards the fields below
	w       io.Writer
	f       *os.File    // when writing to Path
	fi      os.FileInfo // f's, to notice when Path names another file
	size    int64       // of f after our last write
	written uint64      // lines written
	// durable: lines made durable when a rotated file was closed.
	durable uint64
	// torn: the last write left part of a line that could not be
	// taken back; the next line starts on a new one.
	torn   bool
	closed bool

	syncMu sync.Mutex
	synced uint64 // lines covered by the last fsync
}

var (
	_ sinks.Sink   = (*Sink)(nil)
	_ sinks.Opener = (*Sink)(nil)
)

// New returns a sink for opts; a file is opened by Open.
func New(opts Options) *Sink {
	s := &Sink{path: opts.Path, fsync: opts.Fsync && opts.Path != ""}
	if opts.Path == "" {
		s.w = opts.Writer
	}
	return s
}

// Open opens the file for appending, creating it and its directory.
func (s *Sink) Open(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open()
}

func (s *Sink) open() error {
	switch {
	case s.closed:
		return errors.New("sink closed")
	case s.w != nil:
		return nil
	case s.path == "":
		return errors.New("no file and no writer")
	}
	if dir := filepath.Dir(s.path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("create directory for %s: %w", s.path, err)
		}
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open %s: %w", s.path, err)
	}
	s.f, s.w, s.fi, s.size = f, f, fi, fi.Size()
	return nil
}

// reopen follows a rotation that renamed or removed the file (logrotate
// without copytruncate): when Path no longer names the open file, the
// open one is made durable (with Fsync) and closed, and Path opened
// anew. Without it, lines would go on into the rotated file.
func (s *Sink) reopen() error {
	if s.f == nil {
		return nil
	}
	fi, err := os.Stat(s.path)
	if err == nil && os.SameFile(fi, s.fi) {
		return nil
	}
	if s.fsync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("fsync %s before reopening it after rotation: %w", s.path, err)
		}
		s.durable = s.written
	}
	s.f.Close() // nothing is lost: every write went through, and is synced if asked
	s.f, s.w, s.fi, s.torn = nil, nil, nil, false
	return s.open()
}

// Line is one line of output.
type Line struct {
	DeliveryID string          `json:"deliveryId"`
	Attempt    int             `json:"attempt"`
	Event      json.RawMessage `json:"event"`
}

// Send appends the delivery's line and returns once it is written and,
// with Fsync, on disk.
func (s *Sink) Send(_ context.Context, d *sinks.Delivery) error {
	ev, err := d.Event.JSON()
	if err != nil {
		return sinks.Permanent(fmt.Errorf("encode event: %w", err))
	}
	line, err := sinks.MarshalJSON(Line{DeliveryID: d.ID, Attempt: d.Attempt, Event: ev})
	if err != nil {
		return sinks.Permanent(fmt.Errorf("encode line: %w", err))
	}
	line = append(line, '\n')

	s.mu.Lock()
	if err := s.open(); err != nil {
		s.mu.Unlock()
		return err
	}
	if err := s.reopen(); err != nil {
		s.mu.Unlock()
		return err
	}
	if s.torn {
		line = append([]byte{'\n'}, line...)
	}
	n, err := s.w.Write(line)
	if err != nil {
		s.torn = !s.undo(n)
		s.mu.Unlock()
		return fmt.Errorf("append to %s: %w", s.name(), err)
	}
	s.torn = false
	s.size += int64(n)
	s.written++
	seq := s.written
	s.mu.Unlock()

	if s.fsync {
		return s.sync(seq)
	}
	return nil
}

// undo removes the n bytes of a partly written line (disk full), so the
// next line does not continue it, and reports whether no part is left.
// Only if the file grew by exactly those bytes: never cut what another
// writer appended.
func (s *Sink) undo(n int) bool {
	if n == 0 {
		return true
	}
	if s.f == nil {
		return false // a writer such as stdout: what went out stays
	}
	fi, err := s.f.Stat()
	return err == nil && fi.Size() == s.size+int64(n) && s.f.Truncate(s.size) == nil
}

// sync makes lines up to seq durable. Sends that wait while another
// fsync runs are often covered by it, and return without their own.
func (s *Sink) sync(seq uint64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced >= seq {
		return nil
	}
	s.mu.Lock()
	f, upto, durable := s.f, s.written, s.durable
	s.mu.Unlock()
	if seq <= durable {
		return nil // synced when its rotated file was closed
	}
	if f == nil {
		return errors.New("sink closed before fsync")
	}
	if err := f.Sync(); err != nil {
		s.mu.Lock()
		durable = s.durable // f was rotated, synced and closed meanwhile?
		s.mu.Unlock()
		if seq <= durable {
			return nil
		}
		return fmt.Errorf("fsync %s: %w", s.path, err)
	}
	s.synced = upto
	return nil
}

func (s *Sink) name() string {
	if s.path != "" {
		return s.path
	}
	return "output"
}

// Close closes the file; a writer such as stdout is left open.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f, s.w = nil, nil
	return err
}

// Preview returns the line Send would write for ev, for switchyard test.
func (s *Sink) Preview(ev *event.Event) (any, error) {
	body, err := ev.JSON()
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return Line{DeliveryID: "dlv_preview", Attempt: 1, Event: body}, nil
}
