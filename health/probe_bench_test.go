package health

import (
	"context"
	"testing"
	"time"
)

// BenchmarkHTTPProbeKept measures one HTTP probe on a kept connection, as
// the Checker runs it, against a minimal endpoint in this process (whose
// work is in the figures too):
//
//	go test -run '^$' -bench HTTPProbeKept -benchmem ./health/
func BenchmarkHTTPProbeKept(b *testing.B) {
	srv := newRawServer(b, reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	addr := srv.addr(b)
	p, slot := NewHTTPProbe(HTTPCheck{}), new(connSlot)
	defer slot.close()
	ctx := withTrace(context.Background(), &probeTrace{conns: slot})
	for b.Loop() {
		if err := runProbe(ctx, p, addr, time.Second); err != nil {
			b.Fatal(err)
		}
	}
	if n := srv.accepts.Load(); n != 1 {
		b.Errorf("%d connections, want 1", n)
	}
}
