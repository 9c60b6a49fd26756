package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/config"
)

// Cookie names.
const (
	sessionCookie = "switchyard_session"
	loginCookie   = "switchyard_login" // the login form's CSRF token
)

// sessionTTL is how long a login lasts.
const sessionTTL = 12 * time.Hour

// maxSessions bounds the sessions kept; the oldest go first.
const maxSessions = 10000

// session is a logged-in browser.
type session struct {
	id   string
	role string // admin.RoleAdmin or admin.RoleViewer
	csrf string
	// token is the SHA-256 of the token it logged in with: when that
	// token changes (a reload), the session ends.
	token   [sha256.Size]byte
	expires time.Time
}

type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *sessions) create(role, token string, now time.Time) *session {
	sess := &session{id: randomToken(), role: role, csrf: randomToken(), token: sha256.Sum256([]byte(token)), expires: now.Add(sessionTTL)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		var oldest *session
		for _, o := range s.m {
			if oldest == nil || o.expires.Before(oldest.expires) {
				oldest = o
			}
		}
		delete(s.m, oldest.id)
	}
	s.m[sess.id] = sess
	return sess
}

func (s *sessions) get(id string, now time.Time) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.m[id]
	if sess != nil && now.After(sess.expires) {
		delete(s.m, id)
		return nil
	}
	return sess
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// equal compares two secrets in constant time.
func equal(a, b string) bool {
	x, y := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1 && a != ""
}

// current returns the request's session, if it has a valid one whose
// token is still the configured token of its role.
func (c *Console) current(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	sess := c.sessions.get(ck.Value, c.now())
	if sess == nil {
		return nil
	}
	adminTok, viewerTok := c.tokens()
	tok := adminTok
	if sess.role == admin.RoleViewer {
		tok = viewerTok
	}
	sum := sha256.Sum256([]byte(tok.Reveal()))
	if tok == "" || subtle.ConstantTimeCompare(sum[:], sess.token[:]) != 1 {
		c.sessions.drop(sess.id) // the token changed: log in again
		return nil
	}
	return sess
}

func (c *Console) tokens() (adminTok, viewer config.Secret) {
	if c.opts.Tokens == nil {
		return "", ""
	}
	return c.opts.Tokens()
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/ui/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

// crossSite reports whether the browser says the request came from
// another site (Sec-Fetch-Site): refused for every POST whatever its
// token.
func crossSite(r *http.Request) bool {
	s := r.Header.Get("Sec-Fetch-Site")
	return s != "" && s != "same-origin" && s != "none"
}

// csrfOK checks a POST's CSRF token: the form field csrf, or the
// X-CSRF-Token header htmx sends.
func csrfOK(r *http.Request, want string) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return equal(got, want)
}
