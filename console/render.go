package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchyard/switchyard/admin"
)

// base is what every page's view holds.
type base struct {
	Title string
	Role  string
	CSRF  string
	// Path is the page's path, for the navigation.
	Path string
}

// Admin reports whether the session may act (the admin token).
func (b *base) Admin() bool { return b.Role == admin.RoleAdmin }

// listing is what a list page (events, deliveries) shows around its
// rows: the error its filter met, and the links between its pages.
type listing struct {
	// NextURL is the next page; FirstURL the newest, when this page is
	// not the first.
	NextURL, FirstURL string
	// Error is a filter written wrong, with where it is wrong.
	Error string
}

// paged fills l for a page read from the cursor after, with err its
// error and next the cursor of the page after it; url is the list's
// address with more parameters. A filter written wrong is shown on the
// page; paged returns any other error, which fails the request.
func (l *listing) paged(err error, next, after string, url func(extra ...string) string) error {
	if err != nil {
		if !admin.IsInput(err) {
			return err
		}
		l.Error = err.Error()
	}
	if next != "" {
		l.NextURL = url("after", next)
	}
	if after != "" {
		l.FirstURL = url()
	}
	return nil
}

// status is the list page's answer: 400 when its filter is written
// wrong.
func (l *listing) status() int {
	if l.Error != "" {
		return http.StatusBadRequest
	}
	return http.StatusOK
}

// page is a parsed page: the layout with the page's templates.
type page struct{ t *template.Template }

var funcs = template.FuncMap{
	"ago":      ago,
	"ts":       timestamp,
	"tsISO":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"dur":      duration,
	"ms":       func(ms int64) string { return duration(time.Duration(ms) * time.Millisecond) },
	"qs":       queryString,
	"pathEsc":  url.PathEscape,
	"trunc":    truncate,
	"join":     strings.Join,
	"plural":   plural,
	"add":      func(a, b int) int { return a + b },
	"nonzero":  func(t time.Time) bool { return !t.IsZero() },
	"stateOf":  stateClass,
	"jsonAttr": jsonAttr,
	"rowOf":    func(v *eventsView, e admin.Event) *rowView { return &rowView{base: v.base, E: e} },
}

// parsePages parses every page with the layout. A page's file defines
// "title" and "content"; fragments (for htmx and live views) are
// defined beside them and executed by name.
func parsePages() (map[string]*page, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/parts.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*page{}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" || base == "parts.html" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(files, n)
		if err != nil {
			return nil, err
		}
		out[strings.TrimSuffix(base, ".html")] = &page{t: t}
	}
	return out, nil
}

// render executes a page: the whole layout, or for an htmx request
// that asks for a fragment (HX-Target naming one the page defines) only
// that fragment.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, v any) {
	c.renderTemplate(w, status, name, "layout.html", v)
}

// renderFragment executes one named template of a page.
func (c *Console) renderFragment(w http.ResponseWriter, status int, name, fragment string, v any) {
	c.renderTemplate(w, status, name, fragment, v)
}

func (c *Console) renderTemplate(w http.ResponseWriter, status int, name, tmpl string, v any) {
	p, ok := c.pages[name]
	if !ok {
		c.log.Error("console: no such page template", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := p.t.ExecuteTemplate(&buf, tmpl, v); err != nil {
		c.log.Error("console: render page", "page", name, "err", err)
		http.Error(w, "internal error; see the gateway's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// staticHandler serves the embedded assets, cached for a day.
func staticHandler(static fs.FS) http.Handler {
	fsrv := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		fsrv.ServeHTTP(w, r)
	})
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := time.Since(t)
	if d < 0 {
		return "in " + duration(-d)
	}
	return duration(d) + " ago"
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

// duration writes a duration the short way: 850ms, 12s, 4m10s, 3h5m,
// 2d4h.
func duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// queryString builds "?k=v&…" from pairs, leaving out empty values.
func queryString(pairs ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			v.Set(pairs[i], pairs[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// truncate cuts s to n runes, marking the cut.
func truncate(n int, s string) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func stateClass(state string) string {
	switch state {
	case "delivered", "pending", "failed", "dead":
		return "st-" + state
	}
	return "st-other"
}

// jsonAttr encodes v for a data-* attribute (the template escapes it as
// an attribute value); console.js reads it with JSON.parse.
func jsonAttr(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "null"
	}
	return string(b)
}

// pretty indents a JSON body; anything else is shown as text, with
// bytes that are not UTF-8 as �.
func pretty(body []byte) (text string, isJSON bool) {
	if json.Valid(body) {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			return buf.String(), true
		}
	}
	return strings.ToValidUTF8(string(body), "\uFFFD"), false
}
