package console

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"time"
)

type bytesBuffer = bytes.Buffer

// renderFragmentTo executes one named template of a page into w.
func (c *Console) renderFragmentTo(w io.Writer, name, fragment string, v any) {
	p, ok := c.pages[name]
	if !ok {
		return
	}
	if err := p.t.ExecuteTemplate(w, fragment, v); err != nil {
		c.log.Error("console: render fragment", "page", name, "fragment", fragment, "err", err)
	}
}

// maxStream bounds a live view's connection: the browser reconnects.
const maxStream = 10 * time.Minute

// stream answers with server-sent events: tick runs at once and then
// every LiveEvery, sending events through send, until the browser
// leaves, the console closes, maxStream passes, or tick fails.
func (c *Console) stream(w http.ResponseWriter, r *http.Request, tick func(send func(event, html string) error) error) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	c.wg.Add(1)
	defer c.wg.Done()
	select {
	case <-c.quit:
		return
	default:
	}
	// The admin listener's write timeout would cut a live view short.
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event, html string) error {
		var b strings.Builder
		b.WriteString("event: ")
		b.WriteString(event)
		b.WriteByte('\n')
		for _, line := range strings.Split(html, "\n") {
			b.WriteString("data: ")
			b.WriteString(line)
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
		flusher.Flush()
		return nil
	}
	t := time.NewTicker(c.opts.LiveEvery)
	defer t.Stop()
	end := time.After(maxStream)
	for {
		if err := tick(send); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-c.quit:
			return
		case <-end:
			return
		case <-t.C:
		}
	}
}
