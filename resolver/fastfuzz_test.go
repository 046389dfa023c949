package resolver

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// FuzzFastPath holds the fast path to the general one on any packet:
// whenever the fast path answers, its reply must be the general path's,
// byte for byte (checkFastPacket), and the general path must unpack and
// answer the packet too. The states cover every answer shape the fast
// path prepacks: plain zones, services with sites up, down, drained for
// everyone and for some clients.
func FuzzFastPath(f *testing.F) {
	digSet, orgSet := loadDigSet(f), testSet(f)
	states := []State{
		{Zones: digSet},
		{Zones: digSet, Health: allDown{}},
		{Zones: orgSet},
		{Zones: orgSet, Health: amsDown},
		{Zones: orgSet, Drains: scopedDrains{"www.example.org.|ams": false}},
		{Zones: orgSet, Health: amsDown, Drains: scopedDrains{"www.example.org.|fra": true}},
	}
	var published []*state
	for _, s := range states {
		r, _ := newResolver(f, Config{})
		r.Publish(s)
		published = append(published, r.cur.Load())
	}
	clients := []netip.Addr{client, netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8::53")}

	rng := rand.New(rand.NewPCG(8, 8))
	names := append(queryNames(digSet), queryNames(orgSet)...)
	for i := range 200 {
		f.Add(uint8(i), randomQuery(rng, names))
	}

	f.Fuzz(func(t *testing.T, which uint8, pkt []byte) {
		st := published[int(which)%len(published)]
		c := clients[int(which)/len(published)%len(clients)]
		checkFastPacket(t, st, pkt, c)
	})
}
