package file

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/sinks"
)

func testEvent(i int) *event.Event {
	return &event.Event{
		ID:         fmt.Sprintf("evt_%d", i),
		Source:     "darwin",
		EventType:  "session.closed",
		Timestamp:  time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC),
		Subject:    "sess-1",
		ReceivedAt: time.Date(2026, 11, 21, 14, 0, 1, 0, time.UTC),
		Data:       json.RawMessage(`{"summary":"<b>cobrança</b> & co","n":1}`),
	}
}

// lines reads path's lines, each decoded; a line that does not parse
// fails the test.
func lines(t *testing.T, data []byte) []Line {
	t.Helper()
	var out []Line
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d does not parse: %v\n%s", len(out)+1, err, sc.Bytes())
		}
		out = append(out, l)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatal("output does not end with a newline")
	}
	return out
}

func openSink(t *testing.T, opts Options) *Sink {
	t.Helper()
	s := New(opts)
	if err := s.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFileLines(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "deliveries.jsonl")
	s := openSink(t, Options{Path: path, Fsync: true})
	for i := 1; i <= 3; i++ {
		if err := s.Send(t.Context(), &sinks.Delivery{ID: fmt.Sprintf("dlv_%d", i), Attempt: i, Event: testEvent(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Send returned: the lines are there, before Close.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := lines(t, data)
	if len(got) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(got), data)
	}
	want, _ := testEvent(2).JSON()
	if got[1].DeliveryID != "dlv_2" || got[1].Attempt != 2 || !bytes.Equal(got[1].Event, want) {
		t.Errorf("line 2 = %+v", got[1])
	}
	if !bytes.Contains(data, []byte(`"<b>cobrança</b> & co"`)) {
		t.Errorf("event text was escaped:\n%s", data)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), &sinks.Delivery{ID: "late", Attempt: 1, Event: testEvent(9)}); err == nil {
		t.Error("Send after Close succeeded")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
	}
}

// Reopening appends: a restart never truncates what was written.
func TestFileReopenAppends(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "out.jsonl")
	for run := 1; run <= 3; run++ {
		s := openSink(t, Options{Path: path})
		for i := range 2 {
			if err := s.Send(t.Context(), &sinks.Delivery{ID: fmt.Sprintf("dlv_%d_%d", run, i), Attempt: 1, Event: testEvent(i)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	got := lines(t, data)
	if len(got) != 6 || got[0].DeliveryID != "dlv_1_0" || got[5].DeliveryID != "dlv_3_1" {
		t.Fatalf("lines after three runs:\n%s", data)
	}
}

// Concurrent sends each write one whole line.
func TestFileConcurrentSends(t *testing.T) {
	t.Parallel()
	for _, fsync := range []bool{true, false} {
		t.Run(fmt.Sprintf("fsync=%v", fsync), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "out.jsonl")
			s := openSink(t, Options{Path: path, Fsync: fsync})
			defer s.Close()
			const workers, each = 16, 40
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						ev := testEvent(i)
						ev.Data = json.RawMessage(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 100*w+i)))
						if err := s.Send(t.Context(), &sinks.Delivery{ID: fmt.Sprintf("dlv_%d_%d", w, i), Attempt: 1, Event: ev}); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			data, _ := os.ReadFile(path)
			seen := map[string]bool{}
			for _, l := range lines(t, data) {
				if seen[l.DeliveryID] {
					t.Errorf("%s twice", l.DeliveryID)
				}
				seen[l.DeliveryID] = true
			}
			if len(seen) != workers*each {
				t.Fatalf("%d distinct lines, want %d", len(seen), workers*each)
			}
		})
	}
}

