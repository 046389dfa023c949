package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/admin/api"
	"github.com/gslbd/gslbd/drain"
)

const (
	writeSecret = "w-0123456789abcdef"
	readSecret  = "r-0123456789abcdef"
)

const tokensFile = `# name role token
alice write ` + writeSecret + `
grafana read ` + readSecret + `
`

// fakeNode is a ready node with a fixed status.
type fakeNode struct{}

func (fakeNode) Ready() (bool, string) { return true, "" }
func (fakeNode) Status() api.Status    { return api.Status{Node: "n1"} }

// fakeDrains implements Drains over a real drain.Store for a cluster of
// one node with sites dc1 and dc2 and one service, talk.example.com.,
// whose only healthy site is dc1: draining dc1 needs force.
type fakeDrains struct {
	store *drain.Store
}

func (f *fakeDrains) List(all bool) []drain.Record {
	if all {
		return f.store.Records()
	}
	return f.store.View(time.Now()).Records()
}

func (f *fakeDrains) Get(id string) (drain.Record, bool) { return f.store.Get(id) }

func (f *fakeDrains) Create(_ context.Context, req CreateRequest) (api.Result, error) {
	if req.Site != "dc1" && req.Site != "dc2" {
		return api.Result{}, fmt.Errorf("%w: unknown site %q", drain.ErrInvalid, req.Site)
	}
	if s := drain.CanonicalService(req.Service); s != "" && s != "talk.example.com." {
		return api.Result{}, fmt.Errorf("%w: unknown service %q", drain.ErrInvalid, req.Service)
	}
	var forced []string
	if req.Site == "dc1" {
		if !req.Force {
			return api.Result{}, &drain.GuardError{Services: []string{"talk.example.com."}}
		}
		forced = []string{"talk.example.com."}
	}
	rec, err := f.store.Create(req.Spec, req.By, time.Now())
	if err != nil {
		return api.Result{}, err
	}
	return api.Result{Drain: rec, Ack: api.Ack{Complete: true, Applied: []string{"n1"}}, Forced: forced}, nil
}

func (f *fakeDrains) Delete(_ context.Context, req DeleteRequest) (api.Result, error) {
	rec, err := f.store.Delete(req.ID, req.By, req.Reason, time.Now())
	if err != nil {
		return api.Result{}, err
	}
	return api.Result{Drain: rec, Ack: api.Ack{Complete: true, Applied: []string{"n1"}}}, nil
}

func (f *fakeDrains) Events(limit int) []drain.Event { return f.store.Events(limit) }

