package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/console/demo"
	"github.com/switchyard/switchyard/internal/pgtest"
)

// The browser tests drive headless Chromium against a real gateway
// (demo.Start: a real store, events posted signed over HTTP), reading
// what a user reads and clicking what a user clicks, once on each
// storage backend (eachBackend). One browser serves every test, a tab
// each.

var browser struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	err    error
	dir    string
}

func TestMain(m *testing.M) {
	pgtest.Main(m, func() {
		if browser.cancel != nil {
			browser.cancel()
			os.RemoveAll(browser.dir)
		}
	})
}

// tab opens a browser tab for the test, counting the JavaScript dialogs
// any page opens (and closing them). Without Chromium the test skips,
// or fails in CI.
func tab(t *testing.T) (context.Context, *atomic.Int32) {
	t.Helper()
	browser.once.Do(func() {
		browser.dir, browser.err = os.MkdirTemp("", "switchyard-chromium-")
		if browser.err == nil {
			browser.ctx, browser.cancel, browser.err = demo.Browser(context.Background(), browser.dir)
		}
	})
	if errors.Is(browser.err, demo.ErrNoBrowser) {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and Chromium is missing: .ci/run installs it (apt-get install chromium)")
		}
		t.Skip("browser test skipped: install Chromium (apt-get install chromium) to run it")
	}
	if browser.err != nil {
		t.Fatalf("start Chromium: %v", browser.err)
	}
	// A browser context of its own: cookies are not shared between tabs.
	ctx, cancel := chromedp.NewContext(browser.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatal(err)
	}
	var dialogs atomic.Int32
	events := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range events {
			if err != nil {
				return
			}
			dialogs.Add(1)
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	tctx, tcancel := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(tcancel)
	return tctx, &dialogs
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// text is what a user reads of the first element sel selects.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	q, _ := json.Marshal(sel)
	return eval[string](t, ctx, `(document.querySelector(`+string(q)+`) || {innerText: ""}).innerText`)
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// browserLogin logs in through the login page, as a person would.
func browserLogin(t *testing.T, ctx context.Context, g *demo.Gateway, token string) {
	t.Helper()
	do(t, ctx,
		chromedp.Navigate(g.Console+"login"),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS(".login button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("header nav")),
	)
}

func TestBrowserLogin(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		g := b.start(t)
		ctx, _ := tab(t)
		do(t, ctx,
			chromedp.Navigate(g.Console+"events"), // not logged in: to the login page
			chromedp.SendKeys(chromedp.CSS("#token"), "wrong-token-0123456789abcdef"),
			chromedp.Click(chromedp.CSS(".login button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS(".login p.error")),
		)
		if msg := text(t, ctx, ".login p.error"); !strings.Contains(msg, "Wrong token") {
			t.Fatalf("wrong token: %q", msg)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll("header nav").length`); n != 0 {
			t.Fatal("the navigation shows to a browser that is not logged in")
		}
		do(t, ctx,
			chromedp.SendKeys(chromedp.CSS("#token"), demo.AdminToken),
			chromedp.Click(chromedp.CSS(".login button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("header nav")),
		)
		// Back where it was going, with the HttpOnly cookie out of scripts' reach.
		if h := text(t, ctx, "main h1"); h != "Events" {
			t.Fatalf("after login: %q, want the events page asked for", h)
		}
		if c := eval[string](t, ctx, `document.cookie`); strings.Contains(c, "switchyard_session") {
			t.Fatalf("the session cookie is readable from scripts: %q", c)
		}
	})
}

func TestBrowserFilterEvents(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		g := b.start(t)
		for i := range 3 {
			mustPost(t, g, demo.Event("session.forwarded.escalated", fmt.Sprint("sess-", i), nil))
		}
		analyzed := mustPost(t, g, demo.Event("session.analyzed", "sess-9", map[string]any{"summary": "Cliente pediu ESTORNO do sinal"}))
		ctx, _ := tab(t)
		browserLogin(t, ctx, g, demo.AdminToken)
		do(t, ctx, chromedp.Navigate(g.Console+"events"), chromedp.WaitVisible(chromedp.CSS("form.filters")))
		if n := eval[int](t, ctx, `document.querySelectorAll("#rows tr").length`); n != 4 {
			t.Fatalf("%d rows, want 4", n)
		}
		do(t, ctx,
			chromedp.SendKeys(chromedp.CSS("input[name=type]"), "session.*"),
			chromedp.SendKeys(chromedp.CSS("input[name=text]"), "estorno"),
			chromedp.Click(chromedp.CSS("form.filters button[type=submit]")),
		)
		waitLocation(t, ctx, "text=")
		do(t, ctx, chromedp.WaitVisible(chromedp.CSS("#rows")))
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		if !strings.Contains(loc, "type=session.*") || !strings.Contains(loc, "text=estorno") {
			t.Fatalf("the filter is not in the URL: %s", loc)
		}
		rows := eval[[]string](t, ctx, `[...document.querySelectorAll("#rows tr")].map(r => r.innerText)`)
		if len(rows) != 1 || !strings.Contains(rows[0], "session.analyzed") {
			t.Fatalf("filtered rows: %q, want only %s", rows, analyzed)
		}
		// A condition in the rules' language, and one written wrong.
		do(t, ctx, chromedp.Navigate(g.Console+"events?where="+url.QueryEscape(`data.sessionId in ["sess-1", "sess-2"]`)),
			chromedp.WaitVisible(chromedp.CSS("#rows")))
		if n := eval[int](t, ctx, `document.querySelectorAll("#rows tr").length`); n != 2 {
			t.Fatalf("%d rows with a condition, want 2", n)
		}
		do(t, ctx, chromedp.Navigate(g.Console+"events?where="+url.QueryEscape(`data.x >`)), chromedp.WaitVisible(chromedp.CSS("#filter-error")))
		if msg := text(t, ctx, "#filter-error"); !strings.Contains(msg, "where: 1:") {
			t.Fatalf("a condition written wrong: %q, want its line:column", msg)
		}
		// The live tail: a new event appears at the top, without a reload.
		do(t, ctx, chromedp.Navigate(g.Console+"events?type=session.closed"), chromedp.Click(chromedp.CSS("a.switch")))
		waitLocation(t, ctx, "tail=1")
		do(t, ctx, chromedp.WaitVisible(chromedp.CSS("#rows")), chromedp.Sleep(300*time.Millisecond))
		mustPost(t, g, demo.Event("session.opened", "sess-tail", nil)) // filtered out
		closed := mustPost(t, g, demo.Event("session.closed", "sess-tail", nil))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#rows tr a[href='/ui/events/`+closed+`']") !== null`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("the tailed event never appeared: %v\n%s", err, text(t, ctx, "#rows"))
		}
		if rows := text(t, ctx, "#rows"); strings.Contains(rows, "session.opened") {
			t.Errorf("the tail shows an event its filter leaves out:\n%s", rows)
		}
	})
}

// waitLocation waits for a click's navigation: until the page's URL
// contains part.
func waitLocation(t *testing.T, ctx context.Context, part string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState === "complete" ? location.href : ""`))
		if err == nil && strings.Contains(loc, part) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never went to a URL with %q (at %q, %v)", part, loc, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustPost(t *testing.T, g *demo.Gateway, body []byte, header ...string) string {
	t.Helper()
	id, err := g.Post(body, header...)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestBrowserEventDetail(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		g := b.start(t)
		id := mustPost(t, g, demo.Event("session.forwarded.escalated", "sess-1", nil), "X-Request-Id", "req-42")
		ctx, _ := tab(t)
		browserLogin(t, ctx, g, demo.AdminToken)
		do(t, ctx,
			chromedp.Navigate(g.Console+"events"),
			chromedp.Click(chromedp.CSS(`#rows a[href="/ui/events/`+id+`"]`)),
			chromedp.WaitVisible(chromedp.CSS("table.routes")),
		)
		routes := eval[[]string](t, ctx, `[...document.querySelectorAll("table.routes tbody tr")].map(r => r.innerText)`)
		want := []string{
			"escalations", "matched: session.forwarded.*, and when is true", `data.forwardType == "escalated"  →  "escalated" == "escalated"  →  true`,
			"summaries", "missed: the type matches none of session.analyzed",
		}
		joined := strings.Join(routes, "\n")
		for _, w := range want {
			if !strings.Contains(joined, w) {
				t.Errorf("routing explanation lacks %q:\n%s", w, joined)
			}
		}
		raw := text(t, ctx, "section[aria-labelledby=raw-h]")
		if !strings.Contains(raw, "X-Request-Id: req-42") || !strings.Contains(raw, `"forwardType": "escalated"`) {
			t.Errorf("request as received:\n%s", raw)
		}
		if body := eval[string](t, ctx, `document.documentElement.outerHTML`); strings.Contains(body, "X-Signature") {
			t.Error("the page shows the signature header")
		}
		if tl := text(t, ctx, "section[aria-labelledby=dl-h]"); !strings.Contains(tl, "crm") || !strings.Contains(tl, "ops-slack") {
			t.Errorf("deliveries: %s", tl)
		}
	})
}

