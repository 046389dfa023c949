package dnstest

import (
	"net"
	"net/netip"

	"github.com/miekg/dns"
)

// Recorder is a fake [dns.ResponseWriter] with fixed addresses. It keeps
// every message written, in order; raw writes are unpacked. The transport
// it pretends to be follows the type of Remote: a *net.TCPAddr makes it
// TCP, anything else UDP.
type Recorder struct {
	Local, Remote net.Addr
	// Msgs holds every message written, in order.
	Msgs []*dns.Msg
	// Closed and Hijacked record calls to Close and Hijack.
	Closed, Hijacked bool
	// Pack makes WriteMsg pack the message first, as a real server does,
	// and fail the same way on messages that do not pack.
	Pack bool
	buf  []byte
}

var _ dns.ResponseWriter = (*Recorder)(nil)

// NewRecorder returns a UDP Recorder for a client at remote, which must be
// an address such as "192.0.2.1".
func NewRecorder(remote string) *Recorder {
	return &Recorder{
		Local:  &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53},
		Remote: net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(remote), 40000)),
	}
}

// NewTCPRecorder is [NewRecorder] for TCP.
func NewTCPRecorder(remote string) *Recorder {
	return &Recorder{
		Local:  &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53},
		Remote: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(remote), 40000)),
	}
}

// Msg returns the last message written, or nil.
func (r *Recorder) Msg() *dns.Msg {
	if len(r.Msgs) == 0 {
		return nil
	}
	return r.Msgs[len(r.Msgs)-1]
}

// Reset forgets the messages written, keeping the addresses.
func (r *Recorder) Reset() { r.Msgs = r.Msgs[:0] }

// LocalAddr implements [dns.ResponseWriter].
func (r *Recorder) LocalAddr() net.Addr { return r.Local }

// RemoteAddr implements [dns.ResponseWriter].
func (r *Recorder) RemoteAddr() net.Addr { return r.Remote }

// WriteMsg implements [dns.ResponseWriter].
func (r *Recorder) WriteMsg(m *dns.Msg) error {
	if r.Pack {
		b, err := m.PackBuffer(r.buf)
		if err != nil {
			return err
		}
		r.buf = b
	}
	r.Msgs = append(r.Msgs, m)
	return nil
}

// Write implements [dns.ResponseWriter]: it unpacks b.
func (r *Recorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	r.Msgs = append(r.Msgs, m)
	return len(b), nil
}

// Close implements [dns.ResponseWriter].
func (r *Recorder) Close() error { r.Closed = true; return nil }

// TsigStatus implements [dns.ResponseWriter].
func (r *Recorder) TsigStatus() error { return nil }

// TsigTimersOnly implements [dns.ResponseWriter].
func (r *Recorder) TsigTimersOnly(bool) {}

// Hijack implements [dns.ResponseWriter].
func (r *Recorder) Hijack() { r.Hijacked = true }
