package drain

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func TestAcksWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAcks()
		v1 := stamp(t0, 0, "a")
		v2 := stamp(t0, 1, "a")
		a.Applied("a", []Ack{{ID: "d1", Stamp: v1}})

		type result struct{ applied, missing []string }
		res := make(chan result, 1)
		go func() {
			ap, mi := a.Wait(t.Context(), "d1", v2, []string{"c", "a", "b"})
			res <- result{ap, mi}
		}()
		synctest.Wait()
		select {
		case r := <-res:
			t.Fatalf("Wait returned %v early", r)
		default:
		}
		a.Applied("a", []Ack{{ID: "d1", Stamp: v2}})
		a.Applied("b", []Ack{{ID: "d1", Stamp: stamp(t0, 5, "x")}}) // a later version counts
		synctest.Wait()
		select {
		case r := <-res:
			t.Fatalf("Wait returned %v with c missing", r)
		default:
		}
		a.Applied("c", []Ack{{ID: "d1", Stamp: v2}, {ID: "other", Stamp: v1}})
		synctest.Wait()
		r := <-res
		if !slices.Equal(r.applied, []string{"a", "b", "c"}) || len(r.missing) != 0 {
			t.Errorf("Wait = %v, %v; want all applied", r.applied, r.missing)
		}
	})
}

func TestAcksWaitBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAcks()
		v := stamp(t0, 0, "a")
		a.Applied("a", []Ack{{ID: "d1", Stamp: v}})
		a.Applied("b", []Ack{{ID: "d1", Stamp: stamp(t0.Add(-time.Second), 0, "a")}}) // an older version
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start := time.Now()
		applied, missing := a.Wait(ctx, "d1", v, []string{"a", "b"})
		if time.Since(start) != 2*time.Second {
			t.Errorf("Wait took %v, want the 2s bound", time.Since(start))
		}
		if !slices.Equal(applied, []string{"a"}) || !slices.Equal(missing, []string{"b"}) {
			t.Errorf("Wait = %v, %v; want [a] applied, [b] missing", applied, missing)
		}
	})
}
