//go:build !unix

package cluster

import (
	"errors"
	"time"
)

var errNoRusage = errors.New("no CPU accounting on this system")

func processCPU() (time.Duration, error) { return 0, errNoRusage }
