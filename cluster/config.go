package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a [Cluster]. Zero durations take the documented
// defaults.
type Config struct {
	// Name identifies this node; it must be unique in the cluster and
	// stable across restarts.
	Name string
	// Site is this node's site (data center).
	Site string
	// ConfigHash identifies the GSLB data this node serves (zones.Set's
	// hash). It travels in the node meta. Peers with another hash are
	// shown as such in [Cluster.Members], logged and counted in
	// gslb_cluster_config_mismatch; their reports are still stored, and
	// carry their hash for the merge to judge.
	ConfigHash string
	// Bind is the "host:port" memberlist listens on, UDP and TCP. The host
	// must be an IP address (empty means all addresses); port 0 picks a
	// free port, see [Cluster.Addr].
	Bind string
	// Advertise is the "ip:port" peers should use to reach this node, when
	// it differs from Bind (NAT, or Bind on all addresses). Port 0 means
	// the bound port. Optional.
	Advertise string
	// Seeds are "host:port" addresses of nodes to join. Until one join
	// succeeds the node runs alone and retries every RetryInterval; it
	// retries the same way whenever it finds itself alone again. Seeds
	// equal to Bind or Advertise are skipped, so every node of a cluster
	// can share one seed list.
	Seeds []string
	// RetryInterval is the pause between join attempts, to the seeds and
	// to members this node considers failed or left (see
	// ReconnectTimeout). Default 1s.
	RetryInterval time.Duration
	// Heartbeat is the period of this node's signs of life: memberlist
	// gossips every Heartbeat/2 to three random peers, each packet
	// carrying a heartbeat digest (ours and those we relay). A peer of an
	// earlier version, which cannot read digests, gets the full report
	// every Heartbeat instead. Default 200ms.
	Heartbeat time.Duration
	// Staleness is the freshness bound of reports. [Cluster.Reports] still
	// returns older reports (the merge policy decides what stale means),
	// but drops any report older than 10 times Staleness. A member whose
	// report is older than Staleness shows as suspect. It must exceed
	// Heartbeat. Default 700ms.
	Staleness time.Duration
	// Keys is the gossip keyring: AES keys of 16, 24 or 32 bytes. The
	// first (the primary) encrypts everything this node sends; every key
	// is tried on what it receives, so a key can be rotated without a
	// partition (see [Cluster.SetKeys]). Encryption authenticates
	// members too: a packet or stream that no key opens is dropped and
	// counted (gslb_cluster_rejected_messages_total{kind="gossip"}).
	// Empty: gossip travels in clear text and anyone who can reach the
	// port is a member, which Validate refuses unless Bind and Advertise
	// are loopback addresses or Insecure is set.
	Keys [][]byte
	// Insecure allows gossip without Keys on addresses other than
	// loopback. [Cluster.Insecure] reports it, for warnings.
	Insecure bool
	// MaxSkew bounds how far ahead of this node's clock a peer's word may
	// be: a report whose time or sequence number (which starts at the
	// origin's boot time in nanoseconds) is further ahead, or a leave
	// whose sequence number is, is refused and counted. Drain stamps are
	// bounded the same way by the drain table. Default 1m.
	MaxSkew time.Duration
	// Drains, if set, is the node's drain table: drain records received
	// are merged into it and push/pull carries its records. Nil: drains
	// are not gossiped.
	Drains Drains
	// ReconnectTimeout is how long this node keeps trying to reach a
	// member it considers failed (every RetryInterval), and keeps it in
	// [Cluster.Members] as dead: a partition or a black hole of any
	// shorter length heals by itself, and drain acknowledgements count
	// the member as not reached. Default 24h (serf's).
	ReconnectTimeout time.Duration
	// LeftTimeout is the same for a member that left on purpose: it is
	// retried and shown as left for this long. Default 5m.
	LeftTimeout time.Duration
	// DrainAcks, if set, receives the drain acknowledgements peers send
	// for this node's writes. Nil: they are dropped.
	DrainAcks DrainAcks

	// wrapTransport, set by tests only, wraps memberlist's network
	// transport (to cut links between nodes on loopback).
	wrapTransport func(*transport) memberlist.Transport
}

