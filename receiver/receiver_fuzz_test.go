package receiver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/switchyard/switchyard/receiver/darwin"
)

// fuzzBodyLimit is small so that oversized bodies (413) are reachable.
const fuzzBodyLimit = 4096

// validFieldValue reports whether v can be sent as an HTTP header value
// (RFC 9110 field-value: no control characters but HTAB) and is short
// enough to keep the request head within the server's read buffer.
// Other values cannot be put on the wire by a client without either
// corrupting the framing of the request (CR/LF) or hitting 431, which is
// not what this fuzz test is about.
func validFieldValue(v string) bool {
	if len(v) > 1024 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// FuzzReceiver posts arbitrary bodies and header values to the Darwin
// hook, signed or not. Whatever arrives, the answer is one of the
// statuses a sender can act on, never a 500, always JSON, and only a
// 200 stores an event.
func FuzzReceiver(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		f.Add(fx.body, true, "", "")
		f.Add(fx.body, false, darwin.Sign([]byte(secret), fx.body), "")
		f.Add(fx.body, false, "", "")
		f.Add(fx.body, true, "", "gzip")
	}
	f.Add([]byte(`{"eventType":"session.opened","timestamp":1763733482120,"agentId":42,"data":null}`), true, "", "identity")
	f.Add([]byte(`{"eventType":"x","data":{"sessionId":{"a":1}}}`), true, "", "")
	f.Add([]byte(`[1,2,3]`), true, "", "")
	f.Add([]byte(`null`), true, "", "")
	f.Add([]byte(``), true, "", "")
	f.Add([]byte(`{"eventType":"x"}`), false, "DEADBEEF", "")
	f.Add(bytes.Repeat([]byte("a"), fuzzBodyLimit+1), true, "", "")

	ing := &fakeIngester{discard: true}
	s := newServer(f, ing, Options{BodyLimit: fuzzBodyLimit})
	// Server.Test cannot return the 413 the server writes for a body over
	// the limit (it returns fasthttp's "body size exceeds the given limit"
	// error instead; see TestReceiverBodyLimit), so those bodies go to a
	// second server, same ingester and limit, served on an in-memory
	// connection.
	overLimit := serveInMemory(f, newServer(f, ing, Options{BodyLimit: fuzzBodyLimit}))

	f.Fuzz(func(t *testing.T, body []byte, sign bool, sig, encoding string) {
		if !validFieldValue(sig) || !validFieldValue(encoding) {
			t.Skip("not an HTTP header value")
		}
		req, err := http.NewRequest(http.MethodPost, "http://switchyard.test"+hookPath, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if sign {
			sig = darwin.Sign([]byte(secret), body)
		}
		if sig != "" {
			req.Header.Set(darwin.SignatureHeader, sig)
		}
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}

		before := ing.Calls()
		var res *http.Response
		if len(body) > fuzzBodyLimit {
			res, err = exchange(overLimit, req)
		} else {
			res, err = s.Test(req)
		}
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		defer res.Body.Close()
		out, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		called := ing.Calls() - before

		switch res.StatusCode {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized,
			http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("status = %d; body %q", res.StatusCode, out)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("status %d: answer is not a JSON object: %q", res.StatusCode, out)
		}
		if res.StatusCode == http.StatusOK {
			if called != 1 {
				t.Fatalf("200 after %d ingester calls, want 1", called)
			}
			if id, _ := m["id"].(string); id == "" {
				t.Fatalf("200 without an id: %q", out)
			}
			return
		}
		if called != 0 {
			t.Fatalf("status %d but the ingester was called", res.StatusCode)
		}
		if msg, _ := m["error"].(string); msg == "" {
			t.Fatalf("status %d without an error message: %q", res.StatusCode, out)
		}
		if !sign && sig == "" && encoding == "" && len(body) <= fuzzBodyLimit && res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("unsigned request: status = %d, want 401", res.StatusCode)
		}
	})
}
