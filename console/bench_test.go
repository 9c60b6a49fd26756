package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/console"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/queue"
)

const benchConfig = `sources:
  - {name: darwin, provider: darwin, secret: x}
sinks:
  - {name: crm, type: http, url: "https://crm.example.com/h"}
routes:
  - {name: all, match: ["*"], to: [crm]}
admin: {listen: "127.0.0.1:0", token: admin-token-0123456789abcdef}
`

// bigConsole is a console on a store of b of n events of about 1 KB,
// each with its request and a delivery, and a logged-in admin session.
func bigConsole(tb testing.TB, b backend, n int) (h http.Handler, cookie *http.Cookie) {
	tb.Helper()
	s, dsn := b.open(tb)
	start := time.Now().Add(-time.Duration(n) * time.Millisecond)
	var wg sync.WaitGroup
	const workers = 32
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				at := start.Add(time.Duration(i) * time.Millisecond)
				data, _ := json.Marshal(map[string]any{"sessionId": fmt.Sprint("sess-", i%5000), "conversationTitle": fmt.Sprint("Cliente ", i),
					"summary": strings.Repeat("O cliente pediu reembolso e foi encaminhado. ", 16), "n": i})
				body := append(append([]byte(`{"eventType":"session.forwarded.escalated","data":`), data...), '}')
				ev := &event.Event{ID: event.NewID("evt_", at), Source: "darwin", EventType: "session.forwarded.escalated",
					Subject: fmt.Sprint("sess-", i%5000), Timestamp: at, ReceivedAt: at, Data: data, DedupKey: fmt.Sprint("k", i),
					Request: &event.Request{Body: body, Header: "Content-Type: application/json\nUser-Agent: Darwin-Webhooks/1.0\n"}}
				if _, err := s.Accept(context.Background(), queue.Incoming{Event: ev, Targets: []queue.Target{{Sink: "crm", Routes: []string{"all"}}}}); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if dsn != "" {
		// What autovacuum does within a minute of a bulk load: without
		// statistics the planner takes every event for rare.
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			tb.Fatal(err)
		}
		_, err = conn.Exec(context.Background(), "ANALYZE")
		conn.Close(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
	}
	return consoleOn(tb, s, console.Options{})
}

// consoleOn is a console on s, with opts besides what it reads from s
// and a configuration, and a logged-in admin session.
func consoleOn(tb testing.TB, s queue.Store, opts console.Options) (h http.Handler, cookie *http.Cookie) {
	tb.Helper()
	cfg, err := config.Parse("bench.yaml", []byte(benchConfig), func(string) (string, bool) { return "", false })
	if err != nil {
		tb.Fatal(err)
	}
	opts.Ops = admin.NewOps(s, nil)
	opts.Tokens = func() (config.Secret, config.Secret) { return cfg.Admin.Token, "" }
	opts.Config = func() *config.Config { return cfg }
	c, err := console.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	h = c.Handler()
	// Log in as a browser does: the form's CSRF cookie, then the token.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/login", nil))
	loginCookie := rec.Result().Cookies()[0]
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(rec.Body.String())[1]
	form := url.Values{"csrf": {csrf}, "token": {cfg.Admin.Token.Reveal()}}
	req := httptest.NewRequest(http.MethodPost, "/ui/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(loginCookie)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	for _, ck := range rec.Result().Cookies() {
		if ck.Name == "switchyard_session" && ck.Value != "" {
			cookie = ck
		}
	}
	if cookie == nil {
		tb.Fatalf("login: %d", rec.Code)
	}
	return h, cookie
}

func get(tb testing.TB, h http.Handler, cookie *http.Cookie, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.AddCookie(cookie)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		tb.Fatalf("%s: %d\n%s", path, rec.Code, rec.Body)
	}
	return rec
}

// BenchmarkEventsPage renders the events page (50 events with their
// deliveries) on a store of 100,000 events, on each backend: the
// server's time per page, the first page and one deep in the store
// (keyset paging), and with a filter. The bound is 100 ms.
// text-nomatch and where-nomatch are the worst cases: a title and
// summary search that reads every event, and a condition evaluated
// over the 5000 events a page reads.
func BenchmarkEventsPage(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) { benchmarkEventsPage(b, be) })
	}
}

func benchmarkEventsPage(b *testing.B, be backend) {
	h, cookie := bigConsole(b, be, 100_000)
	deep := get(b, h, cookie, "/ui/events").Body.String()
	for range 400 { // 400 pages × 50: 20,000 events in
		m := regexp.MustCompile(`href="(/ui/events\?after=[^"]+)"`).FindStringSubmatch(deep)
		deep = get(b, h, cookie, strings.ReplaceAll(m[1], "&amp;", "&")).Body.String()
	}
	deepURL := strings.ReplaceAll(regexp.MustCompile(`href="(/ui/events\?after=[^"]+)"`).FindStringSubmatch(deep)[1], "&amp;", "&")
	for _, bc := range []struct{ name, path string }{
		{"first", "/ui/events"},
		{"page400", deepURL},
		{"subject", "/ui/events?subject=sess-42"},
		{"type+state", "/ui/events?type=session.*&state=pending"},
		// Searches that no index serves, matching nothing: the worst case.
		{"text-nomatch", "/ui/events?text=zzzz"},
		{"where-nomatch", "/ui/events?where=data.n+%3C+0"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var size int
			for b.Loop() {
				size = get(b, h, cookie, bc.path).Body.Len()
			}
			b.ReportMetric(float64(size)/1024, "KB/page")
		})
	}
}

// TestPageWeight: a page and everything it loads weigh under 200 KB
// (uncompressed): the events page with a full page of events, an
// event's detail, and the overview with its chart library.
func TestPageWeight(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		h, cookie := bigConsole(t, b, 120)
		list := get(t, h, cookie, "/ui/events").Body.String()
		id := regexp.MustCompile(`href="/ui/events/(evt_[^"#]+)"`).FindStringSubmatch(list)[1]
		for _, path := range []string{"/ui/events", "/ui/events/" + id, "/ui/", "/ui/deliveries", "/ui/playground", "/ui/config"} {
			page := get(t, h, cookie, path).Body.String()
			total := len(page)
			for _, m := range regexp.MustCompile(`(?:src|href)="(/ui/static/[^"]+)"`).FindAllStringSubmatch(page, -1) {
				total += get(t, h, cookie, m[1]).Body.Len()
			}
			t.Logf("%s: %d KB with its assets", path, total/1024)
			if total > 200<<10 {
				t.Errorf("%s weighs %d KB with its assets, over 200 KB", path, total/1024)
			}
		}
	})
}
