package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/internal/netprefix"
)

// Limits of the drain API.
const (
	// MaxBody is the largest request body accepted, in bytes.
	MaxBody = 16 << 10
	// MaxWait bounds how long a write waits for acknowledgements.
	MaxWait = 30 * time.Second
	// maxEvents is the most events one request returns.
	maxEvents = 1000
)

// Drains is what the drain endpoints need from the node.
type Drains interface {
	// List returns the drains in force, or with all every record held
	// (tombstones and expired drains too).
	List(all bool) []drain.Record
	// Get returns the record with id.
	Get(id string) (drain.Record, bool)
	// Create makes a drain cluster-wide. Errors wrapping drain.ErrInvalid
	// answer 400, drain.ErrExists 409, a *drain.GuardError 409 with its
	// services; anything else 500.
	Create(ctx context.Context, req CreateRequest) (Result, error)
	// Delete ends a drain cluster-wide. drain.ErrNotFound answers 404,
	// drain.ErrInvalid 400.
	Delete(ctx context.Context, req DeleteRequest) (Result, error)
	// Events returns up to limit audit events, newest first.
	Events(limit int) []drain.Event
}

// CreateRequest is a validated create call.
type CreateRequest struct {
	drain.Spec
	// Force skips the guardrail.
	Force bool
	// Wait bounds the wait for acknowledgements; 0 does not wait.
	Wait time.Duration
	// By is the name of the token that made the call.
	By string
}

// DeleteRequest is a validated delete call.
type DeleteRequest struct {
	ID, Reason string
	Wait       time.Duration
	By         string
}

// Result is the answer to a write.
type Result struct {
	// Drain is the record written.
	Drain drain.Record `json:"drain"`
	// Ack says which live nodes applied it within the wait.
	Ack Ack `json:"ack"`
	// Forced lists services the drain leaves without a site able to take
	// traffic, accepted because the request said force.
	Forced []string `json:"forced,omitempty"`
}

// Ack reports which live nodes have applied a write (their DNS answers
// reflect it) and which have not yet.
type Ack struct {
	// Complete is true when every live node applied the write.
	Complete bool `json:"complete"`
	// Applied and Missing are node names, sorted.
	Applied []string `json:"applied"`
	Missing []string `json:"missing"`
	// WaitedMillis is how long the call waited.
	WaitedMillis int64 `json:"waited_ms"`
}

// createBody is the JSON body of POST /api/v1/drains.
type createBody struct {
	Site    string   `json:"site"`
	Service string   `json:"service"`
	Clients []string `json:"clients"`
	Reason  string   `json:"reason"`
	// Expires is an RFC 3339 time; For a Go duration ("90m") from now.
	// At most one of them.
	Expires string `json:"expires"`
	For     string `json:"for"`
	Force   bool   `json:"force"`
	// Wait is a Go duration, at most MaxWait.
	Wait string `json:"wait"`
}

// deleteBody is the optional JSON body of DELETE /api/v1/drains/{id}.
type deleteBody struct {
	Reason string `json:"reason"`
	Wait   string `json:"wait"`
}

type drainList struct {
	Drains []drain.Record `json:"drains"`
}

type eventList struct {
	Events []drain.Event `json:"events"`
}

func (s *Server) listDrains(w http.ResponseWriter, r *http.Request, _ string) {
	all := false
	if v := r.URL.Query().Get("all"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("all: %q is not true or false", v))
			return
		}
		all = b
	}
	writeJSON(w, http.StatusOK, drainList{Drains: nonNil(s.cfg.Drains.List(all))})
}

func (s *Server) getDrain(w http.ResponseWriter, r *http.Request, _ string) {
	id := r.PathValue("id")
	rec, ok := s.cfg.Drains.Get(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no drain with id %q", id))
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request, _ string) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxEvents {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: %q is not a number from 1 to %d", v, maxEvents))
			return
		}
		limit = n
	}
	writeJSON(w, http.StatusOK, eventList{Events: nonNil(s.cfg.Drains.Events(limit))})
}

func (s *Server) createDrain(w http.ResponseWriter, r *http.Request, by string) {
	var body createBody
	if code, err := decodeBody(w, r, &body, true); err != nil {
		s.refuse(w, r, by, code, err.Error())
		return
	}
	now := time.Now()
	req, err := body.request(now)
	if err != nil {
		s.refuse(w, r, by, http.StatusBadRequest, err.Error())
		return
	}
	req.By = by
	res, err := s.cfg.Drains.Create(r.Context(), req)
	if err != nil {
		s.writeFailure(w, r, by, err)
		return
	}
	writeJSON(w, http.StatusCreated, res.withSlices())
}

