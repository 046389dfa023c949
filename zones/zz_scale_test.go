package zones

import (
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"
)

var keep *Set

func TestScaleProfile(t *testing.T) {
	if os.Getenv("SCALE") == "" {
		t.Skip()
	}
	start := time.Now()
	s, err := Load(Config{Zones: []ZoneConfig{{Origin: "big.test.", File: "/tmp/scale/big.zone"}}, ServicesFile: os.Getenv("SCALE_SVC")})
	if err != nil {
		t.Fatal(err)
	}
	keep = s
	took := time.Since(start)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("load %v; live heap after GC %d MiB; total alloc %d MiB; sys %d MiB", took, ms.HeapAlloc>>20, ms.TotalAlloc>>20, ms.Sys>>20)
	f, _ := os.Create("/tmp/scale/heap.prof")
	pprof.WriteHeapProfile(f)
	f.Close()
}
