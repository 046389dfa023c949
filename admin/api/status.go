package api

import (
	"time"

	"github.com/gslbd/gslbd/drain"
)

// Status is the body of GET /api/v1/status: the node's view of itself
// and of the cluster, from its latest published state.
type Status struct {
	// Node and Site name the node answering.
	Node string `json:"node"`
	Site string `json:"site"`
	// ConfigHash identifies the zones and services the node serves.
	ConfigHash string `json:"config_hash"`
	// Generation counts the node's publishes; Published is the latest.
	Generation uint64    `json:"generation"`
	Published  time.Time `json:"published"`
	// Ready is the node's readiness (GET /readyz).
	Ready bool `json:"ready"`
	// ViewSuspect is true when this node's own probes are set aside: none
	// of them succeeds (the endpoints of several sites are down by its
	// probes or cannot be probed from here) while other nodes see most of
	// those endpoints up. Its verdicts then come from the other nodes
	// alone, and its report cannot withdraw anything; the endpoints'
	// local_fault and local_error say why.
	ViewSuspect bool `json:"view_suspect"`
	// Services lists every service with its sites and endpoints.
	Services []ServiceStatus `json:"services"`
	// Peers are the cluster's members, this node included, sorted by
	// name; empty when the node runs without gossip.
	Peers []PeerStatus `json:"peers,omitempty"`
	// Drains are the operator drains applied in the published state.
	Drains []drain.Record `json:"drains"`
	// SetAside are the drains in force that the cluster-wide guardrail
	// does not apply, each with the services it would have left without a
	// site: drains made at the same moment on different nodes, each
	// allowed there, that together drain every site of a service. The
	// later one (by stamp) is set aside, the same one on every node, and
	// applies when the drains that block it end.
	SetAside []drain.SetAside `json:"set_aside,omitempty"`
	// Gossip describes how this node's gossip is protected; nil when the
	// node runs without gossip.
	Gossip *GossipStatus `json:"gossip,omitempty"`
}

// GossipStatus is the protection of a node's gossip in a [Status].
type GossipStatus struct {
	// Encrypted is whether gossip is encrypted and authenticated with a
	// keyring.
	Encrypted bool `json:"encrypted"`
	// Keys are the IDs of the keyring's keys (the first 8 hex digits of
	// each key's SHA-256, never the key), the primary first: during a
	// rotation, every node should list the same.
	Keys []string `json:"keys,omitempty"`
	// Warning, when set, says what is unsafe: gossip in clear text on an
	// address other than loopback (cluster.insecure).
	Warning string `json:"warning,omitempty"`
}

// ServiceStatus is one service in a [Status].
type ServiceStatus struct {
	// Name is the service's owner name, canonical.
	Name string `json:"name"`
	// Sites are in the service's failover order.
	Sites []SiteStatus `json:"sites"`
	// Answer is the site the service answers with, "all_down" when no
	// site qualifies and the all-down policy answers, "servfail" when
	// that policy is SERVFAIL: for clients no client-limited drain
	// covers.
	Answer string `json:"answer"`
}

// SiteStatus is one site of a [ServiceStatus].
type SiteStatus struct {
	Site      string           `json:"site"`
	Endpoints []EndpointStatus `json:"endpoints"`
	// DrainedBy lists the IDs of drains in force for this site and
	// service, those limited to some clients included.
	DrainedBy []string `json:"drained_by,omitempty"`
	// Serving is whether the site may take the service's traffic (for
	// clients no client-limited drain covers), and Why says why, e.g.
	// "1/2 endpoints up, needs 1" or "drained (250a8a8a900f)".
	Serving bool   `json:"serving"`
	Why     string `json:"why"`
}

// EndpointStatus is one endpoint of a [SiteStatus]: the cluster's verdict
// and this node's own probe.
type EndpointStatus struct {
	// ID is the endpoint's target ID.
	ID      string `json:"id"`
	Address string `json:"address"`
	// Up is the merged verdict, and Reason why.
	Up     bool   `json:"up"`
	Reason string `json:"reason"`
	// Local is this node's probe state ("unknown" when it does not probe
	// the endpoint), and Error its last probe error.
	Local string `json:"local_probe"`
	Error string `json:"local_error,omitempty"`
	// LocalFault, when set, is why this node cannot probe the endpoint at
	// the moment (its probes fail because of the node itself, for example
	// "socket: too many open files"): it casts no vote on it.
	LocalFault string `json:"local_fault,omitempty"`
}

// PeerStatus is one member of the cluster in a [Status].
type PeerStatus struct {
	Name    string `json:"name"`
	Site    string `json:"site"`
	Address string `json:"address"`
	// State is the member's gossip state (alive, suspect, dead, left).
	State string `json:"state"`
	// ConfigHash is the member's; SameConfig says whether it is this
	// node's.
	ConfigHash string `json:"config_hash"`
	SameConfig bool   `json:"same_config"`
	// ViewSuspect is true when the member's report is set aside, its view
	// being suspect (see [Status].ViewSuspect).
	ViewSuspect bool `json:"view_suspect,omitempty"`
	// LastReport is when the member's latest health report was made;
	// zero (and left out) when none was received.
	LastReport time.Time `json:"last_report,omitzero"`
}
