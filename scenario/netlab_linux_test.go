package scenario

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netLab is a private network of network namespaces, one per site and one
// for the client, each joined by a veth pair to a bridge in a switch
// namespace of its own. Nothing in it touches the host's namespace: the
// bridge and every interface live in namespaces the lab created, whose
// names carry a random prefix, and which it deletes when the test ends.
// Faults are nftables rules on the bridge; a WAN between the sites (loss
// and delay) is a delayLine, TUN devices in the sites' namespaces that
// the test process drives (see wan).
type netLab struct {
	t      *testing.T
	prefix string
	// spaces are the namespaces created, by short name ("switch",
	// "client", or a site).
	spaces map[string]string
	// sites are the addresses of each site, its first one first.
	sites map[string][]string
	// line is the WAN's delay line, made by the first wan and closed
	// before the namespaces go; nil before, or where it could not be
	// made (noLine says why: the WAN is then loss only, on the bridge).
	line   *delayLine
	noLine error
	wanOn  bool // the sites route to each other through line
	// faults is the nft shell that wire changes the faults through,
	// started by the first wire.
	faults *nftShell
}

// requireLab skips the test unless it runs as root with ip and nft.
func requireLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: network-fault scenarios need root (network namespaces, veth, nftables); run the test command as root")
	}
	for _, tool := range []string{"ip", "nft", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found: scripts/install-deps.sh installs it (iproute2, nftables)", tool)
			}
			t.Skipf("skipped: %s not found (scripts/install-deps.sh installs iproute2 and nftables)", tool)
		}
	}
}

// newNetLab creates the switch, the client namespace with clientIP and
// one namespace per site with its addresses (all /16, so every namespace
// reaches every other through the bridge).
func newNetLab(t *testing.T, clientIP string, sites map[string][]string) *netLab {
	t.Helper()
	requireLab(t)
	l := &netLab{t: t, prefix: "gslbt-" + strings.ToLower(rand.Text()[:8]), spaces: map[string]string{}, sites: sites}
	t.Cleanup(l.cleanup)
	l.add("switch")
	l.ip("switch", "link", "add", "br0", "type", "bridge")
	l.ip("switch", "link", "set", "br0", "up")
	attach := func(name string, addrs []string) {
		l.add(name)
		ns := l.spaces[name]
		l.ip("switch", "link", "add", "v-"+name, "type", "veth", "peer", "name", "eth0", "netns", ns)
		l.ip("switch", "link", "set", "v-"+name, "master", "br0", "up")
		for _, a := range addrs {
			l.ip(name, "addr", "add", a+"/16", "dev", "eth0")
		}
		l.ip(name, "link", "set", "eth0", "up")
	}
	attach("client", []string{clientIP})
	for site, addrs := range sites {
		attach(site, addrs)
	}
	return l
}

// staticNeighbours gives every namespace of the lab a permanent
// neighbour entry for every address of every other namespace, so that no
// ARP is needed. The kernel's neighbour table is one for all namespaces,
// and its dynamic entries are limited in all (net.ipv4.neigh.default.
// gc_thresh3, 1,024 by default): a lab of 30 nodes, each talking to every
// other, overflows it ("neighbor table overflow!"), and a namespace then
// cannot reach some addresses at all. Permanent entries are not counted
// against that limit. Black holes are unchanged: they drop IP on the
// wire, and a sender's packets still go out unanswered.
func (l *netLab) staticNeighbours(addrs map[string][]string) {
	l.t.Helper()
	macs := map[string]string{}
	for name := range addrs {
		out, err := exec.Command("ip", "-n", l.spaces[name], "-j", "link", "show", "dev", "eth0").Output()
		var links []struct {
			Address string `json:"address"`
		}
		if err != nil || json.Unmarshal(out, &links) != nil || len(links) != 1 {
			l.t.Fatalf("mac of %s: %v: %s", name, err, out)
		}
		macs[name] = links[0].Address
	}
	for name := range addrs {
		var batch strings.Builder
		for other, as := range addrs {
			if other == name {
				continue
			}
			for _, a := range as {
				fmt.Fprintf(&batch, "neigh replace %s lladdr %s dev eth0 nud permanent\n", a, macs[other])
			}
		}
		cmd := exec.Command("ip", "-n", l.spaces[name], "-batch", "-")
		cmd.Stdin = strings.NewReader(batch.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			l.t.Fatalf("neighbours of %s: %v: %s", name, err, out)
		}
	}
}

