package resolver

import (
	"net/netip"
	"strconv"

	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

// DebugLabel is the first label of the reserved debug names. A TXT query
// for DebugLabel + "." + a service name (_gslb.talk.example.com TXT)
// from a client in [Config].DebugClients is answered with the
// explanation of the service's current answer to that client: which site
// answers, each site's verdict and why, the drains that cover it, and
// the publish generation. From any other client it is REFUSED. Other
// types at the name, and the name under something that is not a
// service, are answered as usual.
const DebugLabel = "_gslb"

// debugPrefix is DebugLabel as the start of a canonical name.
const debugPrefix = DebugLabel + "."

// DrainNamer is implemented by a [Drains] that can name the drains
// behind Drained (drain.View does): explanations list them. Not called
// on the path of ordinary queries.
type DrainNamer interface {
	// DrainedBy returns the IDs of the drains that make Drained true
	// for the same arguments; nil when none does.
	DrainedBy(service, site string, client netip.Addr) []string
}

// Explanation is why a service answers a client as it does: the outcome
// of the failover rule ([Servable], choose) with the facts behind it.
type Explanation struct {
	// Site is the index in the service's Sites of the site that answers,
	// or -1 when no site could take traffic and the all-down policy
	// decided.
	Site int
	// Servfail is set when the all-down policy answers SERVFAIL.
	Servfail bool
	// Family is the address family explained: "ipv4", "ipv6" for a
	// service without IPv4 endpoints, "all" for a CNAME service. For
	// policy weighted, Site is the pick of a query with ID 0.
	Family string
	// Sites explains each site, in the service's order.
	Sites []SiteExplanation
}

// SiteExplanation is one site's verdict in an [Explanation].
type SiteExplanation struct {
	// Site names it.
	Site string
	// Servable is the rule of [Servable] for the site and Family: it
	// may take that family's traffic.
	Servable bool
	// Up of Total endpoints of Family are up; the site needs Need of
	// them. A site without endpoints of Family has Total 0 and never
	// serves it.
	Up, Total, Need int
	// Drained is set when an operator drain covers the site for the
	// client, and DrainedBy names those drains (when the Drains is a
	// [DrainNamer]).
	Drained   bool
	DrainedBy []string
}

// AllDown reports whether no site could take traffic, so the all-down
// policy decided the answer.
func (e Explanation) AllDown() bool { return e.Site < 0 }

// Answering returns the name of the site that answers, or "" when the
// all-down policy decided.
func (e Explanation) Answering() string {
	if e.Site < 0 || e.Site >= len(e.Sites) {
		return ""
	}
	return e.Sites[e.Site].Site
}

// Explain applies the policy of svc for a query from client and says
// why it chose as it did. Sites are chosen per address family; Explain
// explains the IPv4 answer of a service that has IPv4 endpoints, and the
// IPv6 answer of one that has only IPv6 endpoints (Family says which).
// The choice is the one the resolver makes (it calls the same
// functions); the counts are of that family's endpoints and the drains
// are the facts [Servable] weighed. health nil counts every endpoint up;
// drains nil drains nothing. A client that is not a valid address is one
// no client-limited drain covers.
func Explain(svc *zones.Service, health Health, drains Drains, client netip.Addr) Explanation {
	fam := familyV6
	for i := range svc.Sites {
		if hasFamily(&svc.Sites[i], familyV4) {
			fam = familyV4
			break
		}
	}
	if svc.CNAME() {
		fam = familyAll
	}
	a := &asker{health: health, drains: drains, client: client, geo: client.Unmap()}
	a.geoBits = a.geo.BitLen()
	a.hash = mix(stableHash(a))
	var buf [16]netip.Addr
	c, _ := choose(svc, fam, a, buf[:0])
	e := Explanation{Site: c.site, Servfail: c.servfail, Family: "ipv4", Sites: make([]SiteExplanation, len(svc.Sites))}
	switch fam {
	case familyV6:
		e.Family = "ipv6"
	case familyAll:
		e.Family = "all"
	}
	namer, _ := drains.(DrainNamer)
	for i := range svc.Sites {
		site := &svc.Sites[i]
		ok, n, _ := servable(svc, site, fam, a)
		se := SiteExplanation{
			Site:     site.Site,
			Servable: ok,
			Total:    n,
			Need:     svc.MinHealthy.Need(n),
			Drained:  drained(drains, svc, site, client),
		}
		for _, ep := range site.Endpoints {
			if fam.holds(ep.Addr) && isUp(health, ep.ID) {
				se.Up++
			}
		}
		if se.Drained && namer != nil {
			se.DrainedBy = namer.DrainedBy(svc.Name, site.Site, client)
		}
		e.Sites[i] = se
	}
	return e
}

// debugAllowed reports whether client may ask for explanations.
func (st *state) debugAllowed(client netip.Addr) bool {
	client = client.Unmap()
	for _, p := range st.debug {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// debug answers a TXT query for a debug name, qname (canonical, starting
// with debugPrefix). ok is false when the rest of the name is no service:
// the query is then answered as usual.
func (q *query) debug(qname string) (out outcome, ok bool) {
	svc := q.st.set.Service(qname[len(debugPrefix):])
	if svc == nil {
		return 0, false
	}
	if !q.st.debugAllowed(q.client) {
		return refused, true
	}
	e := Explain(svc, q.st.health, q.st.drains, q.client)
	q.m.Answer = append(q.m.Answer, debugTXT(qname, svc, e, q.st.gen, q.client)...)
	return success, true
}

// debugTXT renders e as TXT records with TTL 0 (an explanation is never
// cached), one per fact, each a list of key=value strings that starts
// with a key naming the record, so the set reads the same in any order.
func debugTXT(owner string, svc *zones.Service, e Explanation, gen uint64, client netip.Addr) []dns.RR {
	answer := e.Answering()
	switch {
	case e.Servfail:
		answer = "servfail"
	case e.AllDown():
		answer = "all_down"
	}
	allDown := string(svc.AllDown)
	if allDown == "" {
		allDown = string(zones.AllDownAll)
	}
	clientText := "none"
	if client.IsValid() {
		clientText = client.Unmap().String()
	}
	rrs := []dns.RR{txt(owner,
		"service="+svc.Name,
		"answer="+answer,
		"all_down="+allDown,
		"generation="+strconv.FormatUint(gen, 10),
		"client="+clientText,
		"family="+e.Family,
	)}
	for i, s := range e.Sites {
		serving, drained := "no", "no"
		if s.Servable {
			serving = "yes"
		}
		if s.Drained {
			drained = "yes"
		}
		fields := []string{
			"site=" + s.Site,
			"order=" + strconv.Itoa(i+1),
			"serving=" + serving,
			"up=" + strconv.Itoa(s.Up) + "/" + strconv.Itoa(s.Total),
			"need=" + strconv.Itoa(s.Need),
			"drained=" + drained,
		}
		for _, id := range s.DrainedBy {
			fields = append(fields, "drained_by="+id)
		}
		rrs = append(rrs, txt(owner, fields...))
	}
	return rrs
}

func txt(owner string, s ...string) *dns.TXT {
	return &dns.TXT{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 0}, Txt: s}
}

// isDebugName reports whether a TXT query for qname may be a debug query:
// two byte comparisons for every other name.
// It takes the name as a string or, on the fast path, as the bytes of the
// query, without converting (and so allocating) them.
func isDebugName[S ~string | ~[]byte](qtype uint16, qname S) bool {
	return qtype == dns.TypeTXT && len(qname) > len(debugPrefix) && string(qname[:len(debugPrefix)]) == debugPrefix
}
