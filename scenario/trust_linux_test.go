package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// twoSites is a two-site deployment: one node and one endpoint per site.
var twoSites = layout{
	nodes: []struct{ name, site, ip string }{
		{"dc1-a", "dc1", "127.0.1.1"},
		{"dc2-a", "dc2", "127.0.2.1"},
	},
	endpoints: []struct{ site, ip string }{
		{"dc1", "127.0.1.10"},
		{"dc2", "127.0.2.10"},
	},
	// Every probe opens a connection, so that running out of file
	// descriptors shows in the next probe rather than when a kept
	// connection is next replaced (within 30s).
	check: ", reuse_connection: false",
}

// TestTwoSitesTrust runs two gslbd processes, one per site, each with one
// real endpoint process (talk.example.com fails over dc1, dc2).
//
//  1. dc1-a runs out of file descriptors (its RLIMIT_NOFILE is lowered
//     below what it has open, as a flood of connections would do): its
//     probes fail with "too many open files". That is no verdict on the
//     endpoints: neither node may ever stop answering dc1, and dc1-a's
//     status must say its own view is suspect. Before issue 8, dc1-a
//     judged every endpoint down, and since a site's own node decided for
//     everyone, both nodes moved talk to dc2 while dc1 was healthy.
//  2. dc1 is black-holed (dc1-a and dc1's endpoint stopped with SIGSTOP:
//     silent, not refusing): dc2-a's cross-check alone must fail talk over
//     to dc2. The time it takes is logged.
func TestTwoSitesTrust(t *testing.T) {
	dig := requireDig(t)
	h := newHarnessLayout(t, gslbdBinary(t), dig, twoSites)
	ctx := t.Context()
	h.startAll(t, ctx)
	dc1a, dc2a := h.nodes[0], h.nodes[1]
	stats := &digStats{}

	// 1. dc1-a out of file descriptors. Its admin API is read over one
	// connection opened beforehand: it cannot accept another.
	admin := &adminConn{h: h, n: dc1a, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}}
	if st, err := admin.status(ctx); err != nil || st.ViewSuspect {
		t.Fatalf("dc1-a before the limit: %+v, %v; want a status, not suspect", st, err)
	}
	rec := h.startRecording(ctx, h.nodes, stats)
	old, err := setNofile(dc1a.proc.cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if _, err := setNofile(dc1a.proc.cmd.Process.Pid, old.Cur); err != nil {
				t.Errorf("restore the file-descriptor limit of dc1-a: %v", err)
			}
		}
	}
	defer restore()
	limited := time.Now()

	var st adminStatus
	deadline := time.Now().Add(waitBound)
	for {
		st, err = admin.status(ctx)
		if err == nil && st.ViewSuspect && st.localFaults() == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("dc1-a at the limit: no suspect view with both endpoints unprobeable within %s: %+v, %v", waitBound, st, err)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	suspectAfter := time.Since(limited)
	faults, err := admin.metric(ctx, `gslb_health_local_probe_errors_total{reason="file_descriptors"}`)
	if err != nil || faults == "0" {
		t.Errorf("dc1-a local probe errors = %q, %v; want some", faults, err)
	}
	if v, err := admin.metric(ctx, "gslb_health_view_suspect"); err != nil || v != "1" {
		t.Errorf("dc1-a gslb_health_view_suspect = %q, %v; want 1", v, err)
	}
	// Hold the limit as long again as the old code needed to withdraw dc1
	// (two failed probes and a publish), several times over, while every
	// answer is recorded.
	hold := time.NewTimer(3 * time.Second)
	select {
	case <-hold.C:
	case <-ctx.Done():
	}
	restore()
	if _, err := rec.waitFor(ctx, h.nodes, h.steady("dc1"), time.Now()); err != nil {
		t.Fatal(err)
	}
	all := rec.finish()
	answers := 0
	var wrong []string
	for name, as := range all {
		for _, a := range as {
			answers++
			if !h.steady("dc1").ok(a) {
				wrong = append(wrong, fmt.Sprintf("%s answered %s to a dig run from %s to %s",
					name, a, a.start.Format("15:04:05.000"), a.end.Format("15:04:05.000")))
			}
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d answers while dc1-a was out of file descriptors (from %s) were not dc1, for example:\n%s",
			len(wrong), answers, limited.Format("15:04:05.000"), strings.Join(wrong[:min(len(wrong), 5)], "\n"))
	}
	deadline = time.Now().Add(waitBound)
	for {
		st, err = admin.status(ctx)
		if err == nil && !st.ViewSuspect && st.localFaults() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dc1-a with its limit restored: still suspect after %s: %+v, %v", waitBound, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("dc1-a out of file descriptors for %s: its own view suspect after %s; %d answers, every one dc1",
		time.Since(limited).Round(time.Millisecond), suspectAfter.Round(time.Millisecond), answers)
	h.settle(ctx, "file descriptors restored")

	// 2. dc1 black-holed.
	_, dc1Eps := h.sitesOf("dc1")
	t0 := time.Now()
	for _, p := range []*proc{dc1a.proc, dc1Eps[0].proc} {
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	got, err := h.pollUntil(ctx, []*node{dc2a}, h.onlySite("dc2"), stats)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dc1 black-holed (its node and endpoint stopped): dc2-a answered dc2 after %ss (one dig run: median %ss)",
		secs(got[dc2a.name].end.Sub(t0)), secs(summarize(stats.durs).median))
	if d := got[dc2a.name].end.Sub(t0); d > 5*time.Second {
		t.Errorf("failover of a black-holed site took %s, want at most 5s", d)
	}
}

