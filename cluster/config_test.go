package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	if got.Heartbeat != 200*time.Millisecond || got.Staleness != 700*time.Millisecond || got.RetryInterval != time.Second {
		t.Errorf("defaults = heartbeat %v staleness %v retry %v, want 200ms 700ms 1s", got.Heartbeat, got.Staleness, got.RetryInterval)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	ok := Config{Name: "a", Site: "s", Bind: "127.0.0.1:0"}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"no name", func(c *Config) { c.Name = "" }, "name: must be set"},
		{"bind without port", func(c *Config) { c.Bind = "127.0.0.1" }, "bind: address 127.0.0.1: missing port in address"},
		{"bind hostname", func(c *Config) { c.Bind = "localhost:0" }, `bind: "localhost:0": host must be an IP address`},
		{"bind bad port", func(c *Config) { c.Bind = "127.0.0.1:x" }, `bind: port "x": not a number from 0 to 65535`},
		{"advertise without ip", func(c *Config) { c.Advertise = ":7946" }, `advertise: ":7946": no IP address`},
		{"seed without port", func(c *Config) { c.Seeds = []string{"10.0.0.1"} }, "seeds[0]: address 10.0.0.1: missing port in address"},
		{"staleness below heartbeat", func(c *Config) { c.Heartbeat, c.Staleness = time.Second, 500*time.Millisecond }, "staleness: 500ms must exceed the heartbeat of 1s"},
		{"key length", func(c *Config) { c.Keys = [][]byte{[]byte("0123456789abcdef"), []byte("short")} }, "keys[1]: 5 bytes, want 16, 24 or 32"},
		{"meta too long", func(c *Config) { c.ConfigHash = strings.Repeat("h", 600) }, "node meta is"},
		{"public bind without a key", func(c *Config) { c.Bind = "192.0.2.1:7946" }, "keys: required: gossip on 192.0.2.1:7946 is not loopback"},
		{"every address without a key", func(c *Config) { c.Bind = ":0" }, "keys: required: gossip on :0 is not loopback"},
		{"public advertise without a key", func(c *Config) { c.Advertise = "192.0.2.1:7946" }, "keys: required: gossip on 192.0.2.1:7946 is not loopback"},
		{"negative max skew", func(c *Config) { c.MaxSkew = -time.Second }, "max skew: must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.mod(&cfg)
			reg := prometheus.NewRegistry()
			c, err := New(cfg, slog.New(slog.DiscardHandler), reg)
			if err == nil {
				c.ml.Shutdown()
				t.Fatalf("New(%+v) succeeded, want error containing %q", cfg, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New() = %v, want error containing %q", err, tc.wantErr)
			}
			if mfs, _ := reg.Gather(); len(mfs) != 0 {
				t.Errorf("failed New left %d metric families registered", len(mfs))
			}
		})
	}
}

func TestNewReportsBindFailure(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := startNode(t, Config{Name: "a"})
	_, err := New(Config{Name: "b", Site: "s", Bind: a.Addr().String()}, slog.New(slog.DiscardHandler), reg)
	if err == nil || !strings.Contains(err.Error(), "start memberlist on "+a.Addr().String()) {
		t.Errorf("New on a taken port = %v, want a start memberlist error", err)
	}
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Errorf("failed New left %d metric families registered", len(mfs))
	}
}

// TestValidateNamesFields shows that every problem says which field it is
// about, so the caller can point at the setting.
func TestValidateNamesFields(t *testing.T) {
	cfg := Config{Name: "a", Site: strings.Repeat("s", 600), Bind: "localhost:0", Advertise: ":1",
		Seeds: []string{"10.0.0.1:7946", "10.0.0.2"}, Keys: [][]byte{[]byte("short")}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	var got []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *ConfigError
		if !errors.As(e, &ce) {
			t.Fatalf("Validate() error %v is not a *ConfigError", e)
		}
		got = append(got, fmt.Sprintf("%s/%d", ce.Field, ce.Index))
	}
	want := "Bind/0 Advertise/0 Seeds/1 Keys/0 Site/0"
	if strings.Join(got, " ") != want {
		t.Errorf("Validate() fields = %v, want %s\n%v", got, want, err)
	}
	for _, good := range []Config{
		{Name: "a", Bind: "127.0.0.1:0"},
		{Name: "a", Bind: "[::1]:0"},
		{Name: "a", Bind: "192.0.2.1:7946", Keys: [][]byte{[]byte("0123456789abcdef")}},
		{Name: "a", Bind: "192.0.2.1:7946", Insecure: true},
	} {
		if err := good.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", good, err)
		}
	}
}
