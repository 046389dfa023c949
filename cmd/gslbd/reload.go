package main

import (
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Reloads. A reload runs the same load step as start-up and applies what
// it built only when everything passed: zones and services, probe
// targets, admin tokens and the config hash peers compare. Node settings
// (listeners, cluster, state directory, logging) take effect on restart;
// a reload says which changed. Reload requests come from SIGHUP or the
// test hook and are handled one at a time by node.run.

// reload re-reads the configuration and everything it names. A
// configuration that fails validation changes nothing: the node keeps
// serving the data it has and says why.
func (n *node) reload() {
	start := time.Now()
	l, err := load(n.cfg.path)
	if err != nil {
		n.metrics.reloadOK.Set(0)
		n.metrics.reloads.WithLabelValues("failure").Inc()
		n.log.Error("reload failed; keeping the running configuration", "config", n.cfg.path, "error", err)
		return
	}
	if restart := n.cfg.needsRestart(l.cfg); restart != "" {
		n.log.Warn("reload: node settings changed; they take effect on restart", "settings", restart)
	}
	if n.cluster != nil && l.set.Hash() != n.pub.zones().Hash() {
		n.log.Warn("reload: service definitions changed; peers must load the same definitions", "hash", l.set.Hash())
	}
	// The metrics change first so that whoever sees the new answers also
	// sees the reload counted.
	n.metrics.reloadOK.Set(1)
	n.metrics.reloadTime.SetToCurrentTime()
	n.metrics.reloads.WithLabelValues("success").Inc()
	n.applyTokens(l)
	n.applyKeys(l)
	n.applyAdminCert(l)
	n.checker.Update(l.targets)
	n.pub.setZones(l.set)
	if n.cluster != nil {
		if err := n.cluster.SetConfigHash(l.set.Hash()); err != nil {
			n.log.Warn("reload: peers not told of the new config hash yet", "error", err)
		}
	}
	n.log.Info("reloaded", "zones", len(l.set.Zones()), "services", len(l.set.Services()),
		"hash", l.set.Hash(), "took", time.Since(start).Round(time.Microsecond))
}

// applyTokens hands the admin API the tokens a reload read, so tokens can
// be rotated without a restart. A tokens file that was added, removed or
// renamed is an admin setting change: that waits for the restart.
func (n *node) applyTokens(l *loaded) {
	if l.tokens == nil || l.cfg.Admin.TokensFile != n.cfg.Admin.TokensFile {
		return
	}
	n.adminAPI.SetTokens(l.tokens)
	n.log.Info("reload: admin tokens reloaded", "tokens", l.tokens.Len())
}

// applyAdminCert serves new admin TLS connections with the certificate a
// reload read, so certificates are renewed without a restart. Turning TLS
// on or off, or naming other files, waits for the restart.
func (n *node) applyAdminCert(l *loaded) {
	if l.adminCert == nil || n.adminCert.Load() == nil ||
		l.cfg.Admin.TLSCertFile != n.cfg.Admin.TLSCertFile || l.cfg.Admin.TLSKeyFile != n.cfg.Admin.TLSKeyFile {
		return
	}
	n.adminCert.Store(l.adminCert)
	n.log.Info("reload: admin TLS certificate reloaded")
}

// applyKeys hands the gossip keyring a reload read to the cluster, which
// installs new keys, switches the primary and removes keys no longer
// listed: the steps of a key rotation (README, Gossip keys). A key file
// that was added, removed or renamed waits for the restart.
func (n *node) applyKeys(l *loaded) {
	if n.cluster == nil || l.cfg.Cluster.KeyFile != n.cfg.Cluster.KeyFile || l.cfg.Cluster.KeyFile == "" {
		return
	}
	if err := n.cluster.SetKeys(l.keys); err != nil {
		n.log.Warn("reload: gossip keyring not changed", "error", err)
	}
}

// needsRestart names the settings of next that differ from c and that a
// reload cannot apply, or returns "".
func (c *Config) needsRestart(next *Config) string {
	var changed []string
	if c.Node != next.Node {
		changed = append(changed, "node")
	}
	if !c.DNS.equal(next.DNS) {
		changed = append(changed, "dns")
	}
	if c.Admin != next.Admin {
		changed = append(changed, "admin")
	}
	if !c.Cluster.equal(next.Cluster) {
		changed = append(changed, "cluster")
	}
	if c.StateDir != next.StateDir {
		changed = append(changed, "state_dir")
	}
	if c.Log != next.Log {
		changed = append(changed, "log")
	}
	if c.LameDuck != next.LameDuck {
		changed = append(changed, "lame_duck")
	}
	return strings.Join(changed, ", ")
}

// equal reports whether d and o are the same settings. A field added to
// DNSConfig must be added here.
func (d DNSConfig) equal(o DNSConfig) bool {
	return slices.Equal(d.Listen, o.Listen) && d.UDPSize == o.UDPSize && ptrEqual(d.UDPCoalesce, o.UDPCoalesce) &&
		slices.Equal(d.DebugClients, o.DebugClients) &&
		d.TCP == o.TCP && d.resolverRRL() == o.resolverRRL()
}

// equal reports whether c and o are the same settings. A field added to
// ClusterConfig must be added here.
func (c ClusterConfig) equal(o ClusterConfig) bool {
	return c.Bind == o.Bind && c.Advertise == o.Advertise && slices.Equal(c.Seeds, o.Seeds) &&
		c.KeyFile == o.KeyFile && c.Insecure == o.Insecure && c.MaxSkew == o.MaxSkew &&
		c.Heartbeat == o.Heartbeat && c.Staleness == o.Staleness
}

// sighupReloads turns SIGHUP into reload requests (a burst of signals
// makes one request) until stop is called. stop ends the forwarding
// goroutine and waits for it.
func sighupReloads() (reload <-chan struct{}, stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ch := make(chan struct{}, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	})
	return ch, func() {
		signal.Stop(hup)
		close(done)
		wg.Wait()
	}
}

// ptrEqual reports whether a and b are both nil or point to equal values.
func ptrEqual[T comparable](a, b *T) bool {
	return a == b || a != nil && b != nil && *a == *b
}