// TestBrowserReplayDeadLetter: a delivery the sink refused is dead; the
// sink is fixed; replaying it from the dead letters delivers it.
func TestBrowserReplayDeadLetter(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		g := b.start(t)
		g.CRMRefuses.Store(true)
		id := mustPost(t, g, demo.Event("session.forwarded.escalated", "sess-1", nil))
		ctx, _ := tab(t)
		browserLogin(t, ctx, g, demo.AdminToken)
		waitPage(t, ctx, g.Console+"deliveries?state=dead", `document.querySelectorAll("table.deliveries tbody form").length == 1`)
		if row := text(t, ctx, "table.deliveries tbody tr"); !strings.Contains(row, "HTTP 400") || !strings.Contains(row, "missing_field") {
			t.Fatalf("dead letter row: %q", row)
		}
		g.CRMRefuses.Store(false)
		submit(t, ctx, "table.deliveries tbody form button")
		if err := demo.Eventually(10*time.Second, func() bool { return len(g.Received()) == 1 }); err != nil {
			t.Fatal("the replayed delivery never reached the sink")
		}
		waitPage(t, ctx, g.Console+"events/"+id, `[...document.querySelectorAll("article.delivery h3")].some(h => h.innerText.includes("crm") && h.innerText.includes("delivered"))`)
		tl := eval[string](t, ctx, `[...document.querySelectorAll("article.delivery")].find(a => a.querySelector("h3").innerText.startsWith("crm")).querySelector("ol.timeline").innerText`)
		if !strings.Contains(tl, "dead") || !strings.Contains(tl, "HTTP 400") || !strings.Contains(tl, "delivered") {
			t.Errorf("crm's timeline: %s", tl)
		}
	})
}

