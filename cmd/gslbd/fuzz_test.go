package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// FuzzParseConfig parses any node configuration. It must not panic;
// every message names the file and a line; and what it accepts has its
// defaults filled in and turns into a zones configuration.
func FuzzParseConfig(f *testing.F) {
	var seeds []string
	for _, g := range []string{"testdata/*.yaml", "testdata/bad/*.yaml", "../../deploy/example/*.yaml", "../../testdata/demo/gslbd.yaml"} {
		m, _ := filepath.Glob(g)
		seeds = append(seeds, m...)
	}
	for _, p := range seeds {
		if filepath.Base(p) == "services.yaml" {
			continue // not a node configuration
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	msg := regexp.MustCompile(`^fuzz/gslbd\.yaml(:\d+)?: `)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseConfig("fuzz/gslbd.yaml", data)
		if err != nil {
			if cfg != nil {
				t.Fatal("parseConfig returned a config and an error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !msg.MatchString(line) {
					t.Fatalf("message line %q does not name the file", line)
				}
			}
			return
		}
		if len(cfg.DNS.Listen) == 0 || cfg.DNS.UDPSize < 512 || cfg.Cluster.Staleness <= cfg.Cluster.Heartbeat || len(cfg.Zones) == 0 {
			t.Fatalf("accepted config without its defaults: %+v", cfg)
		}
		zc := cfg.zonesConfig()
		if len(zc.Zones) != len(cfg.Zones) {
			t.Fatalf("zonesConfig has %d zones, the config %d", len(zc.Zones), len(cfg.Zones))
		}
		_ = cfg.debugClients()
	})
}

// FuzzParseKeyring parses any gossip keyring file. It must not panic,
// and its messages never quote the file: each says only where and what.
func FuzzParseKeyring(f *testing.F) {
	for _, p := range []string{"../../deploy/example/gossip.key", "testdata/bad/short.key"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	k := base64.StdEncoding.EncodeToString(make([]byte, 32))
	f.Add([]byte("# primary\n" + k + "\n\n" + k[:20] + "\n"))
	f.Add([]byte("not-base64!\n"))
	f.Add([]byte(""))
	msg := regexp.MustCompile(`^keys(:\d+: not a base64 key|: no keys)$`)
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseKeyring("keys", data)
		if err != nil {
			if keys != nil {
				t.Fatal("parseKeyring returned keys and an error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !msg.MatchString(line) {
					t.Fatalf("message line %q", line)
				}
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
	})
}
