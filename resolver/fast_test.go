package resolver

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

// general is the reply the general path writes for the UDP packet pkt
// from client: what ServeDNS packs.
func general(t testing.TB, st *state, pkt []byte, client netip.Addr) []byte {
	t.Helper()
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		t.Fatalf("the fast path answered a packet miekg does not unpack (%v): %x", err, pkt)
	}
	m := answer(st, req, client, false)
	if m == nil {
		t.Fatalf("the fast path answered a packet the general path drops: %v", req)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("pack general reply: %v", err)
	}
	return b
}

// checkFastPacket runs pkt through the fast path and, when it answers,
// requires the general path's bytes. It reports whether the fast path
// answered.
func checkFastPacket(t testing.TB, st *state, pkt []byte, client netip.Addr) bool {
	t.Helper()
	var name [256]byte
	hit, ok := fast(st, pkt, nil, name[:])
	if !ok {
		return false
	}
	want := general(t, st, pkt, client)
	if !bytes.Equal(hit.reply, want) {
		req, g, w := new(dns.Msg), new(dns.Msg), new(dns.Msg)
		_ = req.Unpack(pkt)
		_ = g.Unpack(hit.reply)
		_ = w.Unpack(want)
		t.Errorf("fast and general replies differ\nquery:\n%v\nfast %x:\n%v\ngeneral %x:\n%v", req, hit.reply, g, want, w)
	}
	return true
}

func checkFast(t testing.TB, st *state, req *dns.Msg, client netip.Addr) bool {
	t.Helper()
	pkt, err := req.Pack()
	if err != nil {
		t.Fatalf("pack query: %v", err)
	}
	return checkFastPacket(t, st, pkt, client)
}

// scopedDrains is a fake Drains that says which of its drains are for
// some clients only: "service|site" drained for every client when true,
// for clients in 10.0.0.0/8 only when false.
type scopedDrains map[string]bool

func (d scopedDrains) Drained(service, site string, c netip.Addr) bool {
	all, ok := d[service+"|"+site]
	return ok && (all || netip.MustParsePrefix("10.0.0.0/8").Contains(c))
}

func (d scopedDrains) ClientScoped(service, site string) bool {
	all, ok := d[service+"|"+site]
	return ok && !all
}

// allDown counts every endpoint down.
type allDown struct{}

func (allDown) Up(string) bool { return false }

// randomHealth counts each endpoint up or down at random, fixed per ID.
func randomHealth(rng *rand.Rand, set *zones.Set) health {
	h := health{}
	for _, svc := range set.Services() {
		for _, site := range svc.Sites {
			for _, ep := range site.Endpoints {
				h[ep.ID] = rng.IntN(3) > 0
			}
		}
	}
	return h
}

// digQueries reads the queries of the dig cases in testdata/dig, built as
// dig builds them: RD set, EDNS with a 1232-byte buffer and a cookie.
func digQueries(t *testing.T) []*dns.Msg {
	t.Helper()
	files, _ := filepath.Glob("../testdata/dig/*.txt")
	if len(files) == 0 {
		t.Fatal("no dig cases in ../testdata/dig")
	}
	var out []*dns.Msg
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			args, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "dig:")
			if !ok {
				continue
			}
			out = append(out, digQuery(t, strings.Fields(args)))
		}
	}
	return out
}

func digQuery(t *testing.T, args []string) *dns.Msg {
	m := new(dns.Msg)
	m.Id = dns.Id()
	m.RecursionDesired = true
	name, qtype, header := "", dns.TypeA, false
	edns, version, ednsFlags := true, uint8(0), uint16(0)
	var opts []dns.EDNS0
	opts = append(opts, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"})
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-b":
			i++
		case a == "+norec":
			m.RecursionDesired = false
		case a == "+noedns":
			edns = false
		case a == "+dnssec":
			ednsFlags |= 0x8000
		case a == "+zflag":
			m.Zero = true
		case a == "+header-only":
			header = true
		case strings.HasPrefix(a, "+edns="):
			v, _ := strconv.Atoi(strings.TrimPrefix(a, "+edns="))
			version = uint8(v)
		case strings.HasPrefix(a, "+ednsflags="):
			v, _ := strconv.ParseUint(strings.TrimPrefix(a, "+ednsflags="), 0, 16)
			ednsFlags |= uint16(v)
		case strings.HasPrefix(a, "+ednsopt="):
			code, data, _ := strings.Cut(strings.TrimPrefix(a, "+ednsopt="), ":")
			c, _ := strconv.Atoi(code)
			d, _ := hex.DecodeString(data)
			opts = append(opts, &dns.EDNS0_LOCAL{Code: uint16(c), Data: d})
		case strings.HasPrefix(a, "+opcode="):
			if op, ok := dns.StringToOpcode[strings.ToUpper(strings.TrimPrefix(a, "+opcode="))]; ok {
				m.Opcode = op
			}
		case strings.HasPrefix(a, "+"):
		case name == "":
			name = dns.Fqdn(a)
		default:
			if tt, ok := dns.StringToType[strings.ToUpper(a)]; ok {
				qtype = tt
			}
		}
	}
	if !header {
		if name == "" {
			name = "."
		}
		m.Question = []dns.Question{{Name: name, Qtype: qtype, Qclass: dns.ClassINET}}
	}
	if edns {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(1232)
		o.SetVersion(version)
		o.Hdr.Ttl |= uint32(ednsFlags)
		o.Option = opts
		m.Extra = append(m.Extra, o)
	}
	return m
}

