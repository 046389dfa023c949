package health

import (
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
)

// TestCrossSiteProbeOverSlowPath probes a real HTTP endpoint across a
// path with a 200ms round trip, made by a delaying wire on a TUN device in
// a network namespace of its own (tc netem is not in every kernel; this
// delays every packet, the TCP handshake included, as a WAN does). With
// the services file's defaults (interval 500ms, timeout 300ms, rise 2,
// fall 2) the remote target stays up, where the same probe without the
// path allowance (a target of this node's own site) fails every time;
// then the path is black-holed and the remote target goes down within
// the bound the package documentation gives.
//
// It needs root (for the namespace and the TUN device) and iproute2; it
// runs itself again inside a new network namespace, so nothing outside
// that namespace sees its traffic.
func TestCrossSiteProbeOverSlowPath(t *testing.T) {
	if os.Getenv("GSLBD_WAN_CHILD") == "" {
		runInNetns(t)
		return
	}
	const oneWay = 100 * time.Millisecond
	w := newWire(t, oneWay)

	ln, err := net.Listen("tcp", realEndpoint.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go srv.Serve(ln)
	defer srv.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	addr := netip.AddrPortFrom(virtualEndpoint, port)

	// The services file's defaults; the local target has another key, so
	// it is probed on its own, with the configured timeout only.
	remote := Target{ID: "svc/site2/ep", Addr: addr, Kind: "http", Probe: NewHTTPProbe(HTTPCheck{}),
		Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 2, Fall: 2, Key: "GET /", Remote: true}
	local := remote
	local.ID, local.Key, local.Remote = "svc/site1/ep", "GET / as local", false

	c, err := NewChecker(CheckerConfig{}, []Target{remote, local}, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	status := func(id string) Status { st, _ := c.Snapshot().Get(id); return st }
	waitFor := func(what string, within time.Duration, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > within {
				t.Fatalf("%s: not within %v; remote %+v, local %+v", what, within, status(remote.ID), status(local.ID))
			}
			select {
			case <-c.Changed():
			case <-time.After(50 * time.Millisecond):
			}
		}
		return time.Since(start)
	}
	up := waitFor("remote target up", 10*time.Second, func() bool { return status(remote.ID).State == Up })
	waitFor("local-rule target down", 10*time.Second, func() bool { return status(local.ID).State == Down })
	t.Logf("200ms round trip: remote target up after %v; with the configured timeout only: %q", up.Round(time.Millisecond), status(local.ID).LastError)

	// It stays up: no transition for 5s (10 intervals).
	since := status(remote.ID).Since
	steady := time.After(5 * time.Second)
	for waiting := true; waiting; {
		select {
		case <-steady:
			waiting = false
		case <-c.Changed():
		}
		if st := status(remote.ID); st.State != Up || !st.Since.Equal(since) {
			t.Fatalf("remote target over a slow but healthy path: %+v, want up since %v", st, since)
		}
	}

	// Black hole: the endpoint is gone without a trace, so every probe
	// runs into its timeout. The bound (package documentation): 1.1×I' +
	// T' + RTO/2 with T' = 300ms + 2×RTO and I' = max(500ms, T'), about
	// 1.6s for a steady 200ms; the test keeps the bound of 2×T' (4.0s with
	// the defaults whatever the path, as T' is at most 1.3s).
	w.blackhole.Store(true)
	down := waitFor("black-holed remote target down", 5*time.Second, func() bool { return status(remote.ID).State == Down })
	t.Logf("black hole: remote target down after %v (%q)", down.Round(time.Millisecond), status(remote.ID).LastError)
	if down > 4*time.Second {
		t.Errorf("black-holed remote target down after %v, want within the documented 4.0s", down)
	}
}

// Addresses inside the test's namespace. The client reaches the endpoint
// at virtualEndpoint, routed into the TUN device; the wire rewrites each
// packet so that it comes back out of the device from virtualPeer to
// realEndpoint (on lo), where the endpoint listens, and the answers the
// other way round.
var (
	virtualClient   = netip.MustParseAddr("10.77.0.1")
	virtualEndpoint = netip.MustParseAddr("10.77.0.2")
	virtualPeer     = netip.MustParseAddr("10.78.0.1")
	realEndpoint    = netip.MustParseAddr("10.79.0.2")
)

// runInNetns runs this test again in a new network namespace.
func runInNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace and a TUN device")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2 (ip)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("needs /dev/net/tun: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "GSLBD_WAN_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	t.Logf("in a new network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("test in network namespace: %v", err)
	}
}

