// Package health keeps the health of a store's writes: the storage
// fault the last write met, for a health check, logged once per change
// of error rather than once per write.
package health

import (
	"log/slog"
	"sync"
	"sync/atomic"
)

// Writes is the health of a store's writes; it starts healthy. It is
// safe for concurrent use.
type Writes struct {
	log                *slog.Logger
	failing, recovered string

	err atomic.Pointer[error]
	mu  sync.Mutex
	// last is the error last logged, "" while healthy.
	last string
}

// New returns the health of a store's writes, logged to log (with the
// attributes naming the store): failing at warn, with the error, at the
// first fault and at each different one; recovered at info at the first
// write that succeeds after a fault.
func New(log *slog.Logger, failing, recovered string) *Writes {
	return &Writes{log: log, failing: failing, recovered: recovered}
}

// Note records the outcome of a write: the storage fault it met, or nil
// when it succeeded. Errors of the write's own (bad data) are not the
// store's health: leave them out.
func (w *Writes) Note(err error) {
	if err == nil {
		if w.err.Load() == nil {
			return
		}
		w.err.Store(nil)
	} else {
		w.err.Store(&err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil && w.last != "":
		w.log.Info(w.recovered)
		w.last = ""
	case err != nil && err.Error() != w.last:
		w.log.Warn(w.failing, "err", err)
		w.last = err.Error()
	}
}

// Err returns the fault the last write met, nil when it succeeded.
func (w *Writes) Err() error {
	if p := w.err.Load(); p != nil {
		return *p
	}
	return nil
}
