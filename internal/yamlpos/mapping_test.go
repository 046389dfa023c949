package yamlpos

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type inner struct {
	Port     *int          `yaml:"port"`
	Interval time.Duration `yaml:"interval"`
}

type entry struct {
	Name  string              `yaml:"name"`
	Check *inner              `yaml:"check"`
	Sites map[string][]string `yaml:"sites"`
	List  []inner             `yaml:"list"`
	Raw   yaml.Node           `yaml:"raw"`
	Skip  string              `yaml:"-"`
	Plain int
}

// fast decodes its mapping with DecodeMapping; slow is the same document
// decoded by yaml.v3 alone.
type fastMap map[string]*entry

func (m *fastMap) UnmarshalYAML(n *yaml.Node) error {
	return DecodeMapping(n, (*map[string]*entry)(m))
}

type fast struct {
	Top   string  `yaml:"top"`
	Items fastMap `yaml:"items"`
}

type slow struct {
	Top   string            `yaml:"top"`
	Items map[string]*entry `yaml:"items"`
}

func strict[T any](doc string) (T, []string) {
	var v T
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&v); err != nil {
		return v, Messages(err)
	}
	return v, nil
}

// TestDecodeMappingAsStrictDecoder: DecodeMapping finds exactly the
// problems a strict yaml.v3 decoder finds, in the same words and order,
// and decodes the same values.
func TestDecodeMappingAsStrictDecoder(t *testing.T) {
	for _, doc := range []string{
		"top: x\nitems:\n  a: {name: one, check: {port: 53}}\n  b: {sites: {dc1: [x, y]}, list: [{port: 1}], raw: [1, 2], plain: 3}\n",
		"items:\n  a: {name: one}\n  a: {name: two}\n  b: {}\n  a: {name: three}\n",
		"items:\n  a: {nmae: one, check: {prot: 53, interval: soon}}\n  b:\n    list:\n      - {port: x}\n      - {bad: 1}\n",
		"items:\n  a: {name: [not, a, string], check: 7}\n  b: {skip: x}\n",
		"items: [not, a, mapping]\n",
		"items:\n",
		"items: {}\n",
		"top: x\nitems:\n  a: {check: {port: 1}}\n  b: {check: {port: 2}}\nunknown: 1\n",
	} {
		fv, fp := strict[fast](doc)
		sv, sp := strict[slow](doc)
		for i := range fp {
			fp[i] = strings.ReplaceAll(fp[i], "yamlpos.fast", "yamlpos.slow")
		}
		// The same problems, in the same order of lines (problems on one
		// line may come in another order).
		if !slices.Equal(slices.Sorted(slices.Values(fp)), slices.Sorted(slices.Values(sp))) ||
			!slices.Equal(lines(fp), lines(sp)) {
			t.Errorf("%q:\nDecodeMapping problems %q\nyaml.v3 problems       %q", doc, fp, sp)
		}
		if len(sp) == 0 && !reflect.DeepEqual(map[string]*entry(fv.Items), sv.Items) {
			t.Errorf("%q: decoded %v, yaml.v3 %v", doc, fv.Items, sv.Items)
		}
	}
}

func lines(msgs []string) []int {
	out := make([]int, len(msgs))
	for i, m := range msgs {
		fmt.Sscanf(m, "line %d:", &out[i])
	}
	return out
}

// TestDecodeMappingLinear decodes 100,000 entries, which yaml.v3 alone
// takes minutes for (it compares every pair of keys); a repeated key at
// the end is still found.
func TestDecodeMappingLinear(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("items:\n")
	for i := range 100_000 {
		fmt.Fprintf(&b, "  e%d: {name: n%d}\n", i, i)
	}
	v, problems := strict[fast](b.String())
	if len(problems) > 0 || len(v.Items) != 100_000 || v.Items["e99999"].Name != "n99999" {
		t.Errorf("decoded %d entries, e99999 = %+v, problems %q", len(v.Items), v.Items["e99999"], problems)
	}
	b.WriteString("  e7: {name: again}\n")
	_, problems = strict[fast](b.String())
	want := []string{`line 100002: mapping key "e7" already defined at line 9`}
	if !slices.Equal(problems, want) {
		t.Errorf("problems = %q, want %q", problems, want)
	}
}
