package scenario

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A delayLine is a WAN between the lab's sites, made in userspace: loss
// and one-way delay on every inter-site link, where the kernel has no tc
// netem (this project's CI kernel has none, nor nftables' queue
// statement). The other way to hold packets back, the xtables NFQUEUE
// target through nftables' compat layer, would need the iptables package
// and netlink verdict code; a TUN device needs neither, only CONFIG_TUN,
// which every distribution kernel has. Each site namespace has a TUN device
// (lineDev) whose file the test process holds; while the WAN is on
// (netLab.wan), every site routes the other sites' addresses through its
// TUN, so what one site sends another (gossip, cross-site health probes
// and their answers) comes up to the line instead of onto the bridge. The
// client's traffic is not routed so: it still crosses the bridge directly.
//
// The line reads each packet from the source site's TUN, drops it with
// the configured probability (a seeded generator per source site), and
// otherwise writes it, unchanged, into the destination site's TUN once
// the delay has passed, where the kernel takes it as received. Order is
// kept per direction (one FIFO and one writer per pair of sites). The
// reverse path of a packet that comes out of a site's TUN is that same
// TUN (the routes are symmetric), so strict reverse-path filtering
// accepts it too. A queue holds at most lineQueue packets per direction;
// more are dropped and counted as overflow, never blocking the reader.
//
// A TUN is an L3 device: no ARP, no checksum offload (none is enabled),
// so a packet read is a complete IPv4 datagram with valid checksums, and
// one written is delivered like one off a wire. Everything other than
// IPv4 (the kernel's IPv6 chatter on a new link) is discarded and
// counted.
type delayLine struct {
	ends   []*lineEnd
	siteOf map[netip.Addr]int        // every lab address outside the client, to its end's index
	counts map[netip.Addr]*addrCount // by address; fixed after newDelayLine
	queues [][]chan pending          // [from][to]
	dirs   [][]*dirCount             // [from][to]

	settings atomic.Pointer[lineSettings]
	// overflow counts packets dropped on a full queue, unroutable those to
	// an address of no other site, other everything that was not IPv4.
	overflow, unroutable, other atomic.Int64

	stop chan struct{}
	wg   sync.WaitGroup
}

const (
	// lineDev is the TUN device's name in every site namespace.
	lineDev = "wan0"
	// lineQueue bounds the packets in flight per direction: 4096 in
	// 100ms is 40,000 packets a second, far above what four nodes send.
	lineQueue = 4096
	// lineSeed seeds each source site's loss generator (with the site's
	// index as the stream), so a run's drops depend only on its traffic.
	lineSeed = 20261202
)

// lineEnd is one site's TUN device.
type lineEnd struct {
	site  string
	f     *os.File
	addrs []netip.Addr
}

// lineSettings is what the line does to a packet; replaced whole.
type lineSettings struct {
	loss  float64 // probability of a drop, 0 to 1
	delay time.Duration
}

type pending struct {
	due      time.Time
	pkt      []byte
	from, to netip.Addr
}

// addrCount is what the line did with the packets of one address.
type addrCount struct {
	outDelayed, outDropped, inDelayed, inDropped atomic.Int64
}

// dirCount is what the line did in one direction.
type dirCount struct {
	delayed, dropped atomic.Int64
}

// newDelayLine starts the line over ends (one per site, TUN files open);
// it owns the files from then on and closes them in close. It carries
// nothing until the sites route through it, and delays and drops nothing
// until set says so.
func newDelayLine(ends []*lineEnd) *delayLine {
	d := &delayLine{ends: ends, siteOf: map[netip.Addr]int{}, counts: map[netip.Addr]*addrCount{}, stop: make(chan struct{})}
	d.settings.Store(&lineSettings{})
	for i, e := range ends {
		for _, a := range e.addrs {
			d.siteOf[a] = i
			d.counts[a] = &addrCount{}
		}
	}
	d.queues = make([][]chan pending, len(ends))
	d.dirs = make([][]*dirCount, len(ends))
	for i := range ends {
		d.queues[i] = make([]chan pending, len(ends))
		d.dirs[i] = make([]*dirCount, len(ends))
		for j := range ends {
			if i != j {
				d.queues[i][j] = make(chan pending, lineQueue)
				d.dirs[i][j] = &dirCount{}
			}
		}
	}
	for i := range ends {
		rng := rand.New(rand.NewPCG(lineSeed, uint64(i)))
		d.wg.Go(func() { d.read(i, rng) })
		for j := range ends {
			if i != j {
				d.wg.Go(func() { d.write(i, j) })
			}
		}
	}
	return d
}

// set changes the loss (a probability) and the one-way delay; packets
// already queued keep their time.
func (d *delayLine) set(loss float64, delay time.Duration) {
	d.settings.Store(&lineSettings{loss: loss, delay: delay})
}

