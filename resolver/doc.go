// Package resolver is gslbd's DNS handler: it holds the published state,
// builds authoritative answers from it, runs failover selection for
// services, and counts what it does.
//
// Data flows one way. One publisher goroutine builds a [State] (a
// zones.Set and views of health and drains) and hands it to
// [Resolver.Publish], which stores an immutable snapshot behind one atomic
// pointer. [Resolver.ServeDNS] loads that pointer once per query and
// passes it to a pure function that returns the reply.
//
// Invariants:
//   - Published data is never changed: no in-place filter, sort or
//     shuffle of anything reached from a State. RRs from the zones are
//     placed in replies as they are (packing does not modify them); any RR
//     that needs a different owner or TTL is copied first, and service
//     answers are built fresh for every query.
//   - The query path takes no locks, does no I/O besides writing the reply
//     and writes no logs; the single exception is the one-off log of a
//     recovered panic, at most once a minute.
//   - Outcomes become response codes and flags in one place (finish in
//     answer.go); nothing on the query path returns an error.
//
// Protocol choices, each covered by the answer tables:
//   - ANY (RFC 8482) is answered with one RRset: a service owner's selected
//     addresses (both families, each from the site chosen for it), otherwise the RRset of the lowest type
//     number at the name. It is never refused and never answered in full.
//   - CNAME chains are followed through every zone of the Set, for at most
//     8 hops and never twice through the same name; a loop or an over-long
//     chain ends the answer at the last CNAME (NOERROR). A target outside
//     our zones ends the chain with NOERROR and no authority; the final
//     rcode and authority otherwise describe the last name.
//   - AXFR and IXFR are served over TCP only to clients in the zone's
//     AllowTransfer, for a query at the zone apex; anything else is
//     REFUSED. IXFR is answered with the whole zone, AXFR style, unless
//     the client's serial is current, which gets the SOA alone (RFC 1995).
//     At a service name the transfer carries every endpoint of every site
//     with the service TTL (transfer.go says why).
//   - Over UDP a reply is truncated (TC) to the smaller of the client's
//     EDNS buffer size and ours, never below 512; 512 without EDNS. TC is
//     set only when the answer or authority section lost records (RFC
//     2181 §9), or a referral lost glue (RFC 9471): additional records
//     that do not fit are left out without it.
//   - With Config.RRL, UDP responses go through response rate limiting
//     (rrl.go): identical responses to one client prefix over the rate
//     are dropped, every Slip-th sent empty with TC=1 instead. It is one
//     call per response in the UDP server, lock-free and allocation-free.
package resolver
