package app

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
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

const secret = "e2e-secret"

// recorder is an httptest server that records request bodies and
// answers with the status its mode function returns.
type recorder struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	heads  []http.Header
	status atomic.Int32
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.status.Store(http.StatusOK)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		code := int(r.status.Load())
		if code == http.StatusOK {
			r.mu.Lock()
			r.bodies = append(r.bodies, body)
			r.heads = append(r.heads, req.Header.Clone())
			r.mu.Unlock()
			io.WriteString(w, "ok")
			return
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) Bodies() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "darwin", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type env struct {
	dir     string
	slack   *recorder
	crm     *recorder
	cfgYAML string
}

func newEnv(t *testing.T) *env {
	e := &env{dir: t.TempDir(), slack: newRecorder(t), crm: newRecorder(t)}
	e.cfgYAML = fmt.Sprintf(`
server:
  listen: "127.0.0.1:0"
  body_limit: 64KiB
storage:
  dir: %[1]s/data
sources:
  - name: darwin
    provider: darwin
    secret: ${SECRET}
sinks:
  - name: ops-slack
    type: slack
    webhook_url: %[2]s/services/T0/B0/SECRETPATH
    text: "Escalated: {{ data.conversationTitle }} -> {{ data.forwardedToName }}"
  - name: archive
    type: sqlite
    path: %[1]s/archive.db
  - name: crm
    type: http
    url: %[3]s/hooks/darwin
    headers: {Authorization: "Bearer crm-token"}
    retry: {initial_backoff: 20ms, max_backoff: 100ms}
routes:
  - name: escalations
    match: ["session.forwarded.*"]
    when: 'data.forwardType == "escalated"'
    to: [ops-slack, archive]
  - name: summaries
    match: ["session.analyzed"]
    to: [archive, crm]
  - name: crm-escalations
    match: ["session.forwarded.escalated"]
    to: [crm, archive]
`, e.dir, e.slack.URL, e.crm.URL)
	return e
}

