package resolver

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestAheadMatchesFast answers batches of random queries (some the fast
// path leaves to the general one, some not queries at all) looked at
// ahead, as the UDP reader does, and one at a time: the replies and what
// they count must be the same. TestFastPathMatchesGeneral holds the one
// at a time answers to the general path.
func TestAheadMatchesFast(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	digSet, orgSet := loadDigSet(t), testSet(t)
	r, _ := newResolver(t, Config{})
	var a ahead
	var name [256]byte
	answered := 0
	for _, s := range []State{
		{Zones: digSet},
		{Zones: digSet, Health: allDown{}},
		{Zones: orgSet, Health: amsDown},
		{Zones: orgSet, Drains: scopedDrains{"www.example.org.|ams": false}},
	} {
		r.Publish(s)
		st := r.cur.Load()
		names := queryNames(s.Zones)
		for range 100 {
			pkts := make([][]byte, 1+rng.IntN(aheadMax))
			for i := range pkts {
				switch rng.IntN(10) {
				case 0:
					pkts[i] = []byte{1, 2, 3} // too short
				case 1:
					p := randomQuery(rng, names)
					p[2] |= 0x80 // a response
					pkts[i] = p
				default:
					pkts[i] = randomQuery(rng, names)
				}
			}
			a.prepare(st, pkts, 1)
			for i, pkt := range pkts {
				want, wok := fast(st, pkt, nil, name[:])
				var got fastHit
				gok := false
				if a.prepared(st, i) {
					got, gok = a.answer(i, pkt, nil)
				} else if len(pkts) > 1 {
					t.Fatalf("query %d of a batch of %d not prepared", i, len(pkts))
				} else {
					got, gok = fast(st, pkt, nil, name[:])
				}
				if gok != wok || !bytes.Equal(got.reply, want.reply) || got.zone != want.zone || got.cell != want.cell || got.slot != want.slot {
					t.Fatalf("query %x: looked at ahead %v %x (cell %d, slot %d), alone %v %x (cell %d, slot %d)",
						pkt, gok, got.reply, got.cell, got.slot, wok, want.reply, want.cell, want.slot)
				}
				if gok {
					answered++
				}
			}
			a.done()
		}
	}
	if answered == 0 {
		t.Fatal("the fast path answered nothing")
	}
}
