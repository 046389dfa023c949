//go:build !unix

package cluster

import "time"

func processCPU() (time.Duration, error) { return 0, errNoRusage }
