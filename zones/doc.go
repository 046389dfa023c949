// Package zones owns the authoritative data a gslbd node serves: RFC 1035
// zone files and the service definitions (which owner names are answered
// from health-checked endpoints, with which policy).
//
// [Load] reads and validates everything and returns either a new [*Set] or
// every problem found, joined with errors.Join. A Set is immutable after it
// is built and safe for concurrent use by any number of goroutines; a
// reload builds a new Set and the old one stays valid for as long as anyone
// holds it.
//
// Names are stored canonical (lowercase, fully qualified). Callers convert
// once at the boundary with dns.CanonicalName.
//
// # Messages
//
// Each problem is one error, in one of these forms:
//
//	gslbd.yaml:12: zone example.com.: open zones/example.com: no such file or directory
//	zones/example.com: dns: bad A A: "192.0.2.300" at line: 5:17
//	zones/example.com:9: CNAME record for www.example.com. beside other data (A, TXT)
//	services.yaml:14: services["talk.example.com"].sites.dc9: unknown site
//
// The first is about a zone's declaration and starts with
// [ZoneConfig.Source]. The second is a syntax error, miekg's
// dns.ParseError text as it is (the parser stops at the first one in a
// file). The others are "file:line: message", where the line is the first
// line of the offending record or YAML value; services messages name the
// path of the value. Within a file, messages come in line order.
//
// # Zone files
//
// Zone files are read with miekg's parser: every RR type it knows, $ORIGIN,
// $TTL, $GENERATE and, when [ZoneConfig.AllowInclude] is set, $INCLUDE.
// Identical records are kept once (RFC 2181 §5). Load rejects:
//   - a zone without exactly one SOA, at the apex, or without NS at the apex;
//   - records outside the zone, of a class other than IN, of a meta type
//     (ANY, OPT, ...), without data, or that do not encode;
//   - a CNAME at the apex, a second CNAME at a name, or a CNAME beside other
//     data (RRSIG and NSEC excepted);
//   - an NS whose target is inside the zone but has no A or AAAA there
//     (glue, for a delegation);
//   - data at or below a delegation other than NS, DS, NSEC, RRSIG at the
//     cut and glue (occluded data);
//   - data at or below the origin of another served zone, unless the parent
//     delegates it (it would never be answered).
//
// # Services file
//
//	sites: [dc1, dc2, dc3]       # every site of the cluster: letters, digits, - _ .
//	regions:                     # for policy nearest; optional
//	  eu:                        # letters, digits, - _ .
//	    networks: [192.0.2.0/24] # CIDRs without host bits; no overlaps across all regions
//	    order: [dc2, dc1]        # known sites, no duplicates
//	defaults:                    # optional
//	  check: {type: http, port: 8080, path: /healthz}
//	services:
//	  talk.example.com:          # owner name, in a loaded zone, not a wildcard
//	    policy: failover         # failover | weighted | nearest; default failover
//	    order: [dc1, dc2]        # optional; default: the order of sites
//	    regions: {eu: [dc1]}     # nearest only: a region's own order; known regions and sites
//	    ttl: 20                  # 0 to 2147483647; default 20
//	    degraded_ttl: 5          # optional: TTL while the preferred site is not whole
//	    max_answers: 2           # optional, 1-64: addresses per family and answer
//	    shuffle: rotate          # with max_answers: rotate (default) | client
//	    min_healthy: 1           # a count >= 1, or "50%" (0% < p <= 100%, at most 4 decimals); default 1
//	    all_down: all            # all | first | servfail; default all
//	    check:                   # optional; merged over defaults.check field by field
//	      type: http             # http | https | tcp; default http
//	      port: 8080             # 1-65535; default 80 (http), 443 (https), none (tcp)
//	      method: GET            # http(s); upper case; default GET
//	      path: /healthz         # http(s); starts with /; default /
//	      host: talk.example.com # http(s); optional Host header
//	      expect_status: [200]   # http(s); 100-599; default any of 200-399
//	      body_contains: ok      # http(s); default not checked
//	      insecure_skip_verify: false # https; default false
//	      reuse_connection: true # http(s); false: a new connection for every probe; default true
//	      interval: 500ms        # > 0; default 500ms
//	      timeout: 300ms         # > 0 and < interval; default 300ms
//	      rise: 2                # successes to go up, >= 1; default 2
//	      fall: 2                # failures to go down, >= 1; default 2
//	    sites:                   # at least one; each site listed in sites
//	      dc1: [127.0.1.10, "::1"] # at least one address; no duplicates in a service
//	      dc2:                     # or a mapping:
//	        endpoints: [127.0.2.10]
//	        weight: 1            # weighted only: 0-1000000, default 1, not 0 on every site
//	        capacity: 2          # weighted only: >= weight, <= 1000000; on every site or none
//	        cname: x.example.com # a CNAME service: on every site or none; no other data at the name
//
// Unknown fields are errors. A service's name must not be at or below a
// delegation, nor share its owner with static A, AAAA or CNAME records
// (other types, such as TXT or MX, may sit beside it). When order is given
// it must list every site the service uses, once. The HTTP settings of a
// tcp check are ignored when inherited from defaults.check, and are errors
// beside "type: tcp".
//
// An http or https check keeps one connection to each endpoint from one
// probe to the next (as Envoy's health checker does), so that probing
// thousands of endpoints costs little; the health package says when it is
// closed and dialled again (at the latest after 30s). reuse_connection:
// false opens a new connection, and for https does a full TLS handshake,
// for every probe: the question each probe then answers is whether a new
// user could connect now.
//
// A [Service] has its sites in policy order and each site's endpoints
// sorted by address; an [Endpoint.ID] is "name/site/address" with the name
// without its trailing dot. [Set.Hash] is taken over these built values, so
// it changes with what the services mean, not with how the file is
// written.
package zones
