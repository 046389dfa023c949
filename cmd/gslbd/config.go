package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/miekg/dns"
	"go.yaml.in/yaml/v3"

	"github.com/gslbd/gslbd/cluster"
	"github.com/gslbd/gslbd/internal/netprefix"
	"github.com/gslbd/gslbd/internal/yamlpos"
	"github.com/gslbd/gslbd/resolver"
	"github.com/gslbd/gslbd/zones"
)

// Config is one node's configuration file. Everything that differs between
// nodes lives here; the zones and services it names are the same on every
// node of a cluster.
type Config struct {
	// Node identifies this node.
	Node NodeConfig `yaml:"node"`
	// DNS configures the authoritative listeners.
	DNS DNSConfig `yaml:"dns"`
	// Admin configures the HTTP admin and metrics listener.
	Admin AdminConfig `yaml:"admin"`
	// Cluster configures gossip with the other nodes.
	Cluster ClusterConfig `yaml:"cluster"`
	// Zones lists the zones this node is authoritative for.
	Zones []ZoneConfig `yaml:"zones"`
	// Services names the service definitions file (optional).
	Services string `yaml:"services"`
	// StateDir holds state that must survive restarts. Default: the
	// directory of the config file, subdirectory "state".
	StateDir string `yaml:"state_dir"`
	// Log configures logging.
	Log LogConfig `yaml:"log"`
	// Demo starts stand-in service endpoints (the bundled demo only).
	Demo DemoConfig `yaml:"demo"`
	// AllowInsecureFileModes lets the secret files (admin.tokens_file and
	// cluster.key_file) be readable or writable by group or others. By
	// default such a file is refused, as ssh refuses a private key that
	// others can read. The demo sets it: a git checkout cannot keep mode
	// 0600. Default false.
	AllowInsecureFileModes bool `yaml:"allow_insecure_file_modes"`
	// LameDuck is how long a stopping node keeps answering DNS after it
	// stopped being ready and told its peers it is leaving, so that a
	// load balancer or an anycast routing daemon watching /readyz can move
	// clients first. Default 0: resolvers reach a zone's name servers by
	// their NS records and retry another one by themselves.
	LameDuck time.Duration `yaml:"lame_duck"`

	// path is the file this config was read from; dir is its directory,
	// against which relative paths are resolved.
	path string
	dir  string
	// pos finds the line of any setting, for messages.
	pos positions
	// zoneLines records where each zone entry was declared, for messages.
	zoneLines []int
}

// NodeConfig identifies a node.
type NodeConfig struct {
	// Name must be unique in the cluster. Default: the host name.
	Name string `yaml:"name"`
	// Site is the data center this node runs in. Required when services are
	// configured.
	Site string `yaml:"site"`
}

// DNSConfig configures the DNS listeners.
type DNSConfig struct {
	// Listen lists "host:port" addresses; each gets a UDP and a TCP
	// listener. Default ["127.0.0.1:5300"]. Production: [":53"].
	Listen []string `yaml:"listen"`
	// UDPSize is the EDNS(0) buffer size we advertise. Default 1232.
	UDPSize uint16 `yaml:"udp_size"`
	// UDPCoalesce is how long a UDP reader pauses, after a read that
	// returned a few queries, to let more gather for its next read (see
	// resolver.UDPServer.SetCoalesce). Default 20µs; 0 turns it off; at
	// most 1ms.
	UDPCoalesce *time.Duration `yaml:"udp_coalesce"`
	// DebugClients lists the client prefixes (or addresses) whose TXT
	// queries for _gslb.<service> are answered with the explanation of
	// the service's answer; everyone else is REFUSED. Default: nobody.
	DebugClients []string `yaml:"debug_clients"`
	// TCP limits DNS over TCP, so that idle or slow connections cannot
	// take the node's file descriptors or every slot.
	TCP TCPConfig `yaml:"tcp"`
	// RRL is response rate limiting over UDP. Off by default.
	RRL RRLConfig `yaml:"rrl"`
}

