//go:build linux && 386

package health

import "errors"

// loopConnects says that the loop can make the connects of tcp checks:
// not here, where the socket system calls are multiplexed through
// socketcall; the probes run on goroutines.
const loopConnects = false

func rawConnect([]byte) (int, error) { return -1, errors.ErrUnsupported }

func connectError(int) error { return errors.ErrUnsupported }
