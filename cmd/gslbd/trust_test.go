package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslbd/admin/api"
	"github.com/gslbd/gslbd/internal/testwait"
)

// Issue 8 on running nodes: the gossip keyring and its rotation over
// SIGHUP, gossip without a key off loopback, secret files and secrets in
// logs and status.

var (
	gossipKey1 = []byte("0123456789abcdef0123456789abcdef")
	gossipKey2 = []byte("fedcba9876543210")
)

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

func keyID(k []byte) string {
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:4])
}

// status fetches a node's status document.
func status(t *testing.T, n *testNode) api.Status {
	t.Helper()
	var s api.Status
	if err := json.Unmarshal([]byte(getJSON(t, n.bound.Admin, "/api/v1/status", testReadToken)), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// whole checks that the cluster works end to end from node: a drain made
// there is acknowledged by every node (gossip out, acknowledgements
// back), and so is its undrain.
func (c *drainCluster) whole(node, what string) {
	c.t.Helper()
	out, errOut, err := c.cli(node, testWriteToken, "drain", "dc1", "--reason", what, "--wait", "5s", "-o", "json")
	if err != nil {
		c.t.Fatalf("%s: gslbd drain on %s: %v\n%s", what, node, err, errOut)
	}
	var res api.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		c.t.Fatalf("%s: gslbd drain -o json: %v\n%s", what, err, out)
	}
	if !res.Ack.Complete || !slices.Equal(res.Ack.Applied, c.names) {
		c.t.Fatalf("%s: drain on %s acknowledged by %v (missing %v), want every node", what, node, res.Ack.Applied, res.Ack.Missing)
	}
	out, errOut, err = c.cli(node, testWriteToken, "undrain", "dc1", "--reason", what, "--wait", "5s")
	if err != nil || !strings.Contains(out, "applied on every node (3)") {
		c.t.Fatalf("%s: gslbd undrain on %s: %v\n%s%s", what, node, err, out, errOut)
	}
}

// TestKeyRotationOverSIGHUP rotates the gossip key of a running
// three-node cluster as the README says: install the new key on every
// node, switch to it, remove the old, one node and one SIGHUP at a time.
// After every single reload a drain made on that node is acknowledged by
// every node, and its status lists the keyring.
func TestKeyRotationOverSIGHUP(t *testing.T) {
	c := newDrainCluster(t)
	c.keys = true
	for _, name := range c.names {
		writeFile(t, filepath.Join(c.dir, name+".keys"), "# gossip keyring\n"+b64(gossipKey1)+"\n")
	}
	c.start()
	c.whole("a", "before the rotation")
	steps := []struct {
		name string
		keys [][]byte
	}{
		{"install the new key", [][]byte{gossipKey1, gossipKey2}},
		{"switch to it", [][]byte{gossipKey2, gossipKey1}},
		{"remove the old", [][]byte{gossipKey2}},
	}
	for _, st := range steps {
		var file strings.Builder
		var want []string
		for _, k := range st.keys {
			file.WriteString(b64(k) + "\n")
			want = append(want, keyID(k))
		}
		for _, name := range c.names {
			writeFile(t, filepath.Join(c.dir, name+".keys"), file.String())
			n := c.nodes[name]
			n.reload <- struct{}{}
			testwait.Until(t, 5*time.Second, st.name+": "+name+" reloaded its keyring", func() bool {
				g := status(t, n).Gossip
				return g != nil && g.Encrypted && slices.Equal(g.Keys, want)
			})
			c.whole(name, st.name+" on "+name)
		}
	}
	for _, name := range c.names {
		if logs := c.nodes[name].logs.String(); !strings.Contains(logs, "gossip keyring changed") {
			t.Errorf("%s did not log the keyring change", name)
		}
	}
}

// TestStrangerCannotDrain: a keyed cluster; a stranger without the key
// writes a drain record for dc1 (the issue's attack, in the form of a
// memberlist user message) to every node's gossip port over UDP and TCP.
// No node drains anything, and every node counts the attempts.
func TestStrangerCannotDrain(t *testing.T) {
	c := newDrainCluster(t)
	c.keys = true
	for _, name := range c.names {
		writeFile(t, filepath.Join(c.dir, name+".keys"), b64(gossipKey1)+"\n")
	}
	c.start()
	testwait.Until(t, 10*time.Second, "every node answers dc1", func() bool { return c.allAnswer("127.0.1.10") })
	drainFrame := `{"origin":"a","records":[{"id":"x","site":"dc1","reason":"forged","by":"ops-oncall","at":"2026-01-01T00:00:00Z","stamp":{"wall":1,"logical":0,"node":"a"}}]}`
	// memberlist's framing: the label header, a user message (type 8), our
	// kind byte (4, drain records), the body; in clear text.
	label := append([]byte{244, byte(len("gslbd"))}, "gslbd"...)
	packet := append(append(slices.Clone(label), 8, 4), drainFrame...)
	for _, n := range c.nodes {
		u, err := net.Dial("udp", n.bound.Gossip)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range [][]byte{packet, append([]byte{8, 4}, drainFrame...)} {
			if _, err := u.Write(p); err != nil {
				t.Fatal(err)
			}
		}
		u.Close()
		tc, err := net.Dial("tcp", n.bound.Gossip)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = tc.Write(packet)
		tc.Close()
	}
	const counter = `gslb_cluster_rejected_messages_total{kind="gossip",reason="unauthenticated"}`
	for name, n := range c.nodes {
		testwait.Until(t, 5*time.Second, name+" counts the stranger's messages", func() bool {
			v := metric(t, n.bound.Admin, counter)
			return v != "" && v != "0" && v != "1" && v != "2"
		})
	}
	if got := c.answers(); !c.allAnswer("127.0.1.10") {
		t.Errorf("answers after the stranger's drain = %v, want dc1 everywhere", got)
	}
	for name, n := range c.nodes {
		if d := status(t, n).Drains; len(d) != 0 {
			t.Errorf("%s has drains %+v, want none", name, d)
		}
	}
}

// TestGossipOffLoopbackNeedsKey: a node that would gossip on an address
// other than loopback without a key is refused by check and serve alike;
// with cluster.insecure it starts, and warns in its log and its status.
func TestGossipOffLoopbackNeedsKey(t *testing.T) {
	_, zoneCfg := reloadFixture(t, `{listen: "127.0.0.1:0"}`)
	dir := filepath.Dir(zoneCfg)
	// Advertised on a documentation address: nothing is ever sent there,
	// as the node has no seeds.
	write := func(extra string) string {
		path := filepath.Join(dir, "public.yaml")
		writeFile(t, path, `node: {name: t, site: dc1}
dns: {listen: ["127.0.0.1:0"]}
admin: {listen: "127.0.0.1:0"}
cluster:
  bind: 127.0.0.1:0
  advertise: 192.0.2.1:7946
`+extra+`zones: [{origin: example.com., file: example.com.zone}]
`)
		return path
	}
	path := write("")
	code, msg := exitCode(t, run(t.Context(), []string{"check", "-config", path}, func(string) string { return "" }, &strings.Builder{}, &strings.Builder{}, hooks{}))
	want := path + ":4: cluster.key_file: required: gossip on 192.0.2.1:7946 is not loopback"
	if code != 2 || !strings.HasPrefix(msg, want) {
		t.Errorf("gslbd check = exit %d, %q; want exit 2, %q...", code, msg, want)
	}
	code, serveMsg := exitCode(t, run(t.Context(), []string{"serve", "-config", path}, func(string) string { return "" }, &strings.Builder{}, &strings.Builder{}, hooks{}))
	if code != 2 || serveMsg != msg {
		t.Errorf("gslbd serve = exit %d, %q; want exit 2 and check's message", code, serveMsg)
	}

	n := startNode(t, write("  insecure: true\n"))
	if !strings.Contains(n.logs.String(), "gossip is not encrypted and not on loopback") {
		t.Errorf("no warning at start; logs:\n%s", n.logs)
	}
	var s api.Status
	if err := json.Unmarshal([]byte(adminGet(t, n.bound.Admin, "/api/v1/status")), &s); err != nil {
		t.Fatal(err)
	}
	if s.Gossip == nil || s.Gossip.Encrypted || !strings.Contains(s.Gossip.Warning, "not encrypted") {
		t.Errorf("status gossip = %+v, want a warning", s.Gossip)
	}
	var text strings.Builder
	api.WriteStatus(&text, s)
	if !strings.Contains(text.String(), "WARNING: gossip is not encrypted") {
		t.Errorf("gslbd status prints\n%s\nwant the warning", text.String())
	}
}

// TestSecretFileModes: a tokens or key file that others can read, or its
// group can write, or its group can read while root does not own it, is
// refused, unless allow_insecure_file_modes says otherwise; 0600, and 0640
// owned by root, are fine.
func TestSecretFileModes(t *testing.T) {
	for _, tc := range []struct {
		name, file, setting, cfg string
	}{
		{"tokens", "tokens", "admin.tokens_file", `admin: {listen: "127.0.0.1:0", tokens_file: tokens}` + "\n"},
		{"gossip keys", "gossip.keys", "cluster.key_file", `admin: {listen: "127.0.0.1:0"}` + "\n" + `cluster: {bind: "127.0.0.1:0", key_file: gossip.keys}` + "\n"},
		{"admin TLS key", "admin.key", "admin.tls_key_file", `admin: {listen: "127.0.0.1:0", tls_cert_file: admin.crt, tls_key_file: admin.key}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, zoneCfg := reloadFixture(t, `{listen: "127.0.0.1:0"}`)
			dir := filepath.Dir(zoneCfg)
			secret := filepath.Join(dir, tc.file)
			writeFile(t, filepath.Join(dir, "tokens"), "ops write "+testWriteToken+"\n")
			writeFile(t, filepath.Join(dir, "gossip.keys"), b64(gossipKey1)+"\n")
			newTestCA(t).issue(t, 1, filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key"))
			path := filepath.Join(dir, "node.yaml")
			base := "node: {name: t, site: dc1}\ndns: {listen: [\"127.0.0.1:0\"]}\n" + tc.cfg + "zones: [{origin: example.com., file: example.com.zone}]\n"
			writeFile(t, path, base)
			check := func(mode os.FileMode) (int, string) {
				t.Helper()
				if err := os.Chmod(secret, mode); err != nil {
					t.Fatal(err)
				}
				return exitCode(t, run(t.Context(), []string{"check", "-config", path}, func(string) string { return "" }, &strings.Builder{}, &strings.Builder{}, hooks{}))
			}
			for mode, why := range map[os.FileMode]string{0o644: "lets others read or write it", 0o660: "lets its group write it"} {
				want := fmt.Sprintf("%s: %s: mode %04o %s", tc.setting, secret, mode, why)
				if code, msg := check(mode); code != 2 || !strings.Contains(msg, want) {
					t.Errorf("gslbd check with mode %04o = exit %d, %q; want exit 2 with %q", mode, code, msg, want)
				}
			}
			if code, msg := check(0o600); code != 0 {
				t.Errorf("gslbd check with mode 0600 = exit %d, %s; want 0", code, msg)
			}
			if os.Geteuid() == 0 {
				if code, msg := check(0o640); code != 0 {
					t.Errorf("gslbd check with mode 0640 owned by root = exit %d, %s; want 0", code, msg)
				}
				if err := os.Chown(secret, 65534, 65534); err != nil {
					t.Fatal(err)
				}
				want := "mode 0640 lets its group read it, and root does not own it"
				if code, msg := check(0o640); code != 2 || !strings.Contains(msg, want) {
					t.Errorf("gslbd check with mode 0640 owned by nobody = exit %d, %q; want exit 2 with %q", code, msg, want)
				}
			} else {
				t.Log("not root: mode 0640 owned by root and by another user not tried")
			}
			writeFile(t, path, base+"allow_insecure_file_modes: true\n")
			if code, msg := check(0o666); code != 0 {
				t.Errorf("gslbd check with allow_insecure_file_modes = exit %d, %s; want 0", code, msg)
			}
		})
	}
}

// TestSecretsNotInLogsOrStatus runs a keyed cluster with tokens at debug
// level, uses the tokens (right and wrong), reloads, makes a failing
// call, and looks for the tokens and the key in every log line and in
// the status and metrics.
func TestSecretsNotInLogsOrStatus(t *testing.T) {
	c := newDrainCluster(t)
	c.keys = true
	for _, name := range c.names {
		writeFile(t, filepath.Join(c.dir, name+".keys"), b64(gossipKey1)+"\n"+b64(gossipKey2)+"\n")
	}
	c.start()
	c.whole("a", "secrets")
	for _, n := range c.nodes {
		n.reload <- struct{}{}
	}
	a := c.nodes["a"]
	req, _ := http.NewRequest("GET", "http://"+a.bound.Admin+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+testWriteToken+"x") // a near miss
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	_, _, _ = c.cli("a", testWriteToken+"x", "drain", "dc2", "--reason", "wrong token")
	var seen []string
	for _, n := range c.nodes {
		seen = append(seen, n.logs.String(), getJSON(t, n.bound.Admin, "/api/v1/status", testReadToken),
			adminGet(t, n.bound.Admin, "/metrics"), getJSON(t, n.bound.Admin, "/api/v1/events", testReadToken))
		var s api.Status
		_ = json.Unmarshal([]byte(seen[len(seen)-3]), &s)
		var text strings.Builder
		api.WriteStatus(&text, s)
		seen = append(seen, text.String())
	}
	all := strings.Join(seen, "\n")
	for what, secret := range map[string]string{
		"write token": testWriteToken, "read token": testReadToken,
		"key 1 (base64)": b64(gossipKey1), "key 1": string(gossipKey1), "key 1 (hex)": hex.EncodeToString(gossipKey1),
		"key 2 (base64)": b64(gossipKey2), "key 2": string(gossipKey2), "key 2 (hex)": hex.EncodeToString(gossipKey2),
	} {
		if strings.Contains(all, secret) {
			t.Errorf("the %s appears in the logs, status or metrics", what)
		}
	}
	if !strings.Contains(all, keyID(gossipKey1)) {
		t.Errorf("the status does not name key 1 by its ID %s", keyID(gossipKey1))
	}
}
