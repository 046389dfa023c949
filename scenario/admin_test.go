package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// apiTimeout bounds one admin API call.
const apiTimeout = 10 * time.Second

// api calls n's admin API with token and, when out is not nil, decodes
// the JSON answer into it. Any status other than want is an error that
// quotes the answer.
func (h *harness) api(ctx context.Context, n *node, method, path, token string, body, out any, want int) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.admin.String()+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s on %s: %w", method, path, n.name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s on %s: %w", method, path, n.name, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s on %s: status %d, want %d: %s", method, path, n.name, resp.StatusCode, want, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s on %s: %w", method, path, n.name, err)
		}
	}
	return nil
}

// drainAnswer is the part of a drain write's answer the scenario reads.
type drainAnswer struct {
	Drain struct {
		ID      string `json:"id"`
		Site    string `json:"site"`
		Deleted bool   `json:"deleted"`
	} `json:"drain"`
}

// drainSite drains site through n's admin API, without waiting for
// acknowledgements, and returns the drain's ID.
func (h *harness) drainSite(ctx context.Context, n *node, site, reason string) (string, error) {
	var a drainAnswer
	body := map[string]any{"site": site, "reason": reason, "wait": "0s"}
	if err := h.api(ctx, n, http.MethodPost, "/api/v1/drains", h.writeToken, body, &a, http.StatusCreated); err != nil {
		return "", err
	}
	if a.Drain.ID == "" || a.Drain.Site != site || a.Drain.Deleted {
		return "", fmt.Errorf("drain %s on %s: unexpected answer %+v", site, n.name, a.Drain)
	}
	return a.Drain.ID, nil
}

// undrain deletes the drain id through n's admin API, without waiting
// for acknowledgements.
func (h *harness) undrain(ctx context.Context, n *node, id, reason string) error {
	var a drainAnswer
	body := map[string]any{"reason": reason, "wait": "0s"}
	if err := h.api(ctx, n, http.MethodDelete, "/api/v1/drains/"+id, h.writeToken, body, &a, http.StatusOK); err != nil {
		return err
	}
	if a.Drain.ID != id || !a.Drain.Deleted {
		return fmt.Errorf("undrain %s on %s: unexpected answer %+v", id, n.name, a.Drain)
	}
	return nil
}

// statusDoc is the part of GET /api/v1/status the scenario reads.
type statusDoc struct {
	Node  string `json:"node"`
	Ready bool   `json:"ready"`
	Peers []struct {
		Name       string    `json:"name"`
		State      string    `json:"state"`
		SameConfig bool      `json:"same_config"`
		LastReport time.Time `json:"last_report"`
	} `json:"peers"`
}

// converged reports whether n is ready and sees every node alive, under
// the same configuration, with a report received from each other node.
func (h *harness) converged(ctx context.Context, n *node) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var doc statusDoc
	if err := h.api(ctx, n, http.MethodGet, "/api/v1/status", h.readToken, nil, &doc, http.StatusOK); err != nil {
		return false, err.Error()
	}
	if !doc.Ready {
		return false, "not ready"
	}
	seen := map[string]bool{}
	for _, p := range doc.Peers {
		if p.State != "alive" || !p.SameConfig || p.Name != n.name && p.LastReport.IsZero() {
			return false, fmt.Sprintf("peer %s: state %s, same config %v, last report %v",
				p.Name, p.State, p.SameConfig, p.LastReport)
		}
		seen[p.Name] = true
	}
	for _, o := range h.nodes {
		if !seen[o.name] {
			return false, "peer " + o.name + " not listed"
		}
	}
	return true, ""
}

// waitConverged waits until every node has converged (see converged).
func (h *harness) waitConverged(ctx context.Context) error {
	deadline := time.Now().Add(waitBound)
	for _, n := range h.nodes {
		for {
			ok, why := h.converged(ctx, n)
			if ok {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("cluster not converged within %s: %s: %s", waitBound, n.name, why)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}
