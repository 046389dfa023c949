package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps imports pointing one way (README, Architecture):
// leaves know nothing of the packages that use them.
func TestImportDirection(t *testing.T) {
	const mod = "github.com/gslbd/gslbd/"
	allowed := map[string][]string{
		"zones":              {"internal/yamlpos"},
		"health":             {},
		"drain":              {},
		"internal/dnstest":   {},
		"internal/netprefix": {},
		"internal/yamlpos":   {},
		"cluster":            {"health", "drain"},
		"resolver":           {"zones"},
		"admin":              {"drain", "admin/api"},
		"admin/api":          {"drain", "internal/netprefix"},
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		ok, ruled := allowed[pkg]
		if !ruled {
			continue // cmd/* and test-only packages wire everything
		}
		seen++
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			dep := strings.TrimPrefix(imp, mod)
			permitted := false
			for _, a := range ok {
				permitted = permitted || a == dep
			}
			if !permitted {
				t.Errorf("%s imports %s; allowed: %v", pkg, dep, ok)
			}
		}
	}
	if seen < 5 {
		t.Errorf("checked %d packages; go list output:\n%s", seen, out)
	}
}
