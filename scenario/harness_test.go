package scenario

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// startBound bounds how long a process may take to start serving.
const startBound = 15 * time.Second

// proc is one running child process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.Closer // endpoints exit when it closes
	done   chan struct{}
	killed atomic.Bool // by the test (SIGKILL or SIGTERM), so its exit is expected
	err    error       // how it exited (nil: status 0); set before done closes
	exited time.Time   // when it was reaped; set before done closes
}

// kill sends SIGKILL. It does not wait: see wait.
func (p *proc) kill() {
	p.killed.Store(true)
	_ = p.cmd.Process.Kill()
	if p.stdin != nil {
		p.stdin.Close()
	}
}

// stop sends SIGTERM, asking for a graceful stop. It does not wait.
func (p *proc) stop() {
	p.killed.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
}

// wait returns once the process has exited and been reaped.
func (p *proc) wait() { <-p.done }

// node is one gslbd node of the scenario.
type node struct {
	name, site string
	ns         string // its network namespace in a lab
	ip         netip.Addr
	dns        netip.AddrPort // UDP and TCP
	gossip     netip.AddrPort // UDP and TCP
	admin      netip.AddrPort
	config     string // its configuration file
	stateDir   string // kept across its restarts (drains.json)
	log        string // its stderr and stdout, every incarnation appended
	proc       *proc  // nil while down
	starts     int
}

// endpoint is one service endpoint: a re-executed test binary serving
// GET /healthz.
type endpoint struct {
	site   string
	ns     string // its network namespace in a lab
	addr   netip.AddrPort
	log    string
	proc   *proc // nil while down
	starts int
}

// harness owns every process of the scenario and kills them all when the
// test ends.
type harness struct {
	t     *testing.T
	dir   string
	bin   string // gslbd
	dig   string
	self  string // this test binary, for endpoints
	nodes []*node
	eps   []*endpoint

	// siteOf maps every endpoint address to its site.
	siteOf map[netip.Addr]string
	// readToken and writeToken are the admin API's bearer tokens, the
	// same on every node.
	readToken, writeToken string

	// lab, when set, runs every node and endpoint in its site's network
	// namespace and dig and the admin API calls in the client's (see
	// netLab); nil: everything on loopback.
	lab spaces
	// client makes the admin API calls.
	client *http.Client
	// check is the layout's extra check settings.
	check string

	// mu guards running and exits.
	mu      sync.Mutex
	running map[*proc]bool
	exits   []string // processes that ended without the test killing them
}

// spaces puts processes and connections into named network namespaces:
// one per site, and "client". *netLab implements it (Linux, as root).
type spaces interface {
	// argv is the command-line prefix that runs a program in the
	// namespace of name.
	argv(name string) []string
	// dialer opens connections from the namespace of name.
	dialer(name string) func(ctx context.Context, network, addr string) (net.Conn, error)
}

// command returns a command for prog, in the namespace of ns when the
// harness has a lab.
func (h *harness) command(ctx context.Context, ns, prog string, args ...string) *exec.Cmd {
	if h.lab == nil {
		return exec.CommandContext(ctx, prog, args...)
	}
	argv := append(h.lab.argv(ns), prog)
	return exec.CommandContext(ctx, argv[0], append(argv[1:], args...)...)
}

// Fixed ports for a harness in a lab: every address there is the lab's
// own, in namespaces nobody else uses, so nothing can hold them.
const (
	labDNSPort      = 5300
	labGossipPort   = 7946
	labAdminPort    = 5380
	labEndpointPort = 8080
)

// layout is where a scenario's nodes and endpoints run. The service
// fails over between the endpoints' sites in the order they first appear.
type layout struct {
	nodes     []struct{ name, site, ip string }
	endpoints []struct{ site, ip string }
	// ns maps an address to the network namespace it lives in, in a
	// lab; an address not listed lives in its site's.
	ns map[string]string
	// check is more settings for the services file's defaults.check,
	// each starting with ", ".
	check string
}