// wire is a TUN device that hands every packet back to the kernel after a
// delay, with its addresses rewritten (see virtualEndpoint), or drops it
// while blackhole is set.
type wire struct {
	f         *os.File
	delay     time.Duration
	blackhole atomic.Bool
	queue     chan delayed
}

type delayed struct {
	due time.Time
	pkt []byte
}

// newWire creates the TUN device, addresses and routes, and starts the
// wire; it stops when the test ends.
func newWire(t *testing.T, delay time.Duration) *wire {
	t.Helper()
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ifr [40]byte
	copy(ifr[:], "gslbwan0")
	const iffTUN, iffNoPI = 0x0001, 0x1000
	binary.NativeEndian.PutUint16(ifr[16:], iffTUN|iffNoPI)
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TUNSETIFF, uintptr(unsafe.Pointer(&ifr[0]))); errno != 0 {
		syscall.Close(fd)
		t.Fatalf("TUNSETIFF: %v", errno)
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", virtualClient.String() + "/32", "dev", "gslbwan0"},
		{"link", "set", "gslbwan0", "up"},
		{"route", "add", virtualEndpoint.String() + "/32", "dev", "gslbwan0"},
		{"route", "add", virtualPeer.String() + "/32", "dev", "gslbwan0"},
		{"addr", "add", realEndpoint.String() + "/32", "dev", "lo"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	w := &wire{f: os.NewFile(uintptr(fd), "tun"), delay: delay, queue: make(chan delayed, 4096)}
	readDone, writeDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(readDone); w.read() }()
	go func() { defer close(writeDone); w.write() }()
	t.Cleanup(func() {
		w.f.Close()
		<-readDone
		close(w.queue)
		<-writeDone
	})
	return w
}

func (w *wire) read() {
	buf := make([]byte, 65536)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		if w.blackhole.Load() {
			continue
		}
		pkt := append([]byte(nil), buf[:n]...)
		if !rewrite(pkt) {
			continue
		}
		w.queue <- delayed{due: time.Now().Add(w.delay), pkt: pkt}
	}
}

// write hands packets back in order, each at its due time.
func (w *wire) write() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for d := range w.queue {
		if wait := time.Until(d.due); wait > 0 {
			timer.Reset(wait)
			<-timer.C
		}
		if !w.blackhole.Load() {
			w.f.Write(d.pkt)
		}
	}
}

// rewrite maps an IPv4 TCP packet from the client to the endpoint onto
// (virtualPeer → realEndpoint), and the endpoint's answer onto
// (virtualEndpoint → virtualClient), fixing the checksums. It reports
// false for any other packet, which is dropped.
func rewrite(p []byte) bool {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != syscall.IPPROTO_TCP {
		return false
	}
	ihl := int(p[0]&0x0f) * 4
	if len(p) < ihl+20 {
		return false
	}
	src, dst := netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
	switch {
	case src == virtualClient && dst == virtualEndpoint:
		src, dst = virtualPeer, realEndpoint
	case src == realEndpoint && dst == virtualPeer:
		src, dst = virtualEndpoint, virtualClient
	default:
		return false
	}
	s4, d4 := src.As4(), dst.As4()
	copy(p[12:16], s4[:])
	copy(p[16:20], d4[:])
	p[10], p[11] = 0, 0
	binary.BigEndian.PutUint16(p[10:], checksum(p[:ihl], 0))
	seg := p[ihl:]
	seg[16], seg[17] = 0, 0
	var pseudo uint32
	for _, b := range [][]byte{s4[:], d4[:]} {
		pseudo += uint32(binary.BigEndian.Uint16(b[0:])) + uint32(binary.BigEndian.Uint16(b[2:]))
	}
	pseudo += syscall.IPPROTO_TCP + uint32(len(seg))
	binary.BigEndian.PutUint16(seg[16:], checksum(seg, pseudo))
	return true
}

// checksum is the Internet checksum of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
