package drain

import (
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// guarded is a drain for the guardrail tests: "dc1", "dc1 talk",
// "dc1 @10.0.0.0/8", "dc1 talk @10.0.0.0/8,192.0.2.0/24", made at t0 plus
// sec seconds by node n, with force or deleted when flags say "force" or
// "deleted".
func guarded(t *testing.T, spec string, sec int, flags ...string) Record {
	t.Helper()
	var k Key
	for _, f := range strings.Fields(spec) {
		switch {
		case strings.HasPrefix(f, "@"):
			for _, p := range strings.Split(f[1:], ",") {
				k.Clients = append(k.Clients, netip.MustParsePrefix(p))
			}
		case k.Site == "":
			k.Site = f
		default:
			k.Service = f + ".example.com"
		}
	}
	k = k.Normalize()
	r := Record{ID: k.ID(), Key: k, Reason: spec, By: "ops", At: t0.Add(time.Duration(sec) * time.Second),
		Stamp: stamp(t0.Add(time.Duration(sec)*time.Second), 0, "n")}
	for _, f := range flags {
		switch f {
		case "force":
			r.Force = true
		case "deleted":
			r.Deleted = true
		}
	}
	return r
}

// TestGuard is the cluster-wide guardrail's rule, case by case: the drains
// are replayed by stamp, and one that would leave a service with no site
// for some clients is set aside unless forced.
func TestGuard(t *testing.T) {
	services := Services{
		"pay.example.com.":  {"dc2", "dc1"},
		"talk.example.com.": {"dc1", "dc2", "dc3"},
	}
	type want struct {
		aside    string // the set-aside drain's spec
		services string // the services it would have stranded, space-separated
	}
	tests := []struct {
		name string
		recs []Record
		want []want
	}{
		{"one drain", []Record{guarded(t, "dc1", 1)}, nil},
		{"the later of two drains that strand pay is set aside",
			[]Record{guarded(t, "dc1", 1), guarded(t, "dc2", 2)},
			[]want{{"dc2", "pay.example.com."}}},
		{"whichever site it drains",
			[]Record{guarded(t, "dc2", 1), guarded(t, "dc1", 2)},
			[]want{{"dc1", "pay.example.com."}}},
		{"a forced drain is never set aside",
			[]Record{guarded(t, "dc1", 1), guarded(t, "dc2", 2, "force")},
			nil},
		{"a drain after a forced one still is",
			[]Record{guarded(t, "dc1", 1, "force"), guarded(t, "dc2", 2)},
			[]want{{"dc2", "pay.example.com."}}},
		{"drains of one service leave the others alone",
			[]Record{guarded(t, "dc1 talk", 1), guarded(t, "dc2 talk", 2)},
			nil},
		{"a third site drained strands talk only",
			[]Record{guarded(t, "dc1 talk", 1), guarded(t, "dc2 talk", 2), guarded(t, "dc3", 3)},
			[]want{{"dc3", "talk.example.com."}}},
		{"drills for different clients do not strand anyone",
			[]Record{guarded(t, "dc1 @10.0.0.0/8", 1), guarded(t, "dc2 @192.0.2.0/24", 2)},
			nil},
		{"drills for overlapping clients do",
			[]Record{guarded(t, "dc1 @10.0.0.0/8", 1), guarded(t, "dc2 @10.1.0.0/16", 2)},
			[]want{{"dc2 @10.1.0.0/16", "pay.example.com."}}},
		{"a drill on top of a whole-site drain does",
			[]Record{guarded(t, "dc1", 1), guarded(t, "dc2 pay @2001:db8::/32", 2)},
			[]want{{"dc2 pay @2001:db8::/32", "pay.example.com."}}},
		{"the clients every site is drained for are what counts",
			[]Record{guarded(t, "dc1 talk @10.0.0.0/8", 1), guarded(t, "dc2 talk @11.0.0.0/8", 2), guarded(t, "dc3 @10.0.0.0/8,11.0.0.0/8", 3)},
			nil},
		{"a set-aside drain does not count against later ones",
			[]Record{guarded(t, "dc1", 1), guarded(t, "dc2", 2), guarded(t, "dc3", 3)},
			[]want{{"dc2", "pay.example.com."}}},
		{"ended drains do not count",
			[]Record{guarded(t, "dc1", 1, "deleted"), guarded(t, "dc2", 2)},
			nil},
		{"a drain of a service not defined strands nothing",
			[]Record{guarded(t, "dc1", 1), guarded(t, "dc2 gone", 2)},
			nil},
		{"one drain can strand two services",
			[]Record{guarded(t, "dc1", 1), guarded(t, "dc3 talk", 2), guarded(t, "dc2", 3)},
			[]want{{"dc2", "pay.example.com. talk.example.com."}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every order of arrival gives the same outcome.
			for range 10 {
				recs := slices.Clone(tc.recs)
				rand.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
				v := NewGuardedView(recs, t0.Add(time.Hour), services)
				var got []want
				for _, sa := range v.SetAside() {
					got = append(got, want{sa.Drain.Reason, strings.Join(sa.Services, " ")})
				}
				if !slices.Equal(got, tc.want) {
					t.Fatalf("set aside = %v, want %v", got, tc.want)
				}
				for _, sa := range v.SetAside() {
					if v.Drained("pay.example.com.", sa.Drain.Site, netip.MustParseAddr("10.1.2.3")) &&
						v.Drained("pay.example.com.", "dc1", netip.MustParseAddr("10.1.2.3")) &&
						v.Drained("pay.example.com.", "dc2", netip.MustParseAddr("10.1.2.3")) {
						t.Errorf("pay is drained everywhere for 10.1.2.3 with %s set aside", sa.Drain.Reason)
					}
				}
				if n := v.Len() + len(v.SetAside()); n != countActive(recs) {
					t.Errorf("applied %d + set aside %d, want the %d drains in force", v.Len(), len(v.SetAside()), countActive(recs))
				}
			}
		})
	}
}

func countActive(recs []Record) int {
	n := 0
	for _, r := range recs {
		if r.Active(t0.Add(time.Hour)) {
			n++
		}
	}
	return n
}

// TestGuardSameMomentTwoNodes: two drains stamped at the same wall time
// on two nodes are ordered by the node name, as the stamps are.
func TestGuardSameMomentTwoNodes(t *testing.T) {
	a, b := guarded(t, "dc1", 1), guarded(t, "dc2", 1)
	a.Stamp.Node, b.Stamp.Node = "node-b", "node-a"
	v := NewGuardedView([]Record{a, b}, t0.Add(time.Hour), Services{"pay.example.com.": {"dc1", "dc2"}})
	if got := v.SetAside(); len(got) != 1 || got[0].Drain.ID != a.ID {
		t.Errorf("set aside = %+v, want the dc1 drain (stamped by node-b, the higher stamp)", got)
	}
	if v := NewView([]Record{a, b}, t0.Add(time.Hour)); len(v.SetAside()) != 0 || v.Len() != 2 {
		t.Errorf("NewView without services set aside %d, applied %d; want none set aside", len(v.SetAside()), v.Len())
	}
}

// TestGuardChanges: the audit trail learns when a drain is set aside and
// when one set aside applies because the drain that blocked it ended.
func TestGuardChanges(t *testing.T) {
	services := Services{"pay.example.com.": {"dc1", "dc2"}}
	dc1, dc2 := guarded(t, "dc1", 1), guarded(t, "dc2", 2)
	now := t0.Add(time.Hour)
	first := NewGuardedView([]Record{dc1, dc2}, now, services)
	changes := GuardChanges(nil, first)
	if len(changes) != 1 || changes[0].Action != ActionSetAside || changes[0].Drain.ID != dc2.ID ||
		!slices.Equal(changes[0].Services, []string{"pay.example.com."}) {
		t.Fatalf("GuardChanges(nil, first) = %+v, want dc2 set aside for pay", changes)
	}
	if changes := GuardChanges(first, NewGuardedView([]Record{dc2, dc1}, now, services)); len(changes) != 0 {
		t.Errorf("GuardChanges with nothing changed = %+v, want none", changes)
	}
	ended := dc1
	ended.Deleted, ended.Stamp = true, stamp(t0.Add(3*time.Second), 0, "n")
	changes = GuardChanges(first, NewGuardedView([]Record{ended, dc2}, now, services))
	if len(changes) != 1 || changes[0].Action != ActionApply || changes[0].Drain.ID != dc2.ID {
		t.Errorf("GuardChanges after dc1 ended = %+v, want dc2 applied", changes)
	}

	s, err := Open(StoreConfig{Node: "n"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.NoteGuard(now, GuardChanges(nil, first))
	ev := s.Events(0)
	if len(ev) != 1 || ev[0].Action != ActionSetAside || ev[0].Via != ViaGuardrail || ev[0].Drain.ID != dc2.ID ||
		!slices.Equal(ev[0].Services, []string{"pay.example.com."}) {
		t.Errorf("events = %+v, want dc2 set aside by the guardrail", ev)
	}
	select {
	case <-s.Changed():
		t.Error("NoteGuard signalled Changed")
	default:
	}
}

// TestRecordForce: force is kept in the record and on the wire; a record
// from a node that does not know the field is not forced.
func TestRecordForce(t *testing.T) {
	s, err := Open(StoreConfig{Node: "n"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Create(Spec{Key: Key{Site: "dc1"}, Reason: "forced", Force: true}, "ops", t0)
	if err != nil || !r.Force {
		t.Fatalf("Create(force) = %+v, %v; want a forced record", r, err)
	}
	b, _ := json.Marshal(r)
	var back Record
	if err := json.Unmarshal(b, &back); err != nil || !back.Force || !strings.Contains(string(b), `"force":true`) {
		t.Errorf("round trip of %s = %+v, %v; want force", b, back, err)
	}
	old := strings.Replace(string(b), `,"force":true`, "", 1)
	back = Record{}
	if err := json.Unmarshal([]byte(old), &back); err != nil || back.Force || back.Validate() != nil {
		t.Errorf("record without the field %s = %+v, %v; want valid and not forced", old, back, err)
	}
	plain, _ := json.Marshal(Record{ID: "x"})
	if strings.Contains(string(plain), "force") {
		t.Errorf("an unforced record encodes %s, want no force field (compatible with older nodes)", plain)
	}
}
