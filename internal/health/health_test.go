package health

import (
	"bytes"
	"errors"
	"log/slog"
	"sync"
	"testing"
)

func TestWrites(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	w := New(log.With("path", "q.db"), "cannot write", "writes again")
	full, locked := errors.New("database or disk is full"), errors.New("database is locked")
	for i, step := range []struct {
		err error
		log string
	}{
		{nil, ""}, // healthy from the start: nothing to say
		{full, `level=WARN msg="cannot write" path=q.db err="database or disk is full"` + "\n"},
		{full, ""}, // the same fault again
		{locked, `level=WARN msg="cannot write" path=q.db err="database is locked"` + "\n"},
		{nil, `level=INFO msg="writes again" path=q.db` + "\n"},
		{nil, ""},
		{full, `level=WARN msg="cannot write" path=q.db err="database or disk is full"` + "\n"},
	} {
		logs.Reset()
		w.Note(step.err)
		if got := w.Err(); got != step.err {
			t.Errorf("step %d: Err() = %v, want %v", i, got, step.err)
		}
		if logs.String() != step.log {
			t.Errorf("step %d: logged %q, want %q", i, logs.String(), step.log)
		}
	}
}

// TestWritesConcurrent: Note and Err from many goroutines (for -race).
func TestWritesConcurrent(t *testing.T) {
	t.Parallel()
	w := New(slog.New(slog.DiscardHandler), "cannot write", "writes again")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 1000 {
				if (i+j)%3 == 0 {
					w.Note(errors.New("disk I/O error"))
				} else {
					w.Note(nil)
				}
				w.Err()
			}
		})
	}
	wg.Wait()
	w.Note(nil)
	if w.Err() != nil {
		t.Fatalf("Err() = %v after a write succeeded", w.Err())
	}
}
