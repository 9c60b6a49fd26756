package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/receiver/darwin"
)

// TestPoisonAndReplay: a sink answering 400 for one session's event
// blocks neither another sink nor its other sessions; the delivery ends
// dead, deliveries list shows it, and replay, run beside the serving
// gateway, delivers it once the sink is fixed.
func TestPoisonAndReplay(t *testing.T) {
	t.Parallel()
	var (
		fixed atomic.Bool
		mu    sync.Mutex
		got   []string // sessions delivered to crm
	)
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ Subject string }
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &ev)
		if ev.Subject == "poison" && !fixed.Load() {
			http.Error(w, `{"error":"unknown field"}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, ev.Subject)
		mu.Unlock()
	}))
	defer crm.Close()
	delivered := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}

	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`server: {listen: "127.0.0.1:0"}
storage: {dir: %s}
sources: [{name: darwin, provider: darwin, secret: s}]
sinks:
  - {name: crm, type: http, url: %s, ordered: true, concurrency: 1}
  - {name: archive, type: sqlite, path: %s}
routes: [{name: all, match: ["*"], to: [crm, archive]}]
`, data, crm.URL, filepath.Join(dir, "archive.db"))), 0o600)
	a, _ := startGateway(t, path)

	post := func(session string, n int) string {
		body := fmt.Sprintf(`{"eventType":"session.forwarded.escalated","data":{"sessionId":%q,"n":%d}}`, session, n)
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/hooks/darwin", strings.NewReader(body))
		req.Header.Set("X-Signature", darwin.Sign([]byte("s"), []byte(body)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ ID string }
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("post: %d", resp.StatusCode)
		}
		return out.ID
	}
	poison := post("poison", 1)
	for i := range 5 {
		post(fmt.Sprintf("good-%d", i), i)
	}
	wait(t, "the other sessions delivered", func() bool { return len(delivered()) == 5 })

	var dead []map[string]any
	wait(t, "the poison delivery dead", func() bool {
		out, _, err := runCmd(t, "deliveries", "list", "--dir", data, "--state", "dead", "--json")
		if err != nil {
			t.Fatal(err)
		}
		dead = nil
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var d map[string]any
			json.Unmarshal(sc.Bytes(), &d)
			dead = append(dead, d)
		}
		return len(dead) == 1
	})
	if d := dead[0]; d["event_id"] != poison || d["sink"] != "crm" || d["last_status"] != 400.0 || d["attempts"] != 1.0 ||
		!strings.Contains(d["last_error"].(string), "400") {
		t.Fatalf("dead letter = %v", d)
	}
	// The archive, another sink, got everything, poison included (it
	// runs on its own: it may finish after crm).
	wait(t, "the archive's deliveries", func() bool {
		out, _, err := runCmd(t, "deliveries", "list", "--config", path, "--sink", "archive", "--state", "delivered")
		return err == nil && strings.Count(out, "delivered") == 6
	})
	out, _, _ := runCmd(t, "deliveries", "list", "--dir", data, "--state", "dead")
	if !strings.Contains(out, poison) || !strings.Contains(out, "LAST ERROR") || !strings.Contains(out, " 400 ") {
		t.Fatalf("table:\n%s", out)
	}
	// The console's filters, from the command line.
	out, _, _ = runCmd(t, "deliveries", "list", "--dir", data, "--status", "400", "--error", "400", "--subject", "poison")
	if !strings.Contains(out, poison) || strings.Count(out, "\n") != 2 {
		t.Fatalf("deliveries by status, error and subject:\n%s", out)
	}
	out, _, _ = runCmd(t, "events", "list", "--dir", data, "--state", "dead", "--type", "session.*", "--where", `data.sessionId == "poison"`)
	if !strings.Contains(out, poison) || strings.Count(out, "\n") != 2 {
		t.Fatalf("events with a dead delivery, by type pattern and condition:\n%s", out)
	}
	if _, _, err := runCmd(t, "events", "list", "--dir", data, "--where", "data.x >"); exitCode(err) != 2 {
		t.Fatalf("events list with a bad condition: %v", err)
	}

	// Bad invocations are refused with a reason.
	if _, _, err := runCmd(t, "replay", "--dir", data); exitCode(err) != 2 {
		t.Fatalf("replay without a selection: %v", err)
	}
	if _, _, err := runCmd(t, "replay", "--dir", data, "--sink", "crm", "--state", "gone"); exitCode(err) != 2 {
		t.Fatalf("replay with an unknown state: %v", err)
	}
	if _, _, err := runCmd(t, "deliveries", "list", "--dir", filepath.Join(dir, "nowhere")); err == nil {
		t.Fatal("listing a directory without a queue succeeded")
	}

	fixed.Store(true)
	out, _, err := runCmd(t, "replay", "--config", path, "--sink", "crm", "--state", "dead", "--since", "1h")
	if err != nil || !strings.Contains(out, "re-queued 1 deliveries") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	wait(t, "the replayed delivery", func() bool { return len(delivered()) == 6 })
	if d := delivered(); d[5] != "poison" {
		t.Fatalf("delivered %v, want poison last", d)
	}
	out, _, _ = runCmd(t, "deliveries", "list", "--dir", data, "--event", poison, "--json")
	if !strings.Contains(out, `"sink":"crm"`) || !strings.Contains(out, `"replays":1`) || strings.Contains(out, `"state":"dead"`) {
		t.Fatalf("after replay:\n%s", out)
	}
}