// Defaults for the zero values of [Config].
const (
	DefaultRetryInterval = time.Second
	DefaultHeartbeat     = 200 * time.Millisecond
	DefaultStaleness     = 700 * time.Millisecond
	DefaultMaxSkew       = time.Minute
	// DefaultReconnectTimeout is serf's: a failed member is retried for a
	// day.
	DefaultReconnectTimeout = 24 * time.Hour
	DefaultLeftTimeout      = 5 * time.Minute
)

// dropFactor times Staleness is the age at which a report is forgotten.
const dropFactor = 10

// memberlist timings, tuned for fast failure detection between sites
// whose round trip is well under probeTimeout. doc.go explains the
// figures.
const (
	probeInterval           = 500 * time.Millisecond
	probeTimeout            = 250 * time.Millisecond
	gossipNodes             = 3
	suspicionMult           = 3
	suspicionMaxTimeoutMult = 3
	retransmitMult          = 3
	pushPullInterval        = 10 * time.Second
	gossipToTheDeadTime     = 30 * time.Second
	tcpTimeout              = 2 * time.Second

	// joinSeeds is how many seeds, picked at random, a node that is
	// alone joins through in one round.
	joinSeeds = 3
	// leaveTimeout bounds how long a graceful stop waits for memberlist to
	// gossip our departure.
	leaveTimeout = time.Second
	// maxPacket is the largest frame sent over UDP. Bigger ones go over
	// TCP and are not queued for gossip (they would never fit a packet).
	// It leaves room in memberlist's 1400-byte UDP buffer for its own
	// header, encryption and label.
	maxPacket = 1200
	// clusterLabel keeps gslbd's gossip apart from any other memberlist
	// cluster (Consul, Serf) that shares the network.
	clusterLabel = "gslbd"
)

// withDefaults returns cfg with zero values replaced by the defaults.
func (cfg Config) withDefaults() Config {
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Staleness == 0 {
		cfg.Staleness = DefaultStaleness
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = DefaultMaxSkew
	}
	if cfg.ReconnectTimeout == 0 {
		cfg.ReconnectTimeout = DefaultReconnectTimeout
	}
	if cfg.LeftTimeout == 0 {
		cfg.LeftTimeout = DefaultLeftTimeout
	}
	return cfg
}

// ConfigError is one problem with a setting of a [Config], so that a
// caller can point at where the setting came from.
type ConfigError struct {
	// Field is the name of the Config field at fault: "Name", "Bind",
	// "Advertise", "Seeds", "RetryInterval", "Heartbeat", "Staleness",
	// "MaxSkew", "ReconnectTimeout", "LeftTimeout", "Keys" (a key of the wrong length, or none where one is
	// required), or "Site" when the node meta (site and config hash)
	// does not fit.
	Field string
	// Index is the element of Seeds or Keys at fault, when Field is
	// "Seeds" or "Keys" (-1 for Keys missing altogether).
	Index int
	Err   error
}

