package archive

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestPruner runs a pruner in a synctest bubble: the first run comes a
// minute after the start, the next ones every Every; a run that deletes
// rows is logged at info, one that fails at warn, and closing Stop
// cancels a run under way (not logged) and ends the pruner.
func TestPruner(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var logs bytes.Buffer
		var runs []time.Duration
		start := time.Now()
		outcomes := []func(ctx context.Context) (int64, int64, error){
			func(context.Context) (int64, int64, error) { return 2, 1, nil },
			func(context.Context) (int64, int64, error) { return 0, 0, errors.New("disk I/O error") },
			func(context.Context) (int64, int64, error) { return 0, 0, nil },
			func(ctx context.Context) (int64, int64, error) { <-ctx.Done(); return 0, 0, ctx.Err() },
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		p := Pruner{
			Stop: stop, Every: 10 * time.Minute, Retention: 24 * time.Hour,
			Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}})),
			Prune: func(ctx context.Context) (int64, int64, error) {
				mu.Lock()
				i := len(runs)
				runs = append(runs, time.Since(start))
				mu.Unlock()
				return outcomes[i](ctx)
			},
		}
		go func() {
			p.Run()
			close(done)
		}()
		time.Sleep(31 * time.Minute) // runs at 1m, 11m, 21m, 31m (blocked)
		synctest.Wait()
		close(stop)
		<-done
		want := []time.Duration{time.Minute, 11 * time.Minute, 21 * time.Minute, 31 * time.Minute}
		if len(runs) != len(want) {
			t.Fatalf("runs at %v, want %v", runs, want)
		}
		for i := range want {
			if runs[i] != want[i] {
				t.Fatalf("runs at %v, want %v", runs, want)
			}
		}
		wantLog := `level=INFO msg="pruned archive" events=2 sessions=1 retention=24h0m0s
level=WARN msg="prune archive" err="disk I/O error"
`
		if logs.String() != wantLog {
			t.Errorf("logged:\n%s\nwant:\n%s", logs.String(), wantLog)
		}
	})
}

func TestDeleteInBatches(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		batches []int64
		fail    int // the run that fails, from 1; 0: none
		want    int64
	}{
		{"nothing to delete", []int64{0}, 0, 0},
		{"less than a batch", []int64{7}, 0, 7},
		{"batches then a short one", []int64{PruneBatch, PruneBatch, 3}, 0, 2*PruneBatch + 3},
		{"exactly full batches", []int64{PruneBatch, 0}, 0, PruneBatch},
		{"fails after a batch", []int64{PruneBatch, PruneBatch}, 2, PruneBatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			got, err := DeleteInBatches(func() (int64, error) {
				calls++
				if calls == tc.fail {
					return 0, boom
				}
				if calls > len(tc.batches) {
					t.Fatalf("run %d after a short batch", calls)
				}
				return tc.batches[calls-1], nil
			})
			if got != tc.want || (tc.fail > 0) != errors.Is(err, boom) || (tc.fail == 0 && err != nil) {
				t.Errorf("deleted %d, %v; want %d (fail at run %d)", got, err, tc.want, tc.fail)
			}
			if tc.fail == 0 && calls != len(tc.batches) {
				t.Errorf("%d runs, want %d", calls, len(tc.batches))
			}
		})
	}
}
