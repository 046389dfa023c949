package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
)

// FuzzParseTokens parses any tokens file. It must not panic; what it
// accepts must look up: every well-formed line's token gives its name and
// role; and no message may quote a field as long as a token.
func FuzzParseTokens(f *testing.F) {
	f.Add([]byte(tokensFile))
	for _, p := range []string{"../testdata/demo/tokens", "../deploy/example/tokens", "../cmd/gslbd/testdata/bad/tokens"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a write 0123456789abcdef\na read 0123456789abcdef\n"))
	f.Add([]byte("0123456789abcdef write alice\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := ParseTokens("tokens", data)
		if err != nil {
			if tok != nil {
				t.Fatal("ParseTokens returned tokens and an error")
			}
			for _, line := range strings.Split(string(data), "\n") {
				for _, field := range strings.Fields(line) {
					if len(field) >= minTokenLen && strings.Contains(err.Error(), field) && !strings.Contains("tokens", field) {
						t.Fatalf("message quotes a field as long as a token: %v", err)
					}
				}
			}
			return
		}
		if tok.Len() == 0 {
			t.Fatal("no tokens and no error")
		}
		for _, line := range strings.Split(string(data), "\n") {
			fs := strings.Fields(line)
			if len(fs) != 3 || strings.HasPrefix(fs[0], "#") {
				continue
			}
			name, role, ok := tok.Lookup(fs[2])
			if !ok || name != fs[0] || role.String() != fs[1] {
				t.Fatalf("line %q: Lookup = %q %v %v", line, name, role, ok)
			}
		}
	})
}

// FuzzDrainAPI sends any body to the write API (POST a drain, DELETE a
// drain by any ID), authenticated, through the real handlers. Whatever
// comes in, the answer is a JSON object with a client-error or success
// status: never a 500, never a panic.
func FuzzDrainAPI(f *testing.F) {
	for _, b := range []string{
		`{"site":"dc2","reason":"maintenance"}`,
		`{"site":"dc1","reason":"x","force":true,"for":"90m","wait":"1s"}`,
		`{"site":"dc2","service":"talk.example.com","clients":["10.0.0.0/8","2001:db8::1"],"reason":"r","expires":"2030-01-02T15:04:05Z"}`,
		`{"site":"dc2","reason":"r","for":"-1s","expires":"x"}`,
		`{"reason":"done","wait":"30s"}`,
		`{"site":1}`, `[]`, `{} {}`, ``,
	} {
		f.Add(false, "", []byte(b))
		f.Add(true, "d-1", []byte(b))
	}
	s, _ := newTestServer(f, tokensFile)
	f.Fuzz(func(t *testing.T, del bool, id string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/drains", bytes.NewReader(body))
		if del {
			req = httptest.NewRequest(http.MethodDelete, "/api/v1/drains/"+url.PathEscape(id), bytes.NewReader(body))
		}
		req.Header.Set("Authorization", "Bearer "+writeSecret)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		ok := []int{http.StatusOK, http.StatusCreated, http.StatusBadRequest, http.StatusNotFound,
			http.StatusConflict, http.StatusRequestEntityTooLarge}
		// The mux's own answers to a path that is not one ID ("." or
		// "..": a redirect to the clean path).
		mux := []int{http.StatusMethodNotAllowed, http.StatusTemporaryRedirect, http.StatusMovedPermanently}
		if slices.Contains(mux, rec.Code) {
			return
		}
		if !slices.Contains(ok, rec.Code) {
			t.Fatalf("%s %s %q: status %d: %s", req.Method, req.URL.Path, body, rec.Code, rec.Body)
		}
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s %s %q: %d answer is not a JSON object: %q", req.Method, req.URL.Path, body, rec.Code, rec.Body)
		}
	})
}