// syncWriter is a bytes.Buffer safe for concurrent writes, standing in
// for stdout.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func TestWriterLines(t *testing.T) {
	t.Parallel()
	var w syncWriter
	s := openSink(t, Options{Writer: &w, Fsync: true}) // fsync does not apply to a writer
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if err := s.Send(t.Context(), &sinks.Delivery{ID: fmt.Sprintf("dlv_%d", i), Attempt: 1, Event: testEvent(i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := lines(t, w.buf.Bytes()); len(got) != 20 {
		t.Fatalf("%d lines, want 20", len(got))
	}
}

// A failing write is an error (retried), not a silent loss.
func TestFileWriteError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := New(Options{Path: dir}) // a directory cannot be opened for writing
	if err := s.Open(t.Context()); err == nil {
		t.Fatal("Open succeeded on a directory")
	}
	if err := s.Send(t.Context(), &sinks.Delivery{ID: "d", Attempt: 1, Event: testEvent(1)}); err == nil {
		t.Fatal("Send succeeded without a file")
	}
}

func BenchmarkSend(b *testing.B) {
	for _, fsync := range []bool{false, true} {
		b.Run(fmt.Sprintf("fsync=%v", fsync), func(b *testing.B) {
			s := New(Options{Path: filepath.Join(b.TempDir(), "out.jsonl"), Fsync: fsync})
			defer s.Close()
			d := &sinks.Delivery{ID: "dlv_1", Attempt: 1, Event: testEvent(1)}
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Send(b.Context(), d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPreviewIsTheLineWritten: switchyard test shows the line Send
// writes, but for the delivery's id and attempt.
func TestPreviewIsTheLineWritten(t *testing.T) {
	t.Parallel()
	var w syncWriter
	s := openSink(t, Options{Writer: &w})
	p, err := s.Preview(testEvent(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), &sinks.Delivery{ID: "dlv_preview", Attempt: 1, Event: testEvent(1)}); err != nil {
		t.Fatal(err)
	}
	preview, _ := sinks.MarshalJSON(p)
	if got := bytes.TrimSuffix(w.buf.Bytes(), []byte("\n")); !bytes.Equal(preview, got) {
		t.Errorf("preview %s\nwrote   %s", preview, got)
	}
}

// A rotation that renames or removes the file (logrotate without
// copytruncate) is followed: the next line goes to a new file at Path,
// not on into the rotated one, and the lines before it stay there.
func TestFileFollowsRotation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		rotate func(path string) error
	}{
		{"rename", func(path string) error { return os.Rename(path, path+".1") }},
		{"remove", os.Remove},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "out.jsonl")
			s := openSink(t, Options{Path: path, Fsync: true})
			defer s.Close()
			send := func(id string) {
				t.Helper()
				if err := s.Send(t.Context(), &sinks.Delivery{ID: id, Attempt: 1, Event: testEvent(1)}); err != nil {
					t.Fatal(err)
				}
			}
			send("before")
			if err := tc.rotate(path); err != nil {
				t.Fatal(err)
			}
			send("after")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("no file at the path after rotation: %v", err)
			}
			if got := lines(t, data); len(got) != 1 || got[0].DeliveryID != "after" {
				t.Errorf("new file:\n%s", data)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
				t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
			}
			if old, err := os.ReadFile(path + ".1"); err == nil {
				if got := lines(t, old); len(got) != 1 || got[0].DeliveryID != "before" {
					t.Errorf("rotated file:\n%s", old)
				}
			}
		})
	}
}

// A write that fails part way through a line, where the part cannot be
// taken back (a pipe), does not glue the next line onto it: the next
// line starts on a line of its own.
func TestWriterTornLine(t *testing.T) {
	t.Parallel()
	w := &tornWriter{failAfter: 10}
	s := openSink(t, Options{Writer: w})
	if err := s.Send(t.Context(), &sinks.Delivery{ID: "torn", Attempt: 1, Event: testEvent(1)}); err == nil {
		t.Fatal("Send succeeded though the write failed")
	}
	if err := s.Send(t.Context(), &sinks.Delivery{ID: "whole", Attempt: 2, Event: testEvent(1)}); err != nil {
		t.Fatal(err)
	}
	out := w.buf.String()
	last := out[strings.LastIndex(strings.TrimSuffix(out, "\n"), "\n")+1:]
	var l Line
	if err := json.Unmarshal([]byte(last), &l); err != nil || l.DeliveryID != "whole" {
		t.Fatalf("last line %q does not stand alone (%v); output:\n%s", last, err, out)
	}
}

// tornWriter writes failAfter bytes of its first write, then fails it.
type tornWriter struct {
	buf       bytes.Buffer
	failAfter int
	failed    bool
}

func (w *tornWriter) Write(p []byte) (int, error) {
	if !w.failed {
		w.failed = true
		n, _ := w.buf.Write(p[:w.failAfter])
		return n, fmt.Errorf("broken pipe")
	}
	return w.buf.Write(p)
}
