package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/logbuf"
	"github.com/switchyard/switchyard/receiver/darwin"
)

// TestServeJSONLogsAndSIGHUP runs serve in this process with
// --log-format json and log.events: every line is a JSON object, the
// accepted event's line (info) and its delivery's carry event_id, and a
// SIGHUP reloads the changed file.
func TestServeJSONLogsAndSIGHUP(t *testing.T) {
	// Not parallel: it signals its own process.
	dir := t.TempDir()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	addr := freeAddr(t)
	path := filepath.Join(dir, "switchyard.yaml")
	write := func(route string) {
		// --listen serves on addr, not on this address.
		cfg := fmt.Sprintf(`server: {listen: %q}
storage: {dir: %s}
log: {events: true}
sources:
  - {name: darwin, provider: darwin, secret: s3cret-value}
sinks:
  - {name: crm, type: http, url: %s}
routes:
  - {name: %s, match: ["*"], to: [crm]}
`, "127.0.0.1:1", dir, target.URL, route)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("all")
	logs := &logbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", path, "--listen", addr, "--log-format", "json", "--log-level", "debug", "--watch", "0"}, logs, logs)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	body := []byte(`{"eventType":"session.opened","data":{"sessionId":"s1"}}`)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/darwin", bytes.NewReader(body))
	req.Header.Set("X-Signature", darwin.Sign([]byte("s3cret-value"), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var answer struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if answer.ID == "" {
		t.Fatalf("no id: %s", resp.Status)
	}
	wait(t, "the delivery logged", func() bool { return strings.Contains(logs.String(), `"msg":"delivered"`) })

	write("renamed")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	wait(t, "the reload", func() bool { return strings.Contains(logs.String(), `"msg":"configuration reloaded"`) })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v\n%s", err, logs)
	}

	var accepted, delivered, reloaded, served bool
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		switch line["msg"] {
		case "event accepted":
			accepted = line["level"] == "INFO" && line["event_id"] == answer.ID && line["source"] == "darwin"
		case "delivered":
			delivered = line["event_id"] == answer.ID && line["sink"] == "crm" && line["delivery_id"] != nil
		case "configuration reloaded":
			reloaded = line["routes"] == "+renamed -all"
		case "source served":
			served = line["source"] == "darwin" && line["url"] == "http://"+addr+"/hooks/darwin"
		}
	}
	if !accepted || !delivered || !reloaded || !served {
		t.Errorf("accepted %v, delivered %v, reloaded %v, source served %v:\n%s", accepted, delivered, reloaded, served, logs)
	}
	if strings.Contains(logs.String(), "needs_restart") {
		t.Errorf("the reload saw server.listen change, though --listen holds:\n%s", logs)
	}
	if strings.Contains(logs.String(), "s3cret-value") {
		t.Error("the secret was logged")
	}
}
