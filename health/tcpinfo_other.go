//go:build !linux

package health

import (
	"net"
	"time"
)

// kernelRTT is not available here: the path estimate of a remote endpoint
// then comes from the connects of new connections only.
func kernelRTT(*net.TCPConn) (srtt, rttvar time.Duration, ok bool) { return 0, 0, false }
