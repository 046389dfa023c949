// Package health decides which endpoints may receive traffic. It owns
// probing ([Probe], [NewHTTPProbe], [NewTCPProbe]), the per-target state
// machine, the [Checker] that runs them and publishes an immutable
// [Snapshot], the [Report] nodes gossip, and the pure [Merge] policy that
// turns local and remote knowledge into a [View]. It imports nothing else
// of gslbd.
//
// # Invariants
//
// Snapshots and Views are immutable once published and safe for
// concurrent use; the Checker replaces its Snapshot through one atomic
// pointer, and Merge returns a new View every time. Each target's state
// machine is owned by that target's goroutine. The Checker writes a new
// Snapshot only when a target changes state, when the first round
// completes and when Update changes the set of targets, never per probe.
//
// # Timing
//
// A target is probed every Interval (±10% jitter) with a Timeout; each
// target brings its own, and the figures below are those of the services
// file's defaults (interval 500ms, timeout 300ms, rise 2, fall 2). A result that disagrees with the
// state (a failure while not Down, a success while Down) is confirmed by
// another probe Interval/5 after the first one started, so with Fall 2 a
// target that refuses connections is Down at most about 1.1×500ms +
// 1.1×100ms ≈ 0.66s after it died. A probe of an Up target that has had
// no answer after half its Timeout gets its confirmation at once, on a
// new connection, alongside it (a hedge; see the Checker), whether it runs
// on a goroutine of its own or on the event loop (below), so one that
// hangs or is black-holed is Down at most about 0.55s + 300ms ≈ 0.85s
// after it stopped answering: the confirmation gets what is left of the
// first probe's timeout, and both end together (1.2s without the hedge). A single lost
// or slow probe is outvoted by its confirmation and never flips the
// state: a lost packet stalls one connection, and the other probe
// answers. An endpoint that takes more than half its Timeout to answer
// gets two probes each time. Recovery with Rise 2 is as fast as the
// refused case. These are the figures for this node's own site; probes across
// sites add the path (below).
//
// # Probes across sites
//
// The configured Timeout is what an endpoint may take to answer where it
// was chosen, next to it; a probe from another site also pays the round
// trips of the path, which on a WAN can exceed it (at 200ms a round trip,
// an HTTP probe needs two, 400ms, before the endpoint says anything). So
// a [Target] marked Remote (outside this node's site) is probed with
//
//	T' = Timeout + n × min(RTO, MaxPathAllowance)    (MaxPathAllowance = 200ms)
//	I' = max(Interval, T')
//
// where n is the round trips the probe needs (tcp 1, http 2, https 4; an
// http or https probe that finds a kept connection needs only its
// request's, 1) and RTO is the retransmission timeout TCP would use on
// the path: the smoothed round trip plus four times its variation (RFC
// 6298, without the kernel's 200ms floor), measured from the TCP connect
// of every earlier probe that completed one (answered or refused) and, on
// Linux, after successful HTTP exchanges, from the kernel's estimate of
// the connection (TCP_INFO's rtt and rttvar), which follows the path
// while a connection is kept: after every one on a goroutine, and on the
// event loop, which reads it from the socket it holds, after every one
// while the estimate has fewer than 8 measurements and then after every
// 4th on the connection (the kernel's estimate moves slowly at one
// exchange per interval, and a system call per probe is dear). Before the first measurement the allowance
// is n × MaxPathAllowance. A kept connection that the endpoint closed
// while idle is retried on a new one within the same timeout, which then
// holds one round trip of allowance rather than the three it needs: on a
// slow path that one probe may time out, and its confirmation, which
// dials, has the full allowance. Targets of this node's own site keep Timeout and
// Interval exactly: an overloaded local endpoint is not excused by a
// growing estimate.
//
// A dead remote endpoint is still judged quickly: the estimate is fed by
// completed connects and exchanges only, so an endpoint that stops answering does not
// stretch its own timeout, and it is Down at most about 1.1×I' + T' +
// RTO/2 after it died, T' being that of a probe that dials (the hedge's
// end; refusing: 1.1×I' + 1.1×I'/5 plus a round trip). With the defaults
// and a steady 200ms path T' ≈ 0.7s for HTTP and the bound is about 1.6s
// (HTTPS: T' ≤ 1.1s, bound 2.4s); a path slower than 200ms a
// round trip needs a longer configured timeout. On a LAN
// (RTO well under a millisecond) T' is the configured Timeout to the
// millisecond and the figures of the previous section hold.
//
// # Probing at scale
//
// Targets with the same address, kind, timing, remoteness and a non-empty
// [Target].Key share one probe: the services file builds the key from the
// check's settings, so an endpoint that several services list with the
// same check is probed once per interval, and the result goes to each
// service's target, which keeps its own ID, thresholds, state, metrics
// and place in the [Report]. The Checker schedules these probes on one
// timing wheel (millisecond buckets: a probe costs an append and a read
// in order, not a dozen cache misses in a heap) and writes one Snapshot
// per burst of changes rather than one per changed target. Probes due
// close together start in one batch: a probe may start up to a tenth of
// its delay early (at most 50ms), and its due time is drawn from the
// upper half of the jitter so that it still starts within ±10% of its
// interval; 20,000 probes a second then wake the Checker (and the
// endpoints) at most 20 times a second rather than 20,000.
//
// On Linux, a plain HTTP probe on a kept connection (below) runs on the
// Checker's event loop: one goroutine that owns an epoll instance and the
// kept sockets, writes each request as its probe falls due (a batch in
// the order of its sockets, so the kernel's structures are visited in
// the order they were allocated), reads the answer when it has come,
// judges it with the same code as any HTTP probe, and times probes out
// from a heap of deadlines, with no goroutine, context or timer per
// probe. It waits in the Go runtime's poller on a one-shot "bell" that
// holds its epoll instance, so answers that come while it works wake no
// thread. Its probes follow the same
// rules as the others: a probe of an Up target that has had no answer at
// half its timeout (the heap wakes the loop then too) gets its hedge on a
// new connection, on a goroutine that also waits for the loop probe's
// result and hands both to the state machines in the order they came, so
// only a probe that late costs a goroutine; a loop probe has the path
// allowance of a kept connection (one round trip), and after completed
// exchanges with a remote endpoint (see Probes across sites) the loop
// reads the kernel's estimate (TCP_INFO) from the socket it holds. The
// loop also makes the connects of tcp checks after each endpoint's first
// probe: a non-blocking connect, closed with a reset once the kernel says
// how it went, at most 32 of them between two looks at what has come, so
// that a node with thousands of tcp checks due at once judges the answers
// to the first in time (the rest start a little later, each with its whole
// timeout). Every other probe runs on a goroutine of its own: those that
// make a new HTTP connection (the first of each endpoint, the first after
// a failure or a retired connection), HTTPS, the first of a tcp check,
// probes built outside this package, and every probe on other platforms.
// A plain HTTP probe that kept its connection hands it to the loop, and
// the loop gives the group back whenever the connection goes.
// The loop reads every answer that came before it times any probe out,
// so a node that was too busy to look does not blame the endpoint for
// its own lateness. At most 256 probes run on goroutines of their own at
// once; the others wait their turn, and a probe's timeout runs from when
// it starts: a burst of new connections (thousands of endpoints
// starting, or coming back together) is paced by what the node can do
// instead of timing out in a storm of its own making, in which each
// timed-out probe's next probe would dial again. For the same reason the
// first probes of many endpoints are spread over up to 2s (200µs apart
// on average) rather than over the first quarter interval, and a kept
// connection due for retirement is kept a little longer while probes
// wait for a goroutine.
//
// An HTTP or HTTPS probe keeps its connection to the endpoint from one
// probe to the next, as Envoy's health checker does: a new TCP connection
// per probe costs the kernel several times what the exchange on an open
// one does, and 10,000 endpoints at the default interval are 20,000
// probes a second. The Checker owns one connection slot per group,
// lends it to the group's probe (one at a time) and closes it when the
// group is removed or Run returns, which also interrupts a probe in
// flight. The probe closes the connection after any failure, after a
// response that says "Connection: close" or was not read to its end, and
// at a random age between 2.5 and 5 minutes, so a new connection is
// still made regularly (on the event loop, a connection whose probe timed out stays
// open until the group's next probe, which uses it only if the late
// answer came whole meanwhile, and makes a new one otherwise); a kept connection that the endpoint closed while idle (the
// end or a reset before any byte of the answer) is retried once on a new
// connection within the same timeout, so an endpoint's idle timeout never
// reads as a failure, while a dead endpoint fails the retry (refused) and
// a silent one still runs into the timeout. [HTTPCheck].DisableReuse
// (reuse_connection: false in the services file) opens a new connection
// for every probe, as all probes did before: each then answers whether a
// new user could connect now. TCP probes only connect, and close with a
// reset, which leaves no connection in TIME_WAIT here (see
// [NewTCPProbe]). Every endpoint with an HTTP check therefore holds one file descriptor on
// this node. The round trip of a remote endpoint (see Probes across
// sites) is measured on the connects that new connections make and on
// the kept connection's exchanges, whoever runs them.
//
// Probes speak HTTP/1.1 themselves, without TCP keep-alive, rather than
// through net/http's client, whose per-connection goroutines cost more
// than the probe's own work, and read only what they need of a response
// (status, framing, Connection) without building an http.Response. See
// the README for the figures.
//
// # Local faults
//
// A probe that fails because of this node rather than the endpoint (out
// of file descriptors or socket buffers, no local address or port left,
// refused by the host's own firewall: see localFault for where the line
// is drawn) gives no verdict: the state machine does not move, the
// failure is counted in gslb_health_local_probe_errors_total{reason}
// rather than as a probe failure, and a log line says so (at most one per
// 10s). It is retried Interval/5 later. After Fall such failures in a row
// the target's [Status].LocalFault is set and the node abstains: its
// [Status.Vote] and its [Report] say Unknown for the target, so it casts
// no vote, until a probe reaches the endpoint again. A node that runs out
// of file descriptors thus neither withdraws healthy endpoints nor keeps
// vouching for ones it can no longer see.
//
// # Unknown
//
// A target not probed to a conclusion yet is Unknown, and Unknown counts
// as up ([Snapshot.Up], and the last rule of Merge): failing open is safe
// because a node does not serve before its first round is complete
// ([Snapshot.Ready]), and after that only targets just added by a reload
// are Unknown.
//
// # Merge rules
//
// The principle: no single witness withdraws an endpoint that others see
// healthy, and an endpoint that is really gone is withdrawn even when its
// whole site falls silent with it.
//
// A report is fresh when it comes from this node (the local Snapshot, which
// counts as a report of this node in its site) or when it arrived less
// than Staleness ago; only fresh reports made under the same configuration
// hash are used, and only those with a known (Up or Down) state for an
// endpoint vote on it (a node that cannot probe an endpoint abstains).
//
// First, suspect views are set aside: a node that votes Up on no endpoint
// and fails on endpoints in at least two sites, while for most of those
// (a strict majority) a strict majority of the other nodes' votes say Up,
// is probably the problem itself (out of file descriptors, cut off from
// every endpoint, behind a broken firewall), and its votes are not
// counted. This node's own view is judged the same way ([View.Suspect]).
// One site's endpoints failing is an outage, not a suspect view, and when
// every node sees everything down nobody is suspect.
//
// Then, for an endpoint in site S, with S's own nodes' votes and the other
// sites' votes (each other site that votes "says up" or "says down" by the
// majority of its nodes' votes, or is split):
//
//  1. S's nodes say down by majority: the endpoint is withdrawn, unless
//     every other site that votes says up. S's nodes must agree, and the
//     rest of the cluster must not unanimously contradict them: one
//     own-site node that sees its endpoint down while every other site
//     sees it up does not withdraw it.
//  2. S's nodes say up by majority: it is up.
//  3. S's nodes are split evenly: the other sites' votes break the tie; it
//     is withdrawn when a strict majority of them say down.
//  4. No node of S votes (S's nodes are dead, cut off from us, or cannot
//     probe): the other sites cross-check it, and it is withdrawn when a
//     strict majority of their votes say down; a tie keeps it.
//  5. Nobody votes: it is up (fail open).
//
// A site is quiet when every one of its nodes that votes on the endpoint
// has gone [MergeInput].Quiet without a heartbeat (this node, which is
// never quiet, not among them). Rule 4 then applies to it early, but only
// to withdraw: when a strict majority of the other sites' votes say down,
// the endpoint is out at once, as it would be once the site's reports
// went stale. The site's silence and the other sites' probes must agree;
// either alone changes nothing.
//
// A two-site deployment therefore still fails over when one site dies
// whole: its nodes' reports go stale after Staleness, the site is silent,
// and the other site's cross-checks decide (rule 4). And when a site's
// endpoints die while its nodes run, they say down and so do the other
// sites (rule 1). A node cut off from everyone decides from its own probes
// only.
package health