func newTestServer(t testing.TB, tokens string) (*Server, *fakeDrains) {
	t.Helper()
	st, err := drain.Open(drain.StoreConfig{Node: "n1"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fd := &fakeDrains{store: st}
	var tok *Tokens
	if tokens != "" {
		if tok, err = ParseTokens("tokens", []byte(tokens)); err != nil {
			t.Fatal(err)
		}
	}
	return New(Config{Node: fakeNode{}, Drains: fd, Tokens: tok, Gatherer: prometheus.NewRegistry(),
		Logger: slog.New(slog.DiscardHandler)}), fd
}

// call makes one request; token "" sends no Authorization header.
func call(t *testing.T, s http.Handler, method, path, token, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return rec.Code, rec.Body.String()
}

func TestDrainAPI(t *testing.T) {
	s, fd := newTestServer(t, tokensFile)
	// A drain in force to conflict with and delete.
	code, body := call(t, s, "POST", "/api/v1/drains", writeSecret, `{"site":"dc2","reason":"maintenance"}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	var created api.Result
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	if created.Drain.By != "alice" || created.Drain.Site != "dc2" || !created.Ack.Complete {
		t.Errorf("create answered %+v, want dc2 by alice, acknowledged", created)
	}
	id := created.Drain.ID
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)

	tests := []struct {
		name                string
		method, path, token string
		body                string
		wantCode            int
		wantBody            string // a substring
		changes             bool   // whether the call may change the drains
	}{
		{"healthz needs no token", "GET", "/healthz", "", "", 200, `"ok"`, false},
		{"status without a token", "GET", "/api/v1/status", "", "", 401, "missing bearer token", false},
		{"status with a wrong token", "GET", "/api/v1/status", "nope-nope-nope-nope", "", 401, "invalid token", false},
		{"status with a read token", "GET", "/api/v1/status", readSecret, "", 200, `"node": "n1"`, false},
		{"status with a write token", "GET", "/api/v1/status", writeSecret, "", 200, `"node": "n1"`, false},
		{"list", "GET", "/api/v1/drains", readSecret, "", 200, `"id": "` + id + `"`, false},
		{"list all", "GET", "/api/v1/drains?all=true", readSecret, "", 200, `"id": "` + id + `"`, false},
		{"list with a bad flag", "GET", "/api/v1/drains?all=maybe", readSecret, "", 400, "all:", false},
		{"get", "GET", "/api/v1/drains/" + id, readSecret, "", 200, `"reason": "maintenance"`, false},
		{"get unknown", "GET", "/api/v1/drains/ffffffffffff", readSecret, "", 404, "no drain with id", false},
		{"events", "GET", "/api/v1/events?limit=5", readSecret, "", 200, `"action": "create"`, false},
		{"events with a bad limit", "GET", "/api/v1/events?limit=0", readSecret, "", 400, "limit:", false},

		{"create without a token", "POST", "/api/v1/drains", "", `{"site":"dc2","service":"talk.example.com","reason":"x"}`, 401, "missing bearer token", false},
		{"create with a wrong token", "POST", "/api/v1/drains", "nope-nope-nope-nope", `{"site":"dc2","service":"talk.example.com","reason":"x"}`, 401, "invalid token", false},
		{"create with a read token", "POST", "/api/v1/drains", readSecret, `{"site":"dc2","service":"talk.example.com","reason":"x"}`, 403, `token \"grafana\" may only read`, false},
		{"create malformed JSON", "POST", "/api/v1/drains", writeSecret, `{"site":"dc2",`, 400, "malformed JSON", false},
		{"create not an object", "POST", "/api/v1/drains", writeSecret, `["dc2"]`, 400, "request body", false},
		{"create empty body", "POST", "/api/v1/drains", writeSecret, ``, 400, "got nothing", false},
		{"create unknown field", "POST", "/api/v1/drains", writeSecret, `{"site":"dc2","reason":"x","sites":["dc1"]}`, 400, `unknown field \"sites\"`, false},
		{"create trailing data", "POST", "/api/v1/drains", writeSecret, `{"site":"dc2","service":"talk.example.com","reason":"x"} {}`, 400, "data after the JSON object", false},
		{"create wrong type", "POST", "/api/v1/drains", writeSecret, `{"site":2,"reason":"x"}`, 400, `field \"site\"`, false},
		{"create oversized body", "POST", "/api/v1/drains", writeSecret, `{"site":"dc2","reason":"` + strings.Repeat("x", MaxBody) + `"}`, 413, "request body over", false},
		{"create empty reason", "POST", "/api/v1/drains", writeSecret, `{"site":"dc2","service":"talk.example.com","reason":" "}`, 400, "reason: required", false},
		{"create no site", "POST", "/api/v1/drains", writeSecret, `{"reason":"x"}`, 400, "unknown site", false},
		{"create unknown site", "POST", "/api/v1/drains", writeSecret, `{"site":"dc9","reason":"x"}`, 400, `unknown site \"dc9\"`, false},
		{"create unknown service", "POST", "/api/v1/drains", writeSecret, `{"site":"dc2","service":"nope.example.com","reason":"x"}`, 400, `unknown service \"nope.example.com\"`, false},
		{"create expiry in the past", "POST", "/api/v1/drains", writeSecret, `{"site":"dc2","service":"talk.example.com","reason":"x","expires":"` + past + `"}`, 400, "is not in the future", false},
		{"create bad expiry", "POST", "/api/v1/drains", writeSecret, `{"site":"dc2","service":"talk.example.com","reason":"x","expires":"tomorrow"}`, 400, "not an RFC 3339 time", false},
		{"create negative for", "POST", "/api/v1/drains", writeSecret, `{"site":"dc2","service":"talk.example.com","reason":"x","for":"-1h"}`, 400, "not a positive duration", false},
		{"create expires and for", "POST", "/api/v1/drains", writeSecret, `{"site":"dc2","service":"talk.example.com","reason":"x","for":"1h","expires":"2099-01-01T00:00:00Z"}`, 400, "give at most one", false},
		{"create bad client", "POST", "/api/v1/drains", writeSecret, `{"site":"dc2","service":"talk.example.com","reason":"x","clients":["10.0.0.0/33"]}`, 400, "clients[0]", false},
		{"create bad wait", "POST", "/api/v1/drains", writeSecret, `{"site":"dc2","service":"talk.example.com","reason":"x","wait":"1h"}`, 400, "wait:", false},
		{"create duplicate", "POST", "/api/v1/drains", writeSecret, `{"site":"dc2","reason":"again"}`, 409, "already in force", false},
		{"create guardrail", "POST", "/api/v1/drains", writeSecret, `{"site":"dc1","reason":"x"}`, 409, `"services": [`, false},
		{"create forced", "POST", "/api/v1/drains", writeSecret, `{"site":"dc1","reason":"x","force":true,"for":"1h"}`, 201, `"forced": [`, true},
		{"create for some clients", "POST", "/api/v1/drains", writeSecret, `{"site":"dc2","service":"talk.example.com","reason":"drill","clients":["192.0.2.0/24","2001:db8::1"]}`, 201, `"2001:db8::1/128"`, true},

		{"delete without a token", "DELETE", "/api/v1/drains/" + id, "", "", 401, "missing bearer token", false},
		{"delete with a read token", "DELETE", "/api/v1/drains/" + id, readSecret, "", 403, "may only read", false},
		{"delete unknown", "DELETE", "/api/v1/drains/ffffffffffff", writeSecret, "", 404, "no drain with id", false},
		{"delete malformed body", "DELETE", "/api/v1/drains/" + id, writeSecret, `{"reason":`, 400, "malformed JSON", false},
		{"delete", "DELETE", "/api/v1/drains/" + id, writeSecret, `{"reason":"done"}`, 200, `"deleted": true`, true},
		{"delete twice", "DELETE", "/api/v1/drains/" + id, writeSecret, "", 404, "no drain with id", false},
		{"wrong method", "PUT", "/api/v1/drains", writeSecret, "", 405, "method PUT not allowed", false},
		{"no such endpoint", "GET", "/api/v1/nope", writeSecret, "", 404, "no endpoint /api/v1/nope", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := fd.store.Records()
			beforeEvents := len(fd.store.Events(0))
			code, body := call(t, s, tc.method, tc.path, tc.token, tc.body)
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Errorf("%s %s = %d %s\nwant %d containing %s", tc.method, tc.path, code, body, tc.wantCode, tc.wantBody)
			}
			if code >= 400 {
				var e api.Error
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
					t.Errorf("error body %q is not {\"error\": ...}", body)
				}
			}
			after := fd.store.Records()
			if !tc.changes && (!slices.EqualFunc(before, after, sameStamp) || len(fd.store.Events(0)) != beforeEvents) {
				t.Errorf("drains changed:\nbefore %+v\nafter  %+v", before, after)
			}
			if tc.changes && slices.EqualFunc(before, after, sameStamp) {
				t.Errorf("drains unchanged by a successful write")
			}
		})
	}
}

