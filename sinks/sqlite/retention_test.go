package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/sinks/archive"
)

func TestPrune(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "archive.db")
	now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC) // the story is from Nov 2026
	s := New(Options{Path: path, Retention: 180 * 24 * time.Hour, Now: func() time.Time { return now }})
	ctx := context.Background()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// old: every event older than 180 days. mixed: opened long ago, but
	// its last event is recent. More old events than one batch deletes.
	var sends []func() error
	for _, ev := range storyEvents(t, "old") {
		sends = append(sends, func() error { return s.Send(ctx, delivery(ev, 1)) })
	}
	for i, ev := range storyEvents(t, "mixed") {
		if i >= 3 {
			ev.Timestamp = now.Add(-time.Duration(6-i) * 24 * time.Hour)
		}
		sends = append(sends, func() error { return s.Send(ctx, delivery(ev, 1)) })
	}
	fn := load(t, "function_call", "x").ev
	for i := range archive.PruneBatch*2 + 7 {
		ev := *fn
		ev.ID = fmt.Sprintf("evt_fn_%04d", i)
		sends = append(sends, func() error { return s.Send(ctx, delivery(&ev, 1)) })
	}
	var wg sync.WaitGroup
	for _, send := range sends {
		wg.Go(func() {
			if err := send(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	events, sessions, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if wantEvents := int64(6 + 3 + archive.PruneBatch*2 + 7); events != wantEvents || sessions != 1 {
		t.Errorf("pruned %d events, %d sessions; want %d, 1", events, sessions, wantEvents)
	}
	db := reader(t, path)
	if n := count(t, db); n != 3 {
		t.Errorf("events left = %d, want 3", n)
	}
	rows := sessionRows(t, db)
	if _, ok := rows["old"]; ok || len(rows) != 1 {
		t.Errorf("sessions left: %v; want only mixed", rows)
	}
	// The pruned session is out of the search index too.
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sessions_fts WHERE sessions_fts MATCH 'reembolso'").Scan(&n); err != nil || n != 1 {
		t.Errorf("search after pruning: %d, %v; want 1", n, err)
	}
	if events, sessions, err := s.Prune(ctx); err != nil || events+sessions != 0 {
		t.Errorf("second prune: %d, %d, %v; want nothing", events, sessions, err)
	}
}

func TestPruneWithoutRetention(t *testing.T) {
	t.Parallel()
	s := openSink(t, filepath.Join(t.TempDir(), "archive.db"))
	if err := s.Send(context.Background(), delivery(load(t, "session_opened", "evt_1").ev, 1)); err != nil {
		t.Fatal(err)
	}
	if events, sessions, err := s.Prune(context.Background()); err != nil || events+sessions != 0 {
		t.Errorf("Prune = %d, %d, %v; want nothing pruned", events, sessions, err)
	}
}