// read takes the packets site i sends to the other sites. It alone uses
// rng.
func (d *delayLine) read(i int, rng *rand.Rand) {
	buf := make([]byte, 65536)
	for {
		n, err := d.ends[i].f.Read(buf)
		if err != nil {
			return // closed
		}
		p := buf[:n]
		if n < 20 || p[0]>>4 != 4 {
			d.other.Add(1)
			continue
		}
		from, to := netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
		j, ok := d.siteOf[to]
		if !ok || j == i {
			d.unroutable.Add(1)
			continue
		}
		s := d.settings.Load()
		if s.loss > 0 && rng.Float64() < s.loss {
			d.dirs[i][j].dropped.Add(1)
			if c := d.counts[from]; c != nil {
				c.outDropped.Add(1)
			}
			d.counts[to].inDropped.Add(1)
			continue
		}
		select {
		case d.queues[i][j] <- pending{due: time.Now().Add(s.delay), pkt: slices.Clone(p), from: from, to: to}:
		default:
			d.overflow.Add(1)
		}
	}
}

// write hands the packets from site i to site j over, in order, each at
// its due time.
func (d *delayLine) write(i, j int) {
	timer := time.NewTimer(time.Hour) // reset for each packet
	defer timer.Stop()
	for {
		var p pending
		select {
		case p = <-d.queues[i][j]:
		case <-d.stop:
			return
		}
		if wait := time.Until(p.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-d.stop:
				return
			}
		}
		if _, err := d.ends[j].f.Write(p.pkt); err != nil {
			continue // closing, or the kernel refused it: lost like on a wire
		}
		d.dirs[i][j].delayed.Add(1)
		if c := d.counts[p.from]; c != nil {
			c.outDelayed.Add(1)
		}
		d.counts[p.to].inDelayed.Add(1)
	}
}

// close stops the line and closes the TUN files (which removes the
// devices and the routes through them).
func (d *delayLine) close() {
	close(d.stop)
	for _, e := range d.ends {
		e.f.Close() // ends the readers' Read
	}
	d.wg.Wait()
}

// lineCounts is a copy of the line's counters at one moment.
type lineCounts struct {
	addrs                       map[netip.Addr][4]int64 // out delayed, out dropped, in delayed, in dropped
	dirs                        map[[2]string][2]int64  // (from, to) site: delayed, dropped
	overflow, unroutable, other int64
}

func (d *delayLine) counters() lineCounts {
	c := lineCounts{addrs: map[netip.Addr][4]int64{}, dirs: map[[2]string][2]int64{},
		overflow: d.overflow.Load(), unroutable: d.unroutable.Load(), other: d.other.Load()}
	for a, n := range d.counts {
		c.addrs[a] = [4]int64{n.outDelayed.Load(), n.outDropped.Load(), n.inDelayed.Load(), n.inDropped.Load()}
	}
	for i := range d.ends {
		for j := range d.ends {
			if i != j {
				c.dirs[[2]string{d.ends[i].site, d.ends[j].site}] = [2]int64{d.dirs[i][j].delayed.Load(), d.dirs[i][j].dropped.Load()}
			}
		}
	}
	return c
}

// minus is what happened between b and c.
func (c lineCounts) minus(b lineCounts) lineCounts {
	out := lineCounts{addrs: map[netip.Addr][4]int64{}, dirs: map[[2]string][2]int64{},
		overflow: c.overflow - b.overflow, unroutable: c.unroutable - b.unroutable, other: c.other - b.other}
	for a, n := range c.addrs {
		m := b.addrs[a]
		out.addrs[a] = [4]int64{n[0] - m[0], n[1] - m[1], n[2] - m[2], n[3] - m[3]}
	}
	for k, n := range c.dirs {
		m := b.dirs[k]
		out.dirs[k] = [2]int64{n[0] - m[0], n[1] - m[1]}
	}
	return out
}

// total is the packets delayed and dropped in every direction.
func (c lineCounts) total() (delayed, dropped int64) {
	for _, n := range c.dirs {
		delayed += n[0]
		dropped += n[1]
	}
	return delayed, dropped
}

// dirTable prints the counts per direction.
func (c lineCounts) dirTable() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-12s %10s %10s %8s\n", "direction", "delayed", "dropped", "dropped %")
	keys := slices.Collect(maps.Keys(c.dirs))
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+" "+a[1], b[0]+" "+b[1]) })
	for _, k := range keys {
		n := c.dirs[k]
		fmt.Fprintf(&b, "  %-12s %10d %10d %8.2f\n", k[0]+" > "+k[1], n[0], n[1], pct(n[1], n[0]+n[1]))
	}
	fmt.Fprintf(&b, "  overflow (full queue) %d, unroutable %d, not IPv4 %d\n", c.overflow, c.unroutable, c.other)
	return b.String()
}

func pct(part, whole int64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

// openTUN creates the TUN device name in the calling thread's network
// namespace and returns its file, non-blocking so that Close ends a Read.
// The device lives as long as the file is open.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun "+name), nil
}