func (l *netLab) add(name string) {
	ns := l.prefix + "-" + name
	l.must("ip", "netns", "add", ns)
	l.spaces[name] = ns
	l.ip(name, "link", "set", "lo", "up")
}

// ip runs ip -n <namespace of name> args.
func (l *netLab) ip(name string, args ...string) {
	l.must("ip", append([]string{"-n", l.spaces[name]}, args...)...)
}

func (l *netLab) run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (l *netLab) must(name string, args ...string) {
	l.t.Helper()
	if err := l.run(name, args...); err != nil {
		l.t.Fatal(err)
	}
}

var _ spaces = (*netLab)(nil)

// argv implements spaces. nsenter replaces itself with the program, so
// the process is the program: signals reach it directly. (ip netns exec
// would too, but also remounts /sys for every dig.)
func (l *netLab) argv(name string) []string {
	return []string{"nsenter", "--net=/run/netns/" + l.spaces[name], "--"}
}

// nft loads an nftables ruleset into the namespace of name.
func (l *netLab) nft(name, rules string) error {
	cmd := exec.Command("ip", "netns", "exec", l.spaces[name], "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// faultTable is the nftables table (bridge family, in the switch
// namespace) that holds the faults: they act on the wire, between the
// bridge's ports, so that a sender sees silence rather than an error from
// its own host. Only IP is dropped: ARP still works, as it does between a
// host and its router across a real black hole, so a probe's SYN goes out
// and is never answered.
const faultTable = "gslbt_fault"

// wire replaces the faults on the wire with rules (nft syntax, each
// ending in a verdict, matched on every frame the bridge forwards); no
// rules clears them. The change is one nftables transaction, made by an
// nft process that runs for the whole lab, so it takes effect within
// milliseconds of the call: starting an nft per change took up to a
// third of a second on a machine busy with 30 nodes, and a failover
// timed from the call included that.
func (l *netLab) wire(rules ...string) error {
	if l.faults == nil {
		sh, err := startNftShell(l.spaces["switch"])
		if err != nil {
			return err
		}
		l.faults = sh
	}
	return l.faults.replace(rules)
}

// nftShell is an interactive nft (nft -i) in a namespace, fed one
// transaction per line; after each it lists the fault table, whose
// comment names the transaction, to know that it was committed.
type nftShell struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out chan []byte // what nft prints, errors included, as it comes
	gen int
}

func startNftShell(ns string) (*nftShell, error) {
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-i")
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("nft -i: %w", err)
	}
	w.Close()
	sh := &nftShell{cmd: cmd, in: in, out: make(chan []byte, 64)}
	go func() { // ends when nft does
		defer close(sh.out)
		defer r.Close()
		for {
			buf := make([]byte, 4096)
			n, err := r.Read(buf)
			if n > 0 {
				sh.out <- buf[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	return sh, nil
}

// replace makes rules the fault table's only rules, in one transaction,
// and returns once nft has committed it.
func (sh *nftShell) replace(rules []string) error {
	sh.gen++
	mark := fmt.Sprintf(`comment "w%d"`, sh.gen)
	var b strings.Builder
	fmt.Fprintf(&b, "table bridge %s; delete table bridge %s; table bridge %s { %s; ", faultTable, faultTable, faultTable, mark)
	if len(rules) > 0 {
		b.WriteString("chain forward { type filter hook forward priority 0; policy accept; ")
		for _, r := range rules {
			b.WriteString(r + "; ")
		}
		b.WriteString("}; ")
	}
	fmt.Fprintf(&b, "}\nlist table bridge %s\n", faultTable)
	if _, err := io.WriteString(sh.in, b.String()); err != nil {
		return fmt.Errorf("nft -i: %w", err)
	}
	var got []byte
	timeout := time.After(10 * time.Second)
	for {
		if i := bytes.Index(got, []byte(mark)); i >= 0 && bytes.Contains(got[i:], []byte("\n}")) {
			return nil
		}
		if bytes.Contains(got, []byte("Error:")) {
			return fmt.Errorf("nft: %s", bytes.TrimSpace(got))
		}
		select {
		case chunk, ok := <-sh.out:
			if !ok {
				return fmt.Errorf("nft -i ended: %s", bytes.TrimSpace(got))
			}
			got = append(got, chunk...)
		case <-timeout:
			return fmt.Errorf("nft -i: no listing of %s after 10s: %s", mark, bytes.TrimSpace(got))
		}
	}
}

// close ends nft and waits for it.
func (sh *nftShell) close() {
	sh.in.Close()
	for range sh.out {
	}
	sh.cmd.Wait()
}

// blackHole: every IP packet to and from site is dropped.
func blackHole(site string) []string {
	return []string{
		fmt.Sprintf(`iifname "v-%s" ether type ip drop`, site),
		fmt.Sprintf(`oifname "v-%s" ether type ip drop`, site),
	}
}

// cutSites: what site exchanges with the other sites is dropped; the
// client still reaches it.
func cutSites(site string) []string {
	return []string{
		fmt.Sprintf(`iifname "v-%s" oifname != "v-client" ether type ip drop`, site),
		fmt.Sprintf(`oifname "v-%s" iifname != "v-client" ether type ip drop`, site),
	}
}

// lossy: pct percent of the IP packets between any two sites, each way,
// are dropped at random. The client's link is left alone.
func lossy(pct int) []string {
	return []string{fmt.Sprintf(`iifname != "v-client" oifname != "v-client" ether type ip numgen random mod 100 < %d drop`, pct)}
}

// in runs fn on an OS thread inside the namespace of name, and returns
// once fn has. The thread enters the namespace for the call and then
// returns to its own. It must come back: a thread that ends (a goroutine
// that exits while locked to it) takes with it the children it forked,
// which the harness starts with Pdeathsig; if it cannot return, it stays
// locked and parked forever rather than end or run anything else.
func (l *netLab) in(name string, fn func()) error {
	path := "/run/netns/" + l.spaces[name]
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer home.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter %s: %w", path, err)
			return
		}
		fn()
		done <- nil
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) != nil {
			select {} // stranded in the lab: never run anything else here
		}
		runtime.UnlockOSThread()
	}()
	return <-done
}

// dialer returns a DialContext that opens its sockets in the namespace of
// name (see in).
func (l *netLab) dialer(name string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		var err error
		if nsErr := l.in(name, func() {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
		}); nsErr != nil {
			return nil, nsErr
		}
		return c, err
	}
}