func sameStamp(a, b drain.Record) bool { return a.ID == b.ID && a.Stamp == b.Stamp }

// TestNoTokensWriteAPIOff: without a tokens file the reads are open and
// every write answers 403 with the reason, whatever token is sent.
func TestNoTokensWriteAPIOff(t *testing.T) {
	s, fd := newTestServer(t, "")
	for _, tc := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/api/v1/status", "", "", 200},
		{"GET", "/api/v1/drains", "", "", 200},
		{"GET", "/api/v1/events", "", "", 200},
		{"POST", "/api/v1/drains", "", `{"site":"dc2","reason":"x"}`, 403},
		{"POST", "/api/v1/drains", writeSecret, `{"site":"dc2","reason":"x"}`, 403},
		{"DELETE", "/api/v1/drains/abc", "", "", 403},
	} {
		code, body := call(t, s, tc.method, tc.path, tc.token, tc.body)
		if code != tc.want {
			t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, code, body, tc.want)
		}
		if code == 403 && !strings.Contains(body, "the write API is off: no admin tokens are configured") {
			t.Errorf("%s %s = %s, want the reason the write API is off", tc.method, tc.path, body)
		}
	}
	if n := len(fd.store.Records()); n != 0 {
		t.Errorf("%d drains after writes with the write API off, want 0", n)
	}
}

