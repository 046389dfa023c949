package admin

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gslbd/gslbd/admin/api"
	"github.com/gslbd/gslbd/drain"
)

// The status page: GET /status, server-rendered from html/template (every
// value escaped), refreshing itself every statusRefresh. Reads follow the
// API's rules: open without a tokens file or with AnonymousRead, else a
// bearer token, or a session cookie got by posting a token to
// /status/login once. The cookie holds the token's name, an expiry and
// an HMAC over them and the token's digest under a key made at start:
// never the token, and it stops working when the token is rotated or the
// node restarts.

//go:embed status.html
var statusFS embed.FS

var statusTemplates = template.Must(template.New("").Funcs(template.FuncMap{"ago": ago}).ParseFS(statusFS, "status.html"))

const (
	statusRefresh   = 2 // seconds: in an incident a failover shows within seconds
	sessionCookie   = "gslbd_session"
	sessionLifetime = 12 * time.Hour
	statusEvents    = 20
	maxLoginBody    = 4 << 10
)

// statusPage is what the page template reads.
type statusPage struct {
	S       api.Status
	Events  []drain.Event
	Now     time.Time
	Refresh int
	By      string // the token name of a signed-in reader; "" when open
	Session bool
}

func (s *Server) routeStatus() {
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/status", http.StatusSeeOther)
	})
	s.mux.HandleFunc("GET /status", s.statusPage)
	s.mux.HandleFunc("POST /status/login", s.login)
	s.mux.HandleFunc("POST /status/logout", s.logout)
}

func (s *Server) statusPage(w http.ResponseWriter, r *http.Request) {
	by, session, ok := s.pageReader(r)
	if !ok {
		s.renderLogin(w, http.StatusUnauthorized, "")
		return
	}
	p := statusPage{S: s.cfg.Node.Status(), Now: time.Now(), Refresh: statusRefresh, By: by, Session: session}
	if s.cfg.Drains != nil {
		p.Events = s.cfg.Drains.Events(statusEvents)
	}
	render(w, http.StatusOK, "page", p)
}

// pageReader decides whether r may read the page, and as whom.
func (s *Server) pageReader(r *http.Request) (by string, session, ok bool) {
	tokens := s.tokens.Load()
	if tokens == nil || s.cfg.AnonymousRead {
		return "", false, true
	}
	if secret, ok := bearer(r); ok {
		name, _, ok := tokens.Lookup(secret)
		return name, false, ok
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if name, ok := s.checkSession(tokens, c.Value, time.Now()); ok {
			return name, true, true
		}
	}
	return "", false, false
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	tokens := s.tokens.Load()
	if tokens == nil {
		http.Redirect(w, r, "/status", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		s.renderLogin(w, http.StatusBadRequest, "the form could not be read")
		return
	}
	name, _, ok := tokens.Lookup(strings.TrimSpace(r.PostForm.Get("token")))
	if !ok {
		s.renderLogin(w, http.StatusUnauthorized, "That token is not valid here.")
		return
	}
	expires := time.Now().Add(sessionLifetime)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.sessionValue(tokens, name, expires), Path: "/",
		Expires: expires, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	http.Redirect(w, r, "/status", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/status", http.StatusSeeOther)
}

func (s *Server) renderLogin(w http.ResponseWriter, code int, msg string) {
	render(w, code, "login", struct{ Error string }{msg})
}

// render executes a template into a buffer first, so that a failure is a
// clean 500 rather than half a page.
func render(w http.ResponseWriter, code int, name string, data any) {
	var buf bytes.Buffer
	if err := statusTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		writeError(w, http.StatusInternalServerError, "render status page: "+err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Nothing but our own inline style; no scripts at all.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

// sessionValue is "name.expiry.mac", mac = HMAC-SHA256(key, name, expiry,
// digest of the token).
func (s *Server) sessionValue(tokens *Tokens, name string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return name + "." + exp + "." + base64.RawURLEncoding.EncodeToString(s.sessionMAC(tokens, name, exp))
}

func (s *Server) sessionMAC(tokens *Tokens, name, exp string) []byte {
	_, digest, _ := tokens.byName(name)
	m := hmac.New(sha256.New, s.sessionKey[:])
	fmt.Fprintf(m, "%s\x00%s\x00", name, exp)
	m.Write(digest[:])
	return m.Sum(nil)
}

// checkSession returns the token name of a valid session value: well
// formed, not expired, MAC correct, and its token still in the file.
func (s *Server) checkSession(tokens *Tokens, v string, now time.Time) (string, bool) {
	name, rest, ok1 := strings.Cut(v, ".")
	exp, mac, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return "", false
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !now.Before(time.Unix(sec, 0)) {
		return "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil {
		return "", false
	}
	if _, _, ok := tokens.byName(name); !ok {
		return "", false
	}
	if subtle.ConstantTimeCompare(got, s.sessionMAC(tokens, name, exp)) != 1 {
		return "", false
	}
	return name, true
}

func newSessionKey() [32]byte {
	var k [32]byte
	_, _ = rand.Read(k[:]) // crypto/rand.Read never fails on Linux
	return k
}

// ago says how long before now t was, for people.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs ago", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}