// TestBrowserSession: a session held back on the ordered CRM, read on
// its page (which delivery holds it, its error, what waits behind),
// then moved on with the page's buttons: give up the head (dead), so
// the next goes, and retry that one now once the CRM is back.
func TestBrowserSession(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		g := b.start(t)
		g.CRMFails.Store(true)
		mustPost(t, g, demo.Event("session.forwarded.escalated", "sess-1", nil))
		analyzed := mustPost(t, g, demo.Event("session.analyzed", "sess-1", nil))
		ctx, _ := tab(t)
		browserLogin(t, ctx, g, demo.AdminToken)
		const crm = `section[aria-label="Sink crm"]`
		waitPage(t, ctx, g.Console+"sessions/sess-1", `(document.querySelector('`+crm+` p.head') || {innerText: ""}).innerText.startsWith("Holds the session back")`)
		head := text(t, ctx, crm+" p.head")
		if !strings.Contains(head, "session.forwarded.escalated") || !strings.Contains(head, "HTTP 503") || !strings.Contains(head, "next attempt") {
			t.Errorf("the head: %q", head)
		}
		if behind := text(t, ctx, crm+" p.head + p"); behind != "1 more waits behind it." {
			t.Errorf("behind the head: %q", behind)
		}
		// An attempt in flight cannot be given up: the page says so, and
		// the user tries again.
		for try := 0; ; try++ {
			submit(t, ctx, crm+` li.is-head form[action$="/give-up"] button`)
			if strings.HasPrefix(text(t, ctx, "main h1"), "Session") {
				break
			}
			if try == 5 {
				t.Fatalf("give up: %s", text(t, ctx, "main"))
			}
			do(t, ctx, chromedp.Navigate(g.Console+"sessions/sess-1"), chromedp.WaitVisible(chromedp.CSS(crm+" li.is-head")))
		}
		// The escalation is dead; the summary is the head now, and fails.
		if first := text(t, ctx, crm+" ol.session li"); !strings.Contains(first, "session.forwarded.escalated") || !strings.Contains(first, "dead") {
			t.Errorf("the escalation after giving up: %q", first)
		}
		waitPage(t, ctx, g.Console+"sessions/sess-1", `(document.querySelector('`+crm+` p.head') || {innerText: ""}).innerText.includes("session.analyzed")`)
		g.CRMFails.Store(false)
		submit(t, ctx, crm+` li.is-head form[action$="/retry-now"] button`)
		if err := demo.Eventually(10*time.Second, func() bool { return len(g.Received()) == 1 }); err != nil {
			t.Fatal("the summary never reached the CRM")
		}
		if got := string(g.Received()[0]); !strings.Contains(got, "session.analyzed") {
			t.Errorf("the CRM got %.200s, want the summary only", got)
		}
		waitPage(t, ctx, g.Console+"sessions/sess-1", `document.querySelectorAll('`+crm+` li .state').length == 2 && document.querySelectorAll('`+crm+` p.head').length == 0`)
		states := eval[[]string](t, ctx, `[...document.querySelectorAll('`+crm+` li .state')].map(s => s.innerText)`)
		if len(states) != 2 || states[0] != "dead" || states[1] != "delivered" {
			t.Errorf("crm's deliveries of the session: %q, want dead then delivered (%s)", states, analyzed)
		}
	})
}

