package zones_test

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

// FuzzLoad feeds Load a zone file and a services file, in memory through
// Config.FS (thousands of executions a second instead of tens through
// temporary files). It must never panic, and whatever it accepts must be
// servable: an SOA at every apex and records that encode.
func FuzzLoad(f *testing.F) {
	zoneFiles, _ := filepath.Glob("testdata/*/zones/*.zone")
	good, _ := filepath.Glob("testdata/good/*.zone")
	zoneFiles = append(zoneFiles, good...)
	yamlFiles, _ := filepath.Glob("testdata/*/services/*.yaml")
	goodYAML, _ := filepath.Glob("testdata/good/*.yaml")
	yamlFiles = append(yamlFiles, goodYAML...)

	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	services := read("testdata/good/services.yaml")
	zone := read("testdata/good/example.com.zone")
	for _, p := range zoneFiles {
		f.Add(read(p), services)
	}
	for _, p := range yamlFiles {
		f.Add(zone, read(p))
	}

	f.Fuzz(func(t *testing.T, zoneData, servicesData []byte) {
		fsys := fstest.MapFS{
			"example.com.zone": {Data: zoneData},
			"services.yaml":    {Data: servicesData},
			"inc.zone":         {Data: []byte("inc 300 IN A 192.0.2.7\n")},
		}
		// $INCLUDE reads only the in-memory files.
		set, err := zones.Load(zones.Config{
			Zones:        []zones.ZoneConfig{{Origin: "example.com.", File: "example.com.zone", AllowInclude: true}},
			ServicesFile: "services.yaml",
			FS:           fsys,
		})
		if err != nil {
			if set != nil {
				t.Fatalf("Load() = %v and a Set", err)
			}
			return
		}
		buf := make([]byte, dns.MaxMsgSize)
		for _, z := range set.Zones() {
			if z.SOA == nil {
				t.Fatalf("zone %s has no SOA", z.Origin)
			}
			for _, rr := range z.Records() {
				if !dns.IsSubDomain(z.Origin, rr.Header().Name) {
					t.Fatalf("%v outside %s", rr, z.Origin)
				}
				if _, err := dns.PackRR(rr, buf, 0, nil, false); err != nil {
					t.Fatalf("%v does not encode: %v", rr, err)
				}
			}
		}
		for _, svc := range set.Services() {
			if len(svc.Sites) == 0 || set.Zone(svc.Name) == nil {
				t.Fatalf("service %+v", *svc)
			}
			for _, s := range svc.Sites {
				if len(s.Endpoints) == 0 || s.Check.Timeout >= s.Check.Interval || s.Check.Port == 0 {
					t.Fatalf("service %s site %+v", svc.Name, s)
				}
			}
		}
	})
}
