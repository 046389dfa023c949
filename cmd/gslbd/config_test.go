package main

import (
	"strings"
	"testing"
	"time"
)

// TestConfigDurations shows that durations are written the Go way and
// that a bad one is reported with its line, in the decoder's words.
func TestConfigDurations(t *testing.T) {
	const base = "node: {name: n}\nzones: [{origin: example.com., file: z}]\ncluster:\n"
	cfg, err := parseConfig("gslbd.yaml", []byte(base+"  heartbeat: 150ms\n  staleness: 1.5s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster.Heartbeat != 150*time.Millisecond || cfg.Cluster.Staleness != 1500*time.Millisecond {
		t.Errorf("heartbeat, staleness = %v, %v; want 150ms, 1.5s", cfg.Cluster.Heartbeat, cfg.Cluster.Staleness)
	}

	_, err = parseConfig("gslbd.yaml", []byte(base+"  heartbeat: 150ms\n  staleness: soon\n"))
	if err == nil {
		t.Fatal("parseConfig with staleness: soon succeeded, want an error")
	}
	got := strings.Split(err.Error(), "\n")
	want := "gslbd.yaml:5: cannot unmarshal !!str `soon` into time.Duration"
	if len(got) != 1 || got[0] != want {
		t.Errorf("parseConfig with staleness: soon = %q, want %q", err, want)
	}
}

func TestNeedsRestart(t *testing.T) {
	base := func() *Config {
		return &Config{
			Node:    NodeConfig{Name: "n", Site: "dc1"},
			DNS:     DNSConfig{Listen: []string{"127.0.0.1:0"}, UDPSize: 1232},
			Cluster: ClusterConfig{Bind: "127.0.0.1:0", Seeds: []string{"10.0.0.1:7946"}, Heartbeat: time.Second, Staleness: 2 * time.Second},
			Zones:   []ZoneConfig{{Origin: "example.com.", File: "a.zone"}},
		}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"nothing", func(*Config) {}, ""},
		{"zones only", func(c *Config) { c.Zones[0].File = "b.zone"; c.Services = "s.yaml" }, ""},
		{"dns listen", func(c *Config) { c.DNS.Listen = append(c.DNS.Listen, "[::1]:0") }, "dns"},
		{"dns udp size", func(c *Config) { c.DNS.UDPSize = 4096 }, "dns"},
		{"dns debug clients", func(c *Config) { c.DNS.DebugClients = []string{"127.0.0.1"} }, "dns"},
		{"lame duck", func(c *Config) { c.LameDuck = time.Second }, "lame_duck"},
		{"seeds", func(c *Config) { c.Cluster.Seeds = []string{"10.0.0.2:7946"} }, "cluster"},
		{"heartbeat", func(c *Config) { c.Cluster.Heartbeat = 500 * time.Millisecond }, "cluster"},
		{"several", func(c *Config) { c.Node.Site = "dc2"; c.Admin.Disabled = true; c.Log.Level = "debug"; c.StateDir = "s" },
			"node, admin, state_dir, log"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := base()
			tc.mod(next)
			if got := base().needsRestart(next); got != tc.want {
				t.Errorf("needsRestart() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestConfigUDPCoalesce: dns.udp_coalesce is 20µs when left out, and 0
// (off) when set so, which a left-out value must not be confused with.
func TestConfigUDPCoalesce(t *testing.T) {
	const base = "node: {name: n}\nzones: [{origin: example.com., file: z}]\n"
	for _, tc := range []struct {
		yaml string
		want time.Duration
	}{
		{"", 20 * time.Microsecond},
		{"dns: {udp_coalesce: 0s}\n", 0},
		{"dns: {udp_coalesce: 50us}\n", 50 * time.Microsecond},
	} {
		cfg, err := parseConfig("gslbd.yaml", []byte(base+tc.yaml))
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if got := *cfg.DNS.UDPCoalesce; got != tc.want {
			t.Errorf("%q: udp_coalesce %v, want %v", tc.yaml, got, tc.want)
		}
	}
}
