package api

import (
	"errors"
	"fmt"
	"time"

	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/internal/netprefix"
)

// MaxWait bounds how long a write waits for acknowledgements.
const MaxWait = 30 * time.Second

// CreateDrain is the JSON body of POST /api/v1/drains.
type CreateDrain struct {
	// Site is the site to drain. Required.
	Site string `json:"site"`
	// Service limits the drain to one service; "" drains every service.
	Service string `json:"service,omitempty"`
	// Clients limits the drain to clients in these prefixes (addresses
	// or CIDR prefixes); none drains for every client.
	Clients []string `json:"clients,omitempty"`
	// Reason says why, for the audit trail. Required.
	Reason string `json:"reason"`
	// Expires is an RFC 3339 time; For a Go duration ("90m") from now.
	// At most one of them; neither makes a drain without expiry.
	Expires string `json:"expires,omitempty"`
	For     string `json:"for,omitempty"`
	// Force makes the drain even if it leaves a service with no site
	// able to take traffic.
	Force bool `json:"force,omitempty"`
	// Wait is a Go duration, at most MaxWait, to wait for the nodes
	// to apply the drain; "" does not wait.
	Wait string `json:"wait,omitempty"`
}

// Parse checks the syntax of b and returns the drain it asks for, with
// For counted from now, and how long to wait for acknowledgements. It
// reports every problem, joined. Whether the site and service exist is
// for the server to say.
func (b CreateDrain) Parse(now time.Time) (drain.Spec, time.Duration, error) {
	var errs []error
	spec := drain.Spec{Key: drain.Key{Site: b.Site, Service: b.Service}, Reason: b.Reason}
	for i, c := range b.Clients {
		p, err := netprefix.Parse(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("clients[%d]: %q is not an address or CIDR prefix", i, c))
			continue
		}
		spec.Clients = append(spec.Clients, p)
	}
	switch {
	case b.Expires != "" && b.For != "":
		errs = append(errs, errors.New("expires and for: give at most one"))
	case b.Expires != "":
		t, err := time.Parse(time.RFC3339, b.Expires)
		if err != nil {
			errs = append(errs, fmt.Errorf("expires: %q is not an RFC 3339 time (2006-01-02T15:04:05Z)", b.Expires))
		}
		spec.Expires = t
	case b.For != "":
		d, err := time.ParseDuration(b.For)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("for: %q is not a positive duration (90m, 2h)", b.For))
		}
		spec.Expires = now.Add(d)
	}
	wait, err := parseWait(b.Wait)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return drain.Spec{}, 0, err
	}
	return spec, wait, nil
}

// DeleteDrain is the optional JSON body of DELETE /api/v1/drains/{id}.
type DeleteDrain struct {
	// Reason says why, for the audit trail.
	Reason string `json:"reason,omitempty"`
	// Wait is as in [CreateDrain].
	Wait string `json:"wait,omitempty"`
}

// ParseWait checks the syntax of b.Wait and returns it.
func (b DeleteDrain) ParseWait() (time.Duration, error) { return parseWait(b.Wait) }

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

// Result is the answer to a write: 201 to POST /api/v1/drains, 200 to
// DELETE /api/v1/drains/{id}.
type Result struct {
	// Drain is the record written.
	Drain drain.Record `json:"drain"`
	// Ack says which nodes applied it within the wait.
	Ack Ack `json:"ack"`
	// Forced lists services the drain leaves without a site able to take
	// traffic, accepted because the request said force.
	Forced []string `json:"forced,omitempty"`
}

// Ack reports which nodes have applied a write (their DNS answers
// reflect it) and which have not yet. The nodes are every member the
// writing node has known recently: those alive now, and those it
// considers failed (cut off by a partition, or down) and still tries to
// reach, since a node on the other side of a partition may well be
// answering queries. Members that left on purpose are not counted.
type Ack struct {
	// Complete is true when every one of those nodes applied the write.
	Complete bool `json:"complete"`
	// Applied and Missing are node names, sorted.
	Applied []string `json:"applied"`
	Missing []string `json:"missing"`
	// Unreachable are the nodes of Missing that the writing node cannot
	// reach now (failed, or no heartbeat within the staleness bound),
	// sorted. They apply the write once they are back in touch.
	Unreachable []string `json:"unreachable"`
	// WaitedMillis is how long the call waited.
	WaitedMillis int64 `json:"waited_ms"`
}

// DrainList is the body of GET /api/v1/drains.
type DrainList struct {
	// Drains are the drains in force, or with ?all=true every record
	// the node holds (tombstones and expired drains too).
	Drains []drain.Record `json:"drains"`
}

// EventList is the body of GET /api/v1/events, newest first.
type EventList struct {
	// Events are the audit trail of drain writes and expiries.
	Events []drain.Event `json:"events"`
}

// Error is the body of every error answer.
type Error struct {
	// Error says what went wrong, for people.
	Error string `json:"error"`
	// Services lists the services a refused drain would have left without
	// a site (409 from the guardrail only).
	Services []string `json:"services,omitempty"`
}
