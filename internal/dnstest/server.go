package dnstest

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Start serves h over UDP and TCP on the same 127.0.0.1 port, chosen by
// the kernel, and returns that address as "127.0.0.1:port". It returns
// once both servers are listening (NotifyStartedFunc) and shuts them down
// in t.Cleanup. The servers keep miekg's defaults, DefaultMsgAcceptFunc
// included, so tests see what a production listener sees.
func Start(t testing.TB, h dns.Handler) string {
	t.Helper()
	pc, l, err := listenPair()
	if err != nil {
		t.Fatalf("dnstest: listen: %v", err)
	}
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: l, Handler: h}

	done := make(chan error, 2)
	for _, srv := range []*dns.Server{udp, tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { done <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-done:
			t.Fatalf("dnstest: serve: %v", err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, srv := range []*dns.Server{udp, tcp} {
			if err := srv.ShutdownContext(ctx); err != nil {
				t.Errorf("dnstest: shutdown: %v", err)
			}
		}
		for range 2 {
			<-done
		}
	})
	return pc.LocalAddr().String()
}

// listenPair binds UDP on 127.0.0.1:0 and then TCP on the same port. A
// port free for UDP may be taken for TCP, so it tries a few times.
func listenPair() (net.PacketConn, net.Listener, error) {
	var errs []error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		errs = append(errs, err)
	}
	return nil, nil, errors.Join(errs...)
}

// Exchange sends m to addr over net ("udp" or "tcp") and returns the
// reply, failing the test on error.
func Exchange(t testing.TB, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("exchange %s %s %s: %v", network, m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], err)
	}
	return r
}