// nsOf returns the namespace of address ip of site.
func (l layout) nsOf(site, ip string) string {
	if ns, ok := l.ns[ip]; ok {
		return ns
	}
	return site
}

// The three-site scenario's layout: sites, nodes and endpoints.
var threeSites = layout{
	nodes: []struct{ name, site, ip string }{
		{"dc1-a", "dc1", "127.0.1.1"},
		{"dc1-b", "dc1", "127.0.1.2"},
		{"dc2-a", "dc2", "127.0.2.1"},
		{"dc3-a", "dc3", "127.0.3.1"},
	},
	endpoints: []struct{ site, ip string }{
		{"dc1", "127.0.1.10"},
		{"dc1", "127.0.1.11"},
		{"dc2", "127.0.2.10"},
		{"dc3", "127.0.3.10"},
	},
}

// newHarness picks free ports, writes the zone, the services and one
// configuration per node of the three-site layout, and registers the
// cleanup. It starts nothing.
func newHarness(t *testing.T, bin, dig string) *harness {
	t.Helper()
	return newHarnessLayout(t, bin, dig, threeSites)
}

// newHarnessLayout is newHarness for any layout.
func newHarnessLayout(t *testing.T, bin, dig string, lay layout) *harness {
	t.Helper()
	return newHarnessIn(t, bin, dig, lay, nil)
}

// newHarnessIn is newHarnessLayout with the processes in lab's network
// namespaces, when lab is not nil: each node and endpoint in its site's,
// dig and the admin API calls in the client's.
func newHarnessIn(t *testing.T, bin, dig string, lay layout, lab spaces) *harness {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t: t, dir: t.TempDir(), bin: bin, dig: dig, self: self,
		siteOf: map[netip.Addr]string{}, running: map[*proc]bool{},
		lab: lab, client: http.DefaultClient, check: lay.check,
	}
	if lab != nil {
		h.client = &http.Client{Transport: &http.Transport{DialContext: lab.dialer("client")}}
	}
	t.Cleanup(h.cleanup)

	var epIPs []string
	for _, l := range lay.endpoints {
		epIPs = append(epIPs, l.ip)
	}
	epPort := labEndpointPort
	if lab == nil {
		if epPort, err = sharedFreePort(epIPs...); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range lay.endpoints {
		ip := netip.MustParseAddr(l.ip)
		h.eps = append(h.eps, &endpoint{
			site: l.site, ns: lay.nsOf(l.site, l.ip), addr: netip.AddrPortFrom(ip, uint16(epPort)),
			log: filepath.Join(h.dir, "endpoint-"+l.ip+".log"),
		})
		h.siteOf[ip] = l.site
	}
	for _, l := range lay.nodes {
		ip := netip.MustParseAddr(l.ip)
		n := &node{name: l.name, site: l.site, ns: lay.nsOf(l.site, l.ip), ip: ip}
		ports := [3]int{labDNSPort, labGossipPort, labAdminPort}
		for i, udp := range []bool{true, true, false} { // dns, gossip, admin
			if lab != nil {
				break
			}
			if ports[i], err = freePort(l.ip, udp); err != nil {
				t.Fatal(err)
			}
		}
		n.dns = netip.AddrPortFrom(ip, uint16(ports[0]))
		n.gossip = netip.AddrPortFrom(ip, uint16(ports[1]))
		n.admin = netip.AddrPortFrom(ip, uint16(ports[2]))
		n.config = filepath.Join(h.dir, n.name, "node.yaml")
		n.stateDir = filepath.Join(h.dir, n.name, "state")
		n.log = filepath.Join(h.dir, n.name+".log")
		h.nodes = append(h.nodes, n)
	}
	h.readToken, h.writeToken = newToken(), newToken()
	h.writeFiles(epPort)
	return h
}

// newToken returns a random admin API token.
func newToken() string { return rand.Text() }