func loadDigSet(t testing.TB) *zones.Set {
	t.Helper()
	set, err := zones.Load(zones.Config{
		Zones: []zones.ZoneConfig{{Origin: "example.com.", File: "../testdata/demo/example.com.zone",
			AllowTransfer: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}},
		ServicesFile: "../testdata/dig/services.yaml",
	})
	if err != nil {
		t.Fatalf("load the dig zones: %v", err)
	}
	return set
}

// TestFastPathMatchesGeneral holds the fast path to the general path, byte
// for byte, over the dig cases' queries and over random queries, under
// several published health and drain states, each published after the
// one before so that prepacked replies are reused where they still hold.
// (The answer tables check every row the same way, in runAnswerCases.)
func TestFastPathMatchesGeneral(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	digSet, orgSet := loadDigSet(t), testSet(t)
	states := []struct {
		name string
		s    State
	}{
		{"dig all up", State{Zones: digSet}},
		{"dig all down", State{Zones: digSet, Health: allDown{}}},
		{"dig random", State{Zones: digSet, Health: randomHealth(rng, digSet)}},
		{"dig all up again", State{Zones: digSet}},
		{"org all up", State{Zones: orgSet}},
		{"org ams down", State{Zones: orgSet, Health: amsDown}},
		{"org all down", State{Zones: orgSet, Health: allDown{}}},
		{"org random", State{Zones: orgSet, Health: randomHealth(rng, orgSet)}},
		{"org random 2", State{Zones: orgSet, Health: randomHealth(rng, orgSet)}},
		{"org ams drained", State{Zones: orgSet, Drains: drains{"www.example.org.|ams": true}}},
		{"org ams drained, scoped", State{Zones: orgSet, Drains: scopedDrains{"www.example.org.|ams": true}}},
		{"org ams drilled for some clients", State{Zones: orgSet, Drains: scopedDrains{"www.example.org.|ams": false}}},
		{"org ams down and fra drained", State{Zones: orgSet, Health: amsDown, Drains: scopedDrains{"www.example.org.|fra": true}}},
		{"org all up again", State{Zones: orgSet}},
		{"policies", State{Zones: regionSet(t, zones.ShuffleRotate)}},
		{"policies, preferred sites down", State{Zones: regionSet(t, zones.ShuffleClient), Health: down("near/fra/203.0.113.2", "talk/ams/192.0.2.201", "many/ams/192.0.2.1")}},
	}
	digQs := digQueries(t)
	r, _ := newResolver(t, Config{})
	total, hits := 0, 0
	for _, sc := range states {
		r.Publish(sc.s)
		st := r.cur.Load()
		set := sc.s.Zones
		for _, q := range digQs {
			for _, c := range []netip.Addr{client, netip.MustParseAddr("10.1.2.3")} {
				total++
				if checkFast(t, st, q, c) {
					hits++
				}
			}
		}
		names := queryNames(set)
		for range 3000 {
			total++
			pkt := randomQuery(rng, names)
			c := client
			if rng.IntN(2) == 0 {
				c = netip.MustParseAddr("10.1.2.3")
			}
			if checkFastPacket(t, st, pkt, c) {
				hits++
			}
		}
		if t.Failed() {
			t.Fatalf("state %q: the fast path differs", sc.name)
		}
	}
	// The comparison means something only if the fast path answers most
	// of these queries.
	if hits < total/3 {
		t.Errorf("the fast path answered %d of %d queries, want at least a third", hits, total)
	}
	t.Logf("fast path answered %d of %d queries", hits, total)
}

// queryNames are the names random queries pick from: every owner, and
// names under and beside them.
func queryNames(set *zones.Set) []string {
	var names []string
	for _, z := range set.Zones() {
		for _, n := range z.Names() {
			names = append(names, n, "x."+n, "no-such-"+n[:len(n)-1]+".invalid.")
		}
	}
	return append(names, ".", "example.", "com.", "org.")
}

