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

// inZone reports whether the canonical name is origin or below it, as
// dns.IsSubDomain does for canonical names, without splitting either into
// labels (which allocates, and a zone is checked once per record). A
// match must end on a label boundary: the dot before the suffix must
// itself not be escaped ("a\.example.com." is not below "example.com.").
func inZone(origin, name string) bool {
	if origin == "." || name == origin {
		return true
	}
	if len(name) <= len(origin) || name[len(name)-len(origin):] != origin {
		return false
	}
	i := len(name) - len(origin) - 1 // the dot before the suffix
	if name[i] != '.' {
		return false
	}
	backslashes := 0
	for j := i - 1; j >= 0 && name[j] == '\\'; j-- {
		backslashes++
	}
	return backslashes%2 == 0
}
