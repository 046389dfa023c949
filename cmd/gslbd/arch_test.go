package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// importTable reads the package table of the README's Architecture
// section: package -> the packages of ours it imports. Rows whose import
// column is "all" (the command) are left out.
func importTable(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, arch, ok := strings.Cut(string(data), "\n## Architecture\n")
	if !ok {
		t.Fatal("README.md has no Architecture section")
	}
	arch, _, _ = strings.Cut(arch, "\n## ")
	row := regexp.MustCompile("^\\| `([a-z/]+)` \\|.*\\| ([^|]+) \\|$")
	name := regexp.MustCompile("`([a-z/]+)`")
	table := map[string][]string{}
	for _, line := range strings.Split(arch, "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		imports := strings.TrimSpace(m[2])
		if imports == "all" {
			continue
		}
		deps := []string{}
		if imports != "none" {
			for _, n := range name.FindAllStringSubmatch(imports, -1) {
				deps = append(deps, n[1])
			}
		}
		table[m[1]] = deps
	}
	if len(table) < 5 {
		t.Fatalf("README.md Architecture: found %d package rows, want the whole table", len(table))
	}
	return table
}

// TestImportDirection keeps imports pointing one way, as the README's
// Architecture table states them: every package of the module but the
// commands and the scenario runner has a row, and it imports exactly the
// packages of ours its row lists, so neither the code nor the table can
// drift from the other.
func TestImportDirection(t *testing.T) {
	const mod = "github.com/gslbd/gslbd/"
	table := importTable(t)
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		if strings.HasPrefix(pkg, "cmd/") || pkg == "scenario" {
			continue // commands wire everything; scenario holds tests only
		}
		want, ok := table[pkg]
		if !ok {
			t.Errorf("package %s has no row in the README's Architecture table", pkg)
			continue
		}
		seen[pkg] = true
		got := []string{}
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, mod) {
				got = append(got, strings.TrimPrefix(imp, mod))
			}
		}
		slices.Sort(got)
		want = slices.Sorted(slices.Values(want))
		if !slices.Equal(got, want) {
			t.Errorf("%s imports %v; the README's Architecture table says %v", pkg, got, want)
		}
	}
	for pkg := range table {
		if !seen[pkg] {
			t.Errorf("the README's Architecture table has a row for %s, which is not a package of the module", pkg)
		}
	}
}
