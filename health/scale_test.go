//go:build linux

package health

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gslbd/gslbd/internal/proctest"
	"github.com/prometheus/client_golang/prometheus"
)

// scaleSeconds is GSLBD_PROBE_SCALE_SECONDS, how long an on-demand
// measurement runs, or def.
func scaleSeconds(def int) int {
	if s, err := strconv.Atoi(os.Getenv("GSLBD_PROBE_SCALE_SECONDS")); err == nil && s > 0 {
		return s
	}
	return def
}

// startHelperEndpoints starts n helper endpoints on ports of 127.0.0.1
// and returns their ports and the helpers' process IDs. A kept connection
// per endpoint takes n descriptors here, and in the helpers a listener
// and a connection per endpoint, so as many helpers as the limit on open
// files needs.
func startHelperEndpoints(t *testing.T, n int) (ports []uint16, pids []int) {
	t.Helper()
	limit := raiseNoFile(t, uint64(n+100))
	per := max(int(limit)/2-100, 1)
	for start := 0; start < n; start += per {
		p, pid := startEndpoints(t, min(per, n-start))
		ports, pids = append(ports, p...), append(pids, pid)
	}
	return ports, pids
}

// TestProbeScale measures what probing many endpoints costs this process.
// It is on demand, because it runs for about half a minute and wants a
// core's worth of headroom:
//
//	GSLBD_PROBE_SCALE=10000 go test -run TestProbeScale -count=1 -v ./health/
//
// It starts helper processes (this test binary again, as many as the
// limit on open files needs: each holds a listener and a kept connection
// per endpoint) that listen on that many ports of 127.0.0.1 and answer
// every request with a minimal HTTP 200, runs a Checker over one target
// per port with the
// services file's default check (HTTP GET /, interval 500ms, timeout
// 300ms, rise 2, fall 2), and after a warm-up reads this process's CPU
// time (getrusage: user plus system, which includes the kernel's loopback
// work done on our behalf) over GSLBD_PROBE_SCALE_SECONDS (default 20).
// GSLBD_PROBE_SCALE_KIND=tcp measures TCP connect probes instead, and
// GSLBD_PROBE_SCALE_REMOTE=1 endpoints of another site. The
// helpers' own CPU is reported too, as context: it is not the checker's.
func TestProbeScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("GSLBD_PROBE_SCALE"))
	if n <= 0 {
		t.Skip("on demand: set GSLBD_PROBE_SCALE=10000 (endpoints) to measure probing cost")
	}
	secs := scaleSeconds(20)
	kind := os.Getenv("GSLBD_PROBE_SCALE_KIND")
	if kind == "" {
		kind = "http"
	}
	// GSLBD_PROBE_SCALE_REMOTE=1 marks the endpoints remote (another
	// site's): their probes then feed the path estimate, from the
	// kernel's round trip of the kept connections among others.
	remote := os.Getenv("GSLBD_PROBE_SCALE_REMOTE") != ""
	ports, helperPIDs := startHelperEndpoints(t, n)

	var probe Probe
	switch kind {
	case "http":
		probe = NewHTTPProbe(HTTPCheck{})
	case "tcp":
		probe = NewTCPProbe()
	default:
		t.Fatalf("GSLBD_PROBE_SCALE_KIND=%q, want http or tcp", kind)
	}
	targets := make([]Target, n)
	for i, p := range ports {
		targets[i] = Target{
			ID:       fmt.Sprintf("svc%d/site1/127.0.0.1:%d", i, p),
			Addr:     netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p),
			Kind:     kind,
			Probe:    probe,
			Interval: 500 * time.Millisecond,
			Timeout:  300 * time.Millisecond,
			Rise:     2,
			Fall:     2,
			Remote:   remote,
		}
	}
	reg := prometheus.NewRegistry()
	c, err := NewChecker(CheckerConfig{}, targets, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// GSLBD_PROBE_SCALE_TRACE=1 logs every second of the run, warm-up
	// included.
	if os.Getenv("GSLBD_PROBE_SCALE_TRACE") != "" {
		stop, stopped := make(chan struct{}), make(chan struct{})
		defer func() { close(stop); <-stopped }()
		go func() {
			defer close(stopped)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			var lc, lf, ll, lw int64
			var lu, ls, lh time.Duration
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				u, s := cpuTime()
				h := processesCPU(helperPIDs)
				c1, f1 := probeCounts(t, reg)
				st := map[State]int{}
				for _, x := range c.Snapshot().statuses {
					st[x.State]++
				}
				l1, w1 := loopHandled(c), loopWakes(c)
				t.Logf("second: %d probes (%d on the loop, which woke %d times), %d failed; CPU ms user %d, system %d, helpers %d; %v",
					c1-lc, l1-ll, w1-lw, f1-lf, (u - lu).Milliseconds(), (s - ls).Milliseconds(), (h - lh).Milliseconds(), st)
				lc, lf, lu, ls, lh, ll, lw = c1, f1, u, s, h, l1, w1
			}
		}()
	}
	// Warm up: every target probed to a conclusion, or 20s.
	deadline := time.Now().Add(20 * time.Second)
	for !allKnown(c.Snapshot().statuses) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)

	// GSLBD_PROBE_SCALE_PROFILE=FILE writes a CPU profile of the
	// measured seconds (the warm-up left out) to FILE.
	if file := os.Getenv("GSLBD_PROBE_SCALE_PROFILE"); file != "" {
		f, err := os.Create(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
	}
	// Gathering the metrics of many targets takes a while, during which
	// the loop goes on: its count is taken on both sides of it.
	loopA := loopHandled(c)
	probes0, fails0 := probeCounts(t, reg)
	loop0, wakes0, sched0 := (loopA+loopHandled(c))/2, loopWakes(c), c.sched.wakes.Load()
	user0, sys0 := cpuTime()
	switches0 := contextSwitches()
	helper0, wall0 := processesCPU(helperPIDs), time.Now()
	time.Sleep(time.Duration(secs) * time.Second)
	user1, sys1 := cpuTime()
	switches1 := contextSwitches()
	helper1, wall1 := processesCPU(helperPIDs), time.Now()
	loopA = loopHandled(c)
	probes1, fails1 := probeCounts(t, reg)
	loop1, wakes1, sched1 := (loopA+loopHandled(c))/2, loopWakes(c), c.sched.wakes.Load()
	pprof.StopCPUProfile()

	wall := wall1.Sub(wall0)
	cpu := user1 + sys1 - user0 - sys0
	probes := float64(probes1 - probes0)
	down := 0
	states := map[State]int{}
	var sample string
	for id, st := range c.Snapshot().statuses {
		states[st.State]++
		if st.State != Up {
			down++
			sample = id + ": " + st.State.String() + " " + st.LastError
		}
	}
	// The helpers answer every probe, the same work in every run: the
	// checker's CPU as a share of theirs is a figure that a machine
	// slower or faster for a while (other tenants) moves far less.
	helperCPU := helper1 - helper0
	t.Logf("%d %s endpoints, %s: checker CPU %.3f of a core (%.1fµs per probe: %.1f user, %.1f system), %.0f probes/s (%d failed), %d targets not up; helper CPU %.3f of a core; checker/helper %.2f",
		n, kind, wall.Round(time.Millisecond), cpu.Seconds()/wall.Seconds(),
		float64(cpu.Microseconds())/max(probes, 1), float64((user1-user0).Microseconds())/max(probes, 1),
		float64((sys1-sys0).Microseconds())/max(probes, 1), probes/wall.Seconds(), fails1-fails0, down,
		helperCPU.Seconds()/wall.Seconds(), cpu.Seconds()/max(helperCPU.Seconds(), 1e-9))
	t.Logf("per second: %.0f probes on the event loop, %.0f on goroutines of their own; wake-ups: %.0f of the loop, %.0f of the scheduler; %.0f context switches",
		float64(loop1-loop0)/wall.Seconds(), (probes-float64(loop1-loop0))/wall.Seconds(),
		float64(wakes1-wakes0)/wall.Seconds(), float64(sched1-sched0)/wall.Seconds(),
		float64(switches1-switches0)/wall.Seconds())
	if down > 0 {
		t.Errorf("%d of %d targets not up: %v, e.g. %s", down, n, states, sample)
	}
}