// Scenario fixtures. The service uses the default check settings on
// purpose: the latency targets are for the defaults.
const (
	zoneFile = `$ORIGIN example.com.
$TTL 300
@    IN SOA ns1 hostmaster 1 7200 900 1209600 300
@    IN NS  ns1
@    IN NS  ns2
ns1  IN A   127.0.1.1
ns2  IN A   127.0.2.1
`
	servicesFile = `sites: [%[2]s]
defaults:
  check: {type: http, port: %[1]d, path: /healthz%[4]s}
services:
  talk.example.com:
    policy: failover
    order: [%[2]s]
    min_healthy: 1
    all_down: all
    sites:
%[3]s`
	tokensFile = `# name role token
scenario-read read %s
scenario-write write %s
`
	nodeFile = `node: {name: %s, site: %s}
dns:
  listen: ["%s"]
admin:
  listen: %s
  tokens_file: ../tokens
state_dir: %s
cluster:
  bind: %s
  seeds: [%s]%s
zones:
  - origin: example.com.
    file: ../example.com.zone
services: ../services.yaml
log:
  level: info
`
)

func (h *harness) writeFiles(epPort int) {
	h.t.Helper()
	writeMode := func(path, data string, mode os.FileMode) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			h.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), mode); err != nil {
			h.t.Fatal(err)
		}
	}
	write := func(path, data string) { writeMode(path, data, 0o644) }
	write(filepath.Join(h.dir, "example.com.zone"), zoneFile)
	// The sites in the order their endpoints first appear, each with its
	// endpoints.
	var sites []string
	addrs := map[string][]string{}
	for _, e := range h.eps {
		if !slices.Contains(sites, e.site) {
			sites = append(sites, e.site)
		}
		addrs[e.site] = append(addrs[e.site], e.addr.Addr().String())
	}
	var siteLines strings.Builder
	for _, site := range sites {
		fmt.Fprintf(&siteLines, "      %s: [%s]\n", site, strings.Join(addrs[site], ", "))
	}
	write(filepath.Join(h.dir, "services.yaml"), fmt.Sprintf(servicesFile, epPort, strings.Join(sites, ", "), siteLines.String(), h.check))
	writeMode(filepath.Join(h.dir, "tokens"), fmt.Sprintf(tokensFile, h.readToken, h.writeToken), 0o600)
	// Gossip off loopback needs a key.
	keyLine := ""
	if h.lab != nil {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		writeMode(filepath.Join(h.dir, "gossip.keys"), base64.StdEncoding.EncodeToString(key)+"\n", 0o600)
		keyLine = "\n  key_file: ../gossip.keys"
	}
	for _, n := range h.nodes {
		var seeds []string
		for _, o := range h.nodes {
			if o != n {
				seeds = append(seeds, o.gossip.String())
			}
		}
		write(n.config, fmt.Sprintf(nodeFile, n.name, n.site, n.dns, n.admin, n.stateDir, n.gossip, strings.Join(seeds, ", "), keyLine))
	}
}

// start starts cmd, tracks it and reaps it when it exits. An exit the
// test did not cause is recorded (see unexpectedExits).
func (h *harness) start(name string, cmd *exec.Cmd, stdin io.Closer) (*proc, error) {
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	h.mu.Lock()
	h.running[p] = true
	h.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.err, p.exited = err, time.Now()
		h.mu.Lock()
		delete(h.running, p)
		if !p.killed.Load() {
			if err == nil {
				err = errors.New("exit status 0")
			}
			h.exits = append(h.exits, fmt.Sprintf("%s (pid %d) ended at %s: %v",
				name, cmd.Process.Pid, time.Now().Format("15:04:05.000"), err))
		}
		h.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// unexpectedExits lists the processes that ended without the test killing
// them: a crash, or a signal from outside the test.
func (h *harness) unexpectedExits() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.exits)
}

