// Package cluster owns everything memberlist: membership, the gossip
// encoding, the table of remote health reports and the expiry of departed
// nodes. It imports health for its Report and Received types only.
//
// # Data flow
//
// The publisher hands the local [health.Report] to [Cluster.Announce].
// The report is then sent straight to every alive peer (UDP, or TCP when
// the frame exceeds 1200 bytes), so a change reaches every node in one
// hop, and carried in every push/pull. It is not re-sent while it stays
// the same: what keeps it fresh is a heartbeat digest that rides
// memberlist's own gossip, every Heartbeat/2 to three random peers. A
// digest names, for the sender and for every origin whose report it
// holds fresh, the report's Seq, the origin's latest heartbeat number it
// has and that heartbeat's age. Each receiver moves its own copy's At to
// the heartbeat's time and relays it in its next rounds, so every node
// hears every origin's heartbeat within a few rounds (log of the cluster
// size), while each sends a bounded number of packets: traffic per node
// grows with the cluster size only by the digest's length (about 35
// bytes per node), not with its square. A receiver whose digest names a
// Seq it does not hold (a lost packet, a node it has no report from yet)
// asks the digest's sender for the report (kindWant), which sends it back
// with its age. Each peer keeps the highest Seq per origin
// ([Cluster.Reports]) with At, the local time the origin's latest
// heartbeat was made as far as it can tell, and signals [Cluster.Changed]
// when a report's content changes or a node comes or goes.
//
// # Invariants
//
//   - Only the origin writes its own report. Seq starts at the boot time in
//     nanoseconds and grows by one per Announce, so it also grows across
//     restarts (as long as the clock does not step back further than the
//     downtime). A receiver ignores a lower Seq and only moves At forward
//     for an equal one.
//   - Every frame, whether it arrived as a message or inside a push/pull
//     state, goes through one apply function per kind (Cluster.apply).
//   - A report relayed through push/pull, a reply to a kindWant or a
//     digest carries its age, so passing it along never makes a silent
//     origin look fresh. A heartbeat counts once: At moves only for a
//     heartbeat number higher than the one held. The same heartbeat coming
//     back through other relays (each hop's transit, unseen, makes it look
//     a little younger) changes nothing, so relays cannot keep a silent
//     origin fresh between them: a dead node is stale on every member at
//     most Staleness plus one path's transit time (a few milliseconds on
//     a LAN) after its last heartbeat.
//   - A node that leaves (its own leave message, or memberlist's leave or
//     death notice) has its report dropped at once, and its departed Seq is
//     remembered for 10*Staleness so late copies cannot bring it back. A
//     restarted process has a higher Seq and is accepted.
//   - Reports older than 10*Staleness are dropped. Freshness within that
//     window is the merge policy's business: the staleness bound, not
//     memberlist's failure detector, is what the failover relies on.
//   - memberlist callbacks never block: they decode, update the table under
//     a short lock and signal. The lock is never held while calling into
//     memberlist.
//   - [Cluster.Run] owns every goroutine cluster starts and returns only
//     after they have ended and memberlist has shut down.
//
// # Transport
//
// memberlist runs on this package's transport (transport.go): TCP streams
// and UDP packets on one address and port, as memberlist's own
// NetTransport, except that every packet is read into one buffer and
// handed over in a slice of its own length, where NetTransport allocates
// and clears 64 KiB per packet.
//
// # Trust
//
// The gossip key is what makes a member: with [Config].Keys set, every
// packet and stream is encrypted and authenticated with the primary key
// and opened with any key of the ring, so a process without a key can
// neither join nor send a report, leave, drain or acknowledgement.
// What it sends is dropped by memberlist and counted in
// gslb_cluster_rejected_messages_total{kind="gossip",
// reason="unauthenticated"} (memberlist reports these only in its log,
// which cluster reads; see isAuthFailure). Without keys, gossip on an
// address other than loopback is refused unless Insecure is set.
//
// Cluster messages do not say which member sent them, so among members
// the word of one is bounded rather than believed:
//
//   - A report whose Seq is further ahead of the receiver's clock (in
//     nanoseconds) than MaxSkew, or whose Time is, is refused: Seq starts
//     at the origin's boot time in nanoseconds and grows by one per
//     report, so it cannot be far ahead of any synchronized clock.
//   - A higher Seq wins only while it is fresh. A report that nobody has
//     refreshed for Staleness is replaced by a fresh one from the same
//     origin even with a lower Seq, and a stale report cannot replace a
//     fresh one. One forged report therefore hides the origin's own
//     reports for at most Staleness, whatever its Seq.
//   - A leave (its Seq bounded the same way) drops the origin's report
//     and shows it as left at once, provisionally: a report heard from
//     the origin more than Heartbeat/2 after the leave (a copy that was
//     on its way before it is not), or memberlist still listing the node
//     as alive leaveConfirm (2s) later, undoes it, counted as
//     reason="contradicted" or "unconfirmed". Only memberlist's own word
//     makes a departure final, so a forged leave can never remove a live
//     node from the member list.
//   - Drain records and acknowledgements must come from the name of a
//     member: one memberlist lists as alive, or one it declared failed or
//     left that is still being retried (reason="unknown_sender"; the
//     push/pull that heals a partition carries drains before memberlist
//     takes back its verdict). That name is what the audit trail records
//     as the sender ("from"). The drain table refuses
//     records stamped more than its MaxSkew ahead (reason="stamp_ahead"),
//     so one record cannot outrank every later write.
//   - A heartbeat digest entry is bounded the same way: a Seq further
//     ahead than MaxSkew (reason="seq_ahead") or a heartbeat number, the
//     origin's clock in milliseconds, further ahead than MaxSkew
//     (reason="time_ahead") is refused. An entry about an origin this
//     node holds no report of and memberlist has not listed does nothing
//     (not counted: during a join, digests naming the newcomer often
//     arrive before memberlist's news of it): a digest carries no report,
//     so it can never introduce a node or change what a report says. An
//     entry older than Staleness is old news and does nothing. A higher heartbeat
//     number wins only while it is fresh, as a Seq does, so a forged one
//     hides the origin's own heartbeats for at most Staleness. A relayed
//     heartbeat for a node memberlist declared dead or that left is
//     ignored like its report (the tombstone of its Seq), so a member
//     forging heartbeats for a dead node keeps it fresh at most until
//     memberlist's failure detector declares it dead.
//   - A kindWant must come from a member memberlist knows
//     (kind="want", reason="unknown_sender"), and is answered only while
//     that member is alive, with reports this node holds; a node asks
//     for an origin's report at most once per Heartbeat.
//
// Refusals are counted by kind and reason and logged at most once per
// 10s per kind and reason. A member that keeps forging (it holds the key)
// can keep its forgeries fresh: the key must stay secret, and rotating
// it (see [Cluster.SetKeys]) is how a member is excluded.
//
// # Wire format
//
// Every message is one kind byte followed by a body: 1 a report (JSON), 2
// a leave (JSON), 3 a push/pull state (uvarint-length-prefixed frames of
// the other kinds), 4 drain records (JSON), 5 a drain acknowledgement
// (JSON), 6 a heartbeat digest (binary: the sender's name, then per
// origin its name, Seq, heartbeat number and age in milliseconds, names
// uvarint-length-prefixed and numbers uvarints; about 35 bytes per origin,
// so a digest of 30 nodes fits one packet), 7 a request for reports
// (JSON). Unknown fields in JSON bodies are ignored, so a newer
// node can add fields; anything that fails to decode is dropped, counted
// in gslb_cluster_bad_messages_total and logged at debug. Node meta is a
// version byte (2) then the site and the config hash, each
// uvarint-length-prefixed, then the features as a uvarint bit set
// (version 1 had none); later versions may only append.
//
// # Rolling upgrades
//
// A node of the version before heartbeat digests reads neither kind 6
// nor 7 (it counts them as bad messages) and keeps a report fresh only by
// the origin re-sending it. Its node meta (version 1, no features) says
// so, and every newer node sends it the full report every Heartbeat, as
// every node used to; its own reports come every Heartbeat to everyone
// and need no digest. A mixed cluster therefore stays fresh, at the old
// cost for the old nodes.
//
// # Operator drains
//
// Drain records (package drain) travel like reports: a write is sent
// straight to every alive peer ([Cluster.BroadcastDrains]) and queued for
// gossip under the name "drain/<id>", and every push/pull carries all
// records, so a node that was away or restarted catches up on rejoin. The
// receiving side hands them to [Config].Drains, whose merge (last writer
// wins by hybrid logical clock) makes the arrival order irrelevant. Once a
// node's resolver answers from a new drain version, the node sends a drain
// acknowledgement to the node that made the write ([Cluster.AckDrains]),
// over TCP; the writer hands it to [Config].DrainAcks, which its admin API
// waits on.
//
// # Timing
//
// Detection of a dead site does not wait for memberlist. With the defaults
// a node that goes dark stops making heartbeats at once, and every peer
// sees its report as stale once its latest heartbeat is older than
// Staleness (700ms), which leaves room for the publisher's coalescing
// inside the one-second target. memberlist's failure detector then drops
// the report outright, and a graceful stop drops it at once.
//
// Freshness of a live node: a heartbeat reaches a given peer directly with
// probability 3/(n-1) per round, and through relays after two or three
// rounds (100ms each) in a cluster of 30, so the age a peer holds stays
// well inside Staleness: a report goes stale only if seven rounds in a
// row bring nothing newer through any path. Measured in process
// (TestIdleCost, 30 nodes, ages sampled every 20ms on every node): median
// 118ms, p99 279ms, worst 412ms. The in-process test of 20 nodes
// (TestGossipAtScale) checks the packets each sends per Heartbeat and that
// relays do not keep a killed node fresh.
//
// A packet holds a digest of about 37 origins with names of 18 bytes (60
// with names of 4). In a larger cluster each digest carries a random part
// of the origins, so each is relayed less often and ages grow: keep node
// names short, or raise Staleness with the cluster.
//
// memberlist starts from DefaultLANConfig with these changes, sized for a
// cluster of a few to a few dozen nodes whose round trip stays well under
// the probe timeout (LAN, or sites in one region; raise ProbeTimeout for
// intercontinental links):
//
//	ProbeInterval           500ms  (LAN 1s)    each node probes one peer per interval
//	ProbeTimeout            250ms  (LAN 500ms) direct ack deadline before indirect probes
//	GossipInterval          100ms  (LAN 200ms) Heartbeat/2: a gossip round, each packet with a heartbeat digest
//	GossipNodes             3      (LAN 3)     peers per round
//	SuspicionMult           3      (LAN 4)     suspicion lasts 3*max(1,log10 n)*500ms = 1.5s for n<10,
//	SuspicionMaxTimeoutMult 3      (LAN 6)     up to 4.5s without confirmations from other nodes
//	RetransmitMult          3      (LAN 4)     each broadcast goes out 3*ceil(log10(n+1)) times
//	PushPullInterval        10s    (LAN 30s)   full-state anti-entropy
//	GossipToTheDeadTime     30s    (LAN 30s)   how long memberlist gossips to a dead member
//	TCPTimeout              2s     (LAN 10s)   joins, push/pull, reliable sends
//	EnableCompression       false  (LAN true)  LZW on every packet was half of an idle node's gossip CPU
//	Label                   "gslbd"            keeps other memberlist clusters (Consul, Serf) out
//
// On loopback a killed node of a three-node cluster is declared dead about
// 2.5s after it stops (the test logs the figure); its report is stale
// after 700ms whatever memberlist does. A graceful leave takes about 100ms
// (memberlist's Leave waits for its own broadcast, bounded at 1s).
//
// # Healing after a partition
//
// memberlist never probes a member it has declared dead, so two sides of
// a partition (or a black hole) that lasted longer than its suspicion
// timeout would stay apart for good. Like serf, every node therefore
// runs a reconnect loop (Cluster.reconnectLoop): every RetryInterval
// (1s) it joins, through memberlist, every member it considers failed
// (for ReconnectTimeout, 24h) or left (for LeftTimeout, 5m), and every
// seed that is not an alive member's address, each address with at most
// one attempt in flight (an attempt at a black hole ends after
// TCPTimeout). A join is a push/pull, so the two sides exchange their
// full state, reports (with their ages) and drain records, in the same
// round trip; the push/pull also tells each side that the other holds it
// dead, which it refutes with a higher incarnation, and the next round
// makes the membership whole. Drains in that push/pull come from a member
// memberlist still holds as dead, which is why drain senders need only be
// known members (see Trust). TestPartitionHeals measures about 1.6s from
// the links healing to the membership whole, every report fresh and both
// sides' drains everywhere.
//
// # Member states
//
// memberlist v0.7.0 exposes neither its suspicion state nor the difference
// between a failure and a leave (Node.State is not set in events). So
// "suspect" means memberlist still lists the node but its report is older
// than Staleness, and "left" means a leave message for the node arrived
// (provisionally, until memberlist confirms it: see Trust); a departure
// without one shows as "dead".
package cluster
