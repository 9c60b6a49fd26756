package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/switchyard/switchyard/admin"
)

type loginView struct {
	*base
	Next  string
	Error string
}

// safeNext keeps a post-login redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.current(r) != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.showLogin(w, r, http.StatusOK, "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	csrf := randomToken()
	c.setCookie(w, r, loginCookie, csrf, 3600)
	w.Header().Set("Cache-Control", "no-store")
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostFormValue("next")
	}
	c.render(w, r, status, "login", &loginView{base: &base{Title: "Log in", CSRF: csrf, Path: "/ui/login"},
		Next: safeNext(next), Error: msg})
}

// loginDelay slows down guessing: a wrong token is answered after it.
const loginDelay = 300 * time.Millisecond

// login exchanges a token for a session. The form carries a CSRF token
// matching its cookie, so no other site can log a browser in.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	ck, err := r.Cookie(loginCookie)
	if err != nil || crossSite(r) || !equal(r.PostFormValue("csrf"), ck.Value) {
		c.showLogin(w, r, http.StatusForbidden, "The login form expired: try again.")
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	adminTok, viewerTok := c.tokens()
	role := admin.TokenRole(token, adminTok, viewerTok)
	if role == "" {
		c.log.Warn("console login refused: wrong token", "remote_addr", r.RemoteAddr)
		time.Sleep(loginDelay)
		c.showLogin(w, r, http.StatusUnauthorized, "Wrong token: use admin.token, or admin.viewer_token to look without changing anything.")
		return
	}
	sess := c.sessions.create(role, token, c.now())
	c.setCookie(w, r, loginCookie, "", -1)
	c.setCookie(w, r, sessionCookie, sess.id, int(sessionTTL.Seconds()))
	c.log.Info("console login", "role", role, "remote_addr", r.RemoteAddr)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, v *base) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.sessions.drop(ck.Value)
	}
	c.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}
