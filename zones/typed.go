package zones

import "slices"

// typed holds values by RR type for one owner name, ordered by type. A name
// owns few types, so a short slice is smaller and faster than a map, which
// matters with a million names.
type typed[T any] []typedSet[T]

type typedSet[T any] struct {
	t uint16
	v []T
}

// get returns the values of type t.
func (s typed[T]) get(t uint16) []T {
	for i := range s {
		if s[i].t == t {
			return s[i].v
		}
	}
	return nil
}

// add appends v to the values of type t.
func (s *typed[T]) add(t uint16, v T) {
	i, found := slices.BinarySearchFunc(*s, t, func(e typedSet[T], t uint16) int { return int(e.t) - int(t) })
	if !found {
		*s = slices.Insert(*s, i, typedSet[T]{t: t})
	}
	(*s)[i].v = append((*s)[i].v, v)
}

// types returns the types held, sorted.
func (s typed[T]) types() []uint16 {
	out := make([]uint16, len(s))
	for i := range s {
		out[i] = s[i].t
	}
	return out
}