// connectTime opens a TCP connection from the namespace of name to addr,
// closes it, and returns how long the connect took: one round trip (SYN,
// SYN-ACK), timed inside the namespace.
func (l *netLab) connectTime(ctx context.Context, name string, addr netip.AddrPort) (time.Duration, error) {
	var took time.Duration
	var err error
	if nsErr := l.in(name, func() {
		var d net.Dialer
		t0 := time.Now()
		var c net.Conn
		c, err = d.DialContext(ctx, "tcp", addr.String())
		took = time.Since(t0)
		if err == nil {
			c.Close()
		}
	}); nsErr != nil {
		return 0, nsErr
	}
	return took, err
}

// wan puts pct percent loss and delay (one way) on every link between two
// sites, the client's links left clean: it starts the delay line (once)
// and routes each site's traffic to the other sites' addresses through
// its TUN, with the site's first address as the source of unbound
// sockets. It can be called again to change the figures. Where the line
// cannot be made (no /dev/net/tun: a kernel without CONFIG_TUN), it drops
// pct percent on the bridge with nftables instead, without delay. how
// says which it did.
func (l *netLab) wan(pct int, delay time.Duration) (how string, err error) {
	if l.line == nil && l.noLine == nil {
		l.noLine = l.startLine()
	}
	if l.line == nil {
		return fmt.Sprintf("%d%% loss on every inter-site link, NO DELAY: nftables drops on the bridge, as the delay line could not be made (%v)", pct, l.noLine),
			l.wire(lossy(pct)...)
	}
	l.line.set(float64(pct)/100, delay)
	how = fmt.Sprintf("%d%% loss and %s one-way delay on every inter-site link (userspace delay line through a TUN device per site, seed %d; the client's link is clean)", pct, delay, lineSeed)
	if l.wanOn {
		return how, nil
	}
	if err := l.routes("replace"); err != nil {
		return how, err
	}
	l.wanOn = true
	return how, nil
}

