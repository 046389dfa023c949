package resolver

import (
	"net/netip"

	"github.com/gslbd/gslbd/zones"
	"github.com/miekg/dns"
)

// transfer answers AXFR and IXFR (RFC 5936, RFC 1995). The whole zone,
// SOA first and last, goes into one answer section; the handler writes it
// in envelopes (see envelopes).
//
// A secondary cannot health-check, so it cannot run a service's policy.
// Leaving service names out made it answer NXDOMAIN for them; a snapshot
// of the current answers would be stale after the next failover and
// would change the zone without a change of serial. It gets instead
// what depends on the configuration only: at each service name, every
// endpoint of every site with the service TTL (the answer of all_down
// "all": fail open). See serviceRecords.
func (q *query) transferRecords(z *zones.Zone) []dns.RR {
	recs := z.Records() // SOA first
	svcs := serviceRecords(q.st.set, z)
	ans := make([]dns.RR, 0, len(recs)+len(svcs)+1)
	ans = append(ans, recs...)
	ans = append(ans, svcs...)
	return append(ans, z.SOA)
}

// serviceRecords returns the records a secondary gets for the services
// of z, in name order: every endpoint address of every site, sorted, with
// the service's TTL.
func serviceRecords(set *zones.Set, z *zones.Zone) []dns.RR {
	var out []dns.RR
	for _, svc := range set.Services() {
		if svc.Zone != z.Origin {
			continue
		}
		if svc.CNAME() {
			// One target: the first site's, as all_down gives.
			out = append(out, &dns.CNAME{Hdr: dns.RR_Header{Name: svc.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: svc.TTL},
				Target: svc.Sites[0].CNAME})
			continue
		}
		var addrs []netip.Addr
		for i := range svc.Sites {
			addrs = appendFamily(addrs, &svc.Sites[i], familyAll)
		}
		out = appendAddrs(out, svc.Name, sortAddrs(addrs), svc.TTL, dns.TypeANY)
	}
	return out
}

// transfer checks that a transfer of z may be served, and serves it.
func (q *query) transfer(z *zones.Zone, qname string, req *dns.Msg, tcp bool) outcome {
	// AXFR needs TCP (RFC 5936 §4.2). An IXFR over UDP could be answered
	// with the SOA alone (RFC 1995 §2); we refuse it to keep one rule:
	// transfers are TCP only.
	if !tcp || qname != z.Origin || !transferAllowed(z.AllowTransfer, q.client) {
		return refused
	}
	if z.SOA == nil {
		return serverFailure
	}
	q.info.transfer = true
	if q.qtype == dns.TypeIXFR && upToDate(req, z.SOA.Serial) {
		// RFC 1995 §2: a client with our serial or a newer one gets the SOA.
		q.m.Answer = []dns.RR{z.SOA}
		return success
	}
	q.m.Answer = q.transferRecords(z)
	return success
}

func transferAllowed(allow []netip.Prefix, client netip.Addr) bool {
	if !client.IsValid() {
		return false
	}
	client = client.Unmap()
	for _, p := range allow {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// upToDate reports whether the IXFR request carries a serial at least
// ours, in serial number arithmetic (RFC 1982).
func upToDate(req *dns.Msg, ours uint32) bool {
	for _, rr := range req.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return int32(soa.Serial-ours) >= 0
		}
	}
	return false
}

// envelopeBudget is how many bytes of answer RRs one transfer message
// carries, counted uncompressed, so that it packs under 64 KiB with room
// for the header, the question and an OPT record.
const envelopeBudget = dns.MaxMsgSize - 1024

// envelopes splits a transfer reply into messages of at most
// envelopeBudget bytes of answer RRs. Each carries the header and the
// question; the first also carries the additional section (our OPT).
// Empty answers stay one message.
func envelopes(m *dns.Msg) []*dns.Msg {
	var out []*dns.Msg
	rrs := m.Answer
	for first := true; first || len(rrs) > 0; first = false {
		n, size := 0, 0
		for n < len(rrs) {
			l := dns.Len(rrs[n])
			if n > 0 && size+l > envelopeBudget {
				break
			}
			size += l
			n++
		}
		e := new(dns.Msg)
		e.MsgHdr = m.MsgHdr
		e.Compress = true
		e.Question = m.Question
		e.Answer = rrs[:n:n]
		if first {
			e.Extra = m.Extra
		}
		out = append(out, e)
		rrs = rrs[n:]
	}
	return out
}
