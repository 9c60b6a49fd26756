// Package demo runs a real gateway for the console's browser tests and
// its screenshots: a Darwin source, an HTTP sink played by a local
// server that can be told to fail, a held Slack sink, an archive, and
// the admin listener with both tokens, on either storage backend:
// embedded SQLite, or PostgreSQL (Options.PostgresDSN). Events are
// posted signed, over HTTP, as Darwin would post them.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/app"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/receiver/darwin"
)

// Tokens and the webhook secret of the demo gateway.
const (
	AdminToken  = "admin-token-0123456789abcdef"
	ViewerToken = "viewer-token-0123456789abcdef"
	Secret      = "demo-webhook-secret"
)

// Gateway is a running demo gateway.
type Gateway struct {
	App *app.App
	Dir string
	// Console is the console's base URL: http://127.0.0.1:port/ui/.
	Console string
	// CRM is the HTTP sink's receiver; CRMFails makes it answer 503
	// (retried) or, with CRMRefuses, 400 (dead at once).
	CRM        *httptest.Server
	CRMFails   atomic.Bool
	CRMRefuses atomic.Bool
	mu         sync.Mutex
	received   [][]byte
	// Logs are the gateway's logs.
	Logs  *bytes.Buffer
	logMu sync.Mutex
}

// Options choose the demo gateway's storage.
type Options struct {
	// PostgresDSN, when set, runs the gateway on PostgreSQL
	// (storage.backend postgres) with a PostgreSQL archive, both in
	// this database, which should be empty; otherwise on SQLite in the
	// gateway's directory.
	PostgresDSN string
}

// Config returns the demo gateway's configuration: dir is the
// gateway's directory (its storage in dir/data, a SQLite archive in
// dir/archive.db), crm the CRM's URL. With redact, the secrets (webhook
// secret, tokens, DSN) and the CRM's URL are written <secret>.
func Config(o Options, dir, crm string, redact bool) string {
	secret, dsn, admin, viewer := Secret, o.PostgresDSN, AdminToken, ViewerToken
	if redact {
		secret, dsn, admin, viewer, crm = "<secret>", "<secret>", "<secret>", "<secret>", "<secret>"
	}
	data := filepath.Join(dir, "data")
	storage := fmt.Sprintf("{dir: %s, synchronous: normal}", data)
	archive := fmt.Sprintf("{name: archive, type: sqlite, path: %s}", filepath.Join(dir, "archive.db"))
	if o.PostgresDSN != "" {
		storage = fmt.Sprintf("{backend: postgres, dsn: %q, dir: %s}", dsn, data)
		archive = fmt.Sprintf("{name: archive, type: postgres, dsn: %q}", dsn)
	}
	return fmt.Sprintf(configText, storage, secret, crm, archive, admin, viewer)
}

// configText is the configuration; %s are the storage section, the
// webhook secret, the CRM's URL, the archive sink and the two tokens.
const configText = `server: {listen: "127.0.0.1:0", shutdown_timeout: 5s}
storage: %s
sources:
  - {name: darwin, provider: darwin, secret: "%s"}
sinks:
  - name: crm
    type: http
    url: %s/notes
    ordered: true
    retry: {max_attempts: 0, max_age: 1h, initial_backoff: 50ms, max_backoff: 2s}
  - name: ops-slack
    type: slack
    webhook_url: ""
    ordered: true
  - %s
routes:
  - name: escalations
    match: ["session.forwarded.*"]
    when: 'data.forwardType == "escalated"'
    to: [crm, ops-slack]
  - name: summaries
    match: ["session.analyzed"]
    to: [archive, crm]
  - name: everything
    match: ["*"]
    to: [archive]
admin:
  listen: 127.0.0.1:0
  token: %s
  viewer_token: %s
`

// Start runs a demo gateway in dir until Stop.
func Start(dir string, o Options) (*Gateway, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	g := &Gateway{Dir: dir, Logs: &bytes.Buffer{}}
	g.CRM = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case g.CRMRefuses.Load():
			http.Error(w, `{"error":"missing_field: contactId"}`, http.StatusBadRequest)
			return
		case g.CRMFails.Load():
			http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
			return
		}
		g.mu.Lock()
		g.received = append(g.received, body)
		g.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	path := filepath.Join(dir, "switchyard.yaml")
	text := Config(o, dir, g.CRM.URL, false)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		g.CRM.Close()
		return nil, err
	}
	cfg, err := config.Load(path)
	if err != nil {
		g.CRM.Close()
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(&lockedWriter{g}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := app.New(context.Background(), cfg, app.Options{Logger: log})
	if err != nil {
		g.CRM.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		g.CRM.Close()
		return nil, err
	}
	if err := a.StartOn(ln); err != nil {
		g.CRM.Close()
		return nil, err
	}
	g.App = a
	g.Console = "http://" + a.AdminAddr() + "/ui/"
	return g, nil
}

type lockedWriter struct{ g *Gateway }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.g.logMu.Lock()
	defer w.g.logMu.Unlock()
	return w.g.Logs.Write(p)
}

