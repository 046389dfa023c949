package yamlpos

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const doc = `a:
  b: 1
  list:
    - x
    - y
c: &anchor
  d: 2
e: *anchor
`

func TestLineAt(t *testing.T) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	top := root.Content[0]
	tests := []struct {
		path []any
		want int
	}{
		{nil, 1},
		{[]any{"a"}, 1},
		{[]any{"a", "b"}, 2},
		{[]any{"a", "list", 1}, 5},
		{[]any{"a", "list", 7}, 3},        // missing index: the list
		{[]any{"a", "nope", "deeper"}, 1}, // missing key: its parent
		{[]any{"e", "d"}, 7},              // through the alias
		{[]any{"zzz"}, 1},
	}
	for _, tc := range tests {
		if got := LineAt(top, tc.path...); got != tc.want {
			t.Errorf("LineAt(%v) = %d, want %d", tc.path, got, tc.want)
		}
	}
	if got := LineAt(nil, "a"); got != 0 {
		t.Errorf("LineAt(nil) = %d, want 0", got)
	}
	k, v := Get(top, "a")
	if Line(nil, v, k) != 2 || Line(k, v) != 1 || Line() != 0 {
		t.Errorf("Line: got %d, %d, %d; want 2, 1, 0", Line(nil, v, k), Line(k, v), Line())
	}
	if Item(v, 0) != nil {
		t.Errorf("Item of a mapping = non-nil, want nil")
	}
}

func TestProblems(t *testing.T) {
	var v struct {
		A int `yaml:"a"`
	}
	tests := []struct {
		in   string
		want string
	}{
		{"a: x\nb: 1\n", "[{1 cannot unmarshal !!str `x` into int} {2 field b not found in type struct { A int \"yaml:\\\"a\\\"\" }}]"},
		{"a: [1\n", "[{1 did not find expected ',' or ']'}]"},
	}
	for _, tc := range tests {
		dec := yaml.NewDecoder(bytes.NewReader([]byte(tc.in)))
		dec.KnownFields(true)
		err := dec.Decode(&v)
		if err == nil {
			t.Fatalf("Decode(%q) = nil, want an error", tc.in)
		}
		if got := fmt.Sprint(Problems(err)); got != tc.want {
			t.Errorf("Problems(%v) = %s, want %s", err, got, tc.want)
		}
	}
}

// TestProblemsOneLine: a message quoting a multi-line value stays on one
// line, so that every line of a report starts with file:line.
func TestProblemsOneLine(t *testing.T) {
	var v struct{ A int }
	err := yaml.Unmarshal([]byte("a: \"x\\ny\""), &v)
	p := Problems(err)
	if len(p) != 1 || p[0].Line != 1 || strings.Contains(p[0].Msg, "\n") || !strings.Contains(p[0].Msg, `x\ny`) {
		t.Errorf("Problems = %+v, want one problem on line 1 with the line break written as \\n", p)
	}
}