// noWAN ends what wan did: the sites reach each other over the bridge
// again.
func (l *netLab) noWAN() error {
	if l.line == nil {
		return l.wire()
	}
	if !l.wanOn {
		return nil
	}
	l.wanOn = false
	err := l.routes("del")
	l.line.set(0, 0)
	return err
}

// routes adds (op "replace") or deletes (op "del") in every site the
// routes to the other sites' addresses through its TUN.
func (l *netLab) routes(op string) error {
	for _, site := range slices.Sorted(maps.Keys(l.sites)) {
		var b strings.Builder
		for _, other := range slices.Sorted(maps.Keys(l.sites)) {
			if other == site {
				continue
			}
			for _, a := range l.sites[other] {
				fmt.Fprintf(&b, "route %s %s/32 dev %s", op, a, lineDev)
				if op != "del" {
					fmt.Fprintf(&b, " src %s", l.sites[site][0])
				}
				b.WriteString("\n")
			}
		}
		cmd := exec.Command("ip", "-n", l.spaces[site], "-batch", "-")
		cmd.Stdin = strings.NewReader(b.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("ip -n %s -batch (%s routes): %v: %s", l.spaces[site], op, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// startLine makes a TUN device in every site namespace and starts the
// delay line over them. It fails, leaving nothing behind, where a TUN
// device cannot be made.
func (l *netLab) startLine() error {
	var ends []*lineEnd
	fail := func(err error) error {
		for _, e := range ends {
			e.f.Close()
		}
		return err
	}
	for _, site := range slices.Sorted(maps.Keys(l.sites)) {
		e := &lineEnd{site: site}
		for _, a := range l.sites[site] {
			e.addrs = append(e.addrs, netip.MustParseAddr(a))
		}
		var err error
		if nsErr := l.in(site, func() { e.f, err = openTUN(lineDev) }); nsErr != nil {
			return fail(nsErr)
		}
		if err != nil {
			return fail(err)
		}
		ends = append(ends, e)
		if err := l.run("ip", "-n", l.spaces[site], "link", "set", lineDev, "up"); err != nil {
			return fail(err)
		}
	}
	l.line = newDelayLine(ends)
	return nil
}

// cleanup deletes every namespace of the lab; the veth pairs and the
// bridge go with them.
func (l *netLab) cleanup() {
	if l.line != nil {
		l.line.close()
	}
	if l.faults != nil {
		l.faults.close()
	}
	for _, ns := range l.spaces {
		if err := l.run("ip", "netns", "del", ns); err != nil {
			// A process still inside keeps the namespace alive; the
			// harness has killed them all by now.
			l.t.Errorf("delete namespace: %v", err)
		}
	}
}
