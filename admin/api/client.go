package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// maxAnswer bounds the size of an answer a [Client] reads, in bytes.
const maxAnswer = 16 << 20

// Config configures a [Client].
type Config struct {
	// Base is the admin API's address: a URL ("https://gslb1:5380") or
	// host:port, which means http.
	Base string
	// Token is the bearer token sent with every call; "" sends none.
	Token string
	// HTTP makes the calls; nil uses a client whose timeout is MaxWait
	// plus 10s, enough for any write to wait for its acknowledgements.
	HTTP *http.Client
	// TLS configures https:// connections of that default client, for
	// example RootCAs for a node whose certificate a private CA signed
	// (see [LoadCA]); nil uses the system's roots. Ignored with HTTP.
	TLS *tls.Config
}

// LoadCA returns a TLS configuration trusting the PEM certificates in
// file, for [Config.TLS].
func LoadCA(file string) (*tls.Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate", file)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Client calls a node's admin API. It is safe for concurrent use.
//
// Each method returns the decoded answer and its raw JSON, for callers
// that print it as it came. An answer other than 2xx is a [*StatusError];
// a failure to connect or to read the answer is another error.
type Client struct {
	base, token string
	http        *http.Client
}

// New returns a client for the admin API at cfg.Base.
func New(cfg Config) *Client {
	c := &Client{base: strings.TrimRight(cfg.Base, "/"), token: cfg.Token, http: cfg.HTTP}
	if !strings.Contains(c.base, "://") {
		c.base = "http://" + c.base
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: MaxWait + 10*time.Second}
		if cfg.TLS != nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = cfg.TLS
			c.http.Transport = tr
		}
	}
	return c
}

// Status returns the node's status (GET /api/v1/status).
func (c *Client) Status(ctx context.Context) (Status, []byte, error) {
	var s Status
	raw, err := c.do(ctx, http.MethodGet, "/api/v1/status", nil, &s)
	return s, raw, err
}

// CreateDrain makes a drain cluster-wide (POST /api/v1/drains).
func (c *Client) CreateDrain(ctx context.Context, body CreateDrain) (Result, []byte, error) {
	var res Result
	raw, err := c.do(ctx, http.MethodPost, "/api/v1/drains", body, &res)
	return res, raw, err
}

// DeleteDrain ends the drain id cluster-wide (DELETE /api/v1/drains/{id}).
func (c *Client) DeleteDrain(ctx context.Context, id string, body DeleteDrain) (Result, []byte, error) {
	var res Result
	raw, err := c.do(ctx, http.MethodDelete, "/api/v1/drains/"+url.PathEscape(id), body, &res)
	return res, raw, err
}

// StatusError is an answer of the admin API other than 2xx.
type StatusError struct {
	// Code is the HTTP status code.
	Code int
	// Body is the answer's error body. An answer that is not one (from a
	// proxy, say) leaves its text in Body.Error.
	Body Error
}

// Error returns the body's message, the services a guardrail refusal
// names if the message does not, and the status code.
func (e *StatusError) Error() string {
	msg := e.Body.Error
	if len(e.Body.Services) > 0 && !strings.Contains(msg, e.Body.Services[0]) {
		msg += " (" + strings.Join(e.Body.Services, ", ") + ")"
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Code)
}

// do makes one call with in (when not nil) as its JSON body and decodes
// a 2xx answer into out; it returns the raw answer as well.
func (c *Client) do(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		e := &StatusError{Code: resp.StatusCode}
		if json.Unmarshal(raw, &e.Body) != nil || e.Body.Error == "" {
			e.Body.Error = strings.TrimSpace(string(raw))
		}
		return raw, e
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return raw, fmt.Errorf("admin API: decode answer: %w", err)
	}
	return raw, nil
}
