package admin

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/admin/api"
)

// hostileNode's status carries markup in every value that comes from
// configuration or the network.
type hostileNode struct{}

const evil = `<script>alert(1)</script>`

func (hostileNode) Ready() (bool, string) { return true, "" }
func (hostileNode) Status() api.Status {
	return api.Status{Node: "n1" + evil, Site: "dc1" + evil, ConfigHash: "h", Services: []api.ServiceStatus{{
		Name: "talk" + evil, Answer: "dc1" + evil,
		Sites: []api.SiteStatus{{Site: "dc1" + evil, Serving: true, Why: "1/1 endpoints up, needs 1", DrainedBy: []string{"id" + evil},
			Endpoints: []api.EndpointStatus{{ID: "x", Address: "192.0.2.1", Up: true, Reason: "own site 1/1 up" + evil,
				Local: "up", Error: "dial tcp: " + evil}}}},
	}}, Peers: []api.PeerStatus{{Name: "n2" + evil, Site: "dc2", State: "alive", ConfigHash: "h" + evil, LastReport: time.Now()}}}
}

// page requests the status page with the given cookies and headers.
func page(t *testing.T, s http.Handler, method, path string, form url.Values, cookies []*http.Cookie, bearerToken string) *httptest.ResponseRecorder {
	t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	if bearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+bearerToken)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func TestStatusPageEscapes(t *testing.T) {
	s := New(Config{Node: hostileNode{}, Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	rec := page(t, s, "GET", "/status", nil, nil, "")
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /status = %d %q, want 200 text/html", rec.Code, rec.Header().Get("Content-Type"))
	}
	if strings.Contains(body, "<script") {
		t.Errorf("the page holds unescaped markup from the status:\n%s", body)
	}
	if n := strings.Count(body, "&lt;script&gt;alert(1)&lt;/script&gt;"); n < 10 {
		t.Errorf("%d escaped values on the page, want every hostile value shown escaped:\n%s", n, body)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q, want default-src 'none'", csp)
	}
	if rec := page(t, s, "GET", "/", nil, nil, ""); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/status" {
		t.Errorf("GET / = %d to %q, want 303 to /status", rec.Code, rec.Header().Get("Location"))
	}
	if rec := page(t, s, "GET", "/statusx", nil, nil, ""); rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("GET /statusx = %d %s, want 404 in JSON", rec.Code, rec.Header().Get("Content-Type"))
	}
}

// TestStatusPageLogin: with tokens, the page asks for one; a wrong one is
// refused without being echoed; a right one gives an HttpOnly, SameSite
// Strict session cookie that holds no token and opens the page, until the
// token is rotated.
func TestStatusPageLogin(t *testing.T) {
	s, _ := newTestServer(t, tokensFile)
	rec := page(t, s, "GET", "/status", nil, nil, "")
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `name="token"`) {
		t.Fatalf("GET /status without a token = %d, want 401 with the sign-in form:\n%s", rec.Code, rec.Body)
	}

	wrong := "wrong-token-0123456789"
	rec = page(t, s, "POST", "/status/login", url.Values{"token": {wrong}}, nil, "")
	if rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), wrong) || len(rec.Result().Cookies()) != 0 {
		t.Errorf("login with a wrong token = %d, cookies %v; want 401, no cookie, the token not echoed:\n%s", rec.Code, rec.Result().Cookies(), rec.Body)
	}

	rec = page(t, s, "POST", "/status/login", url.Values{"token": {readSecret}}, nil, "")
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(cookies) != 1 {
		t.Fatalf("login = %d with cookies %v, want 303 and one cookie", rec.Code, cookies)
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || strings.Contains(c.Value, readSecret) || strings.Contains(rec.Body.String(), readSecret) {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, no token in it", c)
	}
	rec = page(t, s, "GET", "/status", nil, cookies, "")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "signed in as grafana") || strings.Contains(rec.Body.String(), readSecret) {
		t.Errorf("GET /status with the session = %d, want 200 signed in as grafana without the token:\n%s", rec.Code, rec.Body)
	}
	if rec := page(t, s, "GET", "/status", nil, nil, writeSecret); rec.Code != http.StatusOK {
		t.Errorf("GET /status with a bearer token = %d, want 200", rec.Code)
	}

	// A forged or altered cookie does not open the page.
	for _, v := range []string{
		strings.Replace(c.Value, "grafana", "alice", 1),
		c.Value[:len(c.Value)-2] + "xx",
		"grafana.99999999999.AAAA",
		"garbage",
	} {
		if rec := page(t, s, "GET", "/status", nil, []*http.Cookie{{Name: sessionCookie, Value: v}}, ""); rec.Code != http.StatusUnauthorized {
			t.Errorf("GET /status with cookie %q = %d, want 401", v, rec.Code)
		}
	}

	// Rotating the token ends its sessions.
	rotated, err := ParseTokens("tokens", []byte("alice write "+writeSecret+"\ngrafana read rotated-0123456789abcdef\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.SetTokens(rotated)
	if rec := page(t, s, "GET", "/status", nil, cookies, ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("GET /status with a session of a rotated token = %d, want 401", rec.Code)
	}

	// Signing out clears the cookie.
	rec = page(t, s, "POST", "/status/logout", url.Values{}, cookies, "")
	if out := rec.Result().Cookies(); rec.Code != http.StatusSeeOther || len(out) != 1 || out[0].MaxAge >= 0 {
		t.Errorf("logout = %d with cookies %v, want 303 and the cookie cleared", rec.Code, out)
	}
}

func TestSessionExpires(t *testing.T) {
	s, _ := newTestServer(t, tokensFile)
	tokens := s.tokens.Load()
	v := s.sessionValue(tokens, "grafana", time.Now().Add(time.Minute))
	if _, ok := s.checkSession(tokens, v, time.Now()); !ok {
		t.Error("a fresh session is refused")
	}
	if _, ok := s.checkSession(tokens, v, time.Now().Add(2*time.Minute)); ok {
		t.Error("an expired session is accepted")
	}
}
