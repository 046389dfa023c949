package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gslbd/gslbd/internal/dnstest"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// testBinary builds cmd/gslbd once per test run; TestMain removes it.
func testBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "gslbd-test-bin")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "gslbd")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = err
			binPath = string(out)
		}
	})
	if binErr != nil {
		t.Fatalf("go build: %v\n%s", binErr, binPath)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// TestDeployExamplesCheck runs gslbd check on every node file of the
// example deployment: four nodes in three sites, one configuration hash.
//
// The example is checked as an installation would hold it: a copy whose
// secret files (tokens, gossip.key) have mode 0600, which a git checkout
// does not keep.
func TestDeployExamplesCheck(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../deploy/example")); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"tokens", "gossip.key"} {
		if err := os.Chmod(filepath.Join(dir, secret), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var nodes, hashes []string
	hashRE := regexp.MustCompile(`config hash (\S+), node (\S+) in site`)
	for _, f := range files {
		if filepath.Base(f) == "services.yaml" {
			continue
		}
		var out bytes.Buffer
		if err := run(t.Context(), []string{"check", "-config", f}, func(string) string { return "" }, &out, io.Discard, hooks{}); err != nil {
			t.Errorf("gslbd check -config %s: %v", f, err)
			continue
		}
		m := hashRE.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("gslbd check -config %s said %q", f, out.String())
		}
		hashes = append(hashes, m[1])
		nodes = append(nodes, m[2])
		if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); m[2] != want {
			t.Errorf("%s names node %s, want %s", f, m[2], want)
		}
	}
	if want := []string{"dc1-a", "dc1-b", "dc2-a", "dc3-a"}; !slices.Equal(nodes, want) {
		t.Errorf("example nodes = %v, want %v", nodes, want)
	}
	if len(slices.Compact(slices.Clone(hashes))) != 1 {
		t.Errorf("example nodes have config hashes %v, want one for all", hashes)
	}
}

// unitSettings reads a systemd unit's Key=Value lines (every value of
// repeated keys).
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			out[k] = append(out[k], v)
		}
	}
	return out
}

// TestSystemdUnit checks the unit's essentials and has systemd-analyze
// verify it (with ExecStart pointing at a freshly built binary, since
// verify wants the executables to exist); any complaint fails.
func TestSystemdUnit(t *testing.T) {
	const unit = "../../deploy/systemd/gslbd.service"
	got := unitSettings(t, unit)
	for k, want := range map[string]string{
		"Type":                  "notify",
		"ExecReload":            "/bin/kill -HUP $MAINPID",
		"StateDirectory":        "gslbd",
		"User":                  "gslbd",
		"CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
		"AmbientCapabilities":   "CAP_NET_BIND_SERVICE",
		"NoNewPrivileges":       "yes",
		"ProtectSystem":         "strict",
		"ProtectHome":           "yes",
		"PrivateTmp":            "yes",
	} {
		if !slices.Contains(got[k], want) {
			t.Errorf("%s: %s=%v, want %s", unit, k, got[k], want)
		}
	}

	analyze := dnstest.RequireTool(t, "systemd-analyze", "systemd")
	bin := testBinary(t)
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "gslbd.service")
	if err := os.WriteFile(tmp, bytes.ReplaceAll(data, []byte("/usr/local/bin/gslbd"), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", tmp).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
}

// TestDockerfile checks what matters in the Dockerfile (docker build
// cannot run in the test environment): a build stage and a final stage,
// a static binary, a non-root user, the configuration as a volume, and
// nothing fetched from a URL by ADD.
func TestDockerfile(t *testing.T) {
	const file = "../../deploy/docker/Dockerfile"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines, drop comments: one instruction per entry.
	var instrs []string
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		instrs = append(instrs, cur.String())
		cur.Reset()
	}
	var froms, users []string
	static, volume, entry := false, false, false
	for _, in := range instrs {
		op, args, _ := strings.Cut(in, " ")
		switch strings.ToUpper(op) {
		case "FROM":
			froms = append(froms, args)
		case "USER":
			users = append(users, strings.TrimSpace(args))
		case "RUN":
			if strings.Contains(args, "CGO_ENABLED=0") && strings.Contains(args, "go build") {
				static = true
			}
		case "VOLUME":
			volume = volume || strings.Contains(args, "/etc/gslbd")
		case "ENTRYPOINT":
			entry = strings.Contains(args, "gslbd")
		case "ADD":
			if strings.Contains(args, "://") {
				t.Errorf("%s: ADD from a URL: %s", file, in)
			}
		}
	}
	if len(froms) < 2 {
		t.Errorf("%s: %d stages, want a build stage and a final one", file, len(froms))
	}
	if !static {
		t.Errorf("%s: no RUN with CGO_ENABLED=0 go build (a static binary)", file)
	}
	if len(users) == 0 {
		t.Errorf("%s: no USER: the container would run as root", file)
	} else if u, _, _ := strings.Cut(users[len(users)-1], ":"); u == "root" || u == "0" {
		t.Errorf("%s: USER %s, want a non-root user", file, users[len(users)-1])
	}
	if !volume {
		t.Errorf("%s: no VOLUME for /etc/gslbd", file)
	}
	if !entry {
		t.Errorf("%s: no ENTRYPOINT running gslbd", file)
	}
}
