package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gslbd/gslbd/admin"
	"github.com/gslbd/gslbd/cluster"
	"github.com/gslbd/gslbd/health"
	"github.com/gslbd/gslbd/zones"
)

// loaded is everything a node is built from, read once and validated by
// [load]. gslbd check, gslbd serve and a reload all go through load, so
// whatever check accepts, serve starts with.
type loaded struct {
	cfg *Config
	set *zones.Set
	// targets are the probe targets of set's services.
	targets []health.Target
	// tokens are the admin API tokens; nil without a tokens file.
	tokens *admin.Tokens
	// adminCert is the admin listener's TLS certificate; nil without TLS.
	adminCert *tls.Certificate
	// keys is the gossip keyring, the primary first; nil without one (or
	// without gossip, when the key file is not read).
	keys [][]byte
	// cluster holds the gossip settings from the file, key and config
	// hash included; the node adds what is not configuration (Drains).
	// Bind is empty when this node runs alone.
	cluster cluster.Config
}

// load reads the node configuration at path and every file it names, and
// runs every validation a node's start-up runs on them: the node settings,
// the zones and services, node.site against the services, the probe
// targets, the admin tokens, the gossip key and the gossip settings. It
// returns every problem at once, each as "file:line: message" (the
// problems of files that cannot be read name the file only).
//
// When the node configuration itself is invalid nothing else is read,
// since the paths and settings it gives cannot be trusted.
func load(path string) (*loaded, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	l := &loaded{cfg: cfg}
	var errs []error
	if l.set, err = zones.Load(cfg.zonesConfig()); err != nil {
		errs = append(errs, err)
	} else {
		if err := checkSite(cfg, l.set); err != nil {
			errs = append(errs, err)
		}
		l.targets = healthTargets(l.set, cfg.Node.Site)
		if err := health.ValidateTargets(l.targets); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: services: %w", cfg.path, cfg.pos.line("services"), err))
		}
	}
	if cfg.Admin.TokensFile != "" {
		path := cfg.resolve(cfg.Admin.TokensFile)
		if l.tokens, err = admin.LoadTokens(path); err != nil {
			errs = append(errs, err)
		} else if err := cfg.checkSecretMode(path); err != nil {
			l.tokens = nil
			errs = append(errs, fmt.Errorf("%s:%d: admin.tokens_file: %w", cfg.path, cfg.pos.line("admin", "tokens_file"), err))
		}
	}
	if cfg.Admin.TLSCertFile != "" && cfg.Admin.TLSKeyFile != "" {
		certFile, keyFile := cfg.resolve(cfg.Admin.TLSCertFile), cfg.resolve(cfg.Admin.TLSKeyFile)
		if err := cfg.checkSecretMode(keyFile); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: admin.tls_key_file: %w", cfg.path, cfg.pos.line("admin", "tls_key_file"), err))
		} else if cert, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			// The error names the files and what is wrong, never key bytes.
			errs = append(errs, fmt.Errorf("%s:%d: admin.tls_cert_file: %w", cfg.path, cfg.pos.line("admin", "tls_cert_file"), err))
		} else {
			l.adminCert = &cert
		}
	}
	if cfg.Cluster.Bind != "" {
		errs = append(errs, l.loadCluster()...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return l, nil
}

// loadCluster reads the gossip key and validates the gossip settings
// through the cluster package's own rules, placing each problem at the
// setting it comes from, in line order.
func (l *loaded) loadCluster() []error {
	cfg := l.cfg
	type problem struct {
		line int
		err  error
	}
	var problems []problem
	at := func(setting string, path []any, err error) {
		line := cfg.pos.line(path...)
		problems = append(problems, problem{line, fmt.Errorf("%s:%d: %s: %w", cfg.path, line, setting, err)})
	}
	keyFileRead := true
	if cfg.Cluster.KeyFile != "" {
		path := cfg.resolve(cfg.Cluster.KeyFile)
		keys, err := readKeyring(path)
		if err == nil {
			err = cfg.checkSecretMode(path)
		}
		if err == nil {
			l.keys = keys
		} else {
			// The other settings are still checked, without a key.
			at("cluster.key_file", []any{"cluster", "key_file"}, err)
			keyFileRead = false
		}
	}
	l.cluster = cluster.Config{
		Name:      cfg.Node.Name,
		Site:      cfg.Node.Site,
		Bind:      cfg.Cluster.Bind,
		Advertise: cfg.Cluster.Advertise,
		Seeds:     cfg.Cluster.Seeds,
		Heartbeat: cfg.Cluster.Heartbeat,
		Staleness: cfg.Cluster.Staleness,
		MaxSkew:   cfg.Cluster.MaxSkew,
		Keys:      l.keys,
		Insecure:  cfg.Cluster.Insecure,

		ReconnectTimeout: cfg.Cluster.ReconnectTimeout,
		LeftTimeout:      cfg.Cluster.LeftTimeout,
	}
	if l.set != nil {
		l.cluster.ConfigHash = l.set.Hash()
	}
	if err := l.cluster.Validate(); err != nil {
		all := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			all = j.Unwrap()
		}
		for _, e := range all {
			var ce *cluster.ConfigError
			if !errors.As(e, &ce) {
				at("cluster", []any{"cluster"}, e)
				continue
			}
			if ce.Field == "Keys" && ce.Index < 0 && !keyFileRead {
				continue // the key file's own problem is reported
			}
			setting, path := clusterSetting(ce)
			err := ce.Err
			if ce.Field == "Keys" && ce.Index >= 0 && len(l.keys) > 1 {
				err = fmt.Errorf("key %d: %w", ce.Index+1, err)
			}
			at(setting, path, err)
		}
	}
	slices.SortStableFunc(problems, func(a, b problem) int { return a.line - b.line })
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = p.err
	}
	return errs
}

// clusterSetting names the node configuration setting a cluster.Config
// field comes from, and its path for positions.
func clusterSetting(ce *cluster.ConfigError) (string, []any) {
	switch ce.Field {
	case "Name":
		return "node.name", []any{"node", "name"}
	case "Site":
		return "node.site", []any{"node", "site"}
	case "Seeds":
		return fmt.Sprintf("cluster.seeds[%d]", ce.Index), []any{"cluster", "seeds", ce.Index}
	case "Keys":
		return "cluster.key_file", []any{"cluster", "key_file"}
	case "MaxSkew":
		return "cluster.max_skew", []any{"cluster", "max_skew"}
	case "ReconnectTimeout":
		return "cluster.reconnect_timeout", []any{"cluster", "reconnect_timeout"}
	case "LeftTimeout":
		return "cluster.left_timeout", []any{"cluster", "left_timeout"}
	case "Bind", "Advertise", "Heartbeat", "Staleness":
		key := strings.ToLower(ce.Field)
		return "cluster." + key, []any{"cluster", key}
	}
	return "cluster", []any{"cluster"}
}

// checkSite verifies that the node's site is one the services know.
func checkSite(cfg *Config, set *zones.Set) error {
	if len(set.Services()) == 0 {
		return nil
	}
	var sites []string
	for _, svc := range set.Services() {
		for _, s := range svc.Sites {
			if s.Site == cfg.Node.Site {
				return nil
			}
			if !slices.Contains(sites, s.Site) {
				sites = append(sites, s.Site)
			}
		}
	}
	slices.Sort(sites)
	return fmt.Errorf("%s:%d: node.site: %q is not a site of any service in %s (sites: %s)",
		cfg.path, cfg.pos.line("node", "site"), cfg.Node.Site, cfg.resolve(cfg.Services), strings.Join(sites, ", "))
}