// TestProbeScaleHelper is the endpoint process of TestProbeScale: it runs
// only when started by it.
func TestProbeScaleHelper(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("GSLBD_PROBE_SCALE_HELPER"))
	if n <= 0 {
		t.Skip("helper process of TestProbeScale")
	}
	raiseNoFile(t, uint64(2*n+100))
	lns := make([]net.Listener, n)
	out := bufio.NewWriter(os.Stdout)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen %d: %v", i, err)
		}
		lns[i] = ln
		fmt.Fprintf(out, "PORT %d\n", ln.Addr().(*net.TCPAddr).Port)
		go serveMinimalHTTP(ln)
	}
	fmt.Fprintln(out, "READY")
	out.Flush()
	// The parent closes stdin when it is done, or dies.
	io.Copy(io.Discard, os.Stdin)
}

var (
	minimalResponse      = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	minimalCloseResponse = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
)

// serveMinimalHTTP answers every request on every connection of ln with
// 200 "ok", and keeps the connection for the next request, as nginx and
// net/http do, unless the request says "Connection: close". A TCP probe's
// connection is closed by the prober before it sends anything.
func serveMinimalHTTP(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of descriptors, say: try again, as net/http does.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		go serveMinimalConn(conn)
	}
}

func serveMinimalConn(conn net.Conn) {
	defer conn.Close()
	var buf [1024]byte
	have := 0
	for {
		end := bytes.Index(buf[:have], []byte("\r\n\r\n"))
		for end < 0 {
			if have == len(buf) {
				return
			}
			k, err := conn.Read(buf[have:])
			if err != nil {
				return
			}
			have += k
			end = bytes.Index(buf[:have], []byte("\r\n\r\n"))
		}
		end += 4
		closing := bytes.Contains(buf[:end], []byte("\r\nConnection: close\r\n"))
		resp := minimalResponse
		if closing {
			resp = minimalCloseResponse
		}
		if _, err := conn.Write(resp); err != nil || closing {
			return
		}
		have = copy(buf[:], buf[end:have])
	}
}

