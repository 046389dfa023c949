package yamlpos

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DecodeMapping decodes the mapping n into a map of V, one entry at a
// time, as a strict yaml.v3 decoder would (KnownFields: a key that names no
// field is a problem, and so is a repeated key), but in time linear in the
// number of entries: yaml.v3 looks for repeated keys by comparing every
// pair, which takes minutes for a mapping of 100,000 entries. The
// problems are returned as a *yaml.TypeError in yaml.v3's own wording,
// so a type's UnmarshalYAML can return it and the decoder reports them
// with the rest: the same problems a strict decoder finds, in line order
// (problems on one line may come in another order).
//
// A node that is not a mapping (null, or a mistake) is decoded by
// yaml.v3 as usual.
func DecodeMapping[V any](n *yaml.Node, out *map[string]V) error {
	if n.Kind != yaml.MappingNode {
		var plain map[string]V
		err := n.Decode(&plain)
		*out = plain
		return err
	}
	if dups := duplicateKeys(n); len(dups) > 0 {
		// As yaml.v3 does: a mapping with a repeated key is not decoded.
		return &yaml.TypeError{Errors: dups}
	}
	m := make(map[string]V, len(n.Content)/2)
	var problems []string
	vt := reflect.TypeFor[V]()
	cache := fieldCache{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var key string
		if err := k.Decode(&key); err != nil {
			problems = append(problems, Messages(err)...)
			continue
		}
		var val V
		var entry []string
		if err := v.Decode(&val); err != nil {
			entry = append(entry, Messages(err)...)
		}
		unknownFields(v, vt, cache, &entry)
		problems = append(problems, sortByLine(entry)...)
		m[key] = val
	}
	*out = m
	if len(problems) > 0 {
		return &yaml.TypeError{Errors: problems}
	}
	return nil
}

// duplicateKeys reports every pair of equal keys of the mapping n, in
// yaml.v3's words and order, using a map instead of comparing every pair.
func duplicateKeys(n *yaml.Node) []string {
	type kv struct {
		kind  yaml.Kind
		value string
	}
	at := make(map[kv][]int, len(n.Content)/2) // key -> indexes of its occurrences
	repeated := false
	for i := 0; i < len(n.Content); i += 2 {
		k := kv{n.Content[i].Kind, n.Content[i].Value}
		at[k] = append(at[k], i)
		repeated = repeated || len(at[k]) > 1
	}
	if !repeated {
		return nil
	}
	type pair struct{ i, j int }
	var pairs []pair
	for _, idx := range at {
		for a := range idx {
			for _, j := range idx[a+1:] {
				pairs = append(pairs, pair{idx[a], j})
			}
		}
	}
	slices.SortFunc(pairs, func(x, y pair) int { return cmp.Or(cmp.Compare(x.i, y.i), cmp.Compare(x.j, y.j)) })
	out := make([]string, len(pairs))
	for i, p := range pairs {
		ni, nj := n.Content[p.i], n.Content[p.j]
		out[i] = fmt.Sprintf("line %d: mapping key %#v already defined at line %d", nj.Line, nj.Value, ni.Line)
	}
	return out
}

// DecodeStrict decodes the document node n into out as a strict yaml.v3
// decoder (KnownFields) decodes the text it was parsed from: a key that
// names no field is a problem, reported with the type errors in line
// order, as one *yaml.TypeError. It lets a caller parse a document once
// and use the node tree both for values and for positions.
func DecodeStrict(n *yaml.Node, out any) error {
	var problems []string
	if err := n.Decode(out); err != nil {
		if _, ok := err.(*yaml.TypeError); !ok {
			return err
		}
		problems = Messages(err)
	}
	problems = append(problems, UnknownFields(n, reflect.TypeOf(out))...)
	if len(problems) == 0 {
		return nil
	}
	return &yaml.TypeError{Errors: sortByLine(problems)}
}

// Messages returns the messages of a yaml.v3 error: one per field of a
// *yaml.TypeError, else the error's text.
func Messages(err error) []string {
	if te, ok := err.(*yaml.TypeError); ok {
		return te.Errors
	}
	return []string{strings.TrimPrefix(err.Error(), "yaml: ")}
}

// UnknownFields returns a message for every mapping key below n that a
// strict yaml.v3 decoder (KnownFields) would refuse when decoding n into
// a value of type t, in yaml.v3's wording ("line N: field K not found in
// type T"), in document order. Aliases are not followed; yaml.Node
// values, maps with non-struct values and scalars have no fields to check,
// and a type with its own UnmarshalYAML checks its own.
func UnknownFields(n *yaml.Node, t reflect.Type) []string {
	var out []string
	unknownFields(n, t, fieldCache{}, &out)
	return out
}

var (
	nodeType        = reflect.TypeFor[yaml.Node]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

func unknownFields(n *yaml.Node, t reflect.Type, cache fieldCache, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n == nil || t == nodeType || reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := cache.fields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			f, ok := fields[k.Value]
			if !ok {
				*out = append(*out, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, t))
				continue
			}
			unknownFields(n.Content[i+1], f, cache, out)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			unknownFields(n.Content[i], t.Elem(), cache, out)
		}
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode:
		for _, item := range n.Content {
			unknownFields(item, t.Elem(), cache, out)
		}
	}
}

// structFields maps the YAML keys of struct type t to their field types,
// by yaml.v3's rules: the tag's name, else the field name in lower case;
// "-" skips a field; ",inline" structs lend their keys.
func structFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type)
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			for k, v := range structFields(f.Type) {
				m[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

// fieldCache holds structFields by type for one walk: a services file
// asks for the same few types 100,000 times.
type fieldCache map[reflect.Type]map[string]reflect.Type

func (c fieldCache) fields(t reflect.Type) map[string]reflect.Type {
	m, ok := c[t]
	if !ok {
		m = structFields(t)
		c[t] = m
	}
	return m
}

// sortByLine orders yaml.v3 messages ("line N: ...") by N, keeping the
// order of equal lines.
func sortByLine(msgs []string) []string {
	line := func(s string) int {
		var n int
		fmt.Sscanf(s, "line %d:", &n)
		return n
	}
	slices.SortStableFunc(msgs, func(a, b string) int { return cmp.Compare(line(a), line(b)) })
	return msgs
}