// submit clicks a form's button and waits for the page it leads to.
func submit(t *testing.T, ctx context.Context, button string) {
	t.Helper()
	do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.beforeSubmit = true`), chromedp.Click(chromedp.CSS(button)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		done, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.beforeSubmit === undefined && document.readyState === "complete"`))
		if err == nil && done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("clicking %s led nowhere (%v)", button, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPage loads url until cond (JavaScript) holds on it.
func waitPage(t *testing.T, ctx context.Context, url, cond string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		do(t, ctx, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("main")))
		if eval[bool](t, ctx, cond) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s never held:\n%s", url, cond, text(t, ctx, "main"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBrowserBulkReplay: replay everything a filter matches, after the
// dry-run count, with progress and an audit entry.
func TestBrowserBulkReplay(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		g := b.start(t)
		g.CRMRefuses.Store(true)
		for i := range 5 {
			mustPost(t, g, demo.Event("session.forwarded.escalated", fmt.Sprint("sess-", i), nil))
		}
		ctx, _ := tab(t)
		browserLogin(t, ctx, g, demo.AdminToken)
		waitPage(t, ctx, g.Console+"deliveries?sink=crm&state=dead", `document.querySelectorAll("table.deliveries tbody form").length == 5`)
		g.CRMRefuses.Store(false)
		do(t, ctx, chromedp.Click(chromedp.CSS(`section.bulk button[value=replay]`)), chromedp.WaitVisible(chromedp.CSS("#dry-run")))
		if count := text(t, ctx, "#dry-run"); !strings.HasPrefix(count, "5 deliveries match") {
			t.Fatalf("dry run: %q", count)
		}
		if len(g.Received()) != 0 {
			t.Fatal("the dry run replayed")
		}
		do(t, ctx, chromedp.Click(chromedp.CSS(`main form button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("#progress")))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#job-status").innerText.startsWith("Done")`)); err != nil {
			t.Fatalf("the job never said done: %v", err)
		}
		if status := text(t, ctx, "#job-status"); status != "Done: 5 of 5 replayed." {
			t.Fatalf("job: %q", status)
		}
		if err := demo.Eventually(10*time.Second, func() bool { return len(g.Received()) == 5 }); err != nil {
			t.Fatalf("the sink got %d of 5", len(g.Received()))
		}
		do(t, ctx, chromedp.Navigate(g.Console+"deliveries"), chromedp.WaitVisible(chromedp.CSS("table.audit")))
		audit := text(t, ctx, "table.audit tbody tr")
		for _, w := range []string{"admin", "replay", "sink=crm&state=dead", "5"} {
			if !strings.Contains(audit, w) {
				t.Errorf("audit entry %q lacks %q", audit, w)
			}
		}
		if strings.Contains(audit, demo.AdminToken) {
			t.Error("the audit log shows the token")
		}
	})
}

