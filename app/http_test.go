package app

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/queue"
	"github.com/switchyard/switchyard/receiver/darwin"
)

// TestHTTPSinkShapedSignedAndRecorded runs a shaped, signed http sink
// end to end: the receiver gets the rendered request, signed as Darwin
// signs; a rejected delivery keeps the response's status and first bytes
// on its record, without the request's secrets.
func TestHTTPSinkShapedSignedAndRecorded(t *testing.T) {
	t.Parallel()
	type got struct {
		path string
		head http.Header
		body []byte
	}
	var (
		mu   sync.Mutex
		reqs []got
	)
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, got{r.URL.EscapedPath(), r.Header.Clone(), body})
		mu.Unlock()
		if strings.Contains(string(body), `"kind":"session.analyzed"`) { // rejected
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprintf(w, `{"error":"phone is not valid","auth":%q}`, r.Header.Get("Authorization"))
		}
	}))
	defer crm.Close()
	dir := t.TempDir()
	y := fmt.Sprintf(`
storage: {dir: %s}
sources:
  - {name: darwin, provider: darwin, secret: %s}
sinks:
  - name: crm
    type: http
    method: PUT
    url: %s/contacts/{{ data.sessionId }}/notes
    headers: {Authorization: "Bearer crm-token-123"}
    body: '{"note": data.summary ?? data.conversationTitle, "kind": eventType}'
    sign: {scheme: hmac, header: X-Signature, secret: crm-signing-secret}
    retry: {max_attempts: 1}
routes:
  - {name: all, match: ["*"], to: [crm]}
`, dir, secret, crm.URL)
	cfg, err := config.Parse("e2e.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	a := serve(t, cfg, slog.New(slog.DiscardHandler))

	escalated, analyzed := fixture(t, "session_forwarded_escalated"), fixture(t, "session_analyzed")
	_, out := post(t, a, escalated, darwin.Sign([]byte(secret), escalated))
	_, out2 := post(t, a, analyzed, darwin.Sign([]byte(secret), analyzed))
	rejected, _ := out2["id"].(string)
	if out["id"] == nil || rejected == "" {
		t.Fatalf("posts answered %v, %v", out, out2)
	}

	var dead queue.DeliveryInfo
	eventually(t, "the rejected delivery to be dead", func() bool {
		ds, _ := deliveriesOf(a.Store(), rejected)
		if len(ds) == 1 && ds[0].State == queue.StateDead {
			dead = ds[0]
			return true
		}
		return false
	})
	if dead.LastStatus != http.StatusUnprocessableEntity || !strings.Contains(dead.LastError, `HTTP 422 Unprocessable Entity: {"error":"phone is not valid","auth":"<redacted>"}`) {
		t.Errorf("record: status %d, error %q", dead.LastStatus, dead.LastError)
	}
	if strings.Contains(dead.LastError, "crm-token-123") {
		t.Errorf("the record shows the token: %q", dead.LastError)
	}

	eventually(t, "both requests", func() bool { mu.Lock(); defer mu.Unlock(); return len(reqs) == 2 })
	mu.Lock()
	defer mu.Unlock()
	for _, r := range reqs {
		if err := darwin.Verify([][]byte{[]byte("crm-signing-secret")}, r.head.Get("X-Signature"), r.body); err != nil {
			t.Errorf("%s: signature: %v", r.path, err)
		}
		var b map[string]string
		if err := json.Unmarshal(r.body, &b); err != nil || b["note"] == "" || !strings.HasPrefix(b["kind"], "session.") {
			t.Errorf("%s: body %s", r.path, r.body)
		}
		if r.path != "/contacts/6651a0e7c4b2f81d9a3e5c11/notes" {
			t.Errorf("path %s", r.path)
		}
	}
}

func TestBuildHTTPSinkProblems(t *testing.T) {
	t.Parallel()
	y := `sources: [{name: d, provider: darwin, secret: x}]
sinks:
  - name: crm
    type: http
    url: https://crm.example.com/c/{{ data.sessionId }}?by={{ agnetName }}
    headers:
      X-Title: 't: {{ dta.conversationTitle }}'
    body: |
      {"note": data.summary,
       "who": subjet}
    sign: {scheme: standard-webhooks, secret: not-whsec}
    tls: {ca_file: /nonexistent/ca.pem}
  - name: later
    type: http
    url: ${LATER_URL:-}
    body: '"just text"'
  - name: log
    type: file
    path: ` + filepath.Join(t.TempDir(), "out.jsonl") + `
  - name: tap
    type: stdout
routes:
  - {name: r, match: ["*"], to: [crm, later, log, tap]}
`
	cfg, err := config.Parse("c.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(cfg, nil)
	if err == nil {
		t.Fatal("Build passed")
	}
	// Every problem at once: the TLS file does not hide the templates'.
	if want := `c.yaml:16:12: sinks[1].body: gives a string, want an object`; !strings.Contains(err.Error(), want) {
		t.Errorf("a held sink's body is not checked: missing %q in:\n%v", want, err)
	}
	for _, want := range []string{
		`c.yaml:12:20: sinks[0].tls.ca_file: read CA file: open /nonexistent/ca.pem: no such file or directory`,
		`c.yaml:5:63: sinks[0].url: unknown name agnetName`,
		`c.yaml:7:23: sinks[0].headers.X-Title: unknown name dta`,
		`c.yaml:10:15: sinks[0].body: unknown name subjet`,
		`c.yaml:11:47: sinks[0].sign.secret: a Standard Webhooks secret is "whsec_" followed by base64`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}

	// Fixed, it builds; the file sink is opened by New, not by Build.
	fixed := strings.NewReplacer("agnetName", "agentName", "dta.", "data.", "subjet", "subject", "not-whsec", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		`'"just text"'`, `'{"text": subject}'`, "    tls: {ca_file: /nonexistent/ca.pem}\n", "").Replace(y)
	cfg, err = config.Parse("c.yaml", []byte(fixed), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(cfg, nil)
	if err != nil {
		t.Fatalf("Build = %v", err)
	}
	defer p.Close()
	if len(p.Sinks) != 3 || len(p.Held) != 1 {
		t.Errorf("sinks %d, held %v", len(p.Sinks), p.Held)
	}
	if _, err := os.Stat(filepath.Dir(cfg.Sinks[2].File.Path) + "/out.jsonl"); err == nil {
		t.Error("Build created the file sink's file")
	}
}
