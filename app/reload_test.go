package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/logbuf"
	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/receiver/darwin"
)

// reloadEnv is a gateway whose configuration is a file the test
// rewrites: one darwin source, HTTP sinks "a" and "b" on two recorders.
type reloadEnv struct {
	dir, path string
	a, b      *recorder
	logs      *logbuf.Buffer
}

func newReloadEnv(t *testing.T) *reloadEnv {
	e := &reloadEnv{dir: t.TempDir(), a: newRecorder(t), b: newRecorder(t), logs: &logbuf.Buffer{}}
	e.path = filepath.Join(e.dir, "switchyard.yaml")
	return e
}

// config writes a configuration: sinks names the sinks present (a, b),
// to the sinks the one route "r" sends everything to; extra is appended
// (more routes, or other sections).
func (e *reloadEnv) config(t *testing.T, sinks, to []string, extra string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "server: {listen: \"127.0.0.1:0\", shutdown_timeout: 5s}\nstorage: {dir: %s/data}\n", e.dir)
	b.WriteString("sources:\n  - {name: darwin, provider: darwin, secret: \"${SECRET}\"}\nsinks:\n")
	for _, s := range sinks {
		url := e.a.URL
		if s == "b" {
			url = e.b.URL
		}
		fmt.Fprintf(&b, "  - {name: %s, type: http, url: %s/hook, retry: {initial_backoff: 20ms, max_backoff: 100ms}}\n", s, url)
	}
	fmt.Fprintf(&b, "routes:\n  - {name: r, match: [\"*\"], to: [%s]}\n%s", strings.Join(to, ", "), extra)
	if err := os.WriteFile(e.path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (e *reloadEnv) load() (*config.Config, error) {
	data, err := os.ReadFile(e.path)
	if err != nil {
		return nil, err
	}
	return config.Parse(e.path, data, func(k string) (string, bool) {
		if k == "SECRET" {
			return secret, true
		}
		return "", false
	})
}

func (e *reloadEnv) start(t *testing.T, opts Options) *App {
	t.Helper()
	cfg, err := e.load()
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Load = e.load
	return serveWith(t, cfg, opts)
}

// postSigned posts body signed; safe in any goroutine.
func postSigned(client *http.Client, addr string, body []byte) (int, error) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/darwin", bytes.NewReader(body))
	req.Header.Set("X-Signature", darwin.Sign([]byte(secret), body))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// sinkOf returns the sinks an event's deliveries go to.
func sinkOf(t *testing.T, a *App, id string) []string {
	t.Helper()
	ds, err := deliveriesOf(a.Store(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		out = append(out, d.Sink)
	}
	return out
}

// TestReloadUnderLoad reloads five times while 8 clients post signed
// events: every request is answered 200, each event is routed by the
// rules before or after a swap (one delivery, to a or b), a sink
// removed and added again resumes its waiting deliveries, and
// everything is delivered.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t)
	e.config(t, []string{"a", "b"}, []string{"a"}, "")
	a := e.start(t, Options{})

	var (
		stop     atomic.Bool
		sent     atomic.Int64
		failures = make(chan string, 100)
		wg       sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range 8 {
		wg.Go(func() {
			for n := 0; !stop.Load(); n++ {
				status, err := postSigned(client, a.Addr(), sessionEvent(t, fmt.Sprintf("load-%d", w), n))
				if err != nil || status != http.StatusOK {
					select {
					case failures <- fmt.Sprintf("status %d, err %v", status, err):
					default:
					}
				}
				sent.Add(1)
			}
		})
	}
	steps := []struct {
		sinks, to []string
		extra     string
	}{
		{[]string{"a", "b"}, []string{"b"}, ""},
		{[]string{"b"}, []string{"b"}, ""}, // a removed: its waiting deliveries are held
		{[]string{"a", "b"}, []string{"a"}, ""},
		{[]string{"a", "b"}, []string{"b"}, "  - {name: r2, match: [\"session.closed\"], to: [a]}\n"},
		{[]string{"a", "b"}, []string{"a"}, ""},
	}
	for i, s := range steps {
		before := sent.Load()
		eventually(t, "requests between reloads", func() bool { return sent.Load() >= before+20 })
		e.config(t, s.sinks, s.to, s.extra)
		if _, err := a.Reload(context.Background()); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	before := sent.Load()
	eventually(t, "requests after the last reload", func() bool { return sent.Load() >= before+20 })
	stop.Store(true)
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("a request failed during reloads: %s", f)
	}

	ctx := context.Background()
	events, err := a.Store().Events(ctx, queue.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(events)) != sent.Load() {
		t.Errorf("stored %d events, sent %d", len(events), sent.Load())
	}
	for _, ev := range events {
		if s := sinkOf(t, a, ev.ID); len(s) != 1 {
			t.Fatalf("event %s has deliveries to %v, want one (to a or b)", ev.ID, s)
		}
	}
	eventually(t, "every delivery delivered", func() bool { return pendingOf(a.Store()) == 0 })
	if got := len(e.a.Bodies()) + len(e.b.Bodies()); got < len(events) {
		t.Errorf("sinks received %d events, want %d", got, len(events))
	}
	if len(e.a.Bodies()) == 0 || len(e.b.Bodies()) == 0 {
		t.Errorf("a got %d, b got %d: both routings should have been used", len(e.a.Bodies()), len(e.b.Bodies()))
	}

	// After the last reload, new events go to a only.
	id := mustAccept(t, a, sessionEvent(t, "after", 1))
	if s := sinkOf(t, a, id); len(s) != 1 || s[0] != "a" {
		t.Errorf("after the last reload: routed to %v, want [a]", s)
	}
	logs := e.logs.String()
	for _, want := range []string{`msg="configuration reloaded" sinks=-a`, `sinks=+a routes=~r`, `routes="+r2 ~r"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
}

// TestReloadRejectsBadConfig: a configuration with problems is refused
// whole, each problem logged at its file:line:col, and the old rules go
// on routing.
func TestReloadRejectsBadConfig(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t)
	e.config(t, []string{"a", "b"}, []string{"a"}, "")
	a := e.start(t, Options{})

	e.config(t, []string{"a", "b"}, []string{"b"}, "  - {name: bad, match: [\"session*\"], when: 'data.x ==', to: [a]}\n")
	_, err := a.Reload(context.Background())
	var cerr *config.Error
	if !errors.As(err, &cerr) || len(cerr.Problems) != 2 {
		t.Fatalf("reload: %v, want a *config.Error with 2 problems", err)
	}
	logs := e.logs.String()
	for _, want := range []string{
		e.path + ":10:25: routes[1].match[0]: invalid pattern",
		e.path + ":10:",
		"routes[1].when",
		"configuration not reloaded",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	id := mustAccept(t, a, sessionEvent(t, "s", 1))
	if s := sinkOf(t, a, id); len(s) != 1 || s[0] != "a" {
		t.Errorf("after a rejected reload: routed to %v, want [a] (the old rules)", s)
	}
	eventually(t, "delivery by the old rules", func() bool { return len(e.a.Bodies()) == 1 })
}

// writeAtomic replaces the file at path with data in one step, as
// editors do: the watcher checks every 20ms, and os.WriteFile's
// truncate-then-write could show it an empty or half-written file (a
// bad file of its own, reported once more) on a loaded machine.
func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestReloadWatchesFile: a changed file is reloaded without a signal;
// a change that only a restart applies is reported and the rest applied.
func TestReloadWatchesFile(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t)
	e.config(t, []string{"a", "b"}, []string{"a"}, "")
	a := e.start(t, Options{WatchEvery: 20 * time.Millisecond})

	// The new listen address needs a restart; the new route does not.
	e.config(t, []string{"a", "b"}, []string{"b"}, "")
	data, _ := os.ReadFile(e.path)
	writeAtomic(t, e.path, bytes.Replace(data, []byte("127.0.0.1:0"), []byte("127.0.0.1:1"), 1))
	eventually(t, "the file reloaded", func() bool { return strings.Contains(e.logs.String(), "configuration reloaded") })
	id := mustAccept(t, a, sessionEvent(t, "s", 1))
	if s := sinkOf(t, a, id); len(s) != 1 || s[0] != "b" {
		t.Errorf("after the file changed: routed to %v, want [b]", s)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "needs_restart=[server.listen]") {
		t.Errorf("logs lack the restart notice:\n%s", logs)
	}
	// A bad file is reported once, not at every check.
	writeAtomic(t, e.path, []byte("server: [\n"))
	eventually(t, "the bad file reported", func() bool {
		return strings.Contains(e.logs.String(), "configuration not reloaded")
	})
	time.Sleep(100 * time.Millisecond) // several checks
	if n := strings.Count(e.logs.String(), "configuration not reloaded"); n != 1 {
		t.Errorf("a bad file was reported %d times, want once", n)
	}
}

// TestReloadReplacesModifiedSink: a sink whose settings change gets a
// new dispatcher and a sink that did not change keeps its own; after
// the swap each event reaches each sink once.
func TestReloadReplacesModifiedSink(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t)
	e.config(t, []string{"a", "b"}, []string{"a", "b"}, "")
	a := e.start(t, Options{})
	before := a.routing.Load().sinks
	mustAccept(t, a, sessionEvent(t, "s", 1))
	eventually(t, "the first event delivered", func() bool { return len(e.a.Bodies()) == 1 && len(e.b.Bodies()) == 1 })

	data, _ := os.ReadFile(e.dir + "/switchyard.yaml")
	data = bytes.Replace(data, []byte("{name: a, type: http,"), []byte("{name: a, type: http, concurrency: 2,"), 1)
	os.WriteFile(e.path, data, 0o600)
	ch, err := a.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ch.Sinks.Modified) != "[a]" {
		t.Fatalf("changes %+v, want a modified", ch.Sinks)
	}
	after := a.routing.Load().sinks
	if after["a"] == before["a"] || after["b"] != before["b"] {
		t.Fatalf("a replaced: %v, b kept: %v", after["a"] != before["a"], after["b"] == before["b"])
	}
	for n := 2; n <= 11; n++ {
		mustAccept(t, a, sessionEvent(t, "s", n))
	}
	eventually(t, "every event delivered", func() bool { return pendingOf(a.Store()) == 0 })
	if len(e.a.Bodies()) != 11 || len(e.b.Bodies()) != 11 {
		t.Errorf("a got %d, b got %d, want 11 each", len(e.a.Bodies()), len(e.b.Bodies()))
	}
}
