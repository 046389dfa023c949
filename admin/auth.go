package admin

import (
	"fmt"
	"net/http"
	"strings"
)

// anonymous is the "by" of reads when no tokens are configured.
const anonymous = "anonymous"

// auth wraps h with the token check for need: h receives the token's
// name. See the package documentation for the rules.
func (s *Server) auth(need Role, h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tokens := s.tokens.Load()
		if tokens == nil || (need == RoleRead && s.cfg.AnonymousRead && r.Header.Get("Authorization") == "") {
			if need == RoleWrite {
				s.refuse(w, r, anonymous, http.StatusForbidden,
					"the write API is off: no admin tokens are configured (set admin.tokens_file in the node configuration)")
				return
			}
			h(w, r, anonymous)
			return
		}
		secret, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gslbd"`)
			s.refuse(w, r, "", http.StatusUnauthorized, "missing bearer token: send \"Authorization: Bearer <token>\"")
			return
		}
		name, role, ok := tokens.Lookup(secret)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gslbd", error="invalid_token"`)
			s.refuse(w, r, "", http.StatusUnauthorized, "invalid token")
			return
		}
		if role < need {
			s.refuse(w, r, name, http.StatusForbidden, fmt.Sprintf("token %q may only read; this needs a write token", name))
			return
		}
		h(w, r, name)
	}
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// refuse answers an error and logs refused writes (reads are not logged:
// nothing is changed, and a status poller would flood the log).
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, by string, code int, msg string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.log.Warn("admin write refused", "method", r.Method, "path", r.URL.Path, "by", by,
			"remote", r.RemoteAddr, "status", code, "error", msg)
	}
	writeError(w, code, msg)
}
