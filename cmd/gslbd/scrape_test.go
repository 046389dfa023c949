package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/internal/testwait"
)

var scrapePhase = flag.Duration("scrape.phase", time.Second, "length of each phase of TestScrapeDuringQueries (4 phases)")

// TestScrapeDuringQueries answers queries for a service from two loops
// while, in alternate phases, /metrics (the operator collector included)
// and /status are fetched 10 times a second. Every answer in every phase
// must be the right one; the latency figures of both kinds of phase are
// logged (longer phases: -scrape.phase=10s).
func TestScrapeDuringQueries(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t, "127.0.1.10", "127.0.2.10")
	writeFile(t, filepath.Join(dir, "example.com.zone"), failoverZone)
	var svcs strings.Builder
	for i := range 20 { // a configuration of some size for the collector to walk
		fmt.Fprintf(&svcs, "  s%d.example.com:\n    sites: {dc1: [127.0.1.10], dc2: [127.0.2.10]}\n", i)
	}
	writeFile(t, filepath.Join(dir, "services.yaml"), fmt.Sprintf(`sites: [dc1, dc2]
defaults:
  check: {type: http, port: %d, path: /healthz}
services:
%s`, port, svcs.String()))
	cfg := filepath.Join(dir, "gslbd.yaml")
	writeFile(t, cfg, fmt.Sprintf(`node: {name: s, site: dc1}
dns: {listen: ["127.0.0.1:0"]}
admin: {listen: "127.0.0.1:0"}
cluster: {bind: "127.0.0.1:0"}
zones: [{origin: example.com., file: example.com.zone}]
services: services.yaml
state_dir: %s
demo: {endpoints: ["127.0.1.10:%d", "127.0.2.10:%d"]}
`, filepath.Join(dir, "state"), port, port))
	n := startNode(t, cfg)
	testwait.Until(t, 10*time.Second, "s0 answers dc1", func() bool { return answerA(t, n.bound.DNS[0], "s0.example.com.") == "127.0.1.10" })

	type result struct {
		lat   []time.Duration
		wrong int
		errs  int
	}
	phase := func(scrape bool) (result, int) {
		var mu sync.Mutex
		var res result
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				c := &dns.Client{Timeout: time.Second}
				m := new(dns.Msg)
				m.SetQuestion(fmt.Sprintf("s%d.example.com.", w), dns.TypeA)
				var lat []time.Duration
				wrong, errs := 0, 0
				for {
					select {
					case <-stop:
						mu.Lock()
						res.lat = append(res.lat, lat...)
						res.wrong += wrong
						res.errs += errs
						mu.Unlock()
						return
					default:
					}
					start := time.Now()
					r, _, err := c.Exchange(m, n.bound.DNS[0])
					lat = append(lat, time.Since(start))
					switch {
					case err != nil:
						errs++
					case len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.1.10":
						wrong++
					}
				}
			})
		}
		scrapes := 0
		if scrape {
			wg.Go(func() {
				tick := time.NewTicker(100 * time.Millisecond) // 10 per second
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					path := "/metrics"
					if i%2 == 1 {
						path = "/status"
					}
					resp, err := http.Get("http://" + n.bound.Admin + path)
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mu.Lock()
					scrapes++
					mu.Unlock()
				}
			})
		}
		time.Sleep(*scrapePhase)
		close(stop)
		wg.Wait()
		return res, scrapes
	}
	var quiet, scraped result
	scrapes := 0
	for _, scrape := range []bool{false, true, false, true} {
		r, s := phase(scrape)
		dst := &quiet
		if scrape {
			dst, scrapes = &scraped, scrapes+s
		}
		dst.lat = append(dst.lat, r.lat...)
		dst.wrong += r.wrong
		dst.errs += r.errs
	}
	for name, r := range map[string]result{"without scrapes": quiet, "with 10 scrapes/s": scraped} {
		if r.wrong > 0 || r.errs > 0 {
			t.Errorf("%s: %d wrong answers and %d failed queries of %d", name, r.wrong, r.errs, len(r.lat))
		}
	}
	pct := func(l []time.Duration, p float64) time.Duration {
		slices.Sort(l)
		return l[min(len(l)-1, int(float64(len(l))*p))]
	}
	for _, x := range []struct {
		name string
		r    result
	}{{"without scrapes", quiet}, {"with 10 scrapes/s", scraped}} {
		t.Logf("%-18s %6d queries (%.0f/s), median %v, p99 %v, max %v", x.name, len(x.r.lat),
			float64(len(x.r.lat))/(2*scrapePhase.Seconds()), pct(x.r.lat, .5), pct(x.r.lat, .99), pct(x.r.lat, 1))
	}
	t.Logf("%d scrapes of /metrics and /status", scrapes)
}
