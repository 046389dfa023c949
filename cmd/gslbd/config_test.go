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
