package drain

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func stamp(wall time.Time, logical uint32, node string) Stamp {
	return Stamp{Wall: wall.UnixNano(), Logical: logical, Node: node}
}

// rec builds a record for site dc1, every service and client.
func rec(reason string, deleted bool, s Stamp) Record {
	k := Key{Site: "dc1"}
	return Record{ID: k.ID(), Key: k, Reason: reason, By: "ops", At: time.Unix(0, s.Wall), Deleted: deleted, Stamp: s}
}

func TestClock(t *testing.T) {
	var c Clock
	a := c.Now("a", t0)
	b := c.Now("a", t0) // same physical time: logical moves
	if b.Compare(a) <= 0 {
		t.Errorf("Now twice at one time = %v then %v, want increasing", a, b)
	}
	back := c.Now("a", t0.Add(-time.Hour)) // the wall clock stepped back
	if back.Compare(b) <= 0 {
		t.Errorf("Now after the clock stepped back = %v, want after %v", back, b)
	}
	// A stamp from a node whose clock is an hour ahead: our next write
	// still stamps later, though our wall clock is behind.
	remote := stamp(t0.Add(time.Hour), 7, "b")
	c.Observe(remote)
	next := c.Now("a", t0)
	if next.Compare(remote) <= 0 {
		t.Errorf("Now after Observe(%v) = %v, want later", remote, next)
	}
	c.Observe(stamp(t0, 0, "c")) // behind: no effect
	if again := c.Now("a", t0); again.Compare(next) <= 0 {
		t.Errorf("Now after observing an old stamp = %v, want after %v", again, next)
	}
}

