package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMakeFuzzListsEveryTarget: `make fuzz` runs every fuzz target of
// the module, so a new one cannot be left out of the long runs.
func TestMakeFuzzListsEveryTarget(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	if m := regexp.MustCompile(`(?s)FUZZ_TARGETS := (.*?)\nfuzz:`).FindSubmatch(mk); m != nil {
		for _, f := range strings.Fields(strings.ReplaceAll(string(m[1]), "\\", "")) {
			listed[f] = true
		}
	}
	fuzzFunc := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(f \*testing\.F\)`)
	found := 0
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pkg, _ := filepath.Rel("../..", filepath.Dir(path))
		for _, m := range fuzzFunc.FindAllSubmatch(b, -1) {
			found++
			if name := filepath.ToSlash(pkg) + ":" + string(m[1]); !listed[name] {
				t.Errorf("%s is not in the Makefile's FUZZ_TARGETS", name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found != len(listed) {
		t.Errorf("%d fuzz targets in the code, %d in FUZZ_TARGETS", found, len(listed))
	}
}
