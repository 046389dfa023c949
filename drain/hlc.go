package drain

import (
	"cmp"
	"fmt"
	"math"
	"strings"
	"time"
)

// Stamp versions one write: a hybrid logical clock reading and the node
// that made the write. Stamps are totally ordered by [Stamp.Compare].
type Stamp struct {
	// Wall is the clock's physical part, in Unix nanoseconds.
	Wall int64 `json:"wall"`
	// Logical orders writes within one Wall value.
	Logical uint32 `json:"logical"`
	// Node is the name of the node that made the write; it breaks ties.
	Node string `json:"node"`
}

// Compare orders stamps by Wall, then Logical, then Node. It returns -1,
// 0 or +1.
func (s Stamp) Compare(o Stamp) int {
	if c := cmp.Compare(s.Wall, o.Wall); c != 0 {
		return c
	}
	if c := cmp.Compare(s.Logical, o.Logical); c != 0 {
		return c
	}
	return strings.Compare(s.Node, o.Node)
}

// IsZero reports whether s is the zero stamp (no write).
func (s Stamp) IsZero() bool { return s == Stamp{} }

// String formats s as "wall.logical@node", with wall in RFC 3339.
func (s Stamp) String() string {
	return fmt.Sprintf("%s.%d@%s", time.Unix(0, s.Wall).UTC().Format(time.RFC3339Nano), s.Logical, s.Node)
}

// Clock is a hybrid logical clock. It is a plain value: [Store] guards it
// with its lock. The zero value starts at the epoch.
type Clock struct {
	wall    int64
	logical uint32
}

// Now returns the stamp of a local write by node at physical time now: it
// is later than every stamp the clock has issued or observed. The logical
// counter never wraps: at its maximum the wall part moves on by one
// nanosecond instead, which keeps stamps increasing. (A wall part that
// could reach its own maximum is kept out by [Store], which refuses
// stamps far ahead of its clock.)
func (c *Clock) Now(node string, now time.Time) Stamp {
	switch pt := now.UnixNano(); {
	case pt > c.wall:
		c.wall, c.logical = pt, 0
	case c.logical == math.MaxUint32:
		c.wall, c.logical = c.wall+1, 0
	default:
		c.logical++
	}
	return Stamp{Wall: c.wall, Logical: c.logical, Node: node}
}

// Observe moves the clock forward to s if s is ahead of it, so that the
// next local write stamps later than s.
func (c *Clock) Observe(s Stamp) {
	if s.Wall > c.wall || (s.Wall == c.wall && s.Logical > c.logical) {
		c.wall, c.logical = s.Wall, s.Logical
	}
}