// appendLog opens a log file for one more incarnation of a process.
func appendLog(path, header string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "===== %s %s\n", time.Now().Format("15:04:05.000"), header)
	return f, nil
}

// startNode starts a gslbd process for n. It does not wait for it to
// serve: the DNS pollers see when it does.
func (h *harness) startNode(n *node) error {
	n.starts++
	f, err := appendLog(n.log, fmt.Sprintf("start %d of %s", n.starts, n.name))
	if err != nil {
		return err
	}
	defer f.Close() // the child holds its own descriptor
	cmd := h.command(context.Background(), n.ns, h.bin, "serve", "-config", n.config)
	cmd.Stdout, cmd.Stderr = f, f
	p, err := h.start(n.name, cmd, nil)
	if err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	n.proc = p
	return nil
}

// startNodes starts nodes one right after the other and returns the time
// just before the first start.
func (h *harness) startNodes(nodes []*node) (time.Time, error) {
	t0 := time.Now()
	for _, n := range nodes {
		if err := h.startNode(n); err != nil {
			return t0, err
		}
	}
	return t0, nil
}

// stopBound bounds a graceful stop; a node's own shutdown gives up after
// 10 s.
const stopBound = 15 * time.Second

// stopNodes sends SIGTERM to nodes at once and waits until they have
// exited. It returns for each node the time from the first signal to its
// exit. A node that does not exit with status 0 within stopBound is an
// error (and is then killed).
func (h *harness) stopNodes(nodes []*node) (map[string]time.Duration, error) {
	ps := make([]*proc, len(nodes))
	for i, n := range nodes {
		ps[i] = n.proc
		n.proc = nil
	}
	t0 := time.Now()
	for _, p := range ps {
		p.stop()
	}
	times := map[string]time.Duration{}
	var errs []error
	expired := make(chan struct{}) // stays closed once stopBound passed
	timer := time.AfterFunc(stopBound, func() { close(expired) })
	defer timer.Stop()
	for i, p := range ps {
		select {
		case <-p.done:
		case <-expired:
		}
		select {
		case <-p.done:
			times[nodes[i].name] = p.exited.Sub(t0)
			if p.err != nil {
				errs = append(errs, fmt.Errorf("%s did not stop cleanly on SIGTERM: %v", nodes[i].name, p.err))
			}
		default:
			errs = append(errs, fmt.Errorf("%s still running %s after SIGTERM: %w", nodes[i].name, stopBound, errTimeout))
			p.kill()
			p.wait()
		}
	}
	return times, errors.Join(errs...)
}

// startEndpoint starts e and returns, once it accepts connections, the
// time it began to (as the endpoint itself read the clock).
func (h *harness) startEndpoint(e *endpoint) (time.Time, error) {
	e.starts++
	f, err := appendLog(e.log, fmt.Sprintf("start %d of endpoint %s", e.starts, e.addr))
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return time.Time{}, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		stdinR.Close()
		stdinW.Close()
		return time.Time{}, err
	}
	defer outR.Close()
	cmd := h.command(context.Background(), e.ns, h.self, "-test.run=^$")
	cmd.Env = append(os.Environ(), endpointEnv+"="+e.addr.String())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, outW, f
	p, err := h.start("endpoint "+e.addr.String(), cmd, stdinW)
	stdinR.Close()
	outW.Close()
	if err != nil {
		stdinW.Close()
		return time.Time{}, fmt.Errorf("start endpoint %s: %w", e.addr, err)
	}
	e.proc = p
	type readyMsg struct {
		at  time.Time
		err error
	}
	ready := make(chan readyMsg, 1)
	go func() {
		line, err := bufio.NewReader(outR).ReadString('\n')
		var ns int64
		if err == nil {
			if _, err = fmt.Sscanf(line, "ready %d\n", &ns); err != nil {
				err = fmt.Errorf("unexpected output %q", line)
			}
		}
		ready <- readyMsg{time.Unix(0, ns), err}
	}()
	select {
	case r := <-ready:
		if r.err != nil {
			return time.Time{}, fmt.Errorf("endpoint %s did not start (log %s): %w", e.addr, e.log, r.err)
		}
		return r.at, nil
	case <-time.After(startBound):
		return time.Time{}, fmt.Errorf("endpoint %s: not ready after %s: %w", e.addr, startBound, errTimeout)
	}
}

