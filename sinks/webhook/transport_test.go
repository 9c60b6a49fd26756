package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/sinks"
)

// pki is a private CA with a server and a client certificate, written
// as PEM files.
type pki struct {
	caFile, certFile, keyFile string // the CA, and the client's pair
	pool                      *x509.CertPool
	server                    tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "client.pem"),
		keyFile:  filepath.Join(dir, "client-key.pem"),
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(path, typ string, der []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchyard test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write(p.caFile, "CERTIFICATE", caDER)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(ca)

	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := key()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	serverDER, serverKey := issue(2, "localhost", x509.ExtKeyUsageServerAuth)
	p.server = tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}
	clientDER, clientKey := issue(3, "switchyard-client", x509.ExtKeyUsageClientAuth)
	write(p.certFile, "CERTIFICATE", clientDER)
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	write(p.keyFile, "PRIVATE KEY", keyDER)
	return p
}

// TestMutualTLS delivers to a server that requires a client certificate
// from the test's CA.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	var peer atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.pool,
	}
	srv.StartTLS()
	defer srv.Close()

	for _, tc := range []struct {
		name string
		opts sinks.HTTPOptions
		want string // in the error; "" for delivered
	}{
		{"client certificate", sinks.HTTPOptions{CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}, ""},
		{"no client certificate", sinks.HTTPOptions{CAFile: p.caFile}, "certificate required"},
		{"server's CA not trusted", sinks.HTTPOptions{CertFile: p.certFile, KeyFile: p.keyFile}, "certificate signed by unknown authority"},
		{"insecure_skip_verify", sinks.HTTPOptions{CertFile: p.certFile, KeyFile: p.keyFile, InsecureSkipVerify: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, err := sinks.NewHTTPClientWith(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			s := mustNew(t, Options{URL: srv.URL + "/in", Client: client})
			ev, _ := escalated(t)
			peer.Store("")
			err = s.Send(t.Context(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Send = %v", err)
				}
				if got := peer.Load(); got != "switchyard-client" {
					t.Errorf("server saw client certificate %q", got)
				}
				return
			}
			// Under TLS 1.3 the server checks the client's certificate
			// after the client's side of the handshake is done: the
			// client may be writing its request when the server's alert
			// closes the connection, and then sees only the broken
			// connection (a failure it retries, like any other).
			if tc.name == "no client certificate" && err != nil && (strings.Contains(err.Error(), "broken pipe") || strings.Contains(err.Error(), "connection reset")) {
				t.Logf("the server's alert raced the request: %v", err)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Send = %v, want an error with %q", err, tc.want)
			}
			if !retryable(err) {
				t.Errorf("a TLS failure is permanent: %v", err)
			}
		})
	}
}

// TestFollowRedirects follows, when asked, only redirects that re-send
// the same request (307, 308) to the same host, at most MaxRedirects,
// never to http: the configured headers and the signature go along, and
// must not reach a host the configuration did not name.
func TestFollowRedirects(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	rec := &recorder{}
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer target.Close()
	var hops atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			rec.record(r)
			return
		case "/307", "/308", "/302", "/303", "/301":
			var code int
			fmt.Sscan(r.URL.Path[1:], &code)
			http.Redirect(w, r, "/moved", code)
		case "/elsewhere":
			http.Redirect(w, r, target.URL+"/moved", http.StatusTemporaryRedirect)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusTemporaryRedirect)
		}
		hops.Add(1)
	}))
	defer origin.Close()
	secure := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/downgraded", http.StatusTemporaryRedirect)
	}))
	secure.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}}
	secure.StartTLS()
	defer secure.Close()

	follow, err := sinks.NewHTTPClientWith(sinks.HTTPOptions{FollowRedirects: true, CAFile: p.caFile})
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := escalated(t)
	for _, tc := range []struct {
		url      string
		client   *http.Client
		status   int // of the HTTPError; 0 for delivered
		hops     int32
		received int
	}{
		{origin.URL + "/307", follow, 0, 1, 1},
		{origin.URL + "/308", follow, 0, 1, 1},
		{origin.URL + "/302", follow, 302, 1, 0},
		{origin.URL + "/303", follow, 303, 1, 0},
		{origin.URL + "/301", follow, 301, 1, 0},
		{origin.URL + "/elsewhere", follow, 307, 1, 0}, // another host: not followed
		{origin.URL + "/loop", follow, 307, sinks.MaxRedirects + 1, 0},
		{secure.URL + "/in", follow, 307, 0, 0},
		{origin.URL + "/307", nil, 307, 1, 0}, // the default: not followed
	} {
		hops.Store(0)
		before := len(rec.requests())
		s := mustNew(t, Options{URL: tc.url, Method: "PATCH", Client: tc.client, Headers: map[string]string{"X-Key": "k"}})
		err := s.Send(t.Context(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev})
		var he *sinks.HTTPError
		switch {
		case tc.status == 0 && err != nil:
			t.Errorf("%s: Send = %v, want delivered", tc.url, err)
		case tc.status != 0 && (!errors.As(err, &he) || he.Status != tc.status):
			t.Errorf("%s: Send = %v, want HTTP %d", tc.url, err, tc.status)
		}
		if n := elsewhere.Load(); n != 0 {
			t.Fatalf("%s: another host got %d requests, with the configured headers", tc.url, n)
		}
		if got := hops.Load(); got != tc.hops {
			t.Errorf("%s: origin hit %d times, want %d", tc.url, got, tc.hops)
		}
		got := rec.requests()[before:]
		if len(got) != tc.received {
			t.Fatalf("%s: target got %d requests, want %d", tc.url, len(got), tc.received)
		}
		for _, r := range got {
			if r.method != "PATCH" || len(r.body) == 0 || r.header.Get("X-Key") != "k" {
				t.Errorf("%s: the redirected request is %s with %d bytes, X-Key %q", tc.url, r.method, len(r.body), r.header.Get("X-Key"))
			}
		}
	}
}