func (s *Server) deleteDrain(w http.ResponseWriter, r *http.Request, by string) {
	var body deleteBody
	if code, err := decodeBody(w, r, &body, false); err != nil {
		s.refuse(w, r, by, code, err.Error())
		return
	}
	wait, err := parseWait(body.Wait)
	if err != nil {
		s.refuse(w, r, by, http.StatusBadRequest, err.Error())
		return
	}
	res, err := s.cfg.Drains.Delete(r.Context(), DeleteRequest{ID: r.PathValue("id"), Reason: body.Reason, Wait: wait, By: by})
	if err != nil {
		s.writeFailure(w, r, by, err)
		return
	}
	writeJSON(w, http.StatusOK, res.withSlices())
}

// writeFailure maps a failed write onto its status code.
func (s *Server) writeFailure(w http.ResponseWriter, r *http.Request, by string, err error) {
	var guard *drain.GuardError
	switch {
	case errors.As(err, &guard):
		s.log.Warn("admin write refused", "method", r.Method, "path", r.URL.Path, "by", by, "status", http.StatusConflict, "error", err)
		writeJSON(w, http.StatusConflict, Error{Error: err.Error(), Services: guard.Services})
	case errors.Is(err, drain.ErrInvalid):
		s.refuse(w, r, by, http.StatusBadRequest, err.Error())
	case errors.Is(err, drain.ErrExists):
		s.refuse(w, r, by, http.StatusConflict, err.Error())
	case errors.Is(err, drain.ErrNotFound):
		s.refuse(w, r, by, http.StatusNotFound, err.Error())
	default:
		s.log.Error("admin write failed", "method", r.Method, "path", r.URL.Path, "by", by, "error", err)
		writeError(w, http.StatusInternalServerError, "internal error: "+err.Error())
	}
}

// decodeBody reads one JSON object of at most MaxBody bytes, refusing
// unknown fields and trailing data. With required false an empty body
// is fine. It returns the status code to answer with on error.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, required bool) (int, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", MaxBody)
		}
		return http.StatusBadRequest, fmt.Errorf("read request body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if required {
			return http.StatusBadRequest, errors.New("request body: want a JSON object, got nothing")
		}
		return 0, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return http.StatusBadRequest, fmt.Errorf("request body: %v", jsonError(err))
	}
	if dec.More() {
		return http.StatusBadRequest, errors.New("request body: data after the JSON object")
	}
	return 0, nil
}

// jsonError makes encoding/json's errors read well for API clients.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		return fmt.Errorf("field %q: want %s, got %s", typ.Field, typ.Type, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("malformed JSON: unexpected end")
	}
	return err
}

// request validates the syntax of a create body. Whether the site and
// service exist is the implementation's business.
func (b createBody) request(now time.Time) (CreateRequest, error) {
	var errs []error
	req := CreateRequest{Spec: drain.Spec{Key: drain.Key{Site: b.Site, Service: b.Service}, Reason: b.Reason}, Force: b.Force}
	for i, c := range b.Clients {
		p, err := netprefix.Parse(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("clients[%d]: %q is not an address or CIDR prefix", i, c))
			continue
		}
		req.Clients = append(req.Clients, p)
	}
	switch {
	case b.Expires != "" && b.For != "":
		errs = append(errs, errors.New("expires and for: give at most one"))
	case b.Expires != "":
		t, err := time.Parse(time.RFC3339, b.Expires)
		if err != nil {
			errs = append(errs, fmt.Errorf("expires: %q is not an RFC 3339 time (2006-01-02T15:04:05Z)", b.Expires))
		}
		req.Expires = t
	case b.For != "":
		d, err := time.ParseDuration(b.For)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("for: %q is not a positive duration (90m, 2h)", b.For))
		}
		req.Expires = now.Add(d)
	}
	wait, err := parseWait(b.Wait)
	if err != nil {
		errs = append(errs, err)
	}
	req.Wait = wait
	if err := errors.Join(errs...); err != nil {
		return CreateRequest{}, err
	}
	return req, nil
}

func parseWait(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > MaxWait {
		return 0, fmt.Errorf("wait: %q is not a duration from 0 to %s", s, MaxWait)
	}
	return d, nil
}

// withSlices makes empty node lists encode as [] rather than null.
func (r Result) withSlices() Result {
	r.Ack.Applied = nonNil(r.Ack.Applied)
	r.Ack.Missing = nonNil(r.Ack.Missing)
	return r
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