// startEndpoints starts eps concurrently and returns, once all of them
// accept connections, when the first one began to.
func (h *harness) startEndpoints(eps []*endpoint) (time.Time, error) {
	errs := make([]error, len(eps))
	ready := make([]time.Time, len(eps))
	var wg sync.WaitGroup
	for i, e := range eps {
		wg.Go(func() { ready[i], errs[i] = h.startEndpoint(e) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return time.Time{}, err
	}
	first := ready[0]
	for _, t := range ready[1:] {
		if t.Before(first) {
			first = t
		}
	}
	return first, nil
}

// kill sends SIGKILL to the processes of nodes and endpoints at once and
// returns the time just before the first signal. Use reap to wait for
// them to be gone.
func (h *harness) kill(nodes []*node, eps []*endpoint) (time.Time, []*proc) {
	var ps []*proc
	for _, n := range nodes {
		ps = append(ps, n.proc)
		n.proc = nil
	}
	for _, e := range eps {
		ps = append(ps, e.proc)
		e.proc = nil
	}
	t0 := time.Now()
	for _, p := range ps {
		p.kill()
	}
	return t0, ps
}

// reap waits until ps have exited.
func reap(ps []*proc) {
	for _, p := range ps {
		p.wait()
	}
}

// cleanup kills every process still running and, if the test failed,
// shows the logs.
func (h *harness) cleanup() {
	h.mu.Lock()
	var ps []*proc
	for p := range h.running {
		ps = append(ps, p)
	}
	h.mu.Unlock()
	for _, p := range ps {
		p.kill()
	}
	reap(ps)
	if !h.t.Failed() {
		return
	}
	for _, e := range h.unexpectedExits() {
		h.t.Logf("process ended unexpectedly: %s", e)
	}
	for _, n := range h.nodes {
		h.showLog(n.name, n.log)
	}
	for _, e := range h.eps {
		h.showLog("endpoint "+e.addr.String(), e.log)
	}
}

// showLog logs the last lines of a process's log.
func (h *harness) showLog(what, path string) {
	const maxLines = 200
	data, err := os.ReadFile(path)
	if err != nil {
		h.t.Logf("%s: no log: %v", what, err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	skipped := ""
	if len(lines) > maxLines {
		skipped = fmt.Sprintf(" (last %d of %d lines)", maxLines, len(lines))
		lines = lines[len(lines)-maxLines:]
	}
	h.t.Logf("----- log of %s%s -----\n%s", what, skipped, strings.Join(lines, "\n"))
}

// sitesOf returns the nodes and endpoints of site.
func (h *harness) sitesOf(site string) ([]*node, []*endpoint) {
	var ns []*node
	var es []*endpoint
	for _, n := range h.nodes {
		if n.site == site {
			ns = append(ns, n)
		}
	}
	for _, e := range h.eps {
		if e.site == site {
			es = append(es, e)
		}
	}
	return ns, es
}

// freePort returns a port free on ip for TCP, and for UDP too when udp is
// set, by binding port 0 and letting go.
func freePort(ip string, udp bool) (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ok := true
		if udp {
			pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				ok = false
			} else {
				pc.Close()
			}
		}
		ln.Close()
		if ok {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port on %s", ip)
}

// sharedFreePort returns a TCP port free on every one of ips.
func sharedFreePort(ips ...string) (int, error) {
	for range 100 {
		port, err := freePort(ips[0], false)
		if err != nil {
			return 0, err
		}
		ok := true
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free on all of %s", strings.Join(ips, ", "))
}
