package drain

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Limits on what a drain may hold, so that a record always fits a gossip
// packet.
const (
	// MaxReason is the longest reason, in bytes.
	MaxReason = 256
	// MaxClients is the most client prefixes one drain may name.
	MaxClients = 16
	// MaxName is the longest site, service or token name.
	MaxName = 253
)

// Errors that callers branch on.
var (
	// ErrInvalid wraps every problem with a requested drain.
	ErrInvalid = errors.New("invalid drain")
	// ErrExists is returned when creating a drain whose scope already
	// has a drain in force.
	ErrExists = errors.New("drain exists")
	// ErrNotFound is returned when deleting a drain that is not in force.
	ErrNotFound = errors.New("no such drain")
)

// Key is the scope of a drain. Its fields are canonical after [Key.Normalize].
type Key struct {
	// Site is the drained site.
	Site string `json:"site"`
	// Service is the canonical service name (lowercase, fully qualified),
	// or "" for every service of the site.
	Service string `json:"service,omitempty"`
	// Clients limits the drain to queries from these prefixes; empty
	// means every client.
	Clients []netip.Prefix `json:"clients,omitempty"`
}

// Normalize returns k with the service name canonical and the client
// prefixes masked, sorted and without duplicates. IPv4-mapped IPv6
// prefixes become IPv4 prefixes.
func (k Key) Normalize() Key {
	k.Service = CanonicalService(k.Service)
	if len(k.Clients) == 0 {
		k.Clients = nil
		return k
	}
	out := make([]netip.Prefix, 0, len(k.Clients))
	for _, p := range k.Clients {
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, comparePrefix)
	k.Clients = slices.Compact(out)
	return k
}

// ID returns the drain's stable identifier: 12 hex digits of a hash of
// the normalized scope. Equal scopes have equal IDs on every node.
func (k Key) ID() string {
	k = k.Normalize()
	var b strings.Builder
	b.WriteString(k.Site)
	b.WriteByte(0)
	b.WriteString(k.Service)
	for _, p := range k.Clients {
		b.WriteByte(0)
		b.WriteString(p.String())
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:6])
}

// String describes the scope for people: "site dc1, service
// talk.example.com., clients 10.0.0.0/8".
func (k Key) String() string {
	svc := "every service"
	if k.Service != "" {
		svc = "service " + k.Service
	}
	cl := "every client"
	if len(k.Clients) > 0 {
		s := make([]string, len(k.Clients))
		for i, p := range k.Clients {
			s[i] = p.String()
		}
		cl = "clients " + strings.Join(s, " ")
	}
	return fmt.Sprintf("site %s, %s, %s", k.Site, svc, cl)
}

// CanonicalService returns name lowercased and fully qualified, or "" for "".
func CanonicalService(name string) string {
	if name == "" {
		return ""
	}
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

// Record is one drain as every node holds it: in force, or, with Deleted,
// a tombstone. Records are values; a Store never changes one in place.
type Record struct {
	// ID is Key.ID() of the scope.
	ID string `json:"id"`
	Key
	// Reason is the operator's reason, required. For a tombstone, the
	// reason given for the delete (may be empty).
	Reason string `json:"reason"`
	// By names the admin token that made the write.
	By string `json:"by"`
	// At is the wall time of the write on the node that made it.
	At time.Time `json:"at"`
	// Expires, when set, ends the drain by itself.
	Expires time.Time `json:"expires,omitzero"`
	// Deleted marks a tombstone.
	Deleted bool `json:"deleted,omitempty"`
	// Force says the drain was made with force: the cluster-wide
	// guardrail never sets it aside. Absent (older nodes) means false.
	Force bool `json:"force,omitempty"`
	// Stamp versions the write; the node that made it is Stamp.Node.
	Stamp Stamp `json:"stamp"`
}

// Active reports whether r drains anything at now: not deleted and not
// expired.
func (r Record) Active(now time.Time) bool {
	return !r.Deleted && (r.Expires.IsZero() || now.Before(r.Expires))
}

// Ends returns when r stopped (or will stop) mattering: the delete of a
// tombstone, the expiry of an expiring drain, or the zero time for a drain
// in force without expiry.
func (r Record) Ends() time.Time {
	switch {
	case r.Deleted:
		return r.At
	default:
		return r.Expires
	}
}

// Wins reports whether r replaces cur under the conflict rule: the higher
// stamp wins; on equal stamps a tombstone wins, then the larger encoding.
// It is a strict order: a record never wins over itself.
func (r Record) Wins(cur Record) bool {
	if c := r.Stamp.Compare(cur.Stamp); c != 0 {
		return c > 0
	}
	if r.Deleted != cur.Deleted {
		return r.Deleted
	}
	a, _ := json.Marshal(r)
	b, _ := json.Marshal(cur)
	return bytes.Compare(a, b) > 0
}

// Merge applies in to recs (records by ID) under the conflict rule and
// reports whether in won. It is the only way records enter a table.
func Merge(recs map[string]Record, in Record) bool {
	cur, ok := recs[in.ID]
	if ok && !in.Wins(cur) {
		return false
	}
	recs[in.ID] = in
	return true
}

// Validate checks a record received from a peer or read from the state
// file: an ID matching the scope, the limits, and a stamp.
func (r Record) Validate() error {
	var errs []error
	if r.Site == "" {
		errs = append(errs, errors.New("no site"))
	}
	if len(r.Site) > MaxName || len(r.Service) > MaxName || len(r.By) > MaxName {
		errs = append(errs, errors.New("name too long"))
	}
	if len(r.Reason) > MaxReason {
		errs = append(errs, errors.New("reason too long"))
	}
	if len(r.Clients) > MaxClients {
		errs = append(errs, fmt.Errorf("%d client prefixes, at most %d", len(r.Clients), MaxClients))
	}
	for _, p := range r.Clients {
		if !p.IsValid() {
			errs = append(errs, errors.New("invalid client prefix"))
		}
	}
	if id := r.Key.ID(); r.ID != id {
		errs = append(errs, fmt.Errorf("id %q does not match the scope (%s)", r.ID, id))
	}
	if r.Stamp.Wall <= 0 || r.Stamp.Node == "" {
		errs = append(errs, errors.New("no stamp"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("drain record %q: %w", r.ID, err)
	}
	return nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// Overlap reports whether two client scopes share a client. An empty
// scope is every client.
func Overlap(a, b []netip.Prefix) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, p := range a {
		for _, q := range b {
			if p.Overlaps(q) {
				return true
			}
		}
	}
	return false
}

// GuardError refuses a drain that would leave services without any site
// able to take traffic (healthy and not drained). Force overrides it.
type GuardError struct {
	// Services are the canonical names of the services concerned, sorted.
	Services []string
}

// Error says which services and how to override.
func (e *GuardError) Error() string {
	return fmt.Sprintf("drain refused: it would leave no site able to take traffic (healthy and not drained) for %s; set force to drain anyway",
		strings.Join(e.Services, ", "))
}
