package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// TestHTTPProbeReportsKernelRTT: asked for it, an HTTP probe reports the
// kernel's round-trip estimate of its connection after a successful
// exchange, on a new connection and on a kept one, and nothing after a
// failed one.
func TestHTTPProbeReportsKernelRTT(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	addr := netip.MustParseAddrPort(srv.Listener.Addr().String())
	probe := NewHTTPProbe(HTTPCheck{})
	var slot connSlot
	defer slot.close()
	for i, want := range []bool{true, true, false} {
		if !want {
			status = http.StatusServiceUnavailable
		}
		tr := &probeTrace{wantRTT: true, conns: &slot}
		ctx, cancel := context.WithTimeout(withTrace(context.Background(), tr), 5*time.Second)
		err := probe(ctx, addr)
		cancel()
		if (err == nil) != want {
			t.Fatalf("probe %d: %v", i, err)
		}
		if tr.sampled != want {
			t.Fatalf("probe %d (error %v): sampled %v, want %v", i, err, tr.sampled, want)
		}
		if want && (tr.srtt <= 0 || tr.srtt > 100*time.Millisecond || tr.rttvar < 0) {
			t.Errorf("probe %d on loopback: srtt %v, rttvar %v; want a positive round trip well under 100ms", i, tr.srtt, tr.rttvar)
		}
		if i == 1 && tr.connected {
			t.Error("second probe dialled: want it on the kept connection")
		}
	}
}
