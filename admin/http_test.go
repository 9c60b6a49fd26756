package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/queue/sqlite"
)

// emptyStore opens an empty queue of the test's own.
func emptyStore(t *testing.T) Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestAuth(t *testing.T) {
	t.Parallel()
	token := config.Secret("0123456789abcdef-token")
	h := Handler(Options{Ops: NewOps(emptyStore(t), nil), Token: func() config.Secret { return token }})
	for _, c := range []struct {
		name   string
		header []string
		want   int
	}{
		{"none", nil, http.StatusUnauthorized},
		{"empty bearer", []string{"Bearer "}, http.StatusUnauthorized},
		{"wrong", []string{"Bearer 0123456789abcdef-tokeN"}, http.StatusUnauthorized},
		{"prefix of it", []string{"Bearer 0123456789abcdef"}, http.StatusUnauthorized},
		{"other scheme", []string{"Token 0123456789abcdef-token"}, http.StatusUnauthorized},
		{"twice", []string{"Bearer 0123456789abcdef-token", "Bearer 0123456789abcdef-token"}, http.StatusUnauthorized},
		{"right", []string{"Bearer 0123456789abcdef-token"}, http.StatusOK},
		{"scheme in any case", []string{"bEaReR 0123456789abcdef-token"}, http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodGet, "/deliveries", nil)
			for _, v := range c.header {
				req.Header.Add("Authorization", v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Errorf("status %d, want %d: %s", rec.Code, c.want, rec.Body)
			}
			if c.want == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate")
			}
			if strings.Contains(rec.Body.String(), string(token)) {
				t.Error("the answer shows the token")
			}
		})
	}
}

func TestEmptyTokenRefusesAll(t *testing.T) {
	t.Parallel()
	h := Handler(Options{Ops: NewOps(emptyStore(t), nil), Token: func() config.Secret { return "" }})
	req := httptest.NewRequest(http.MethodGet, "/deliveries", nil)
	req.Header.Set("Authorization", "Bearer ")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("status %d", rec.Code)
	}
}

func TestErrorsAreJSON(t *testing.T) {
	t.Parallel()
	h := Handler(Options{Ops: NewOps(emptyStore(t), nil), Token: func() config.Secret { return "0123456789abcdef" }})
	for _, c := range []struct {
		method, path, body string
		want               int
		msg                string
	}{
		{http.MethodGet, "/events/evt_x", "", http.StatusNotFound, "not found"},
		{http.MethodGet, "/deliveries?since=soon", "", http.StatusBadRequest, "since: invalid duration"},
		{http.MethodGet, "/events?limit=-1", "", http.StatusBadRequest, "limit"},
		{http.MethodPost, "/replay", `{"sink": "crm", "extra": 1}`, http.StatusBadRequest, "unknown field"},
		{http.MethodGet, "/nope", "", http.StatusNotFound, "no such endpoint"},
	} {
		req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer 0123456789abcdef")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want || rec.Header().Get("Content-Type") != "application/json" || !strings.Contains(rec.Body.String(), c.msg) {
			t.Errorf("%s %s: %d %s, want %d with %q", c.method, c.path, rec.Code, rec.Body, c.want, c.msg)
		}
	}
}

// reloader answers Reload with err.
type reloader struct{ err error }

func (r reloader) Reload(context.Context) (config.Changes, error) { return config.Changes{}, r.err }

// TestReloadFailures: a reload that fails, whether for problems placed
// in the file or for another reason (the file unreadable, a sink that
// cannot open), is a 422 that tells the operator why.
func TestReloadFailures(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"problems", &config.Error{Problems: []config.Problem{{File: "s.yaml", Line: 3, Column: 5, Msg: "routes[0].when: unknown name"}}},
			`"problems":["s.yaml:3:5: routes[0].when: unknown name"]`},
		{"a sink that cannot open", errors.New("sink archive: open archive /ro/a.db: permission denied"),
			`"problems":["sink archive: open archive /ro/a.db: permission denied"]`},
		{"an unreadable file", errors.New("open /etc/switchyard.yaml: no such file or directory"),
			`"problems":["open /etc/switchyard.yaml: no such file or directory"]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := Handler(Options{Ops: NewOps(emptyStore(t), nil), Reloader: reloader{c.err},
				Token: func() config.Secret { return "0123456789abcdef" }})
			req := httptest.NewRequest(http.MethodPost, "/reload", nil)
			req.Header.Set("Authorization", "Bearer 0123456789abcdef")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), c.want) ||
				!strings.Contains(rec.Body.String(), "running configuration is kept") {
				t.Errorf("%d %s, want 422 with %s", rec.Code, rec.Body, c.want)
			}
		})
	}
}
