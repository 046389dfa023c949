package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslbd/admin/api"
	"github.com/gslbd/gslbd/internal/testwait"
)

// notifyListener is a service manager's end of sd_notify: a real
// unixgram socket whose path goes into $NOTIFY_SOCKET.
func notifyListener(t *testing.T) (string, func(want string)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return path, func(want string) {
		t.Helper()
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s on $NOTIFY_SOCKET: %v", want, err)
		}
		if got := string(buf[:n]); got != want {
			t.Fatalf("$NOTIFY_SOCKET got %q, want %q", got, want)
		}
	}
}

// TestGracefulHandOver runs two nodes; the first, with a lame-duck
// period, tells systemd (a real $NOTIFY_SOCKET) it is ready, reloading
// and stopping. Once it is told to stop it answers /readyz 503 at once,
// its peer shows it as left, and it still answers DNS (the real dig)
// until the period is over; then it stops.
func TestGracefulHandOver(t *testing.T) {
	const lameDuck = 4 * time.Second
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "example.com.zone"), failoverZone)
	nodeConfig := func(name, seed, extra string) string {
		path := filepath.Join(dir, name+".yaml")
		seeds := "[]"
		if seed != "" {
			seeds = fmt.Sprintf("[%q]", seed)
		}
		writeFile(t, path, fmt.Sprintf(`node: {name: %s, site: dc1}
dns: {listen: ["127.0.0.1:0"]}
admin: {listen: "127.0.0.1:0"}
cluster: {bind: "127.0.0.1:0", seeds: %s}
zones: [{origin: example.com., file: example.com.zone}]
state_dir: %s
%s`, name, seeds, filepath.Join(dir, name), extra))
		return path
	}
	socket, expect := notifyListener(t)
	a := startNodeEnv(t, nodeConfig("a", "", fmt.Sprintf("lame_duck: %s\n", lameDuck)), map[string]string{"NOTIFY_SOCKET": socket})
	expect("READY=1")
	b := startNode(t, nodeConfig("b", a.bound.Gossip, ""))
	peerState := func(name string) string {
		var st api.Status
		if err := json.Unmarshal([]byte(adminGet(t, b.bound.Admin, "/api/v1/status")), &st); err != nil {
			t.Fatal(err)
		}
		for _, p := range st.Peers {
			if p.Name == name {
				return p.State
			}
		}
		return ""
	}
	testwait.Until(t, 10*time.Second, "b sees a alive", func() bool { return peerState("a") == "alive" })

	a.reload <- struct{}{}
	expect("RELOADING=1")
	expect("READY=1")
	if code := httpStatus(t, "http://"+a.bound.Admin+"/readyz"); code != http.StatusOK {
		t.Fatalf("GET /readyz before the stop = %d, want 200", code)
	}

	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- a.stop() }()
	expect("STOPPING=1")
	if code := httpStatus(t, "http://"+a.bound.Admin+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz once stopping = %d, want 503", code)
	}
	testwait.Until(t, lameDuck, "b shows a as left", func() bool { return peerState("a") == "left" })
	dig := requireDig(t)
	host, port, _ := net.SplitHostPort(a.bound.DNS[0])
	out, err := exec.Command(dig, "@"+host, "-p", port, "+short", "+time=1", "+tries=1", "ns1.example.com", "A").Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != "192.0.2.1" {
		t.Errorf("dig during the lame duck (%s after the stop) = %q, %v; want 192.0.2.1", time.Since(start).Round(time.Millisecond), got, err)
	}
	if code := httpStatus(t, "http://"+a.bound.Admin+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz during the lame duck = %d, want 503", code)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("a stopped with %v", err)
		}
	case <-time.After(lameDuck + 30*time.Second):
		t.Fatal("a did not stop after its lame-duck period")
	}
	if took := time.Since(start); took < lameDuck {
		t.Errorf("a stopped %s after the signal, before its lame-duck period of %s ended", took, lameDuck)
	}
	t.Logf("a stopped %s after the signal (lame duck %s)", time.Since(start).Round(time.Millisecond), lameDuck)
	c := &net.Dialer{Timeout: time.Second}
	if conn, err := c.Dial("tcp", a.bound.DNS[0]); err == nil {
		conn.Close()
		t.Errorf("a still accepts DNS over TCP after it stopped")
	}
}

// httpStatus returns the status code of a GET.
func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestSdNotifyAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@gslbd-test-%d", time.Now().UnixNano())
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Skipf("no abstract unix sockets here: %v", err)
	}
	defer conn.Close()
	if err := sdNotify(name, "READY=1"); err != nil {
		t.Fatalf("sdNotify(%s) = %v", name, err)
	}
	buf := make([]byte, 64)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Errorf("abstract socket got %q, %v; want READY=1", buf[:n], err)
	}
	if err := sdNotify("", "READY=1"); err != nil {
		t.Errorf("sdNotify without a socket = %v, want nil", err)
	}
}
