package health

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var closed, reset atomic.Int64
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, err := io.Copy(io.Discard, conn)
				if errors.Is(err, syscall.ECONNRESET) {
					reset.Add(1)
				}
				conn.Close()
				closed.Add(1)
			}()
		}
	}()
	addr := addrPort(t, ln.Addr())
	p := NewTCPProbe()
	const probes = 5
	for range probes {
		if got := probeErr(p, addr, 5*time.Second); got != "" {
			t.Fatalf("probe(listener) = %q, want success", got)
		}
	}
	testwait.Until(t, 5*time.Second, "the server closing every probe's connection", func() bool { return closed.Load() == probes })
	if got := reset.Load(); got != probes {
		t.Errorf("the server saw %d of %d probe connections reset", got, probes)
	}
	if n := timeWaitTo(t, addr.Port()); n > 0 {
		t.Errorf("%d connections to the endpoint in TIME_WAIT after %d probes, want none", n, probes)
	}
}

// timeWaitTo counts this host's IPv4 TCP connections to remote port port
// in TIME_WAIT (state 06 of /proc/net/tcp).
func timeWaitTo(t *testing.T, port uint16) int {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		// sl local_address rem_address st ...
		fields := strings.Fields(s.Text())
		if len(fields) > 3 && strings.HasSuffix(fields[2], fmt.Sprintf(":%04X", port)) && fields[3] == "06" {
			n++
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
