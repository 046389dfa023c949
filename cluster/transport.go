package cluster

import (
	"errors"
	"fmt"
	"log"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// maxGossipPacket is the largest gossip packet received whole: a UDP
// datagram's payload. memberlist sends at most its UDPBufferSize (1400
// bytes by default) in one.
const maxGossipPacket = 65535

// gossipRecvBuffer is the receive buffer asked for on the gossip UDP
// socket, as memberlist's own transport does (halved until the kernel
// accepts it).
const gossipRecvBuffer = 2 << 20

// transport is memberlist's network transport, TCP streams and UDP
// packets on one address and port, as memberlist's NetTransport does it,
// except for how packets are read: NetTransport allocates (and the
// runtime clears) a 64 KiB buffer for every packet it receives, which on
// an idle node of a 30-node cluster, receiving about 100 packets a
// second, was a sixth of its CPU with the garbage collection it caused.
// This one reads every packet into one buffer and hands memberlist a copy
// of exactly the packet's length (memberlist keeps the slice it is given,
// so the buffer itself cannot be lent).
type transport struct {
	tcp    *net.TCPListener
	udp    *net.UDPConn
	logger *log.Logger

	packets chan *memberlist.Packet
	streams chan net.Conn

	shutdown atomic.Bool
	// done is closed by Shutdown: a delivery nobody takes any more (the
	// memberlist failed to start, or stopped reading) is given up.
	done chan struct{}
	wg   sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

// newTransport listens on ip:port, TCP and UDP; port 0 takes the port TCP
// is given for UDP too, and tries again (up to 10 times) when UDP's is
// taken.
func newTransport(ip string, port int, logger *log.Logger) (*transport, error) {
	addr := net.ParseIP(ip)
	if addr == nil {
		return nil, fmt.Errorf("bind address %q is not an IP address", ip)
	}
	var (
		tcp *net.TCPListener
		udp *net.UDPConn
		err error
	)
	for try := 0; try < 10; try++ {
		if tcp, err = net.ListenTCP("tcp", &net.TCPAddr{IP: addr, Port: port}); err != nil {
			return nil, fmt.Errorf("listen on TCP %s: %w", net.JoinHostPort(ip, fmt.Sprint(port)), err)
		}
		p := tcp.Addr().(*net.TCPAddr).Port
		if udp, err = net.ListenUDP("udp", &net.UDPAddr{IP: addr, Port: p}); err == nil {
			break
		}
		tcp.Close()
		if port != 0 || !strings.Contains(err.Error(), "address already in use") {
			return nil, fmt.Errorf("listen on UDP %s: %w", net.JoinHostPort(ip, fmt.Sprint(p)), err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listen on UDP: %w", err)
	}
	for size := gossipRecvBuffer; size > 0; size /= 2 {
		if udp.SetReadBuffer(size) == nil {
			break
		}
	}
	t := &transport{tcp: tcp, udp: udp, logger: logger,
		packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), done: make(chan struct{})}
	t.wg.Add(2)
	go t.acceptStreams()
	go t.readPackets()
	return t, nil
}

// port is the port both listeners are bound to.
func (t *transport) port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr returns the address other nodes reach this one at:
// ip:port as given, or else the bound address (for a wildcard bind, the
// host's private address, as memberlist's transport chooses it) and the
// bound port.
func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		addr := net.ParseIP(ip)
		if addr == nil {
			return nil, 0, fmt.Errorf("advertise address %q is not an IP address", ip)
		}
		if a4 := addr.To4(); a4 != nil {
			addr = a4
		}
		return addr, port, nil
	}
	addr := t.tcp.Addr().(*net.TCPAddr).IP
	if addr.IsUnspecified() {
		private, err := sockaddr.GetPrivateIP()
		if err != nil {
			return nil, 0, fmt.Errorf("find this host's private address: %w", err)
		}
		if addr = net.ParseIP(private); addr == nil {
			return nil, 0, errors.New("no private address found: set cluster.advertise")
		}
	}
	return addr, t.port(), nil
}

// WriteTo sends one packet to addr (host:port).
func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends one packet to a.Addr.
func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	to, err := net.ResolveUDPAddr("udp", a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, to)
	return time.Now(), err
}

// PacketCh delivers the packets received.
func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout opens a stream to addr.
func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream to a.Addr.
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", a.Addr)
}

// StreamCh delivers the streams accepted.
func (t *transport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown closes both listeners and returns once their goroutines have
// ended; a packet or stream nobody takes is dropped. A second call does
// nothing.
func (t *transport) Shutdown() error {
	if t.shutdown.Swap(true) {
		return nil
	}
	close(t.done)
	t.tcp.Close()
	t.udp.Close()
	t.wg.Wait()
	return nil
}

// acceptStreams hands every accepted connection to memberlist until
// Shutdown. An accept error other than the listener closing (out of file
// descriptors) is retried after a pause that doubles up to a second.
func (t *transport) acceptStreams() {
	defer t.wg.Done()
	var pause time.Duration
	for {
		conn, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			t.logger.Printf("[ERR] memberlist: accepting a stream: %v", err)
			time.Sleep(pause)
			continue
		}
		pause = 0
		select {
		case t.streams <- conn:
		case <-t.done:
			conn.Close()
			return
		}
	}
}

// readPackets hands every packet received to memberlist until Shutdown,
// each in a slice of its own length.
func (t *transport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, maxGossipPacket)
	for {
		n, from, err := t.udp.ReadFromUDP(buf)
		at := time.Now()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			t.logger.Printf("[ERR] memberlist: reading a packet: %v", err)
			continue
		}
		if n < 1 {
			continue // too short to be a message
		}
		pkt := make([]byte, n)
		copy(pkt, buf)
		select {
		case t.packets <- &memberlist.Packet{Buf: pkt, From: from, Timestamp: at}:
		case <-t.done:
			return
		}
	}
}
