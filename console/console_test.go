package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/console/demo"
)

func login(t testing.TB, g *demo.Gateway, token string) *demo.Client {
	t.Helper()
	c, status, err := demo.Login(g.Console, token)
	if err != nil || c == nil {
		t.Fatalf("login: %d, %v", status, err)
	}
	return c
}

// TestPagesRender: every page answers 200 with its heading, to the
// admin and the viewer, on a store with events, deliveries in every
// state and a session held back.
func TestPagesRender(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		g := b.start(t)
		g.CRMFails.Store(true)
		id, err := g.Post(demo.Event("session.forwarded.escalated", "sess-1", nil))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Post(demo.Event("session.analyzed", "sess-1", nil)); err != nil {
			t.Fatal(err)
		}
		for _, token := range []string{demo.AdminToken, demo.ViewerToken} {
			c := login(t, g, token)
			for _, p := range []struct{ path, want string }{
				{"/ui/", "Overview"},
				{"/ui/events", "Events"},
				{"/ui/events?type=session.*&state=pending&since=1h&text=reembolso&where=data.smartFields.leadScore+%3E+80", id},
				{"/ui/events/" + id, "Routing"},
				{"/ui/deliveries", "Deliveries"},
				{"/ui/deliveries?state=dead", "Dead letters"},
				{"/ui/sessions/sess-1", "Session"},
				{"/ui/playground", "Rules playground"},
				{"/ui/playground?run=1&event=" + id, "matched"},
				{"/ui/config", "Running configuration"},
			} {
				body, status, err := c.Get(p.path)
				if err != nil || status != http.StatusOK || !strings.Contains(body, p.want) {
					t.Errorf("%s as %s: %d %v, want 200 with %q:\n%s", p.path, token[:5], status, err, p.want, excerpt(body))
				}
			}
		}
	})
}

func excerpt(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}

// TestLoginAndCSRF: a wrong token is refused; a POST without the CSRF
// token, or from another site, is refused and changes nothing; the
// viewer's POSTs are refused.
func TestLoginAndCSRF(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		g := b.start(t)
		if c, status, err := demo.Login(g.Console, "wrong-token-0123456789abcdef"); c != nil || status != http.StatusUnauthorized || err != nil {
			t.Fatalf("wrong token: %v %d %v", c, status, err)
		}
		c := login(t, g, demo.AdminToken)
		if _, status, _ := c.Post("/ui/config/reload", map[string][]string{"csrf": {"forged"}}); status != http.StatusForbidden {
			t.Errorf("POST with a wrong CSRF token: %d, want 403", status)
		}
		if _, status, _ := c.Post("/ui/config/reload", map[string][]string{"csrf": {""}}); status != http.StatusForbidden {
			t.Errorf("POST without a CSRF token: %d, want 403", status)
		}
		v := login(t, g, demo.ViewerToken)
		body, status, _ := v.Post("/ui/config/reload", map[string][]string{})
		if status != http.StatusForbidden || !strings.Contains(body, "viewer") {
			t.Errorf("viewer POST: %d, want 403", status)
		}
		// The reload went through for the admin only.
		if _, status, _ := c.Post("/ui/config/reload", map[string][]string{}); status != http.StatusOK {
			t.Errorf("admin reload: %d", status)
		}
		body, _, _ = c.Get("/ui/config")
		if !strings.Contains(body, "applied") {
			t.Errorf("config page after reload:\n%s", excerpt(body))
		}
	})
}

// TestOddBytes: a session id holding a NUL byte, and filters carrying a
// NUL byte or bytes that are not UTF-8 (anyone can type them in a URL),
// are text like any other on every backend: the pages find the session
// and its events, or nothing, and never fail.
func TestOddBytes(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		g := b.start(t)
		g.CRMFails.Store(true)
		const session = "sess\x00nul"
		id, err := g.Post(demo.Event("session.forwarded.escalated", session, map[string]any{"conversationTitle": "Ana\x00Lima"}))
		if err != nil {
			t.Fatal(err)
		}
		c := login(t, g, demo.AdminToken)
		for _, p := range []struct{ path, want string }{
			{"/ui/events/" + id, "sess"},
			{"/ui/sessions/" + url.PathEscape(session), id},
			{"/ui/events?subject=" + url.QueryEscape(session), id},
			{"/ui/deliveries?subject=" + url.QueryEscape(session), id},
			{"/ui/events?text=" + url.QueryEscape("Ana\x00Lima"), id},
			{"/ui/events?text=%FF%FEzz", "No events"},
			{"/ui/events?source=%00&type=session.%FF.*", "No events"},
			{"/ui/deliveries?sink=%00&error=%FF", "No deliveries"},
			{"/ui/deliveries?event=%00", "No deliveries"},
			{"/ui/events/evt%00", "not found"},
			{"/ui/sessions/%FF", "not found"},
		} {
			body, _, err := c.Get(p.path)
			if err != nil || !strings.Contains(body, p.want) {
				t.Errorf("%s: %v, want %q:\n%s", p.path, err, p.want, excerpt(body))
			}
		}
		for _, path := range []string{"/ui/events/evt%00/replay", "/ui/deliveries/dlv%00/retry-now", "/ui/deliveries/dlv%FF/give-up"} {
			if body, status, _ := c.Post(path, map[string][]string{}); status >= 500 {
				t.Errorf("POST %s: %d:\n%s", path, status, excerpt(body))
			}
		}
	})
}