// TCPConfig limits DNS over TCP connections.
type TCPConfig struct {
	// MaxConnections caps the connections open at once, over all clients
	// and listen addresses each. Default 1024, or a quarter of the
	// process's limit on open files if that is lower, so that probes and
	// gossip always have descriptors left.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerClient caps the connections of one client address
	// (for IPv6, one /64). Default 32.
	MaxConnectionsPerClient int `yaml:"max_connections_per_client"`
	// IdleTimeout is how long a connection may wait for its first query,
	// or between queries, and how long one query may take to arrive, as
	// RFC 7766 §6.2.3 suggests (a few seconds). Default 3s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxQueries is how many queries one connection may send before the
	// node closes it. Default 100.
	MaxQueries int `yaml:"max_queries"`
}

// RRLConfig configures response rate limiting, after BIND's: identical
// responses to one client prefix are counted, and over the limit only
// every Slip-th is sent, as an empty truncated reply (the client retries
// over TCP); the others are dropped.
type RRLConfig struct {
	// ResponsesPerSecond is how many identical responses one client
	// prefix gets a second. 0 (the default) turns RRL off.
	ResponsesPerSecond int `yaml:"responses_per_second"`
	// Window is how long a prefix over the limit stays penalised, at
	// most. Default 5s.
	Window time.Duration `yaml:"window"`
	// IPv4Prefix and IPv6Prefix are the prefix lengths that share an
	// account. Defaults 24 and 56.
	IPv4Prefix int `yaml:"ipv4_prefix"`
	IPv6Prefix int `yaml:"ipv6_prefix"`
	// Slip: every Slip-th response over the limit goes out empty and
	// truncated; 0 drops them all, 1 truncates them all. Default 2.
	Slip *int `yaml:"slip"`
}

