package health

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestKeptConnectionLivesMinutes: a kept connection is used again for
// minutes, not retired after 15-30s, and connections kept at the same
// moment are retired at ages spread over minutes, so that those a
// Checker opened together are not dialled again together. The clock is
// the one the probe passes in.
func TestKeptConnectionLivesMinutes(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 1000 {
		age := newKeptConn(nil, nil, nil, now).retire.Sub(now)
		lo, hi = min(lo, age), max(hi, age)
	}
	if lo < 2*time.Minute+30*time.Second || hi > 5*time.Minute {
		t.Errorf("1000 connections kept at once retire at ages %v to %v: want within 2m30s to 5m", lo, hi)
	}
	if hi-lo < 2*time.Minute {
		t.Errorf("1000 connections kept at once retire at ages %v to %v: want them spread over minutes", lo, hi)
	}

	// A connection kept at now is used by the probe 2 minutes later, and
	// closed by the one 5 minutes later.
	conn, peer := net.Pipe()
	defer peer.Close()
	p := &httpProbe{}
	var slot connSlot
	kc := newKeptConn(conn, nil, p, now)
	slot.put(kc)
	if !slot.kept(now.Add(2 * time.Minute)) {
		t.Error("no kept connection 2 minutes after it was kept")
	}
	if got, ok := slot.take(p, now.Add(2*time.Minute)); !ok || got != kc {
		t.Fatalf("take 2 minutes later = %v, %v: want the kept connection", got, ok)
	}
	slot.put(kc)
	if slot.kept(now.Add(5 * time.Minute)) {
		t.Error("a connection kept 5 minutes is still offered")
	}
	if got, ok := slot.take(p, now.Add(5*time.Minute)); !ok || got != nil {
		t.Fatalf("take 5 minutes later = %v, %v: want none (retired)", got, ok)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the retired connection's peer read %v: want EOF (closed)", err)
	}
}