// TestBrowserPlayground: a stored event through YAML edited in the page:
// the edited rules' verdicts beside the running ones, the what-if, and a
// mistake shown at its line and column.
func TestBrowserPlayground(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		g := b.start(t)
		id := mustPost(t, g, demo.Event("session.forwarded.escalated", "sess-1", nil))
		mustPost(t, g, demo.Event("session.forwarded.escalated", "sess-2", nil))
		if err := demo.Eventually(10*time.Second, func() bool { return len(g.Received()) == 2 }); err != nil {
			t.Fatal("the two events never reached the CRM")
		}
		ctx, _ := tab(t)
		browserLogin(t, ctx, g, demo.AdminToken)
		do(t, ctx, chromedp.Navigate(g.Console+"playground"), chromedp.WaitVisible(chromedp.CSS("#yaml")))
		yaml := eval[string](t, ctx, `document.querySelector("#yaml").value`)
		if !strings.Contains(yaml, `data.forwardType == "escalated"`) || strings.Contains(yaml, demo.AdminToken) || !strings.Contains(yaml, "<secret>") {
			t.Fatalf("the YAML to edit:\n%s", yaml)
		}
		edited := strings.Replace(yaml, `data.forwardType == "escalated"`, `data.forwardType == "qualified"`, 1)
		do(t, ctx,
			chromedp.SetValue(chromedp.CSS("#yaml"), edited),
			chromedp.SendKeys(chromedp.CSS("input[name=event]"), id),
			chromedp.Click(chromedp.CSS("input[name=mode][value=edited]")),
			chromedp.Click(chromedp.CSS("form.playground > button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("#ed-h")),
		)
		running := text(t, ctx, "section[aria-labelledby=run-h] table.routes")
		editedOut := text(t, ctx, "section[aria-labelledby=ed-h] table.routes")
		if !strings.Contains(running, "matched: session.forwarded.*, and when is true") ||
			!strings.Contains(editedOut, "missed: session.forwarded.* matches, but when is false") {
			t.Fatalf("running:\n%s\nedited:\n%s", running, editedOut)
		}
		whatif := eval[[]string](t, ctx, `[...document.querySelectorAll("table.whatif tbody tr")].map(r => r.innerText.replace(/\s+/g, " ").trim())`)
		if len(whatif) == 0 || whatif[0] != "escalations 2 0" {
			t.Fatalf("what-if: %q, want escalations 2 running, 0 edited", whatif)
		}
		// A mistake: shown at its line and column, in the text as edited.
		broken := strings.Replace(yaml, "to: [crm, ops-slack]", "to: [crm, ops-slak]", 1)
		line := strings.Count(broken[:strings.Index(broken, "ops-slak")], "\n") + 1
		do(t, ctx,
			chromedp.SetValue(chromedp.CSS("#yaml"), broken),
			chromedp.Click(chromedp.CSS("form.playground > button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("#prob-h")),
		)
		probs := text(t, ctx, "section.problems")
		if !strings.Contains(probs, fmt.Sprintf("edited.yaml:%d:", line)) || !strings.Contains(probs, "ops-slak") {
			t.Fatalf("problems: %s (want line %d)", probs, line)
		}
		if n := len(g.Received()); n != 2 {
			t.Fatalf("the CRM got %d requests, want the 2 events' only: the playground sends nothing", n)
		}
		if evs, _, _ := g.App.Ops().Events(context.Background(), admin.EventQuery{}); len(evs) != 2 {
			t.Fatalf("%d events stored, want 2: the playground stores nothing", len(evs))
		}
	})
}

// TestBrowserViewer: the viewer sees everything, no action button, and
// its POSTs are refused; a POST without the CSRF token is refused too.
func TestBrowserViewer(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		g := b.start(t)
		g.CRMRefuses.Store(true)
		id := mustPost(t, g, demo.Event("session.forwarded.escalated", "sess-1", nil))
		ctx, _ := tab(t)
		browserLogin(t, ctx, g, demo.ViewerToken)
		waitPage(t, ctx, g.Console+"deliveries?state=dead", `document.querySelectorAll("table.deliveries tbody tr td").length > 1`)
		for _, path := range []string{"deliveries?state=dead", "events/" + id, "sessions/sess-1", "config", ""} {
			do(t, ctx, chromedp.Navigate(g.Console+path), chromedp.WaitReady(chromedp.CSS("main")))
			buttons := eval[[]string](t, ctx, `[...document.querySelectorAll("main form[method=post] button")].map(b => b.innerText)`)
			if len(buttons) != 0 {
				t.Errorf("%s shows the viewer buttons %q", path, buttons)
			}
		}
		csrf := eval[string](t, ctx, `document.querySelector("header form input[name=csrf]").value`)
		status := eval[int](t, ctx, `fetch("/ui/events/`+id+`/replay", {method: "POST", headers: {"X-CSRF-Token": "`+csrf+`"}}).then(r => r.status)`)
		if status != 403 {
			t.Errorf("the viewer's replay: %d, want 403", status)
		}
		// The admin's POST without the CSRF token.
		actx, _ := tab(t)
		browserLogin(t, actx, g, demo.AdminToken)
		status = eval[int](t, actx, `fetch("/ui/events/`+id+`/replay", {method: "POST"}).then(r => r.status)`)
		if status != 403 {
			t.Errorf("a replay without the CSRF token: %d, want 403", status)
		}
		ds, _ := g.App.Store().List(context.Background(), queueFilterEvent(id))
		for _, d := range ds {
			if d.Replays != 0 {
				t.Errorf("a refused replay replayed %s", d.Sink)
			}
		}
	})
}