func (e *ConfigError) Error() string {
	switch e.Field {
	case "Seeds":
		return fmt.Sprintf("seeds[%d]: %v", e.Index, e.Err)
	case "RetryInterval":
		return "retry interval: " + e.Err.Error()
	case "Keys":
		if e.Index < 0 {
			return "keys: " + e.Err.Error()
		}
		return fmt.Sprintf("keys[%d]: %v", e.Index, e.Err)
	case "MaxSkew":
		return "max skew: " + e.Err.Error()
	case "ReconnectTimeout":
		return "reconnect timeout: " + e.Err.Error()
	case "LeftTimeout":
		return "left timeout: " + e.Err.Error()
	case "Site":
		return e.Err.Error()
	}
	return strings.ToLower(e.Field) + ": " + e.Err.Error()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Validate reports every problem of cfg, with zero values taking their
// defaults as in [New], each a *[ConfigError], joined. [New] runs it
// first; a caller may run it to check a configuration without binding
// anything.
func (cfg Config) Validate() error {
	cfg = cfg.withDefaults()
	var errs []error
	bad := func(field string, err error) { errs = append(errs, &ConfigError{Field: field, Err: err}) }
	if cfg.Name == "" {
		bad("Name", errors.New("must be set"))
	}
	if _, _, err := splitIPPort(cfg.Bind, true); err != nil {
		bad("Bind", err)
	}
	if cfg.Advertise != "" {
		if _, _, err := splitIPPort(cfg.Advertise, false); err != nil {
			bad("Advertise", err)
		}
	}
	for i, s := range cfg.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			errs = append(errs, &ConfigError{Field: "Seeds", Index: i, Err: err})
		}
	}
	if cfg.RetryInterval < 0 {
		bad("RetryInterval", errors.New("must be positive"))
	}
	if cfg.Heartbeat < 0 {
		bad("Heartbeat", errors.New("must be positive"))
	}
	if cfg.Staleness <= cfg.Heartbeat {
		bad("Staleness", fmt.Errorf("%v must exceed the heartbeat of %v", cfg.Staleness, cfg.Heartbeat))
	}
	if cfg.MaxSkew < 0 {
		bad("MaxSkew", errors.New("must be positive"))
	}
	if cfg.ReconnectTimeout < 0 {
		bad("ReconnectTimeout", errors.New("must be positive"))
	}
	if cfg.LeftTimeout < 0 {
		bad("LeftTimeout", errors.New("must be positive"))
	}
	for i, k := range cfg.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			errs = append(errs, &ConfigError{Field: "Keys", Index: i, Err: fmt.Errorf("%d bytes, want 16, 24 or 32", len(k))})
		}
	}
	if len(cfg.Keys) == 0 && !cfg.Insecure {
		if addr, public := cfg.publicAddr(); public {
			errs = append(errs, &ConfigError{Field: "Keys", Index: -1, Err: fmt.Errorf(
				"required: gossip on %s is not loopback, and without a key anyone who reaches it can join, report and drain; give a keyring, or set insecure to gossip in clear text", addr)})
		}
	}
	if _, err := encodeMeta(nodeMeta{Site: cfg.Site, ConfigHash: cfg.ConfigHash, Features: ourFeatures}); err != nil {
		bad("Site", err)
	}
	return errors.Join(errs...)
}

// publicAddr returns the first of Bind and Advertise that is not a
// loopback address (an empty Bind host is every address), and whether
// there is one. Unparsable addresses are left to their own checks.
func (cfg Config) publicAddr() (string, bool) {
	for _, a := range []string{cfg.Bind, cfg.Advertise} {
		if a == "" {
			continue
		}
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if host == "" {
			return a, true
		}
		if ip, err := netip.ParseAddr(host); err == nil && !ip.IsLoopback() {
			return a, true
		}
	}
	return "", false
}

// splitIPPort parses "ip:port". With emptyHost, the IP may be left out
// (all addresses).
func splitIPPort(s string, emptyHost bool) (string, int, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: not a number from 0 to 65535", portStr)
	}
	if host == "" {
		if !emptyHost {
			return "", 0, fmt.Errorf("%q: no IP address", s)
		}
		return "0.0.0.0", int(port), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", 0, fmt.Errorf("%q: host must be an IP address", s)
	}
	return ip.String(), int(port), nil
}

// memberlistConfig builds memberlist's configuration from ours. cfg has
// been validated.
func (cfg Config) memberlistConfig() *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr, mc.BindPort, _ = splitIPPort(cfg.Bind, true)
	mc.AdvertisePort = mc.BindPort
	if cfg.Advertise != "" {
		var port int
		mc.AdvertiseAddr, port, _ = splitIPPort(cfg.Advertise, false)
		if port != 0 {
			mc.AdvertisePort = port
		}
	}
	mc.Label = clusterLabel

	mc.ProbeInterval = probeInterval
	mc.ProbeTimeout = probeTimeout
	// Heartbeat digests ride memberlist's gossip: two rounds per
	// Heartbeat.
	mc.GossipInterval = cfg.Heartbeat / 2
	mc.GossipNodes = gossipNodes
	mc.SuspicionMult = suspicionMult
	mc.SuspicionMaxTimeoutMult = suspicionMaxTimeoutMult
	mc.RetransmitMult = retransmitMult
	mc.PushPullInterval = pushPullInterval
	mc.GossipToTheDeadTime = gossipToTheDeadTime
	mc.TCPTimeout = tcpTimeout
	// No LZW: compressing every packet (a 64 KiB table allocated per
	// packet, and the garbage collection that follows) was about half of
	// an idle node's gossip CPU, to save a third of its bytes.
	// Receivers read compressed and plain packets alike, so nodes of
	// either setting mix.
	mc.EnableCompression = false
	return mc
}