var randomTypes = []uint16{
	dns.TypeA, dns.TypeA, dns.TypeA, dns.TypeAAAA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeNS,
	dns.TypeSOA, dns.TypeCNAME, dns.TypeSRV, dns.TypeDS, dns.TypeANY, dns.TypePTR, dns.TypeCAA,
	dns.TypeAXFR, dns.TypeIXFR, dns.TypeHTTPS,
}

// randomQuery builds a query for a random name in random case, with
// random type, ID, flags and EDNS, and now and then something the fast
// path must leave alone.
func randomQuery(rng *rand.Rand, names []string) []byte {
	name := []byte(names[rng.IntN(len(names))])
	for i, c := range name {
		if c >= 'a' && c <= 'z' && rng.IntN(3) == 0 {
			name[i] = c - 'a' + 'A'
		}
	}
	m := new(dns.Msg)
	m.Id = uint16(rng.Uint32())
	qtype := randomTypes[rng.IntN(len(randomTypes))]
	if rng.IntN(20) == 0 {
		qtype = uint16(rng.Uint32())
	}
	m.Question = []dns.Question{{Name: string(name), Qtype: qtype, Qclass: dns.ClassINET}}
	if rng.IntN(30) == 0 {
		m.Question[0].Qclass = dns.ClassCHAOS
	}
	m.RecursionDesired = rng.IntN(2) == 0
	m.CheckingDisabled = rng.IntN(4) == 0
	m.AuthenticatedData = rng.IntN(4) == 0
	m.Zero = rng.IntN(10) == 0
	if rng.IntN(40) == 0 {
		m.Opcode = dns.OpcodeNotify
	}
	if rng.IntN(4) > 0 {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		sizes := []uint16{0, 256, 512, 600, 1232, 1400, 4096, 65535}
		o.SetUDPSize(sizes[rng.IntN(len(sizes))])
		if rng.IntN(2) == 0 {
			o.SetDo()
		}
		switch rng.IntN(8) {
		case 0:
			o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0011223344556677"})
		case 1:
			o.Option = append(o.Option, &dns.EDNS0_PADDING{Padding: make([]byte, rng.IntN(40))})
		case 2:
			o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24,
				Address: netip.MustParseAddr("10.1.2.0").AsSlice()})
		case 3:
			o.SetVersion(1)
		case 4:
			o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 48,
				Address: netip.MustParseAddr("2001:db8:e::").AsSlice()})
		case 5:
			// Malformed: a scope in a query (FORMERR), or no address (/0).
			o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(rng.IntN(2) * 24),
				SourceScope: uint8(rng.IntN(2) * 16), Address: netip.MustParseAddr("192.0.2.0").AsSlice()})
		}
		m.Extra = append(m.Extra, o)
	}
	pkt, err := m.Pack()
	if err != nil {
		panic(err)
	}
	switch rng.IntN(40) {
	case 0:
		pkt = append(pkt, 0) // trailing garbage
	case 1:
		pkt = pkt[:len(pkt)-1] // cut short
	}
	return pkt
}

// TestFastPathLeavesOtherPolicies: a service whose policy the fast path
// does not know may answer each client, or each query, differently, so
// nothing that shows its addresses or names it is prepacked: its own
// name, a CNAME to it, a reply with its addresses as additional data.
func TestFastPathLeavesOtherPolicies(t *testing.T) {
	set := testSet(t)
	set.Service("www.example.org.").Policy = zones.Policy("some-future-policy")
	r, _ := newResolver(t, Config{})
	r.Publish(State{Zones: set})
	st := r.cur.Load()
	for _, tc := range []struct {
		qname string
		qtype uint16
		fast  bool
	}{
		{"www.example.org.", dns.TypeA, false},
		{"www.example.org.", dns.TypeAAAA, false},
		{"www.example.org.", dns.TypeANY, false},
		{"svcalias.example.org.", dns.TypeA, false},
		{"example.org.", dns.TypeMX, false}, // www is an MX target
		{"mail.example.org.", dns.TypeA, true},
		{"strict.example.org.", dns.TypeA, true},
	} {
		m := new(dns.Msg)
		m.SetQuestion(tc.qname, tc.qtype)
		if got := checkFast(t, st, m, client); got != tc.fast {
			t.Errorf("fast path answered %s %s: %v, want %v", tc.qname, dns.TypeToString[tc.qtype], got, tc.fast)
		}
	}
}

