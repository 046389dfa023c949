package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/gslbd/gslbd/admin/api"
)

// The typed client lives in package api; it is tested here, against the
// real Server with this package's fakes.

// TestClient makes every call of api.Client against a Server: answers
// decode, the raw JSON is the answer's, and error answers come back as
// *api.StatusError with their code and body.
func TestClient(t *testing.T) {
	s, _ := newTestServer(t, tokensFile)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	// host:port means http; a trailing slash is fine.
	writer := api.New(api.Config{Base: strings.TrimPrefix(srv.URL, "http://") + "/", Token: writeSecret})
	reader := api.New(api.Config{Base: srv.URL, Token: readSecret})
	anon := api.New(api.Config{Base: srv.URL})

	st, raw, err := reader.Status(ctx)
	if err != nil || st.Node != "n1" || !strings.Contains(string(raw), `"node": "n1"`) {
		t.Errorf("Status() = %+v, %s, %v; want node n1", st, raw, err)
	}

	res, raw, err := writer.CreateDrain(ctx, api.CreateDrain{Site: "dc2", Reason: "maintenance", Clients: []string{"192.0.2.7", "10.1.0.0/16"}, For: "1h"})
	if err != nil {
		t.Fatalf("CreateDrain() = %v", err)
	}
	if res.Drain.Site != "dc2" || res.Drain.By != "alice" || res.Drain.Expires.IsZero() || !res.Ack.Complete ||
		fmt.Sprint(res.Drain.Clients) != "[10.1.0.0/16 192.0.2.7/32]" {
		t.Errorf("CreateDrain() = %+v, want dc2 for two prefixes by alice, expiring, acknowledged", res)
	}
	var fromRaw api.Result
	if err := json.Unmarshal(raw, &fromRaw); err != nil || fromRaw.Drain.ID != res.Drain.ID {
		t.Errorf("CreateDrain() raw = %s, %v; want the answer for %s", raw, err, res.Drain.ID)
	}

	res, _, err = writer.DeleteDrain(ctx, res.Drain.ID, api.DeleteDrain{Reason: "done"})
	if err != nil || !res.Drain.Deleted || res.Drain.Reason != "done" {
		t.Errorf("DeleteDrain() = %+v, %v; want the tombstone", res, err)
	}

	tests := []struct {
		name         string
		call         func() ([]byte, error)
		wantCode     int
		wantError    string // Error() of the *api.StatusError
		wantServices []string
	}{
		{"status without a token", func() ([]byte, error) { _, raw, err := anon.Status(ctx); return raw, err },
			401, `missing bearer token: send "Authorization: Bearer <token>" (HTTP 401)`, nil},
		{"create with a read token", func() ([]byte, error) {
			_, raw, err := reader.CreateDrain(ctx, api.CreateDrain{Site: "dc2", Reason: "x"})
			return raw, err
		}, 403, `token "grafana" may only read; this needs a write token (HTTP 403)`, nil},
		{"guardrail", func() ([]byte, error) {
			_, raw, err := writer.CreateDrain(ctx, api.CreateDrain{Site: "dc1", Reason: "x"})
			return raw, err
		}, 409, "", []string{"talk.example.com."}},
		{"bad client", func() ([]byte, error) {
			_, raw, err := writer.CreateDrain(ctx, api.CreateDrain{Site: "dc2", Reason: "x", Clients: []string{"10.0.0.0/33"}})
			return raw, err
		}, 400, `clients[0]: "10.0.0.0/33" is not an address or CIDR prefix (HTTP 400)`, nil},
		{"delete twice", func() ([]byte, error) {
			_, raw, err := writer.DeleteDrain(ctx, res.Drain.ID, api.DeleteDrain{})
			return raw, err
		}, 404, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := tc.call()
			var se *api.StatusError
			if !errors.As(err, &se) {
				t.Fatalf("error = %v, want an *api.StatusError", err)
			}
			if se.Code != tc.wantCode || (tc.wantError != "" && se.Error() != tc.wantError) || !slices.Equal(se.Body.Services, tc.wantServices) {
				t.Errorf("error = %d %q %v, want %d %q %v", se.Code, se.Error(), se.Body.Services, tc.wantCode, tc.wantError, tc.wantServices)
			}
			var body api.Error
			if err := json.Unmarshal(raw, &body); err != nil || body.Error != se.Body.Error {
				t.Errorf("raw = %s, want the error body", raw)
			}
		})
	}
}

// TestClientNotJSON: an error answer that is not an api.Error (a proxy's
// page, say) keeps its text; a 2xx answer that does not decode is an
// error of its own, not a StatusError.
func TestClientNotJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Write([]byte("<html>"))
			return
		}
		http.Error(w, "upstream unavailable", http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	c := api.New(api.Config{Base: srv.URL})
	_, _, err := c.DeleteDrain(context.Background(), "x", api.DeleteDrain{})
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != 502 || se.Error() != "upstream unavailable (HTTP 502)" {
		t.Errorf("DeleteDrain() = %v, want upstream unavailable (HTTP 502)", err)
	}
	_, raw, err := c.Status(context.Background())
	if err == nil || errors.As(err, &se) || string(raw) != "<html>" {
		t.Errorf("Status() = %s, %v; want a decode error with the raw answer", raw, err)
	}
}
