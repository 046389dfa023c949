// Package drain owns operator drains: an operator takes a site out of
// service (for one service or all of them, optionally only for some client
// subnets) on any node, and every node of the cluster passes that site
// over until the drain is deleted or expires.
//
// It holds the drain records, the hybrid logical clock that versions them,
// the last-writer-wins merge, expiry, persistence to a state file, the
// acknowledgement tracker, and the immutable [View] the resolver reads
// (it implements resolver.Drains). It imports nothing of gslbd's: cluster
// carries records on the wire, cmd wires the rest.
//
// # Records and keys
//
// A drain is identified by its scope: site, service ("" for every service)
// and client prefixes (none for every client). [Key.ID] derives a short
// stable ID from the scope, so the same drain has the same ID on every
// node and across re-creation, and "undrain dc1" names exactly one drain.
// Each ID holds at most one [Record]: the live drain, or a tombstone that
// says it was deleted.
//
// # The conflict rule
//
// Every write (create or delete) is stamped on the node that makes it with
// that node's hybrid logical clock and the node's name: [Stamp] is
// (wall nanoseconds, logical counter, node). For one ID, the record with
// the higher stamp wins, compared in that order; a delete is a record too
// (a tombstone) and competes the same way. Equal stamps from one node
// cannot carry different content while the state file survives (the
// clock resumes past every stamp it holds); should it happen anyway, a
// tombstone beats a live record, and then the larger encoding wins, so the
// outcome never depends on arrival order. The merge is thus a max per ID:
// commutative, associative and idempotent, and every node that has seen
// the same writes holds the same records, whatever the order.
//
// The clock: a local write takes max(physical now, last stamp) and bumps
// the logical counter on a tie; a stamp received from a peer moves the
// clock forward when it is ahead. So a write made after seeing another
// (a delete after the create it deletes) always stamps higher, even when
// the deleting node's wall clock is behind the creating node's.
//
// # The cluster-wide guardrail
//
// A node refuses a drain that would leave a service with no site able to
// take traffic, unless forced, but it judges by the drains it holds: two
// drains made at the same moment on two nodes (dc1 on one, dc2 on the
// other) can each pass, and together drain every site of a service.
// [NewGuardedView] settles this from the records alone, the same way on
// every node: it replays the drains in force in stamp order and sets
// aside (does not apply) each drain without [Record].Force that, on top of
// the drains kept before it, would leave some service with every one of
// its sites drained for some client (the intersection, over the service's
// sites, of the clients each is drained for, is not empty). The later
// write loses, as it would have had the writer seen the earlier one.
// Health plays no part, so that every node decides alike; the write-time
// check, which does use health, stays on the writing node. A drain set
// aside stays in the table, is reported ([View.SetAside], events with
// [ActionSetAside] and [ActionApply] via [ViaGuardrail]), and applies as
// soon as the drains that block it end; delete it to drop it. A record
// without a force field (from an older node) is not forced.
//
// # Expiry and tombstones
//
// A record with an expiry is in force while now < Expires, by each node's
// own clock (drains end within the nodes' clock skew of each other).
// Expired records and tombstones are kept for [DefaultGrace] past their
// end (expiry, or the delete), then forgotten. A node that was offline
// longer than that can bring back a drain that was deleted meanwhile;
// start such a node with an empty state directory.
//
// # Persistence
//
// [Store] writes every change to its state file before it reports success:
// a temporary file in the same directory, fsynced, renamed over the old
// one, and the directory fsynced. A crash leaves the old file or the new
// one, never a mix. Changes received by gossip are written by [Store.Run]
// shortly after, off the gossip callback.
package drain
