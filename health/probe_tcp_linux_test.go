package health

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gslbd/gslbd/internal/testwait"
)

// TestTCPProbeLeavesNoTimeWait checks that a connect probe closes its
// connection with a reset: the endpoint's server, which closes each
// connection when the client has, sees it reset, and this node holds no
// connection to the endpoint in TIME_WAIT afterwards (as `ss -tan state
// time-wait` would show). With the closing handshake every probe would
// leave one behind for a minute: at 10,000 endpoints probed twice a
// second, far more than the kernel's table of them holds.
func TestTCPProbeLeavesNoTimeWait(t *testing.T) {
	srv := newResetServer(t, "127.0.0.1:0")
	p := NewTCPProbe()
	const probes = 5
	for range probes {
		if got := probeErr(p, srv.addr, 5*time.Second); got != "" {
			t.Fatalf("probe(listener) = %q, want success", got)
		}
	}
	srv.checkReset(t, probes)
}

// resetServer accepts connections and reads each until the client closes
// it, counting the connections that the client reset.
type resetServer struct {
	ln            net.Listener
	addr          netip.AddrPort
	closed, reset atomic.Int64
	// timeWait holds the connections to the server's port that were in
	// TIME_WAIT before it listened: ones a test ran earlier, to another
	// server that had the port.
	timeWait map[string]bool
}

func newResetServer(t *testing.T, addr string) *resetServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &resetServer{ln: ln, addr: addrPort(t, ln.Addr())}
	s.timeWait = timeWaitTo(t, s.addr.Port())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				_, err := io.Copy(io.Discard, conn)
				if errors.Is(err, syscall.ECONNRESET) {
					s.reset.Add(1)
				}
				conn.Close()
				s.closed.Add(1)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return s
}

// checkReset waits until the server has closed at least n connections,
// and checks that the client reset each, leaving none in TIME_WAIT on
// this host.
func (s *resetServer) checkReset(t *testing.T, n int64) {
	t.Helper()
	testwait.Until(t, 5*time.Second, "the server closing the probes' connections", func() bool { return s.closed.Load() >= n })
	if closed, reset := s.closed.Load(), s.reset.Load(); reset != closed {
		t.Errorf("the server saw %d of %d probe connections reset", reset, closed)
	}
	tw := 0
	for c := range timeWaitTo(t, s.addr.Port()) {
		if !s.timeWait[c] {
			tw++
		}
	}
	if tw > 0 {
		t.Errorf("%d connections to the endpoint in TIME_WAIT after %d probes, want none", tw, s.closed.Load())
	}
}

// timeWaitTo returns this host's TCP connections to remote port port in
// TIME_WAIT, by their addresses.
func timeWaitTo(t *testing.T, port uint16) map[string]bool { return connsTo(t, port, "06") }

// connsTo returns this host's TCP connections to remote port port in
// state (as /proc/net/tcp and tcp6 write it: 02 SYN_SENT, 06 TIME_WAIT),
// by their addresses.
func connsTo(t *testing.T, port uint16, state string) map[string]bool {
	t.Helper()
	conns := map[string]bool{}
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(name)
		if errors.Is(err, os.ErrNotExist) && name == "/proc/net/tcp6" {
			continue // no IPv6 on this host
		}
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(b)) {
			// sl local_address rem_address st ...
			fields := strings.Fields(line)
			if len(fields) > 3 && strings.HasSuffix(fields[2], fmt.Sprintf(":%04X", port)) && fields[3] == state {
				conns[fields[1]+" "+fields[2]] = true
			}
		}
	}
	return conns
}
