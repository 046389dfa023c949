package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		config   string
		wantCode int
		want     []string // lines of the message, in order
	}{
		{
			name:   "demo is valid",
			config: "../../testdata/demo/gslbd.yaml",
		},
		{
			name:     "bad zone, services and tokens: every problem with file and line",
			config:   "testdata/bad/gslbd.yaml",
			wantCode: 2,
			want: []string{
				"testdata/bad/bad.zone:3: no NS records at the zone apex example.com.",
				"testdata/bad/bad.zone:5: CNAME record for www.example.com. beside other data (A)",
				"testdata/bad/bad.zone:7: A record for other.org. is outside zone example.com.",
				`testdata/bad/services.yaml:3: services["www.example.com"]: www.example.com. collides with the A record at testdata/bad/bad.zone:4`,
				`testdata/bad/services.yaml:3: services["www.example.com"]: www.example.com. collides with the CNAME record at testdata/bad/bad.zone:5`,
				`testdata/bad/services.yaml:6: services["www.example.com"].sites.dc2: unknown site`,
				`testdata/bad/tokens:1: token of op: 5 characters, at least 16`,
				`testdata/bad/tokens:2: role "admin": want read or write`,
			},
		},
		{
			name:     "bad node settings: every problem with line",
			config:   "testdata/bad/badconfig.yaml",
			wantCode: 2,
			want: []string{
				`testdata/bad/badconfig.yaml:4: dns.listen[0]: "nonsense" is not host:port (an IP address and a port)`,
				`testdata/bad/badconfig.yaml:5: dns.udp_size: 100 is below the minimum of 512`,
				`testdata/bad/badconfig.yaml:6: dns.udp_coalesce: 5ms is not between 0 and 1ms`,
				`testdata/bad/badconfig.yaml:9: cluster.staleness: 500ms must be longer than cluster.heartbeat 1s`,
				`testdata/bad/badconfig.yaml:11: zones[0].origin: "bad..name" is not a domain name`,
				`testdata/bad/badconfig.yaml:11: zones[0].file: required`,
				`testdata/bad/badconfig.yaml:14: log.level: "loud" is not one of debug, info, warn, error`,
			},
		},
		{
			name:     "unknown key",
			config:   "testdata/bad/unknownkey.yaml",
			wantCode: 2,
			want:     []string{"testdata/bad/unknownkey.yaml:3: field sight not found in type main.NodeConfig"},
		},
		{
			name:     "gossip bind on a host name, which the cluster refuses",
			config:   "testdata/bad/clusterbind.yaml",
			wantCode: 2,
			want:     []string{`testdata/bad/clusterbind.yaml:8: cluster.bind: "localhost:0": host must be an IP address`},
		},
		{
			name:     "gossip key file missing",
			config:   "testdata/bad/keyfile.yaml",
			wantCode: 2,
			want:     []string{"testdata/bad/keyfile.yaml:9: cluster.key_file: open testdata/bad/missing.key: no such file or directory"},
		},
		{
			name:     "gossip key of the wrong length, judged by the cluster package",
			config:   "testdata/bad/shortkey.yaml",
			wantCode: 2,
			want:     []string{"testdata/bad/shortkey.yaml:9: cluster.key_file: 5 bytes, want 16, 24 or 32"},
		},
		{
			name:     "gossip off loopback without a key",
			config:   "testdata/bad/publicgossip.yaml",
			wantCode: 2,
			want: []string{"testdata/bad/publicgossip.yaml:7: cluster.key_file: required: gossip on 192.0.2.1:7946 is not loopback, " +
				"and without a key anyone who reaches it can join, report and drain; give a keyring, or set insecure to gossip in clear text"},
		},
		{
			name:     "missing file",
			config:   "testdata/bad/nope.yaml",
			wantCode: 2,
			want:     []string{"open testdata/bad/nope.yaml: no such file or directory"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"check", "-config", tc.config}, func(string) string { return "" }, &stdout, &stderr, hooks{})
			code, msg := 0, ""
			var ee exitError
			if errors.As(err, &ee) {
				code, msg = ee.code, ee.msg
			} else if err != nil {
				t.Fatalf("check: unexpected error %v", err)
			}
			if code != tc.wantCode {
				t.Fatalf("gslbd check -config %s: exit %d, want %d\n%s", tc.config, code, tc.wantCode, msg)
			}
			if tc.wantCode == 0 {
				if !strings.Contains(stdout.String(), ": ok:") {
					t.Errorf("gslbd check stdout = %q, want an ok line", stdout.String())
				}
				return
			}
			got := strings.Split(msg, "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("gslbd check -config %s =\n%s\nwant\n%s", tc.config, msg, strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestRunUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"frobnicate"}, func(string) string { return "" }, &stdout, &stderr, hooks{})
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("gslbd frobnicate = %v, want exit 2", err)
	}
	if !strings.Contains(stderr.String(), "usage: gslbd") {
		t.Errorf("gslbd frobnicate printed %q, want the usage", stderr.String())
	}
}
