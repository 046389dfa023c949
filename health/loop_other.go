//go:build !linux

package health

// loop is the event loop of Linux (loop_linux.go); elsewhere every probe
// runs on a goroutine of its own.
type loop struct{}

// ringMaker would make the loop's io_uring: there is none here.
type ringMaker = func()

// loopConn is a connection the loop holds; none here.
type loopConn struct{}

func (*loop) run()          {}
func (*loop) submit(*group) {}
func (*loop) kick()         {}
func (*loop) forget(*group) {}
func (*loop) stop()         {}

func (*Checker) handOver(*group, *groupConfig, *httpProbe) {}
func (*Checker) handOverConnect(*group, *groupConfig)      {}