// LogText returns the logs so far.
func (g *Gateway) LogText() string {
	g.logMu.Lock()
	defer g.logMu.Unlock()
	return g.Logs.String()
}

// Stop stops the gateway and the CRM.
func (g *Gateway) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.App.Stop(ctx)
	g.CRM.Close()
}

// Received returns the bodies the CRM accepted.
func (g *Gateway) Received() [][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([][]byte(nil), g.received...)
}

// Post posts body to the Darwin source, signed, with extra headers,
// and returns the stored event's id.
func (g *Gateway) Post(body []byte, header ...string) (string, error) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+g.App.Addr()+"/hooks/darwin", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Darwin-Webhooks/1.0")
	req.Header.Set("X-Signature", darwin.Sign([]byte(Secret), body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("post: %d %s", resp.StatusCode, out.Error)
	}
	return out.ID, nil
}

// Event is a Darwin event body: eventType, the session, and data fields
// over a forwarded session's.
func Event(eventType, session string, fields map[string]any) []byte {
	data := map[string]any{
		"conversationId":    "c-" + session,
		"sessionId":         session,
		"channelName":       "WhatsApp Vendas",
		"conversationTitle": "Mariana Costa (+55 11 98765-4321)",
		"forwardedToName":   "Rafael Almeida",
		"forwardType":       "escalated",
		"summary":           "Mariana procura apartamento de 2 quartos na Zona Sul; pediu reembolso do sinal pago em duplicidade.",
		"smartFields":       map[string]any{"intent": "compra", "leadScore": 82, "city": "São Paulo"},
	}
	for k, v := range fields {
		data[k] = v
	}
	b, _ := json.Marshal(map[string]any{
		"eventType": eventType, "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"agentId": "6650f1c2a9e4b3d2c1f0e9a8", "agentName": "Sofia - Atendimento", "data": data,
	})
	return b
}

// Eventually polls cond every 20 ms until it holds or timeout passes.
func Eventually(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Client is an HTTP client logged in to the console: it keeps the
// session cookie and the CSRF token of the last page read.
type Client struct {
	Base string
	HTTP *http.Client
	CSRF string
}

// Login logs in with token and returns the client, or the status of
// a refused login.
func Login(base, token string) (*Client, int, error) {
	jar := newJar()
	c := &Client{Base: strings.TrimSuffix(base, "/ui/"), HTTP: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
	page, _, err := c.Get("/ui/login")
	if err != nil {
		return nil, 0, err
	}
	csrf := FormValue(page, "csrf")
	resp, err := c.HTTP.PostForm(c.Base+"/ui/login", map[string][]string{"csrf": {csrf}, "token": {token}, "next": {"/ui/"}})
	if err != nil {
		return nil, 0, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Log out") {
		return nil, resp.StatusCode, nil
	}
	c.CSRF = FormValue(string(body), "csrf")
	return c, resp.StatusCode, nil
}

// Get fetches a console path and returns its body and status.
func (c *Client) Get(path string) (string, int, error) {
	resp, err := c.HTTP.Get(c.Base + path)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if v := FormValue(string(b), "csrf"); v != "" && path != "/ui/login" {
		c.CSRF = v
	}
	return string(b), resp.StatusCode, err
}

// Post posts a form to a console path (with the CSRF token unless the
// form has one) and returns the body and status after redirects.
func (c *Client) Post(path string, form map[string][]string) (string, int, error) {
	if _, ok := form["csrf"]; !ok {
		form["csrf"] = []string{c.CSRF}
	}
	resp, err := c.HTTP.PostForm(c.Base+path, form)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

// FormValue finds the value of the first input named name in a page.
func FormValue(page, name string) string {
	i := strings.Index(page, `name="`+name+`" value="`)
	if i < 0 {
		return ""
	}
	rest := page[i+len(`name="`+name+`" value="`):]
	return rest[:strings.IndexByte(rest, '"')]
}
