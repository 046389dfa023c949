package drain

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The attacks of issue 8 on drains: one record with the largest stamp
// must not make a drain that can never be deleted, and the clock's
// logical counter must not wrap.

// maxStamp is the largest stamp there is: before records were checked, a
// record carrying it won over every later write.
var maxStamp = Stamp{Wall: math.MaxInt64, Logical: math.MaxUint32, Node: "dc1-a"}

func TestClockLogicalSaturates(t *testing.T) {
	var c Clock
	c.Observe(Stamp{Wall: t0.UnixNano(), Logical: math.MaxUint32, Node: "b"})
	prev := Stamp{Wall: t0.UnixNano(), Logical: math.MaxUint32, Node: "b"}
	for i := range 3 {
		s := c.Now("a", t0) // the wall clock has not moved
		if s.Compare(prev) <= 0 {
			t.Fatalf("Now #%d at the counter's maximum = %v, want after %v", i, s, prev)
		}
		prev = s
	}
	if got, want := prev.Wall, t0.UnixNano()+1; got != want || prev.Logical != 2 {
		t.Errorf("after the counter's maximum the clock reads %d.%d, want %d.2 (the wall part moved one nanosecond)", got, prev.Logical, want)
	}
}

// TestMergeRefusesFutureStamps: a record stamped more than MaxSkew ahead
// of the receiver's clock is refused, not stored, and does not move the
// clock; one within the skew is taken.
func TestMergeRefusesFutureStamps(t *testing.T) {
	now := time.Now()
	b := openStore(t, "b", "")
	tests := []struct {
		name  string
		stamp Stamp
		taken bool
	}{
		{"largest stamp", maxStamp, false},
		{"two minutes ahead", stamp(now.Add(2*time.Minute), 0, "a"), false},
		{"thirty seconds ahead", stamp(now.Add(30*time.Second), 0, "a"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rec("forged", false, tc.stamp)
			won, err := b.MergeFrom("a", []Record{r}, now)
			if tc.taken {
				if err != nil || len(won) != 1 {
					t.Fatalf("MergeFrom(%v) = %d won, %v; want taken", tc.stamp, len(won), err)
				}
				return
			}
			if !errors.Is(err, ErrFutureStamp) || len(won) != 0 {
				t.Fatalf("MergeFrom(%v) = %d won, %v; want refused with ErrFutureStamp", tc.stamp, len(won), err)
			}
			if got, ok := b.Get(r.ID); ok && got.Stamp == tc.stamp {
				t.Errorf("the refused record is stored: %+v", got)
			}
			if b.clock.wall > now.Add(time.Minute).UnixNano() {
				t.Errorf("the clock moved to %d, past now plus the skew", b.clock.wall)
			}
		})
	}
}

// TestMaxStampDrainIsDeletable is the attack: a peer sends a drain with
// the largest stamp. It must not be in force, and a drain made and
// deleted afterwards on the same node goes through.
func TestMaxStampDrainIsDeletable(t *testing.T) {
	now := time.Now()
	b := openStore(t, "b", "")
	forged := rec("forged", false, maxStamp)
	_, _ = b.Merge([]Record{forged}, now)
	if v := b.View(now); v.Len() != 0 {
		t.Fatalf("after a max-stamp record the view holds %d drains, want none", v.Len())
	}
	r, err := b.Create(Spec{Key: Key{Site: "dc1"}, Reason: "real"}, "ops", now)
	if err != nil {
		t.Fatalf("Create after the forged record: %v", err)
	}
	if _, err := b.Delete(r.ID, "ops", "all clear", now); err != nil {
		t.Fatalf("Delete after the forged record: %v, want the drain deleted", err)
	}
	if v := b.View(now); v.Len() != 0 {
		t.Errorf("after the delete the view holds %d drains, want none", v.Len())
	}
}

// TestOpenDropsFutureRecords: a state file written by a version that did
// not check, holding a max-stamp record, loads without it (and the file
// is rewritten without it), while a record stamped at the save is kept.
func TestOpenDropsFutureRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	now := time.Now().Truncate(time.Second).UTC()
	good := rec("kept", false, stamp(now, 0, "a"))
	good.Key = Key{Site: "dc2"}
	good.ID = good.Key.ID()
	sf := stateFile{Version: fileVersion, Node: "b", Saved: now, Clock: maxStamp,
		Records: []Record{rec("forged", false, maxStamp), good}}
	if err := writeFile(path, sf, nil); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, "b", path)
	got := s.Records()
	if len(got) != 1 || got[0].ID != good.ID {
		t.Fatalf("after Open Records() = %+v, want only %s", got, good.ID)
	}
	if s.clock.wall != good.Stamp.Wall {
		t.Errorf("clock resumed at %d, want %d (the file's clock is refused too)", s.clock.wall, good.Stamp.Wall)
	}
	if !s.saveIfDirty(now) {
		t.Fatal("save failed")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "forged") {
		t.Errorf("the state file still holds the forged record:\n%s", data)
	}
}

func TestMergeFromNamesTheSender(t *testing.T) {
	a := openStore(t, "a", "")
	r, err := a.Create(Spec{Key: Key{Site: "dc1"}, Reason: "fire alarm"}, "ops", t0)
	if err != nil {
		t.Fatal(err)
	}
	b := openStore(t, "b", "")
	if _, err := b.MergeFrom("relay", []Record{r}, t0); err != nil {
		t.Fatal(err)
	}
	ev := b.Events(0)
	if len(ev) != 1 || ev[0].From != "relay" || ev[0].Drain.Stamp.Node != "a" {
		t.Errorf("Events = %+v, want one from relay, written on a", ev)
	}
}