// TestFastPathReuse: a publish that changes nothing a name's answers
// read reuses the name's prepacked replies as they are; one that changes
// what they read rebuilds them, and a name left to the general path
// because of a drain for some clients comes back to the fast path when
// the drain goes.
func TestFastPathReuse(t *testing.T) {
	set := testSet(t)
	r, _ := newResolver(t, Config{})
	www := func() []byte {
		t.Helper()
		st := r.cur.Load()
		m := new(dns.Msg)
		m.SetQuestion("www.example.org.", dns.TypeA)
		if !checkFast(t, st, m, client) {
			return nil
		}
		rec, ok := st.fast.find("www.example.org.", st.fast.hash("www.example.org."))
		if !ok {
			t.Fatal("www.example.org. answered without a record")
		}
		return st.fast.arena[rec+4 : st.fast.recordEnd(rec)] // without its index
	}
	r.Publish(State{Zones: set})
	first := www()
	r.Publish(State{Zones: set, Health: down("www.example.org/fra/198.51.100.1")}) // read by no answer
	if again := www(); first == nil || !bytes.Equal(again, first) {
		t.Errorf("record changed when nothing it read did:\n%x\n%x", first, again)
	}
	r.Publish(State{Zones: set, Health: amsDown})
	if changed := www(); changed == nil || bytes.Equal(changed, first) {
		t.Errorf("record not rebuilt when ams went down: %x", changed)
	}
	r.Publish(State{Zones: set, Drains: scopedDrains{"www.example.org.|ams": false}})
	if got := www(); got != nil {
		t.Error("answered by the fast path while a drain holds for some clients")
	}
	r.Publish(State{Zones: set})
	if got := www(); !bytes.Equal(got, first) {
		t.Errorf("not back on the fast path as before once the drain went: %x", got)
	}
}

// TestFastPathArenaBounded: health flapping for ever rebuilds the same
// records again and again; the arena must not grow for ever, and the
// answers must stay those of the general path throughout.
func TestFastPathArenaBounded(t *testing.T) {
	set := testSet(t)
	r, _ := newResolver(t, Config{})
	r.Publish(State{Zones: set})
	first := len(r.cur.Load().fast.arena)
	names := queryNames(set)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 200 {
		s := State{Zones: set}
		if i%2 == 0 {
			s.Health = amsDown
		}
		r.Publish(s)
		st := r.cur.Load()
		for range 20 {
			checkFastPacket(t, st, randomQuery(rng, names), client)
		}
		if t.Failed() {
			t.Fatalf("publish %d: the fast path differs", i)
		}
		if n := len(st.fast.arena); n > 3*first {
			t.Fatalf("publish %d: arena of %d bytes, %d at first", i, n, first)
		}
	}
}

// TestFastPathCompactRecords: a static name keeps templates for the
// types it owns only, every other type answered with its zone's NODATA
// reply (but those the general path answers otherwise), and the SOA of
// negative replies is kept once for many names: what lets a zone of a
// million names fit in memory.
func TestFastPathCompactRecords(t *testing.T) {
	set := testSet(t)
	r, _ := newResolver(t, Config{})
	r.Publish(State{Zones: set})
	st := r.cur.Load()
	ft := st.fast
	rec, ok := ft.find("mail.example.org.", ft.hash("mail.example.org."))
	if !ok {
		t.Fatal("no record for mail.example.org.")
	}
	if _, ok := ft.template(rec, dns.TypeA); !ok {
		t.Error("mail.example.org. has no A template")
	}
	if _, ok := ft.template(rec, dns.TypeAAAA); ok {
		t.Error("mail.example.org. keeps an AAAA template, want its zone's NODATA")
	}
	for _, tc := range []struct {
		qname string
		qtype uint16
		fast  bool
	}{
		{"mail.example.org.", dns.TypeAAAA, true},
		{"mail.example.org.", dns.TypeTXT, true},
		{"mail.example.org.", 65280, true},
		{"a.b.c.example.org.", dns.TypeMX, true},
		{"example.org.", dns.TypeCAA, true},
		{"mail.example.org.", dns.TypeANY, false},
		{"mail.example.org.", dns.TypeDS, false},
		// The child zone's apex, which is the parent's cut too: its
		// record is built from the parent's node, which does not know
		// the child's types, so they are left to the general path
		// rather than answered NODATA.
		{"hosted.example.org.", dns.TypeSOA, false},
		{"hosted.example.org.", dns.TypeTXT, false},
	} {
		m := new(dns.Msg)
		m.SetQuestion(tc.qname, tc.qtype)
		if got := checkFast(t, st, m, client); got != tc.fast {
			t.Errorf("fast path answered %s %s: %v, want %v", tc.qname, dns.Type(tc.qtype), got, tc.fast)
		}
	}
	if n, most := len(ft.tailIdx), len(set.Zones())+len(set.Services()); n == 0 || n > most {
		t.Errorf("%d distinct negative tails, want 1 to %d (one per zone and service TTL)", n, most)
	}
}
