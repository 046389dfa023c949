package health

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// Reasons a probe fails because of this node rather than the endpoint:
// the label values of gslb_health_local_probe_errors_total.
const (
	// LocalFileDescriptors: the process or the system is out of file
	// descriptors (EMFILE, ENFILE), so no socket could be opened.
	LocalFileDescriptors = "file_descriptors"
	// LocalMemory: the kernel had no buffer space or memory for the socket
	// (ENOBUFS, ENOMEM).
	LocalMemory = "memory"
	// LocalAddress: no local address or port could be bound
	// (EADDRNOTAVAIL: ephemeral ports exhausted or the source address
	// gone; EADDRINUSE).
	LocalAddress = "local_address"
	// LocalDenied: this host refused to send the packet (EPERM, EACCES:
	// an egress firewall rule or a security policy on the prober).
	LocalDenied = "denied"
)

// localReasons lists every reason, for metrics that start at zero.
var localReasons = []string{LocalFileDescriptors, LocalMemory, LocalAddress, LocalDenied}

// localFault says whether err means the probe could not be made because
// of this node, and why (one of the Local* reasons).
//
// The line is drawn at the host's edge: an error the kernel returns
// before any packet reaches the network is ours, whatever the endpoint's
// state. Everything the network or the endpoint answered is the
// endpoint's: a refused or reset connection, a timeout, a TLS or HTTP
// failure, and also "network unreachable" and "no route to host"
// (ENETUNREACH, EHOSTUNREACH), because a router on the path reports those
// too, and a site that cannot be reached from here is what cross-checks
// exist to notice. A node whose probes fail for everything anyway is
// caught by the merge (see the package documentation), not here.
func localFault(err error) (reason string, ok bool) {
	if err == nil {
		return "", false
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return "", false
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE:
		return LocalFileDescriptors, true
	case syscall.ENOBUFS, syscall.ENOMEM:
		return LocalMemory, true
	case syscall.EADDRNOTAVAIL, syscall.EADDRINUSE:
		return LocalAddress, true
	case syscall.EPERM, syscall.EACCES:
		return LocalDenied, true
	}
	return "", false
}

// localLogEvery bounds how often the Checker logs probes that failed
// because of this node: under file-descriptor exhaustion every probe
// fails, and one line per probe would add to the load that caused it.
const localLogEvery = 10 * time.Second

// localLog rate-limits the log lines about local probe faults: the first
// fault is logged at once, later ones at most once per localLogEvery, with
// the number left out since the previous line.
type localLog struct {
	logger *slog.Logger

	mu         sync.Mutex
	last       time.Time // when the last line was written; zero: never
	suppressed int       // faults not logged since then
}

// fault notes one probe of target that failed locally at now, and logs it
// unless a line was written less than localLogEvery ago.
func (l *localLog) fault(ctx context.Context, now time.Time, target, reason string, err error) {
	l.mu.Lock()
	if !l.last.IsZero() && now.Sub(l.last) < localLogEvery {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	l.logger.WarnContext(ctx, "probe failed on this node, not at the endpoint: no verdict",
		"target", target, "reason", reason, "error", err, "more_since_last_line", suppressed)
}
