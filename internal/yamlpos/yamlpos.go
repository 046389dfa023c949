// Package yamlpos finds where things are in a YAML document, so that
// configuration errors can say "file:line: message".
//
// It is a leaf: it imports nothing of ours, and both the node configuration
// (cmd) and the services file (zones) use it.
package yamlpos

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one problem the YAML decoder found.
type Problem struct {
	// Line is the line the decoder named, or 0 when it named none.
	Line int
	// Msg is the message without the "yaml: " and "line N: " prefixes.
	Msg string
}

var lineMsg = regexp.MustCompile(`^line (\d+): (.*)$`)

// Problems splits an error from yaml.v3's decoder into its problems: a
// [yaml.TypeError] holds one per field, other errors are one problem.
// Each message is one line: a line break quoted from the document (a
// multi-line value) is written as \n.
func Problems(err error) []Problem {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	out := make([]Problem, 0, len(msgs))
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		m = strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(m)
		if sm := lineMsg.FindStringSubmatch(m); sm != nil {
			line, _ := strconv.Atoi(sm[1])
			out = append(out, Problem{Line: line, Msg: sm[2]})
			continue
		}
		out = append(out, Problem{Msg: m})
	}
	return out
}

// Get returns the key and value nodes of key in the mapping n, or nils.
// An alias is followed.
func Get(n *yaml.Node, key string) (k, v *yaml.Node) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}

// Item returns the i-th element of the sequence n, or nil. An alias is
// followed.
func Item(n *yaml.Node, i int) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
		return nil
	}
	return n.Content[i]
}

// Line returns the line of the first node given that is not nil, or 0: the
// most precise position known.
func Line(nodes ...*yaml.Node) int {
	for _, n := range nodes {
		if n != nil {
			return n.Line
		}
	}
	return 0
}

// LineAt returns the line of the setting at path below n, each step a map
// key (string) or a sequence index (int): the line of the last key or
// element found, so a setting that is absent is placed at its deepest
// ancestor that is present. It returns n's own line when the first step is
// missing, and 0 for a nil n.
func LineAt(n *yaml.Node, path ...any) int {
	line := Line(n)
	for _, step := range path {
		var next *yaml.Node
		switch s := step.(type) {
		case string:
			var k *yaml.Node
			k, next = Get(n, s)
			if k != nil {
				line = k.Line
			}
		case int:
			next = Item(n, s)
			if next != nil {
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		return n.Alias
	}
	return n
}