func TestParseTokens(t *testing.T) {
	tok, err := ParseTokens("tokens", []byte(tokensFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		secret   string
		wantName string
		wantRole Role
		wantOK   bool
	}{
		{writeSecret, "alice", RoleWrite, true},
		{readSecret, "grafana", RoleRead, true},
		{writeSecret + "x", "", 0, false},
		{writeSecret[:len(writeSecret)-1], "", 0, false},
		{"", "", 0, false},
	} {
		name, role, ok := tok.Lookup(tc.secret)
		if name != tc.wantName || role != tc.wantRole || ok != tc.wantOK {
			t.Errorf("Lookup(%q) = %q, %v, %v; want %q, %v, %v", tc.secret, name, role, ok, tc.wantName, tc.wantRole, tc.wantOK)
		}
	}
	var none *Tokens
	if _, _, ok := none.Lookup(writeSecret); ok {
		t.Error("nil Tokens matched a token")
	}

	bad := `alice write short
bob admin 0123456789abcdef0
carol write 0123456789abcdef0
alice read 0123456789abcdef1
x read
d*ve read 0123456789abcdef9
s3cr3t-0123456789abcdef write bob
`
	_, err = ParseTokens("tokens", []byte(bad))
	want := []string{
		"tokens:1: token of alice: 5 characters, at least 16",
		`tokens:2: role "admin": want read or write`,
		"tokens:3: token of carol is the same as on line 2",
		"", // line 3 is refused for its token only
		`tokens:5: want "name role token", found 2 fields`,
		`tokens:6: token name "d*ve": use letters, digits and ._@- (at most 64)`,
		// Fields in the wrong order: the token is not shown (found by
		// FuzzParseTokens).
		"tokens:7: token of (not shown: as long as a token): 3 characters, at least 16",
	}
	if err != nil && strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("ParseTokens(bad) = %v, shows a token", err)
	}
	for _, w := range want {
		if w != "" && (err == nil || !strings.Contains(err.Error(), w)) {
			t.Errorf("ParseTokens(bad) = %v\nwant it to contain %q", err, w)
		}
	}
	if _, err := ParseTokens("tokens", []byte("# nothing\n")); err == nil || !strings.Contains(err.Error(), "no tokens") {
		t.Errorf("ParseTokens(empty) = %v, want \"no tokens\"", err)
	}
}

// TestLookupConstantTime checks the structure that makes Lookup constant
// time rather than timing it (which would be flaky): every token is
// compared whatever matched, through subtle.ConstantTimeCompare on
// fixed-size digests. A match on the first token and no match at all
// must visit the same number of entries.
func TestAnonymousRead(t *testing.T) {
	st, err := drain.Open(drain.StoreConfig{Node: "n1"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseTokens("tokens", []byte(tokensFile))
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Node: fakeNode{}, Drains: &fakeDrains{store: st}, Tokens: tok, AnonymousRead: true,
		Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	for _, tc := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/api/v1/status", "", "", 200},
		{"GET", "/api/v1/drains", "", "", 200},
		{"GET", "/api/v1/status", "nope-nope-nope-nope", "", 401},
		{"POST", "/api/v1/drains", "", `{"site":"dc2","reason":"x"}`, 401},
		{"POST", "/api/v1/drains", readSecret, `{"site":"dc2","reason":"x"}`, 403},
		{"POST", "/api/v1/drains", writeSecret, `{"site":"dc2","reason":"x"}`, 201},
	} {
		if code, body := call(t, s, tc.method, tc.path, tc.token, tc.body); code != tc.want {
			t.Errorf("%s %s with token %q = %d %s, want %d", tc.method, tc.path, tc.token, code, body, tc.want)
		}
	}
}

// TestInternalErrorNotShown: a write that fails inside the node (here the
// state file cannot be written) answers 500 with a request ID only; the
// error, which names a path on the node, goes to the log under that ID.
func TestInternalErrorNotShown(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	st, err := drain.Open(drain.StoreConfig{Node: "n1", Path: filepath.Join(stateDir, drain.FileName)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// The state directory becomes a file: the next write cannot go there.
	if err := os.WriteFile(stateDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	tok, _ := ParseTokens("tokens", []byte("ops write "+writeSecret+"\n"))
	s := New(Config{Node: fakeNode{}, Drains: &fakeDrains{store: st}, Tokens: tok, Gatherer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	code, body := call(t, s, "POST", "/api/v1/drains", writeSecret, `{"site": "dc2", "reason": "x"}`)
	if code != http.StatusInternalServerError {
		t.Fatalf("POST with an unwritable state file = %d %s, want 500", code, body)
	}
	var e api.Error
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatal(err)
	}
	id, ok := strings.CutPrefix(e.Error, "internal error (request id ")
	if !ok || len(id) < 16 {
		t.Fatalf("500 body %q, want an internal error with a request id", e.Error)
	}
	id = id[:16]
	if strings.Contains(body, dir) || strings.Contains(body, "not a directory") {
		t.Errorf("500 body %q carries the internal error", body)
	}
	if l := logs.String(); !strings.Contains(l, "request_id="+id) || !strings.Contains(l, "not a directory") {
		t.Errorf("log %q, want the error under request_id=%s", l, id)
	}
}

// TestTokensFileMessagesHideTokens: fields in the wrong order put the
// token where a name or role belongs; the messages do not quote it.
func TestTokensFileMessagesHideTokens(t *testing.T) {
	secret := "s3cr3t-0123456789abcdef"
	for _, line := range []string{"ops " + secret + " write", secret + "! write ops-token-0123456789"} {
		_, err := ParseTokens("tokens", []byte(line+"\n"))
		if err == nil {
			t.Fatalf("ParseTokens(%q) = nil, want an error", line)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("ParseTokens(%q) = %v, which quotes the token", line, err)
		}
	}
}
