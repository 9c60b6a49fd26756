package archive

import (
	"context"
	"log/slog"
	"time"
)

// PruneBatch is how many rows one pruning statement deletes: small, so
// the writers never wait long for it.
const PruneBatch = 500

// Pruner runs an archive's retention: Prune a minute after Run starts,
// then every Every, until Stop is closed, which also cancels a Prune
// under way. Each run that deletes rows is logged at info, each that
// fails at warn.
type Pruner struct {
	Stop  <-chan struct{}
	Every time.Duration
	// Retention is the archive's, for the log.
	Retention time.Duration
	Log       *slog.Logger
	// Prune deletes what the retention drops and reports how many rows.
	Prune func(ctx context.Context) (events, sessions int64, err error)
}

// Run prunes until Stop is closed. Run it in one goroutine.
func (p Pruner) Run() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-p.Stop
		cancel()
	}()
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-p.Stop:
			return
		case <-t.C:
		}
		if events, sessions, err := p.Prune(ctx); err != nil && ctx.Err() == nil {
			p.Log.Warn("prune archive", "err", err)
		} else if events+sessions > 0 {
			p.Log.Info("pruned archive", "events", events, "sessions", sessions, "retention", p.Retention)
		}
		t.Reset(p.Every)
	}
}

// DeleteInBatches runs del, which deletes at most PruneBatch rows and
// reports how many, until a run deletes fewer. It returns how many rows
// the runs that succeeded deleted.
func DeleteInBatches(del func() (int64, error)) (int64, error) {
	var total int64
	for {
		n, err := del()
		if err != nil {
			return total, err
		}
		total += n
		if n < PruneBatch {
			return total, nil
		}
	}
}