func (e *env) start(t *testing.T, logs io.Writer) *App {
	t.Helper()
	cfg, err := config.Parse("e2e.yaml", []byte(e.cfgYAML), func(k string) (string, bool) {
		if k == "SECRET" {
			return secret, true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	if logs == nil {
		logs = io.Discard
	}
	return serve(t, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

// serve starts a gateway for cfg on a free port, stopped when the test
// ends.
func serve(t *testing.T, cfg *config.Config, log *slog.Logger) *App {
	t.Helper()
	return serveWith(t, cfg, Options{Logger: log})
}

// serveWith is serve with options.
func serveWith(t *testing.T, cfg *config.Config, opts Options) *App {
	t.Helper()
	a, err := New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.StartOn(ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop(context.Background()) })
	return a
}

func post(t *testing.T, a *App, body []byte, sig string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/hooks/darwin", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("X-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func archived(t *testing.T, path string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, event_type FROM events`)
	if err != nil {
		return nil // not created yet
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, typ string
		rows.Scan(&id, &typ)
		out[id] = typ
	}
	return out
}

// TestEndToEnd posts signed Darwin events through the real HTTP endpoint
// and checks each reaches exactly the sinks its routes name.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var logs logbuf.Buffer
	a := e.start(t, &logs)

	escalated := fixture(t, "session_forwarded_escalated")
	analyzed := fixture(t, "session_analyzed")
	qualified := fixture(t, "session_forwarded_qualified")

	code, out := post(t, a, escalated, darwin.Sign([]byte(secret), escalated))
	if code != http.StatusOK || !strings.HasPrefix(fmt.Sprint(out["id"]), "evt_") {
		t.Fatalf("escalated: %d %v", code, out)
	}
	escID := out["id"].(string)
	code, out = post(t, a, analyzed, darwin.Sign([]byte(secret), analyzed))
	if code != http.StatusOK {
		t.Fatalf("analyzed: %d %v", code, out)
	}
	anaID := out["id"].(string)
	code, out = post(t, a, qualified, darwin.Sign([]byte(secret), qualified))
	if code != http.StatusOK {
		t.Fatalf("qualified: %d %v", code, out)
	}
	qualID := out["id"].(string)

	// Rejected requests store nothing.
	if code, _ := post(t, a, escalated, "00"); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", code)
	}
	bad := []byte(`{"eventType":`)
	if code, _ := post(t, a, bad, darwin.Sign([]byte(secret), bad)); code != http.StatusBadRequest {
		t.Fatalf("bad JSON: %d", code)
	}
	// The server answers 413 from the Content-Length alone and closes
	// the connection. An HTTP client uploading the body races that close
	// (fasthttp even sends 100 Continue first, so Expect does not help):
	// send only the head, as a sender would before its body, and read
	// the answer.
	conn, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /hooks/darwin HTTP/1.1\r\nHost: switchyard\r\nContent-Type: application/json\r\nX-Signature: 00\r\nContent-Length: %d\r\n\r\n", 100<<10)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("too large: %d", resp.StatusCode)
	}

	archive := filepath.Join(e.dir, "archive.db")
	eventually(t, "archive rows", func() bool { return len(archived(t, archive)) == 2 })
	eventually(t, "crm posts", func() bool { return len(e.crm.Bodies()) == 2 })
	eventually(t, "slack posts", func() bool { return len(e.slack.Bodies()) == 1 })

	rows := archived(t, archive)
	if rows[escID] != "session.forwarded.escalated" || rows[anaID] != "session.analyzed" {
		t.Fatalf("archive = %v", rows)
	}
	if _, ok := rows[qualID]; ok {
		t.Fatal("the qualified session matched no route but was archived")
	}

	var msg struct{ Text string }
	json.Unmarshal(e.slack.Bodies()[0], &msg)
	if msg.Text != "Escalated: Mariana Costa (+55 11 98765-4321) -> Carla Mendes (Supervisora)" {
		t.Fatalf("slack text = %q", msg.Text)
	}

	// The HTTP sink gets the normalized event, data exactly as sent.
	var got struct {
		ID        string          `json:"id"`
		EventType string          `json:"eventType"`
		Data      json.RawMessage `json:"data"`
	}
	var sentData struct{ Data json.RawMessage }
	json.Unmarshal(escalated, &sentData)
	found := false
	for i, body := range e.crm.Bodies() {
		json.Unmarshal(body, &got)
		if got.ID == escID {
			found = true
			if got.EventType != "session.forwarded.escalated" || !bytes.Equal(got.Data, sentData.Data) {
				t.Fatalf("crm body = %s", body)
			}
			if e.crm.heads[i].Get("Authorization") != "Bearer crm-token" || !strings.HasPrefix(e.crm.heads[i].Get("X-Switchyard-Delivery"), "dlv_") {
				t.Fatalf("crm headers = %v", e.crm.heads[i])
			}
		}
	}
	if !found {
		t.Fatal("the escalated event did not reach the crm")
	}

	// The secret never reaches the logs.
	for _, s := range []string{secret, "SECRETPATH", "crm-token"} {
		if strings.Contains(logs.String(), s) {
			t.Fatalf("logs contain %q:\n%s", s, logs.String())
		}
	}
}

// TestRestartResumesPending stops the gateway while a sink is down and
// starts a new one on the same storage: the pending delivery is sent.
func TestRestartResumesPending(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.crm.status.Store(http.StatusServiceUnavailable)
	a := e.start(t, nil)
	body := fixture(t, "session_analyzed")
	code, out := post(t, a, body, darwin.Sign([]byte(secret), body))
	if code != http.StatusOK {
		t.Fatalf("post: %d %v", code, out)
	}
	id := out["id"].(string)
	eventually(t, "a failed attempt", func() bool {
		ds, _ := deliveriesOf(a.Store(), id)
		for _, d := range ds {
			if d.Sink == "crm" && d.State == queue.StateFailed {
				return true
			}
		}
		return false
	})
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	e.crm.status.Store(http.StatusOK)
	b := e.start(t, nil)
	eventually(t, "delivered after restart", func() bool { return len(e.crm.Bodies()) == 1 })
	var got struct{ ID string }
	json.Unmarshal(e.crm.Bodies()[0], &got)
	if got.ID != id {
		t.Fatalf("delivered %s, want %s", got.ID, id)
	}
	// The same body again is a duplicate of the stored event: same id,
	// no second delivery.
	code, out = post(t, b, body, darwin.Sign([]byte(secret), body))
	if code != http.StatusOK || out["id"] != id || out["duplicate"] != true {
		t.Fatalf("replayed body: %d %v", code, out)
	}
}

// TestStorageLock refuses a second gateway on the same storage dir.
func TestStorageLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start(t, nil)
	cfg, err := config.Parse("e2e.yaml", []byte(e.cfgYAML), func(string) (string, bool) { return secret, true })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), cfg, Options{}); err == nil || !strings.Contains(err.Error(), "in use by another switchyard") {
		t.Fatalf("second gateway on one storage dir: %v", err)
	}
}

// TestStoreDownAnswers503 closes the store under a running gateway: the
// sender must get 503, never 2xx.
func TestStoreDownAnswers503(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.start(t, nil)
	a.Store().Close()
	body := fixture(t, "session_analyzed")
	if code, out := post(t, a, body, darwin.Sign([]byte(secret), body)); code != http.StatusServiceUnavailable {
		t.Fatalf("store closed: %d %v, want 503", code, out)
	}
}

func TestBuildReportsPositions(t *testing.T) {
	t.Parallel()
	y := `sources:
  - name: darwin
    provider: darwn
  - name: d2
    provider: darwin
sinks:
  - name: s
    type: slack
    webhook_url: https://hooks.slack.com/services/x
    text: "Hi {{ data.x + }}"
routes:
  - name: r
    match: ["session.*", "bad*"]
    when: 'dta.forwardType == "escalated"'
    to: [s]
`
	cfg, err := config.Parse("c.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(cfg, nil)
	if err == nil {
		t.Fatal("Build passed")
	}
	for _, want := range []string{
		`c.yaml:3:15: sources[0].provider: unknown provider "darwn"`,
		`c.yaml:4:5: sources[1].secret: darwin signs every webhook`,
		`c.yaml:10:26: sinks[0].text: unexpected token EOF`,
		`c.yaml:13:26: routes[0].match[1]: invalid pattern "bad*"`,
		`c.yaml:14:12: routes[0].when: unknown name dta`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

// TestBuildSlackGroup compiles a slack sink's group.by at load: a bad
// expression is placed inside it; a good one builds.
func TestBuildSlackGroup(t *testing.T) {
	t.Parallel()
	y := `sources:
  - name: d
    provider: darwin
    secret: x
sinks:
  - name: s
    type: slack
    token: xoxb-1
    channel: "#ops"
    group:
      by: 'data.forwardedToName ?? dta.x'
      wait: 30s
routes:
  - name: r
    match: ["*"]
    to: [s]
`
	for _, tc := range []struct {
		name, by, want string
	}{
		{"unknown name", "'data.forwardedToName ?? dta.x'", `c.yaml:11:36: sinks[0].group.by: unknown name dta`},
		{"syntax", "data.forwardedToName +", `c.yaml:11:32: sinks[0].group.by: unexpected token EOF`},
		{"good", "data.forwardedToName", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := strings.Replace(y, "'data.forwardedToName ?? dta.x'", tc.by, 1)
			cfg, err := config.Parse("c.yaml", []byte(src), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			p, err := Build(cfg, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Build = %v", err)
				}
				p.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build = %v, want %q", err, tc.want)
			}
		})
	}
}

// deliveriesOf returns an event's deliveries, by sink.
func deliveriesOf(s queue.Store, eventID string) ([]queue.DeliveryInfo, error) {
	ds, err := s.List(context.Background(), queue.Filter{EventID: eventID})
	slices.SortFunc(ds, func(a, b queue.DeliveryInfo) int { return strings.Compare(a.Sink, b.Sink) })
	return ds, err
}

// pendingOf counts the deliveries waiting, of every sink.
func pendingOf(s queue.Store) int64 {
	w, err := s.WaitingBySink(context.Background())
	if err != nil {
		return -1
	}
	var n int64
	for _, c := range w {
		n += c
	}
	return n
}