func TestStampCompare(t *testing.T) {
	tests := []struct {
		a, b Stamp
		want int
	}{
		{stamp(t0, 0, "a"), stamp(t0, 0, "a"), 0},
		{stamp(t0, 0, "a"), stamp(t0.Add(1), 0, "a"), -1},
		{stamp(t0, 1, "a"), stamp(t0, 0, "b"), 1},
		{stamp(t0, 0, "a"), stamp(t0, 0, "b"), -1},
	}
	for _, tc := range tests {
		if got := tc.a.Compare(tc.b); got != tc.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestKeyNormalizeAndID(t *testing.T) {
	a := Key{Site: "dc1", Service: "Talk.Example.com", Clients: []netip.Prefix{
		netip.MustParsePrefix("10.1.2.3/8"), netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("10.0.0.0/8"),
	}}
	b := Key{Site: "dc1", Service: "talk.example.com.", Clients: []netip.Prefix{
		netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("::ffff:10.0.0.0/104"),
	}}
	na := a.Normalize()
	if got, want := fmt.Sprint(na.Clients), "[10.0.0.0/8 192.168.0.0/16]"; got != want {
		t.Errorf("Normalize().Clients = %s, want %s", got, want)
	}
	if na.Service != "talk.example.com." {
		t.Errorf("Normalize().Service = %q, want talk.example.com.", na.Service)
	}
	if a.ID() != b.ID() {
		t.Errorf("equal scopes have IDs %s and %s, want equal", a.ID(), b.ID())
	}
	for _, other := range []Key{{Site: "dc2"}, {Site: "dc1"}, {Site: "dc1", Service: "talk.example.com."}} {
		if other.ID() == a.ID() {
			t.Errorf("scope %s has the ID of %s", other, a)
		}
	}
	if id := (Key{Site: "dc1"}).ID(); len(id) != 12 {
		t.Errorf("ID() = %q, want 12 hex digits", id)
	}
}

// TestMergeRule applies two writes to one drain in both orders; the
// result must be the same, and the one the rule names.
func TestMergeRule(t *testing.T) {
	create := func(s Stamp) Record { return rec("fire alarm", false, s) }
	del := func(s Stamp) Record { return rec("all clear", true, s) }
	tests := []struct {
		name string
		a, b Record
		want string // "a" or "b": which survives
	}{
		{"delete after create", create(stamp(t0, 0, "n1")), del(stamp(t0.Add(time.Second), 0, "n2")), "b"},
		{"create after delete (re-drain)", del(stamp(t0, 0, "n1")), create(stamp(t0.Add(time.Second), 0, "n2")), "b"},
		{"concurrent: create's clock ahead", create(stamp(t0.Add(time.Millisecond), 0, "n1")), del(stamp(t0, 0, "n2")), "a"},
		{"concurrent: same wall, logical decides", create(stamp(t0, 1, "n1")), del(stamp(t0, 0, "n2")), "a"},
		{"concurrent: same wall and logical, node decides", create(stamp(t0, 0, "n2")), del(stamp(t0, 0, "n1")), "a"},
		{"concurrent creates: later reason wins", create(stamp(t0, 0, "n1")), rec("power feed", false, stamp(t0, 0, "n3")), "b"},
		{"equal stamps: tombstone wins", create(stamp(t0, 0, "n1")), del(stamp(t0, 0, "n1")), "b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.a
			if tc.want == "b" {
				want = tc.b
			}
			for _, order := range [][]Record{{tc.a, tc.b}, {tc.b, tc.a}, {tc.a, tc.b, tc.a, tc.b}} {
				m := map[string]Record{}
				for _, r := range order {
					Merge(m, r)
				}
				if got := m[want.ID]; !sameRecord(got, want) {
					t.Errorf("merge in order %v = %+v, want %+v", reasons(order), got, want)
				}
			}
		})
	}
}

// TestMergeConverges applies every permutation of a set of writes to one
// drain, made on three nodes, and checks that every order ends in the same
// table: the write with the highest stamp.
func TestMergeConverges(t *testing.T) {
	writes := []Record{
		rec("n1 drains", false, stamp(t0, 0, "n1")),
		rec("n2 undrains", true, stamp(t0, 0, "n2")),
		rec("n3 drains", false, stamp(t0.Add(-time.Second), 4, "n3")),
		rec("n1 undrains", true, stamp(t0, 1, "n1")),
		rec("n2 drains again", false, stamp(t0, 1, "n2")),
	}
	var want map[string]Record
	permute(writes, func(order []Record) {
		m := map[string]Record{}
		for _, r := range order {
			Merge(m, r)
		}
		if want == nil {
			want = m
			return
		}
		if !maps.EqualFunc(m, want, sameRecord) {
			t.Fatalf("order %v ends in %v, another order in %v", reasons(order), m, want)
		}
	})
	if got := want[writes[0].ID].Reason; got != "n2 drains again" {
		t.Errorf("winner = %q, want the highest stamp, %q", got, "n2 drains again")
	}
}

// TestDeleteAfterCreateWinsDespiteSkew: node b's wall clock is 50 seconds
// behind node a's (within the allowed skew of a minute; beyond it, a's
// record is refused, see TestMergeRefusesFutureStamps), yet b's delete of
// a's drain, made after seeing it, wins everywhere.
func TestDeleteAfterCreateWinsDespiteSkew(t *testing.T) {
	a, b := openStore(t, "a", ""), openStore(t, "b", "")
	r, err := a.Create(Spec{Key: Key{Site: "dc1"}, Reason: "fire alarm"}, "ops", t0)
	if err != nil {
		t.Fatal(err)
	}
	behind := t0.Add(-50 * time.Second)
	if _, err := b.Merge([]Record{r}, behind); err != nil {
		t.Fatal(err)
	}
	d, err := b.Delete(r.ID, "ops", "all clear", behind)
	if err != nil {
		t.Fatal(err)
	}
	if d.Stamp.Compare(r.Stamp) <= 0 {
		t.Fatalf("delete stamp %v not after create stamp %v", d.Stamp, r.Stamp)
	}
	if _, err := a.Merge([]Record{d}, t0); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Store{a, b} {
		if got, _ := s.Get(r.ID); !got.Deleted {
			t.Errorf("store %s holds %+v, want the tombstone", s.cfg.Node, got)
		}
	}
}

func TestRecordValidate(t *testing.T) {
	good := rec("x", false, stamp(t0, 0, "n1"))
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(good) = %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Record)
	}{
		{"no site", func(r *Record) { r.Site = "" }},
		{"id of another scope", func(r *Record) { r.ID = "000000000000" }},
		{"no stamp", func(r *Record) { r.Stamp = Stamp{} }},
		{"long reason", func(r *Record) { r.Reason = string(make([]byte, MaxReason+1)) }},
	}
	for _, tc := range tests {
		r := good
		tc.mod(&r)
		if err := r.Validate(); err == nil {
			t.Errorf("%s: Validate = nil, want an error", tc.name)
		}
	}
}

func sameRecord(a, b Record) bool {
	return a.ID == b.ID && a.Reason == b.Reason && a.Deleted == b.Deleted && a.Stamp == b.Stamp &&
		slices.Equal(a.Clients, b.Clients) && a.Expires.Equal(b.Expires)
}

func reasons(rs []Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Reason
	}
	return out
}

func permute(rs []Record, f func([]Record)) {
	var rec func(k int)
	rec = func(k int) {
		if k == len(rs) {
			f(slices.Clone(rs))
			return
		}
		for i := k; i < len(rs); i++ {
			rs[k], rs[i] = rs[i], rs[k]
			rec(k + 1)
			rs[k], rs[i] = rs[i], rs[k]
		}
	}
	rec(0)
}
