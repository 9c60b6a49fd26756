package sinks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// retryableOf classifies err the way the delivery loop does: an error
// that says Retryable() decides, anything else is transient.
func retryableOf(err error) bool {
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	return true
}

func TestRetryableStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		want   bool
	}{
		{200, false},
		{204, false},
		{301, false},
		{302, false},
		{304, false},
		{400, false},
		{401, false},
		{403, false},
		{404, false},
		{408, true},
		{409, false},
		{410, false},
		{422, false},
		{425, true},
		{429, true},
		{500, true},
		{501, true},
		{502, true},
		{503, true},
		{504, true},
		{599, true},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			t.Parallel()
			if got := RetryableStatus(tc.status); got != tc.want {
				t.Errorf("RetryableStatus(%d) = %v, want %v", tc.status, got, tc.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	// HTTP dates have a resolution of one second: keep now on a second.
	now := time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC)
	const week = 7 * 24 * time.Hour
	for _, tc := range []struct {
		name string
		in   string
		want time.Duration
	}{
		{"seconds", "7", 7 * time.Second},
		{"seconds with spaces", "  120 ", 2 * time.Minute},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"empty", "", 0},
		{"blank", "   ", 0},
		{"garbage", "soon", 0},
		{"fraction", "1.5", 0},
		{"http date in the future", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"http date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"http date now", now.Format(http.TimeFormat), 0},
		{"rfc 850 date in the future", now.Add(time.Minute).Format(time.RFC850), time.Minute},
		{"seven days exactly", "604800", week},
		{"just over seven days is capped", "604801", week},
		{"huge seconds are capped at seven days", "99999999999", week},
		{"max int64 seconds are capped at seven days", "9223372036854775807", week},
		{"http date far in the future is capped at seven days", now.Add(365 * 24 * time.Hour).Format(http.TimeFormat), week},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := ParseRetryAfter(tc.in, now); got != tc.want {
				t.Errorf("ParseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

type codeError struct{ code int }

func (e *codeError) Error() string { return fmt.Sprintf("code %d", e.code) }

func TestRedact(t *testing.T) {
	t.Parallel()

	t.Run("message redacted, net.OpError still reachable", func(t *testing.T) {
		t.Parallel()
		op := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		err := fmt.Errorf("post to https://hooks.example.com/in?token=SECRET123: %w", op)
		got := Redact(err, "SECRET123")
		if got == nil {
			t.Fatal("Redact returned nil for a non-nil error")
		}
		msg := got.Error()
		if strings.Contains(msg, "SECRET123") {
			t.Errorf("redacted message still holds the secret: %q", msg)
		}
		if want := "post to https://hooks.example.com/in?token=<redacted>: dial tcp: connection refused"; msg != want {
			t.Errorf("message = %q, want %q", msg, want)
		}
		var gotOp *net.OpError
		if !errors.As(got, &gotOp) {
			t.Fatalf("errors.As(*net.OpError) failed on %v", got)
		}
		if gotOp != op {
			t.Errorf("errors.As found %p, want the original %p", gotOp, op)
		}
		if !errors.Is(got, err) {
			t.Error("errors.Is(redacted, original) = false")
		}
	})

	t.Run("custom type and sentinel still reachable", func(t *testing.T) {
		t.Parallel()
		inner := &codeError{code: 42}
		err := fmt.Errorf("call with key k-abc: %w", fmt.Errorf("%w: %w", inner, context.DeadlineExceeded))
		got := Redact(err, "k-abc")
		var ce *codeError
		if !errors.As(got, &ce) || ce.code != 42 {
			t.Errorf("errors.As(*codeError) = %v, %v; want code 42", ce, errors.As(got, &ce))
		}
		if !errors.Is(got, context.DeadlineExceeded) {
			t.Error("errors.Is(redacted, context.DeadlineExceeded) = false")
		}
		if !IsTimeout(got) {
			t.Error("IsTimeout(redacted deadline error) = false")
		}
		if strings.Contains(got.Error(), "k-abc") {
			t.Errorf("message still holds the secret: %q", got.Error())
		}
	})

	t.Run("every occurrence of every secret", func(t *testing.T) {
		t.Parallel()
		err := errors.New("a=ONE b=TWO again ONE")
		got := Redact(err, "ONE", "", "TWO")
		if want := "a=<redacted> b=<redacted> again <redacted>"; got.Error() != want {
			t.Errorf("message = %q, want %q", got.Error(), want)
		}
		if errors.Unwrap(got) != err {
			t.Errorf("Unwrap = %v, want the original error", errors.Unwrap(got))
		}
	})

	t.Run("nil stays nil", func(t *testing.T) {
		t.Parallel()
		if got := Redact(nil, "secret"); got != nil {
			t.Errorf("Redact(nil) = %v, want nil", got)
		}
	})

	t.Run("secret absent returns the same error", func(t *testing.T) {
		t.Parallel()
		err := &codeError{code: 7}
		if got := Redact(err, "not-there", ""); got != error(err) {
			t.Errorf("Redact without a match = %#v, want the same error %#v", got, err)
		}
	})

	t.Run("no secrets returns the same error", func(t *testing.T) {
		t.Parallel()
		err := errors.New("plain")
		if got := Redact(err); got != err {
			t.Errorf("Redact() = %#v, want the same error", got)
		}
	})

	t.Run("empty secret is ignored", func(t *testing.T) {
		t.Parallel()
		err := errors.New("plain")
		if got := Redact(err, ""); got != err || got.Error() != "plain" {
			t.Errorf("Redact(err, \"\") = %q, want the same error", got)
		}
	})
}

func TestSafeURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "https://hooks.example.com/in", "https://hooks.example.com/in"},
		{"userinfo", "https://user:p4ss@hooks.example.com/in", "https://hooks.example.com/in"},
		{"user only", "https://token@hooks.example.com/in", "https://hooks.example.com/in"},
		{"query", "https://hooks.example.com/in?token=SECRET123&x=1", "https://hooks.example.com/in"},
		{"fragment", "https://hooks.example.com/in#SECRET", "https://hooks.example.com/in"},
		{"all of them with a port", "http://u:SECRET@127.0.0.1:8080/a/b?token=SECRET#SECRET", "http://127.0.0.1:8080/a/b"},
		{"invalid", "http://[::1", "<invalid URL>"},
		{"invalid with secret", "http://u:SECRET@[::1?token=SECRET", "<invalid URL>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := SafeURL(tc.in)
			if got != tc.want {
				t.Errorf("SafeURL(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if strings.Contains(got, "SECRET") || strings.Contains(got, "p4ss") {
				t.Errorf("SafeURL(%q) = %q still holds a secret", tc.in, got)
			}
		})
	}
}

func TestPermanent(t *testing.T) {
	t.Parallel()

	t.Run("nil", func(t *testing.T) {
		t.Parallel()
		if got := Permanent(nil); got != nil {
			t.Errorf("Permanent(nil) = %v, want nil", got)
		}
	})

	t.Run("plain error", func(t *testing.T) {
		t.Parallel()
		base := &codeError{code: 3}
		p := Permanent(base)
		var r interface{ Retryable() bool }
		if !errors.As(p, &r) {
			t.Fatal("errors.As(interface{ Retryable() bool }) found nothing")
		}
		if r.Retryable() {
			t.Error("Retryable() = true, want false")
		}
		if p.Error() != base.Error() {
			t.Errorf("Error() = %q, want %q", p.Error(), base.Error())
		}
		if errors.Unwrap(p) != error(base) {
			t.Errorf("Unwrap = %v, want the original", errors.Unwrap(p))
		}
		var ce *codeError
		if !errors.As(p, &ce) || ce != base {
			t.Errorf("errors.As(*codeError) = %v, want the original", ce)
		}
	})

	t.Run("wrapped further", func(t *testing.T) {
		t.Parallel()
		p := fmt.Errorf("deliver: %w", Permanent(errors.New("bad config")))
		if retryableOf(p) {
			t.Error("a wrapped permanent error is retryable")
		}
	})

	t.Run("overrides a retryable status", func(t *testing.T) {
		t.Parallel()
		inner := &HTTPError{Status: http.StatusServiceUnavailable}
		p := Permanent(inner)
		if retryableOf(p) {
			t.Error("Permanent(HTTP 503) is retryable")
		}
		var he *HTTPError
		if !errors.As(p, &he) || he != inner {
			t.Errorf("errors.As(*HTTPError) = %v, want the original", he)
		}
		if !errors.Is(p, inner) {
			t.Error("errors.Is(permanent, inner) = false")
		}
	})
}

func TestHTTPError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		err       *HTTPError
		wantMsg   string
		retryable bool
	}{
		{"503 with body and wait", &HTTPError{Status: 503, After: 7 * time.Second, Body: "maintenance"}, "HTTP 503 Service Unavailable: maintenance", true},
		{"404 without body", &HTTPError{Status: 404}, "HTTP 404 Not Found", false},
		{"429", &HTTPError{Status: 429, After: time.Minute, Body: "slow down"}, "HTTP 429 Too Many Requests: slow down", true},
		{"400", &HTTPError{Status: 400, Body: `{"error":"bad"}`}, `HTTP 400 Bad Request: {"error":"bad"}`, false},
		{"302", &HTTPError{Status: 302}, "HTTP 302 Found", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.err.Error(); got != tc.wantMsg {
				t.Errorf("Error() = %q, want %q", got, tc.wantMsg)
			}
			if got := tc.err.Retryable(); got != tc.retryable {
				t.Errorf("Retryable() = %v, want %v", got, tc.retryable)
			}
			if got := tc.err.RetryAfter(); got != tc.err.After {
				t.Errorf("RetryAfter() = %v, want %v", got, tc.err.After)
			}
			if got := tc.err.HTTPStatus(); got != tc.err.Status {
				t.Errorf("HTTPStatus() = %d, want %d", got, tc.err.Status)
			}
			// The delivery loop finds these through wrapping.
			wrapped := fmt.Errorf("send: %w", tc.err)
			var after interface{ RetryAfter() time.Duration }
			var status interface{ HTTPStatus() int }
			if !errors.As(wrapped, &after) || after.RetryAfter() != tc.err.After {
				t.Error("RetryAfter() not reachable through wrapping")
			}
			if !errors.As(wrapped, &status) || status.HTTPStatus() != tc.err.Status {
				t.Error("HTTPStatus() not reachable through wrapping")
			}
			if retryableOf(wrapped) != tc.retryable {
				t.Errorf("wrapped retryable = %v, want %v", retryableOf(wrapped), tc.retryable)
			}
		})
	}
}

func TestIsTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{"net timeout", &net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}, true},
		{"canceled", context.Canceled, false},
		{"other", errors.New("boom"), false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := IsTimeout(tc.err); got != tc.want {
				t.Errorf("IsTimeout(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestNewHTTPClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	c := NewHTTPClient()
	if c.CheckRedirect == nil {
		t.Fatal("CheckRedirect is nil: redirects would be followed")
	}
	if err := c.CheckRedirect(nil, nil); !errors.Is(err, http.ErrUseLastResponse) {
		t.Errorf("CheckRedirect = %v, want http.ErrUseLastResponse", err)
	}
	tr, ok := c.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("Transport is %T, want *http.Transport", c.Transport)
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.MinVersion < 0x0303 {
		t.Errorf("TLS minimum version is not 1.2: %+v", tr.TLSClientConfig)
	}
	if tr.Proxy == nil {
		t.Error("Proxy is nil: HTTPS_PROXY would be ignored")
	}
}

// TestNewHTTPClientWithOptionErrors: files are read when the client is
// made, and each problem names its setting.
func TestNewHTTPClientWithOptionErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name  string
		opts  HTTPOptions
		field string
		msg   string
	}{
		{"missing CA file", HTTPOptions{CAFile: missing}, "ca_file", "no such file"},
		{"CA file without certificates", HTTPOptions{CAFile: notPEM}, "ca_file", "no PEM certificate"},
		{"certificate without key", HTTPOptions{CertFile: notPEM}, "client_key_file", "needs its key"},
		{"key without certificate", HTTPOptions{KeyFile: notPEM}, "client_cert_file", "needs its certificate"},
		{"malformed pair", HTTPOptions{CertFile: notPEM, KeyFile: notPEM}, "client_cert_file", "load client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewHTTPClientWith(tc.opts)
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Field != tc.field || !strings.Contains(oe.Error(), tc.msg) {
				t.Fatalf("NewHTTPClientWith = %v, want %s: …%s…", err, tc.field, tc.msg)
			}
		})
	}
	c, err := NewHTTPClientWith(HTTPOptions{InsecureSkipVerify: true})
	if err != nil || !c.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify {
		t.Fatalf("InsecureSkipVerify not set: %v", err)
	}
}
