package zones

import (
	"fmt"
	"testing"
)

func TestScratch(t *testing.T) {
	for _, f := range []string{"testdata/good/example.com.zone", "testdata/good/example.net.zone"} {
		recs, err := readZone(f, "example.com.", true)
		fmt.Println(err)
		for _, r := range recs {
			fmt.Println(r.file, r.line, r.rr.Header().Name, r.rr.Header().Rrtype)
		}
	}
}
