// Command screenshots regenerates the console's screenshots in the docs:
// it runs a demo gateway (a real store, a CRM that refuses or fails
// some deliveries), posts signed events to it, and photographs every
// page with headless Chromium.
//
//	go run ./console/screenshots            # writes docs/console/*.png
//	go run ./console/screenshots -out DIR
//	go run ./console/screenshots -backend postgres            # a throwaway PostgreSQL
//	go run ./console/screenshots -backend postgres -dsn DSN   # an empty database of yours
//
// The store is SQLite in a temporary directory by default. With
// -backend postgres it is a throwaway PostgreSQL cluster (Debian's
// postgresql package, started as the tests start it), or the empty
// database -dsn names.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/console/demo"
	"github.com/switchyard/switchyard/internal/pgtest"
)

func main() {
	out := flag.String("out", filepath.Join("docs", "console"), "directory to write the screenshots to")
	backend := flag.String("backend", "sqlite", "the gateway's storage: sqlite or postgres")
	dsn := flag.String("dsn", "", "with -backend postgres: an empty database to use instead of a throwaway cluster")
	flag.Parse()
	if *backend != "sqlite" && *backend != "postgres" {
		log.Fatalf("-backend %q: want sqlite or postgres", *backend)
	}
	if *dsn != "" && *backend != "postgres" {
		log.Fatal("-dsn needs -backend postgres")
	}
	if err := run(*out, *backend, *dsn); err != nil {
		log.Fatal(err)
	}
}

func run(out, backend, dsn string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "switchyard-screenshots-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var opts demo.Options
	if backend == "postgres" {
		if dsn == "" {
			c, err := pgtest.New()
			if err != nil {
				return fmt.Errorf("throwaway PostgreSQL: %w", err)
			}
			defer c.Remove()
			if dsn, err = c.NewDatabase(); err != nil {
				return fmt.Errorf("throwaway PostgreSQL: %w", err)
			}
		}
		opts.PostgresDSN = dsn
	}
	g, err := demo.Start(filepath.Join(dir, "gateway"), opts)
	if err != nil {
		return err
	}
	defer g.Stop()
	escalated, err := seed(g)
	yaml := editedYAML(opts)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	ctx, cancel, err := demo.Browser(context.Background(), filepath.Join(dir, "chromium"))
	if err != nil {
		return err
	}
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(g.Console+"login"),
		chromedp.SendKeys(chromedp.CSS("#token"), demo.AdminToken),
		chromedp.Click(chromedp.CSS(".login button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".chart canvas")),
	); err != nil {
		return fmt.Errorf("log in: %w", err)
	}
	shots := []struct {
		name, path string
		width      int64
		wait       string
	}{
		{"overview", "", 1280, ".chart canvas"},
		{"overview-390", "", 390, ".chart canvas"},
		{"events", "events", 1280, "#rows"},
		{"event", "events/" + escalated, 1280, "table.routes"},
		{"event-390", "events/" + escalated, 390, "table.routes"},
		{"dead-letters", "deliveries?state=dead", 1280, "table.audit"},
		{"session", "sessions/sess-blocked", 1280, "ol.session"},
		{"playground", "playground?run=1&mode=edited&event=" + escalated + "&yaml=" + yaml, 1280, "#ed-h"},
		{"config", "config", 1280, "pre.yaml"},
	}
	for _, s := range shots {
		png, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(s.width, 900), chromedp.Navigate(g.Console+s.path),
				chromedp.WaitVisible(chromedp.CSS(s.wait)), chromedp.Sleep(300*time.Millisecond)); err != nil {
				return nil, err
			}
			return chromedp.Run(ctx, chromedp.FullScreenshot(100))
		})
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		path := filepath.Join(out, s.name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", path)
	}
	return nil
}

// editedYAML is the playground's edit: the escalations route narrowed.
func editedYAML(opts demo.Options) string {
	text := demo.Config(opts, "/var/lib/switchyard", "", true)
	text = strings.Replace(text, `data.forwardType == "escalated"`, `data.forwardType == "escalated" && data.smartFields.leadScore > 90`, 1)
	return urlEscape(text)
}

// seed posts what makes the pages worth a look: sessions delivered,
// one held back on the ordered CRM, dead letters, duplicates, a bad
// signature, and a bulk replay in the audit log.
func seed(g *demo.Gateway) (escalated string, err error) {
	post := func(typ, session string, fields map[string]any) string {
		if err != nil {
			return ""
		}
		var id string
		id, err = g.Post(demo.Event(typ, session, fields))
		return id
	}
	titles := []string{"Mariana Costa (+55 11 98765-4321)", "João Pereira", "Ana Souza — Moema", "Carlos Lima"}
	for i := range 8 {
		s := fmt.Sprintf("sess-%d", 100+i)
		fields := map[string]any{"conversationTitle": titles[i%len(titles)]}
		post("session.opened", s, fields)
		id := post("session.forwarded.escalated", s, fields)
		if i == 0 {
			escalated = id
		}
		post("session.analyzed", s, fields)
	}
	// A duplicate and a request with a bad signature, for the overview.
	body := demo.Event("session.closed", "sess-100", nil)
	g.Post(body)
	g.Post(body)
	g.Post(demo.Event("session.closed", "sess-x", nil), "X-Signature", "sha256=00")
	if err := demo.Eventually(10*time.Second, func() bool { return len(g.Received()) >= 16 }); err != nil {
		return "", errors.New("the first deliveries never arrived")
	}
	// Dead letters: the CRM refuses two.
	g.CRMRefuses.Store(true)
	post("session.forwarded.escalated", "sess-dead-1", map[string]any{"conversationTitle": "Rita Alves"})
	post("session.analyzed", "sess-dead-2", map[string]any{"conversationTitle": "Paulo Reis"})
	time.Sleep(500 * time.Millisecond)
	g.CRMRefuses.Store(false)
	// A session held back: the CRM fails (503) and retries.
	g.CRMFails.Store(true)
	post("session.forwarded.escalated", "sess-blocked", map[string]any{"conversationTitle": "Beatriz Nunes"})
	post("session.analyzed", "sess-blocked", map[string]any{"conversationTitle": "Beatriz Nunes"})
	time.Sleep(300 * time.Millisecond)
	// A bulk replay of nothing much, for the audit log.
	ops := g.App.Ops()
	plan, perr := ops.PlanBulk(context.Background(), admin.ActionReplay, admin.DeliveryQuery{Sink: "archive", State: "delivered", Since: "1h"}, 3)
	if perr == nil {
		ops.RunBulk(context.Background(), plan, admin.RoleAdmin, "sink=archive&state=delivered&since=1h", nil)
	}
	return escalated, err
}

func urlEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