// TestDataCannotRedirectTheDelivery sends events whose data tries to
// reach another server through the URL template: every request reaches
// the configured server, the value inside one path segment.
func TestDataCannotRedirectTheDelivery(t *testing.T) {
	t.Parallel()
	var otherHits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherHits.Add(1) }))
	defer other.Close()
	otherHost := strings.TrimPrefix(other.URL, "http://")
	var (
		mu    sync.Mutex
		paths []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, r.URL.EscapedPath())
	}))
	defer srv.Close()
	s := mustNew(t, Options{URL: srv.URL + "/contacts/{{ data.id }}?by={{ data.id }}"})
	for _, id := range []string{
		"@" + otherHost,
		"//" + otherHost + "/x",
		"http://" + otherHost + "/x",
		"../../" + otherHost,
		"\\\\" + otherHost,
	} {
		ev, _ := escalated(t)
		ev.Data = fmt.Appendf(nil, `{"id": %q}`, id)
		if err := s.Send(t.Context(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev}); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the other server got %d requests", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 5 {
		t.Fatalf("the configured server got %d requests, want 5", len(paths))
	}
	for _, p := range paths {
		rest, ok := strings.CutPrefix(p, "/contacts/")
		if !ok || strings.Contains(rest, "/") {
			t.Errorf("path %q leaves /contacts/<one segment>", p)
		}
	}
}

// The error body kept for the delivery record never shows the request's
// secrets: configured header text, a signing secret, a token in the
// query.
func TestErrorBodyHidesSecrets(t *testing.T) {
	t.Parallel()
	const whsec = "whsec_c2VjcmV0LW9mLWEtcm90YXRlZC1lbmRwb2ludA=="
	var gotSig atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sig := r.Header.Get("Webhook-Signature")
		gotSig.Store(sig)
		_, mac, _ := strings.Cut(sig, ",")
		w.WriteHeader(http.StatusUnprocessableEntity)
		fmt.Fprintf(w, "rejected %s %s auth=%q sig=%q secret=%s; bad token %s, bad key %s, expected %s",
			r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), sig, whsec,
			strings.Fields(r.Header.Get("Authorization"))[1], r.URL.Query().Get("api_key"), mac)
	}))
	defer srv.Close()
	s := mustNew(t, Options{
		URL:     srv.URL + "/c/{{ subject }}?api_key=KEY-123456",
		Headers: map[string]string{"Authorization": "Bearer TOKEN-abcdef {{ subject }}"},
		Sign:    &Sign{Scheme: SchemeStandardWebhooks, Secrets: []string{whsec}},
	})
	ev, _ := escalated(t)
	err := s.Send(t.Context(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev})
	var he *sinks.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusUnprocessableEntity || retryable(err) {
		t.Fatalf("Send = %v, want a permanent HTTP 422", err)
	}
	if !strings.HasPrefix(he.Body, "rejected POST") {
		t.Errorf("Body = %q, want the response's start", he.Body)
	}
	// The signature, which the receiver echoes whole and alone: with it
	// and the body, anyone reading the record could replay the request.
	sig, _ := gotSig.Load().(string)
	_, mac, _ := strings.Cut(sig, ",")
	if mac == "" {
		t.Fatalf("no signature received: %q", sig)
	}
	for _, secret := range []string{"KEY-123456", "TOKEN-abcdef", whsec, sig, mac} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows %q: %s", secret, err)
		}
	}
	if !strings.Contains(err.Error(), "HTTP 422 Unprocessable Entity: rejected") {
		t.Errorf("error = %s", err)
	}
}

// A password in the URL's user information (sent as basic auth) is a
// credential like a header's: the response kept for the delivery record
// never shows it, nor the Authorization header Go builds from it.
func TestErrorBodyHidesURLPassword(t *testing.T) {
	t.Parallel()
	const password = "PASSWORD-9876"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pw, _ := r.BasicAuth()
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, "bad password %s; got %s", pw, r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ev, _ := escalated(t)
	for _, u := range []string{
		"http://switchyard:" + password + "@" + host + "/in",
		"http://switchyard:" + password + "@" + host + "/in/{{ subject }}",
	} {
		s := mustNew(t, Options{URL: u})
		err := s.Send(t.Context(), &sinks.Delivery{ID: "d1", Attempt: 1, Event: ev})
		var he *sinks.HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusUnauthorized {
			t.Fatalf("%s: Send = %v, want HTTP 401", u, err)
		}
		basic := strings.TrimPrefix(basicAuth("switchyard", password), "Basic ")
		for _, secret := range []string{password, basic} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error shows %q: %s", u, secret, err)
			}
		}
	}
}

func basicAuth(user, password string) string {
	r, _ := http.NewRequest(http.MethodGet, "http://x.test", nil)
	r.SetBasicAuth(user, password)
	return r.Header.Get("Authorization")
}
