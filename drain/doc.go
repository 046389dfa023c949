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