// startEndpoints starts the helper process with n endpoints and returns
// their ports and its PID. The helper stops when the test ends.
func startEndpoints(t *testing.T, n int) ([]uint16, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestProbeScaleHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GSLBD_PROBE_SCALE_HELPER="+strconv.Itoa(n), "GSLBD_PROBE_SCALE=")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	ports := make([]uint16, 0, n)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if line == "READY" {
			go io.Copy(io.Discard, stdout)
			return ports, cmd.Process.Pid
		}
		if p, ok := strings.CutPrefix(line, "PORT "); ok {
			port, err := strconv.Atoi(p)
			if err != nil {
				t.Fatalf("helper said %q", line)
			}
			ports = append(ports, uint16(port))
		}
	}
	t.Fatalf("helper ended before it was ready: %v", sc.Err())
	return nil, 0
}

// raiseNoFile lifts the file descriptor limit to want, raising the hard
// limit too where this process may, and fails the test if that is not
// enough: an endpoint that cannot accept reads as a hanging one. It
// returns the limit.
func raiseNoFile(t *testing.T, want uint64) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < want {
		raised := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			return want
		}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < want {
		t.Fatalf("needs %d open files, the limit is %d", want, lim.Cur)
	}
	return lim.Cur
}

// probeCounts reads the probes made and failed from the Checker's
// metrics (local faults, none here, are in neither).
func probeCounts(t *testing.T, reg *prometheus.Registry) (probes, failures int64) {
	mfs, err := reg.Gather()
	if err != nil {
		t.Error(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "gslb_health_probe_duration_seconds":
				probes += int64(m.GetHistogram().GetSampleCount())
			case "gslb_health_probe_failures_total":
				failures += int64(m.GetCounter().GetValue())
			}
		}
	}
	return probes, failures
}

// cpuTime is this process's user and system CPU time.
func cpuTime() (user, system time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// processesCPU is the CPU time the processes pids have used.
func processesCPU(pids []int) (sum time.Duration) {
	for _, pid := range pids {
		sum += procCPU(pid)
	}
	return sum
}

// contextSwitches is how often this process gave up the CPU, voluntarily
// or not (getrusage): a measure of how often its threads wake up.
func contextSwitches() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Nvcsw) + int64(ru.Nivcsw)
}

// procCPU is another process's user plus system CPU time, from
// /proc/PID/stat; zero where that cannot be read.
func procCPU(pid int) time.Duration {
	d, _ := proctest.CPU(pid)
	return d
}
