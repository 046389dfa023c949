package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gslbd/gslbd/admin/api"
	"github.com/gslbd/gslbd/drain"
)

// Limits of the drain API.
const (
	// MaxBody is the largest request body accepted, in bytes.
	MaxBody = 16 << 10
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
	Create(ctx context.Context, req CreateRequest) (api.Result, error)
	// Delete ends a drain cluster-wide. drain.ErrNotFound answers 404,
	// drain.ErrInvalid 400.
	Delete(ctx context.Context, req DeleteRequest) (api.Result, error)
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
	writeJSON(w, http.StatusOK, api.DrainList{Drains: nonNil(s.cfg.Drains.List(all))})
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
	writeJSON(w, http.StatusOK, api.EventList{Events: nonNil(s.cfg.Drains.Events(limit))})
}

func (s *Server) createDrain(w http.ResponseWriter, r *http.Request, by string) {
	var body api.CreateDrain
	if code, err := decodeBody(w, r, &body, true); err != nil {
		s.refuse(w, r, by, code, err.Error())
		return
	}
	spec, wait, err := body.Parse(time.Now())
	if err != nil {
		s.refuse(w, r, by, http.StatusBadRequest, err.Error())
		return
	}
	res, err := s.cfg.Drains.Create(r.Context(), CreateRequest{Spec: spec, Force: body.Force, Wait: wait, By: by})
	if err != nil {
		s.writeFailure(w, r, by, err)
		return
	}
	writeJSON(w, http.StatusCreated, withSlices(res))
}

func (s *Server) deleteDrain(w http.ResponseWriter, r *http.Request, by string) {
	var body api.DeleteDrain
	if code, err := decodeBody(w, r, &body, false); err != nil {
		s.refuse(w, r, by, code, err.Error())
		return
	}
	wait, err := body.ParseWait()
	if err != nil {
		s.refuse(w, r, by, http.StatusBadRequest, err.Error())
		return
	}
	res, err := s.cfg.Drains.Delete(r.Context(), DeleteRequest{ID: r.PathValue("id"), Reason: body.Reason, Wait: wait, By: by})
	if err != nil {
		s.writeFailure(w, r, by, err)
		return
	}
	writeJSON(w, http.StatusOK, withSlices(res))
}

// writeFailure maps a failed write onto its status code.
func (s *Server) writeFailure(w http.ResponseWriter, r *http.Request, by string, err error) {
	var guard *drain.GuardError
	switch {
	case errors.As(err, &guard):
		s.log.Warn("admin write refused", "method", r.Method, "path", r.URL.Path, "by", by, "status", http.StatusConflict, "error", err)
		writeJSON(w, http.StatusConflict, api.Error{Error: err.Error(), Services: guard.Services})
	case errors.Is(err, drain.ErrInvalid):
		s.refuse(w, r, by, http.StatusBadRequest, err.Error())
	case errors.Is(err, drain.ErrExists):
		s.refuse(w, r, by, http.StatusConflict, err.Error())
	case errors.Is(err, drain.ErrNotFound):
		s.refuse(w, r, by, http.StatusNotFound, err.Error())
	default:
		// The error's text may name files, peers or internal state: it goes
		// to the log, and the client gets an ID to find it there.
		id := requestID()
		s.log.Error("admin write failed", "method", r.Method, "path", r.URL.Path, "by", by, "request_id", id, "error", err)
		w.Header().Set("X-Request-Id", id)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("internal error (request id %s: the node's log says more)", id))
	}
}

// requestID returns a random ID that ties a failure's answer to its log
// line.
func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
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

// withSlices makes empty node lists encode as [] rather than null.
func withSlices(r api.Result) api.Result {
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
