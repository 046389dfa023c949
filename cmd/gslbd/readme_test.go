package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// yamlBlocks returns the ```yaml blocks of a Markdown file.
func yamlBlocks(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	rest := string(data)
	for {
		_, after, ok := strings.Cut(rest, "```yaml\n")
		if !ok {
			return blocks
		}
		block, tail, _ := strings.Cut(after, "```")
		blocks = append(blocks, block)
		rest = tail
	}
}

// TestReadmeExamples checks that the README's configuration examples are
// valid: the node configuration parses, and the services file loads beside a
// zone it can live in.
func TestReadmeExamples(t *testing.T) {
	blocks := yamlBlocks(t, "../../README.md")
	var node, services string
	for _, b := range blocks {
		switch {
		case strings.HasPrefix(b, "node:"):
			node = b
		case strings.HasPrefix(b, "sites:"):
			services = b
		}
	}
	if node == "" || services == "" {
		t.Fatalf("README.md lacks the node configuration or services example (found %d yaml blocks)", len(blocks))
	}
	if _, err := parseConfig("README.md", []byte(node)); err != nil {
		t.Errorf("README node configuration example: %v", err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "services.yaml"), services)
	writeFile(t, filepath.Join(dir, "example.com.zone"), failoverZone)
	writeFile(t, filepath.Join(dir, "gslbd.yaml"), `node: {name: n, site: dc1}
zones: [{origin: example.com., file: example.com.zone}]
services: services.yaml
`)
	if _, err := load(filepath.Join(dir, "gslbd.yaml")); err != nil {
		t.Errorf("README services example: %v", err)
	}

	// The traffic policy examples: a services file with regions, or one
	// service, which is put into a file of sites dc1 and dc2.
	n := 0
	for _, b := range blocks {
		first, _, _ := strings.Cut(b, "\n")
		var file string
		switch {
		case strings.HasPrefix(b, "regions:"):
			file = "sites: [dc1, dc2]\n" + b
		case strings.HasSuffix(first, ".example.com:"):
			file = "sites: [dc1, dc2]\nservices:\n  " + strings.ReplaceAll(strings.TrimSuffix(b, "\n"), "\n", "\n  ") + "\n"
		default:
			continue
		}
		n++
		writeFile(t, filepath.Join(dir, "services.yaml"), file)
		if _, err := load(filepath.Join(dir, "gslbd.yaml")); err != nil {
			t.Errorf("README policy example:\n%s\n%v", b, err)
		}
	}
	if n < 4 {
		t.Errorf("README has %d traffic policy examples, want one per policy (4)", n)
	}
}