// AdminConfig configures the admin HTTP listener.
type AdminConfig struct {
	// Listen is "host:port"; default "127.0.0.1:5380"; "" with Disabled.
	Listen string `yaml:"listen"`
	// Disabled turns the admin listener off.
	Disabled bool `yaml:"disabled"`
	// TokensFile names the file holding the admin API bearer tokens, one
	// "name role token" per line, role read or write (see the README,
	// Operator drains). With it, /api/ calls need a token: read or write
	// to read, write to write. Without it the write API is off and reads
	// are open.
	TokensFile string `yaml:"tokens_file"`
	// AnonymousRead lets /api/ reads (status, drains, events) through
	// without a token even when TokensFile is set. Writes always need a
	// write token. Default false.
	AnonymousRead bool `yaml:"anonymous_read"`
	// TLSCertFile and TLSKeyFile turn on HTTPS: a PEM certificate (chain)
	// and its private key. Both or neither. SIGHUP reloads them: new
	// connections get the new certificate. The key file is a secret file
	// (mode 0600, see AllowInsecureFileModes).
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// ReadTimeout bounds the reading of one request, body included.
	// Default 10s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout is how long a kept-alive connection may wait for its
	// next request. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// ClusterConfig configures gossip.
type ClusterConfig struct {
	// Bind is the gossip "host:port" (UDP and TCP). Empty: this node runs
	// alone, without gossip.
	Bind string `yaml:"bind"`
	// Advertise is the address peers use to reach this node, if not Bind.
	Advertise string `yaml:"advertise"`
	// Seeds are other nodes' gossip addresses to join through.
	Seeds []string `yaml:"seeds"`
	// KeyFile names the gossip keyring: one base64 key (16, 24 or 32
	// bytes) per line, blank lines and # comments allowed. The first key
	// encrypts; every key decrypts. SIGHUP re-reads it, so keys rotate
	// without a restart (README, Gossip keys). Required when Bind or
	// Advertise is not a loopback address, unless Insecure is set. Mode
	// 0600 (see AllowInsecureFileModes).
	KeyFile string `yaml:"key_file"`
	// Insecure lets gossip run without a key on an address other than
	// loopback: anyone who reaches the port is then a member. The node
	// warns at start and in its status. Default false.
	Insecure bool `yaml:"insecure"`
	// MaxSkew is how far ahead of this node's clock a peer's report,
	// heartbeat, leave or drain stamp may be; further ahead is refused and counted
	// (gslb_cluster_rejected_messages_total). Keep the nodes' clocks
	// synchronized well within it. Default 1m.
	MaxSkew time.Duration `yaml:"max_skew"`
	// Heartbeat is the period of this node's signs of life: it gossips a
	// heartbeat digest (its own heartbeat and those it relays) to three
	// random peers twice per Heartbeat, and its health report goes to
	// every peer only when it changes. Default 200ms.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// Staleness is how old a peer's report may grow before it no longer
	// counts. Default 700ms.
	Staleness time.Duration `yaml:"staleness"`
	// ReconnectTimeout is how long a member this node considers failed
	// (crashed, or cut off by a partition) is retried, every second, and
	// counted in drain acknowledgements as not reached. Default 24h.
	ReconnectTimeout time.Duration `yaml:"reconnect_timeout"`
	// LeftTimeout is the same for a member that left on purpose (it is
	// retried, but not waited for by drains). Default 5m.
	LeftTimeout time.Duration `yaml:"left_timeout"`
}

// ZoneConfig declares one zone.
type ZoneConfig struct {
	// Origin is the zone apex, e.g. "example.com.".
	Origin string `yaml:"origin"`
	// File is the RFC 1035 master file, relative to the config file.
	File string `yaml:"file"`
	// AllowInclude permits $INCLUDE (relative to the including file).
	AllowInclude bool `yaml:"allow_include"`
	// AllowTransfer lists client prefixes (or addresses) allowed to AXFR.
	AllowTransfer []string `yaml:"allow_transfer"`
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
}

// Defaults.
const (
	defaultDNSListen   = "127.0.0.1:5300"
	defaultAdminListen = "127.0.0.1:5380"
	defaultUDPSize     = 1232
	defaultUDPCoalesce = 20 * time.Microsecond
	maxUDPCoalesce     = time.Millisecond

	defaultTCPPerClient = 32
	defaultTCPQueries   = 100
	defaultTCPIdle      = 3 * time.Second

	defaultAdminRead = 10 * time.Second
	defaultAdminIdle = 60 * time.Second
)

// defaultTCPMax is dns.tcp.max_connections' default: 1024, or a quarter
// of the limit on open files if lower.
func defaultTCPMax() int {
	n := 1024
	if lim := fdLimit(); lim > 0 && lim/4 < uint64(n) {
		n = max(int(lim/4), 1)
	}
	return n
}

// resolverRRL is dns.rrl as the resolver takes it.
func (d DNSConfig) resolverRRL() resolver.RRLConfig {
	r := d.RRL
	slip := 2
	if r.Slip != nil {
		slip = *r.Slip
	}
	return resolver.RRLConfig{ResponsesPerSecond: r.ResponsesPerSecond, Window: r.Window,
		IPv4Prefix: r.IPv4Prefix, IPv6Prefix: r.IPv6Prefix, Slip: slip}
}

// loadConfig reads and validates a node configuration file. Every problem
// is reported, each as "file:line: message".
func loadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseConfig(path, data)
}

