package zones

import (
	"testing"

	"github.com/miekg/dns"
)

// TestInZone: inZone agrees with dns.IsSubDomain on canonical names,
// escapes included.
func TestInZone(t *testing.T) {
	names := []string{".", "com.", "example.com.", "www.example.com.", "a.b.example.com.", "xexample.com.",
		`a\.example.com.`, `a\\.example.com.`, `a\\\.example.com.`, `\.example.com.`, `a\046example.com.`,
		"example.com.example.com.", "example.net.", "ample.com.", "*.example.com.", `x\ y.example.com.`}
	for _, origin := range names {
		for _, name := range names {
			if got, want := inZone(origin, name), dns.IsSubDomain(origin, name); got != want {
				t.Errorf("inZone(%q, %q) = %v, dns.IsSubDomain says %v", origin, name, got, want)
			}
		}
	}
}