// setNofile sets the soft RLIMIT_NOFILE of process pid to cur (the hard
// limit stays) and returns the limits it had.
func setNofile(pid int, cur uint64) (syscall.Rlimit, error) {
	var old syscall.Rlimit
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE,
		0, uintptr(unsafe.Pointer(&old)), 0, 0); e != 0 {
		return old, fmt.Errorf("prlimit %d: %w", pid, e)
	}
	lim := syscall.Rlimit{Cur: min(cur, old.Max), Max: old.Max}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE,
		uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
		return old, fmt.Errorf("prlimit %d: %w", pid, e)
	}
	return old, nil
}

// adminConn reads one node's admin API over a connection it keeps open,
// so that it still works when the node cannot accept a new one.
type adminConn struct {
	h      *harness
	n      *node
	client *http.Client
}

// adminStatus is the part of GET /api/v1/status this test reads.
type adminStatus struct {
	ViewSuspect bool `json:"view_suspect"`
	Services    []struct {
		Sites []struct {
			Endpoints []struct {
				ID         string `json:"id"`
				LocalFault string `json:"local_fault"`
			} `json:"endpoints"`
		} `json:"sites"`
	} `json:"services"`
}

// localFaults counts the endpoints the node cannot probe.
func (s adminStatus) localFaults() int {
	n := 0
	for _, svc := range s.Services {
		for _, site := range svc.Sites {
			for _, ep := range site.Endpoints {
				if ep.LocalFault != "" {
					n++
				}
			}
		}
	}
	return n
}

func (a *adminConn) get(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.n.admin.String()+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.h.readToken)
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s on %s: %s", path, a.n.name, resp.Status)
	}
	return body, nil
}

func (a *adminConn) status(ctx context.Context) (adminStatus, error) {
	var st adminStatus
	body, err := a.get(ctx, "/api/v1/status")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(body, &st)
}

// metric returns the value of one series, or "" if absent.
func (a *adminConn) metric(ctx context.Context, series string) (string, error) {
	body, err := a.get(ctx, "/metrics")
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(body)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == series {
			return f[1], nil
		}
	}
	return "", nil
}
