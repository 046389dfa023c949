package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslbd/internal/proctest"
	"github.com/gslbd/gslbd/resolver"
)

var (
	scaleRecords  = flag.Int("scale.records", 0, "TestScale: records in the generated zone (0 skips the test; the issue's figure is 1000000)")
	scaleServices = flag.Int("scale.services", 100_000, "TestScale: services in the generated services file")
	scaleHeap     = flag.String("scale.heapprofile", "", "TestScale: write a heap profile (live objects) to this file after the second publish")
)

// upExcept is a resolver.Health that counts every endpoint up but those
// listed.
type upExcept map[string]bool

func (d upExcept) Up(id string) bool { return !d[id] }

// TestScale measures, on demand, a node's load step and publishes at
// scale: a generated zone of -scale.records records and a services file
// of -scale.services services with two sites each go through the same
// load as gslbd check and serve, then the resolver publishes the set, and
// publishes it again after a health change. It logs the time of each
// step and the process's resident memory (now and at its peak).
//
//	go test ./cmd/gslbd -run TestScale -v -scale.records=1000000 -scale.services=100000 -timeout 30m
func TestScale(t *testing.T) {
	if *scaleRecords == 0 {
		t.Skip("on demand: -scale.records=1000000 (see the test's comment)")
	}
	dir := t.TempDir()
	start := time.Now()
	writeScaleFiles(t, dir, *scaleRecords, *scaleServices)
	t.Logf("generated %d records and %d services in %v", *scaleRecords, *scaleServices, time.Since(start).Round(time.Millisecond))
	runtime.GC()
	t.Logf("before load: %s", memory(t))

	step := newSteps()
	l, err := load(filepath.Join(dir, "gslbd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load (parse, validate, build the set and %d probe targets): %s; %s", len(l.targets), step(), memory(t))

	res, err := resolver.New(resolver.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	step()
	res.Publish(resolver.State{Zones: l.set})
	t.Logf("first publish: %s; %s", step(), memory(t))
	releaseMemory()
	t.Logf("after the garbage is returned, as a node does after publishing new zones: %s; %s", step(), memory(t))

	// A health change: the first site's endpoint of every tenth service
	// goes down.
	down := upExcept{}
	for i, svc := range l.set.Services() {
		if i%10 == 0 {
			down[svc.Sites[0].Endpoints[0].ID] = true
		}
	}
	step()
	res.Publish(resolver.State{Zones: l.set, Health: down})
	t.Logf("publish after %d endpoints went down: %s; %s", len(down), step(), memory(t))
	runtime.GC()
	t.Logf("after a garbage collection: %s", memory(t))
	if *scaleHeap != "" {
		f, err := os.Create(*scaleHeap)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			t.Fatal(err)
		}
	}
	runtime.KeepAlive(l)
	runtime.KeepAlive(res)
}

// newSteps returns a function that returns the wall-clock and CPU time
// (user and system, every goroutine) since its last call, or since
// newSteps: on a shared machine the CPU time is the steadier figure.
func newSteps() func() string {
	wall, cpu := time.Now(), cpuTime()
	return func() string {
		w, c := time.Now(), cpuTime()
		s := fmt.Sprintf("%v (cpu %v)", w.Sub(wall).Round(time.Millisecond), (c - cpu).Round(10*time.Millisecond))
		wall, cpu = w, c
		return s
	}
}

// cpuTime returns the process's CPU time so far from /proc/self/stat
// (0 where there is none).
func cpuTime() time.Duration {
	d, _ := proctest.CPU(0)
	return d
}

// memory reads the resident set size and its peak from /proc/self/status.
func memory(t *testing.T) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "memory unknown: " + err.Error()
	}
	defer f.Close()
	var rss, hwm string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		switch k {
		case "VmRSS":
			rss = strings.TrimSpace(v)
		case "VmHWM":
			hwm = strings.TrimSpace(v)
		}
	}
	return fmt.Sprintf("resident %s (peak %s)", rss, hwm)
}

// writeScaleFiles writes gslbd.yaml, big.zone (records records, mostly A
// records h0, h1, ...) and services.yaml (services services s0, s1, ...,
// each with one endpoint in dc1 and one in dc2) into dir.
func writeScaleFiles(t *testing.T, dir string, records, services int) {
	t.Helper()
	create := func(name string) (*bufio.Writer, func()) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		return w, func() {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	z, done := create("big.zone")
	fmt.Fprint(z, "$ORIGIN big.test.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n")
	for i := range max(records-3, 0) {
		fmt.Fprintf(z, "h%d IN A 10.%d.%d.%d\n", i, i>>16&255, i>>8&255, i&255)
	}
	done()
	s, done := create("services.yaml")
	fmt.Fprint(s, "sites: [dc1, dc2]\ndefaults:\n  check: {type: tcp, port: 80}\nservices:\n")
	for i := range services {
		fmt.Fprintf(s, "  s%d.big.test:\n    sites:\n      dc1: [127.1.%d.%d]\n      dc2: [127.2.%d.%d]\n", i, i>>8&255, i&255, i>>8&255, i&255)
	}
	done()
	c, done := create("gslbd.yaml")
	fmt.Fprint(c, "node: {name: n1, site: dc1}\ndns: {listen: [\"127.0.0.1:0\"]}\nadmin: {disabled: true}\n"+
		"zones:\n  - origin: big.test.\n    file: big.zone\nservices: services.yaml\n")
	done()
}