func parseConfig(path string, data []byte) (*Config, error) {
	cfg := &Config{path: path, dir: filepath.Dir(path)}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(path, err)
	}
	// A second decode into a node tree gives line numbers for semantic
	// checks; the structure is already known to be valid.
	var doc yaml.Node
	_ = yaml.Unmarshal(data, &doc)
	pos := positions{}
	if len(doc.Content) > 0 {
		pos.root = doc.Content[0]
	}
	cfg.pos = pos

	var errs []error
	bad := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", path, line, fmt.Sprintf(format, args...)))
	}

	if cfg.Node.Name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			bad(pos.line("node"), "node.name: not set and the host name is unknown")
		}
		cfg.Node.Name = h
	}
	if len(cfg.DNS.Listen) == 0 {
		cfg.DNS.Listen = []string{defaultDNSListen}
	}
	for i, a := range cfg.DNS.Listen {
		if _, err := netip.ParseAddrPort(a); err != nil && !isPortOnly(a) {
			bad(pos.line("dns", "listen", i), "dns.listen[%d]: %q is not host:port (an IP address and a port)", i, a)
		}
	}
	if cfg.DNS.UDPSize == 0 {
		cfg.DNS.UDPSize = defaultUDPSize
	} else if cfg.DNS.UDPSize < 512 {
		bad(pos.line("dns", "udp_size"), "dns.udp_size: %d is below the minimum of 512", cfg.DNS.UDPSize)
	}
	if cfg.DNS.UDPCoalesce == nil {
		d := defaultUDPCoalesce
		cfg.DNS.UDPCoalesce = &d
	} else if d := *cfg.DNS.UDPCoalesce; d < 0 || d > maxUDPCoalesce {
		bad(pos.line("dns", "udp_coalesce"), "dns.udp_coalesce: %s is not between 0 and %s", d, maxUDPCoalesce)
	}
	for i, p := range cfg.DNS.DebugClients {
		if _, err := netprefix.Parse(p); err != nil {
			bad(pos.line("dns", "debug_clients", i), "dns.debug_clients[%d]: %q is not an address or prefix", i, p)
		}
	}
	tcp := &cfg.DNS.TCP
	for _, v := range []struct {
		key string
		n   *int
		def int
	}{
		{"max_connections", &tcp.MaxConnections, defaultTCPMax()},
		{"max_connections_per_client", &tcp.MaxConnectionsPerClient, defaultTCPPerClient},
		{"max_queries", &tcp.MaxQueries, defaultTCPQueries},
	} {
		switch {
		case *v.n == 0:
			*v.n = v.def
		case *v.n < 0:
			bad(pos.line("dns", "tcp", v.key), "dns.tcp.%s: %d is negative", v.key, *v.n)
		}
	}
	if tcp.IdleTimeout == 0 {
		tcp.IdleTimeout = defaultTCPIdle
	} else if tcp.IdleTimeout < 0 {
		bad(pos.line("dns", "tcp", "idle_timeout"), "dns.tcp.idle_timeout: %s is negative", tcp.IdleTimeout)
	}
	if tcp.MaxConnectionsPerClient > tcp.MaxConnections && tcp.MaxConnections > 0 {
		tcp.MaxConnectionsPerClient = tcp.MaxConnections
	}
	rrl := &cfg.DNS.RRL
	if rrl.Window == 0 {
		rrl.Window = 5 * time.Second
	}
	if rrl.IPv4Prefix == 0 {
		rrl.IPv4Prefix = 24
	}
	if rrl.IPv6Prefix == 0 {
		rrl.IPv6Prefix = 56
	}
	if rrl.Slip == nil {
		two := 2
		rrl.Slip = &two
	}
	switch {
	case rrl.ResponsesPerSecond < 0:
		bad(pos.line("dns", "rrl", "responses_per_second"), "dns.rrl.responses_per_second: %d is negative", rrl.ResponsesPerSecond)
	case rrl.Window < time.Second:
		bad(pos.line("dns", "rrl", "window"), "dns.rrl.window: %s is under 1s", rrl.Window)
	case rrl.IPv4Prefix < 1 || rrl.IPv4Prefix > 32:
		bad(pos.line("dns", "rrl", "ipv4_prefix"), "dns.rrl.ipv4_prefix: %d is not 1-32", rrl.IPv4Prefix)
	case rrl.IPv6Prefix < 1 || rrl.IPv6Prefix > 128:
		bad(pos.line("dns", "rrl", "ipv6_prefix"), "dns.rrl.ipv6_prefix: %d is not 1-128", rrl.IPv6Prefix)
	case *rrl.Slip < 0 || *rrl.Slip > 10:
		bad(pos.line("dns", "rrl", "slip"), "dns.rrl.slip: %d is not 0-10", *rrl.Slip)
	}
	if !cfg.Admin.Disabled && cfg.Admin.Listen == "" {
		cfg.Admin.Listen = defaultAdminListen
	}
	if (cfg.Admin.TLSCertFile == "") != (cfg.Admin.TLSKeyFile == "") {
		bad(pos.line("admin"), "admin.tls_cert_file and admin.tls_key_file: give both or neither")
	}
	for _, v := range []struct {
		key string
		d   *time.Duration
		def time.Duration
	}{
		{"read_timeout", &cfg.Admin.ReadTimeout, defaultAdminRead},
		{"idle_timeout", &cfg.Admin.IdleTimeout, defaultAdminIdle},
	} {
		switch {
		case *v.d == 0:
			*v.d = v.def
		case *v.d < 0:
			bad(pos.line("admin", v.key), "admin.%s: %s is negative", v.key, *v.d)
		}
	}
	if cfg.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(cfg.Admin.Listen); err != nil {
			bad(pos.line("admin", "listen"), "admin.listen: %q is not host:port", cfg.Admin.Listen)
		}
	}
	if cfg.Cluster.Heartbeat == 0 {
		cfg.Cluster.Heartbeat = cluster.DefaultHeartbeat
	}
	if cfg.Cluster.Staleness == 0 {
		cfg.Cluster.Staleness = cluster.DefaultStaleness
	}
	if cfg.Cluster.MaxSkew == 0 {
		cfg.Cluster.MaxSkew = cluster.DefaultMaxSkew
	} else if cfg.Cluster.MaxSkew < 0 {
		bad(pos.line("cluster", "max_skew"), "cluster.max_skew: %s must be positive", cfg.Cluster.MaxSkew)
	}
	if cfg.Cluster.ReconnectTimeout == 0 {
		cfg.Cluster.ReconnectTimeout = cluster.DefaultReconnectTimeout
	} else if cfg.Cluster.ReconnectTimeout < 0 {
		bad(pos.line("cluster", "reconnect_timeout"), "cluster.reconnect_timeout: %s must be positive", cfg.Cluster.ReconnectTimeout)
	}
	if cfg.Cluster.LeftTimeout == 0 {
		cfg.Cluster.LeftTimeout = cluster.DefaultLeftTimeout
	} else if cfg.Cluster.LeftTimeout < 0 {
		bad(pos.line("cluster", "left_timeout"), "cluster.left_timeout: %s must be positive", cfg.Cluster.LeftTimeout)
	}
	if cfg.Cluster.Staleness <= cfg.Cluster.Heartbeat {
		bad(pos.line("cluster", "staleness"), "cluster.staleness: %s must be longer than cluster.heartbeat %s",
			cfg.Cluster.Staleness, cfg.Cluster.Heartbeat)
	}
	if cfg.Cluster.Bind != "" {
		if _, _, err := net.SplitHostPort(cfg.Cluster.Bind); err != nil {
			bad(pos.line("cluster", "bind"), "cluster.bind: %q is not host:port", cfg.Cluster.Bind)
		}
	}
	for i, s := range cfg.Cluster.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			bad(pos.line("cluster", "seeds", i), "cluster.seeds[%d]: %q is not host:port", i, s)
		}
	}
	if len(cfg.Zones) == 0 {
		bad(pos.line("zones"), "zones: at least one zone is required")
	}
	cfg.zoneLines = make([]int, len(cfg.Zones))
	for i, z := range cfg.Zones {
		cfg.zoneLines[i] = pos.line("zones", i)
		if z.Origin == "" {
			bad(cfg.zoneLines[i], "zones[%d].origin: required", i)
		} else if _, ok := dns.IsDomainName(z.Origin); !ok {
			bad(pos.line("zones", i, "origin"), "zones[%d].origin: %q is not a domain name", i, z.Origin)
		}
		if z.File == "" {
			bad(cfg.zoneLines[i], "zones[%d].file: required", i)
		}
		for j, p := range z.AllowTransfer {
			if _, err := netprefix.Parse(p); err != nil {
				bad(pos.line("zones", i, "allow_transfer", j), "zones[%d].allow_transfer[%d]: %q is not an address or prefix", i, j, p)
			}
		}
	}
	if cfg.Services != "" && cfg.Node.Site == "" {
		bad(pos.line("node"), "node.site: required when services are configured")
	}
	if cfg.LameDuck < 0 {
		bad(pos.line("lame_duck"), "lame_duck: %s is negative", cfg.LameDuck)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = "state"
	}
	switch cfg.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		bad(pos.line("log", "level"), "log.level: %q is not one of debug, info, warn, error", cfg.Log.Level)
	}
	switch cfg.Log.Format {
	case "", "text", "json":
	default:
		bad(pos.line("log", "format"), "log.format: %q is not one of text, json", cfg.Log.Format)
	}
	for i, a := range cfg.Demo.Endpoints {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad(pos.line("demo", "endpoints", i), "demo.endpoints[%d]: %q is not host:port", i, a)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// zonesConfig turns the node configuration into what zones.Load reads,
// with paths resolved against the config file's directory.
func (c *Config) zonesConfig() zones.Config {
	zc := zones.Config{}
	if c.Services != "" {
		zc.ServicesFile = c.resolve(c.Services)
	}
	for i, z := range c.Zones {
		var allow []netip.Prefix
		for _, p := range z.AllowTransfer {
			pfx, _ := netprefix.Parse(p) // validated by parseConfig
			allow = append(allow, pfx)
		}
		zc.Zones = append(zc.Zones, zones.ZoneConfig{
			Origin:        z.Origin,
			File:          c.resolve(z.File),
			AllowInclude:  z.AllowInclude,
			AllowTransfer: allow,
			Source:        fmt.Sprintf("%s:%d", c.path, c.zoneLines[i]),
		})
	}
	return zc
}

// debugClients returns dns.debug_clients as prefixes.
func (c *Config) debugClients() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range c.DNS.DebugClients {
		pfx, _ := netprefix.Parse(p) // validated by parseConfig
		out = append(out, pfx)
	}
	return out
}

