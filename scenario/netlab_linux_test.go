package scenario

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// netLab is a private network of network namespaces, one per site and one
// for the client, each joined by a veth pair to a bridge in a switch
// namespace of its own. Nothing in it touches the host's namespace: the
// bridge and every interface live in namespaces the lab created, whose
// names carry a random prefix, and which it deletes when the test ends.
// Faults are nftables rules on the bridge (and tc netem, where the kernel
// has it, for delay).
type netLab struct {
	t      *testing.T
	prefix string
	// spaces are the namespaces created, by short name ("switch",
	// "client", or a site).
	spaces map[string]string
	netem  bool // tc netem works here
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
	l := &netLab{t: t, prefix: "gslbt-" + strings.ToLower(rand.Text()[:8]), spaces: map[string]string{}}
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
	// tc netem is optional: many kernels (this project's CI among them)
	// are built without it. Try it once on the client's interface.
	err := l.run("ip", "netns", "exec", l.spaces["client"], "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "1ms")
	l.netem = err == nil
	if l.netem {
		l.must("ip", "netns", "exec", l.spaces["client"], "tc", "qdisc", "del", "dev", "eth0", "root")
	}
	return l
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
// rules clears them.
func (l *netLab) wire(rules ...string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "table bridge %s\ndelete table bridge %s\n", faultTable, faultTable)
	if len(rules) > 0 {
		fmt.Fprintf(&b, "table bridge %s {\n  chain forward { type filter hook forward priority 0; policy accept;\n", faultTable)
		for _, r := range rules {
			b.WriteString("    " + r + "\n")
		}
		b.WriteString("  }\n}\n")
	}
	return l.nft("switch", b.String())
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

// delay adds d of delay to everything site sends, with tc netem. It fails
// where the kernel has no netem (see netLab.netem).
func (l *netLab) delay(site string, ms int) error {
	return l.run("ip", "netns", "exec", l.spaces[site], "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", fmt.Sprintf("%dms", ms))
}

// noDelay removes the delay of site.
func (l *netLab) noDelay(site string) error {
	return l.run("ip", "netns", "exec", l.spaces[site], "tc", "qdisc", "del", "dev", "eth0", "root")
}

// dialer returns a DialContext that opens its sockets in the namespace of
// name: the socket is created on an OS thread that enters the namespace
// for the call and then returns to its own. The thread must come back:
// a thread that ends (a goroutine that exits while locked to it) takes
// with it the children it forked, which the harness starts with
// Pdeathsig; if it cannot return, it stays locked and parked forever
// rather than end or run anything else.
func (l *netLab) dialer(name string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	path := "/run/netns/" + l.spaces[name]
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			home, err := os.Open("/proc/thread-self/ns/net")
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, err}
				return
			}
			defer home.Close()
			target, err := os.Open(path)
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, err}
				return
			}
			defer target.Close()
			if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, fmt.Errorf("enter %s: %w", path, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- result{c, err}
			if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) != nil {
				select {} // stranded in the lab: never run anything else here
			}
			runtime.UnlockOSThread()
		}()
		r := <-ch
		return r.c, r.err
	}
}

// cleanup deletes every namespace of the lab; the veth pairs and the
// bridge go with them.
func (l *netLab) cleanup() {
	for _, ns := range l.spaces {
		if err := l.run("ip", "netns", "del", ns); err != nil {
			// A process still inside keeps the namespace alive; the
			// harness has killed them all by now.
			l.t.Errorf("delete namespace: %v", err)
		}
	}
}