// TestBrowserHostileEvents: event data that tries to run script, break
// out of attributes, inject links, overflow the layout or flip text
// direction is shown as text: no dialog opens, no element is injected,
// and the pages keep their width, at 1280 and 390 pixels.
func TestBrowserHostileEvents(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		g := b.start(t)
		hostile := map[string]any{
			"conversationTitle": `<script>alert("title")</script>`,
			"summary":           `"><img src=x onerror=alert("summary")>` + strings.Repeat("A", 100<<10),
			"forwardedToName":   "javascript:alert('link')",
			"channelName":       "\u202eطلب استرداد مرحبا\u202c ✅🙂👩🏽‍💻 עברית",
		}
		id := mustPost(t, g, demo.Event("session.forwarded.escalated", `"><svg onload=alert(1)>`, hostile))
		mustPost(t, g, demo.Event(`session.<b>bold</b>`, "javascript:alert(2)", hostile))
		ctx, dialogs := tab(t)
		browserLogin(t, ctx, g, demo.AdminToken)
		pages := []string{"", "events", "events/" + id, "deliveries", "sessions/" + url.PathEscape(`"><svg onload=alert(1)>`),
			"playground?run=1&event=" + id, "events?text=" + url.QueryEscape("<script>")}
		for _, width := range []int64{1280, 390} {
			do(t, ctx, chromedp.EmulateViewport(width, 900))
			for _, p := range pages {
				do(t, ctx, chromedp.Navigate(g.Console+p), chromedp.WaitReady(chromedp.CSS("main")), chromedp.Sleep(50*time.Millisecond))
				injected := eval[int](t, ctx, `document.querySelectorAll("main img, main svg, main script, main b, main iframe, [onerror], [onload]").length`)
				if injected != 0 {
					t.Errorf("%s at %d px: %d injected elements", p, width, injected)
				}
				if n := eval[int](t, ctx, `document.querySelectorAll("script:not([src])").length`); n != 0 {
					t.Errorf("%s: %d inline scripts", p, n)
				}
				if js := eval[int](t, ctx, `[...document.querySelectorAll("a[href]")].filter(a => a.protocol === "javascript:").length`); js != 0 {
					t.Errorf("%s: %d javascript: links", p, js)
				}
				if sw := eval[int](t, ctx, `document.documentElement.scrollWidth`); sw > int(width)+2 {
					wide := eval[[]string](t, ctx, `[...document.querySelectorAll("body *")].filter(e => (!e.parentElement.closest(".scroll")) && e.getBoundingClientRect().right > innerWidth + 2).slice(0, 5).map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right))`)
					t.Errorf("%s at %d px: the page is %d px wide: %q", p, width, sw, wide)
				}
			}
		}
		body := eval[string](t, ctx, `document.body.innerText`)
		if !strings.Contains(body, `<script>alert("title")</script>`) {
			t.Error("the hostile title is not shown as text")
		}
		time.Sleep(100 * time.Millisecond)
		if n := dialogs.Load(); n != 0 {
			t.Fatalf("%d JavaScript dialogs opened", n)
		}
	})
}