// resolve makes p relative to the config file's directory unless absolute.
func (c *Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

func isPortOnly(a string) bool {
	host, _, err := net.SplitHostPort(a)
	return err == nil && host == ""
}

// yamlError turns a yaml.v3 error into "file:line: message" lines.
func yamlError(path string, err error) error {
	var errs []error
	for _, p := range yamlpos.Problems(err) {
		if p.Line == 0 {
			errs = append(errs, fmt.Errorf("%s: %s", path, p.Msg))
			continue
		}
		errs = append(errs, fmt.Errorf("%s:%d: %s", path, p.Line, p.Msg))
	}
	return errors.Join(errs...)
}

// positions finds line numbers in a decoded YAML document.
type positions struct {
	root *yaml.Node // the document's top node; nil for an empty file
}

// line returns the line of the setting at path (map keys and sequence
// indexes), or of its deepest existing ancestor, or 1.
func (p positions) line(path ...any) int {
	return max(yamlpos.LineAt(p.root, path...), 1)
}

// readKeyring reads a gossip keyring: one base64 key per line, the
// primary first; blank lines and lines starting with # are skipped (a
// file holding one bare key, the older format, is a keyring of one). The
// keys' lengths are for cluster.Config.Validate to judge. Messages never
// quote the file's content.
func readKeyring(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseKeyring(path, data)
}

// parseKeyring parses the content of the keyring file path (see
// readKeyring).
func parseKeyring(path string, data []byte) ([][]byte, error) {
	var keys [][]byte
	var errs []error
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: not a base64 key", path, i+1))
			continue
		}
		keys = append(keys, key)
	}
	if len(errs) == 0 && len(keys) == 0 {
		errs = append(errs, fmt.Errorf("%s: no keys", path))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return keys, nil
}

// checkSecretMode refuses a secret file that others may read, that group
// may write, or that group may read unless root owns it: mode 0600, or
// 0640 owned by root with the service's group (the way PostgreSQL accepts
// its private key), unless the configuration allows any mode. Like ssh, it
// looks at the mode and owner only (an ACL is the operator's business).
func (c *Config) checkSecretMode(path string) error {
	if c.AllowInsecureFileModes {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	perm := fi.Mode().Perm()
	var why string
	switch {
	case perm&0o007 != 0:
		why = "lets others read or write it"
	case perm&0o020 != 0:
		why = "lets its group write it"
	case perm&0o040 != 0 && !ownedByRoot(fi):
		why = "lets its group read it, and root does not own it"
	default:
		return nil
	}
	return fmt.Errorf("%s: mode %04o %s; run chmod 600 %s (or own it root:GROUP with mode 0640), or set allow_insecure_file_modes: true",
		path, perm, why, path)
}
