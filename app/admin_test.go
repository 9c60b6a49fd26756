package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/admin"
)

const adminToken = "admin-token-0123456789abcdef"

// call sends an admin API request and decodes the JSON answer.
func call(t *testing.T, method, url, auth, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
	}
	return resp.StatusCode, out
}

// TestAdminAPI drives the admin API over HTTP: authentication, events
// and deliveries, replay of a dead delivery, and reload.
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t)
	e.a.status.Store(http.StatusBadRequest) // a rejects: dead at once
	adminCfg := fmt.Sprintf("admin: {listen: \"127.0.0.1:0\", token: %s}\n", adminToken)
	e.config(t, []string{"a", "b"}, []string{"a"}, adminCfg)
	a := e.start(t, Options{})
	base := "http://" + a.AdminAddr()
	bearer := "Bearer " + adminToken

	t.Run("auth", func(t *testing.T) {
		for _, c := range []struct{ name, auth string }{
			{"missing", ""},
			{"wrong", "Bearer " + strings.Repeat("x", len(adminToken))},
			{"prefix", "Bearer " + adminToken[:10]},
			{"longer", "Bearer " + adminToken + "x"},
			{"basic", "Basic " + adminToken},
		} {
			status, out := call(t, http.MethodGet, base+"/events", c.auth, "")
			if status != http.StatusUnauthorized || out["error"] == nil {
				t.Errorf("%s: %d %v, want 401 with an error", c.name, status, out)
			}
			if strings.Contains(fmt.Sprint(out), adminToken) {
				t.Errorf("%s: the answer shows the token", c.name)
			}
		}
		if status, _ := call(t, http.MethodGet, base+"/events", "bearer "+adminToken, ""); status != http.StatusOK {
			t.Errorf("good token: %d", status)
		}
		if strings.Contains(e.logs.String(), adminToken) {
			t.Error("the token was logged")
		}
	})

	id := mustAccept(t, a, sessionEvent(t, "s1", 1))
	eventually(t, "the delivery dead", func() bool {
		_, out := call(t, http.MethodGet, base+"/deliveries?state=dead", bearer, "")
		ds, _ := out["deliveries"].([]any)
		return len(ds) == 1
	})

	t.Run("events", func(t *testing.T) {
		status, out := call(t, http.MethodGet, base+"/events?source=darwin&limit=10", bearer, "")
		evs, _ := out["events"].([]any)
		if status != http.StatusOK || len(evs) != 1 {
			t.Fatalf("list: %d %v", status, out)
		}
		ev := evs[0].(map[string]any)
		ds := ev["deliveries"].([]any)
		if ev["id"] != id || len(ds) != 1 || ds[0].(map[string]any)["state"] != "dead" || ev["event"] != nil {
			t.Errorf("listed event: %v", ev)
		}
		status, out = call(t, http.MethodGet, base+"/events/"+id, bearer, "")
		body, _ := out["event"].(map[string]any)
		if status != http.StatusOK || body["eventType"] != "session.forwarded.escalated" || len(out["deliveries"].([]any)) != 1 {
			t.Errorf("get: %d %v", status, out)
		}
		if status, out := call(t, http.MethodGet, base+"/events/evt_nope", bearer, ""); status != http.StatusNotFound || out["error"] == nil {
			t.Errorf("unknown event: %d %v", status, out)
		}
		if status, out := call(t, http.MethodGet, base+"/deliveries?state=gone", bearer, ""); status != http.StatusBadRequest ||
			!strings.Contains(fmt.Sprint(out["error"]), "unknown state") {
			t.Errorf("bad state: %d %v", status, out)
		}
	})

	t.Run("replay", func(t *testing.T) {
		_, out := call(t, http.MethodGet, base+"/deliveries?event="+id, bearer, "")
		dlv := out["deliveries"].([]any)[0].(map[string]any)["id"].(string)
		if status, out := call(t, http.MethodPost, base+"/replay", bearer, `{}`); status != http.StatusBadRequest {
			t.Errorf("replay nothing: %d %v", status, out)
		}
		if status, out := call(t, http.MethodPost, base+"/deliveries/dlv_nope/replay", bearer, ""); status != http.StatusNotFound {
			t.Errorf("replay unknown: %d %v", status, out)
		}
		e.a.status.Store(http.StatusOK)
		status, out := call(t, http.MethodPost, base+"/deliveries/"+dlv+"/replay", bearer, "")
		if status != http.StatusOK || out["requeued"] != 1.0 {
			t.Fatalf("replay: %d %v", status, out)
		}
		eventually(t, "the replayed delivery delivered", func() bool { return len(e.a.Bodies()) == 1 })
		// The same through the by-sink form: dead by default, none left.
		status, out = call(t, http.MethodPost, base+"/replay", bearer, `{"sink": "a"}`)
		if status != http.StatusOK || out["requeued"] != 0.0 {
			t.Errorf("replay sink: %d %v", status, out)
		}
		status, out = call(t, http.MethodPost, base+"/replay", bearer, `{"sink": "gone", "state": "dead"}`)
		if status != http.StatusOK || !strings.Contains(fmt.Sprint(out["warning"]), "not configured") {
			t.Errorf("replay to an unknown sink: %d %v", status, out)
		}
	})

	t.Run("reload", func(t *testing.T) {
		e.config(t, []string{"a", "b"}, []string{"b"}, adminCfg)
		status, out := call(t, http.MethodPost, base+"/reload", bearer, "")
		routes, _ := out["changes"].(map[string]any)["routes"].(map[string]any)
		if status != http.StatusOK || fmt.Sprint(routes["modified"]) != "[r]" {
			t.Errorf("reload: %d %v", status, out)
		}
		os.WriteFile(e.path, []byte("routes: 3\n"+adminCfg), 0o600)
		status, out = call(t, http.MethodPost, base+"/reload", bearer, "")
		problems, _ := out["problems"].([]any)
		if status != http.StatusUnprocessableEntity || len(problems) == 0 || !strings.HasPrefix(problems[0].(string), e.path+":1:") {
			t.Errorf("bad reload: %d %v", status, out)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		if status, _ := call(t, http.MethodGet, base+"/metrics", "", ""); status != http.StatusUnauthorized {
			t.Errorf("metrics without the token: %d", status)
		}
		mf := scrape(t, base+"/metrics", adminToken)
		if got := value(mf, "switchyard_delivery_dead_letters_total", "sink", "a"); got != 1 {
			t.Errorf("dead letters = %v", got)
		}
		if _, ok := mf["go_goroutines"]; ok {
			t.Error("the App's own registry should hold only switchyard metrics")
		}
	})
}

// TestAdminOpsSharedWithCLI: the CLI and the API run the same Ops; a
// replay by event with nothing to replay says so.
func TestAdminOpsReplayUnknownEvent(t *testing.T) {
	t.Parallel()
	e := newReloadEnv(t)
	e.config(t, []string{"a"}, []string{"a"}, "")
	a := e.start(t, Options{})
	_, err := a.Ops().Replay(context.Background(), admin.DeliveryQuery{Event: "evt_nope"})
	if err == nil || !strings.Contains(err.Error(), "no deliveries") {
		t.Errorf("replay of an unknown event: %v", err)
	}
}
