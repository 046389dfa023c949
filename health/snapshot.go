package health

import (
	"maps"
	"time"
)

// Status is what this node knows about one target.
type Status struct {
	State State
	// Since is when the target entered State (for Unknown: when the
	// Checker started to track it).
	Since time.Time
	// LastError is the probe error that took the target Down; it is empty
	// in other states. Errors that do not change the state are counted in
	// metrics but not kept here, so the Snapshot changes only on
	// transitions.
	LastError string
	// LocalFault, when not empty, is why this node cannot probe the target
	// at the moment (for example "socket: too many open files"): its last
	// Fall probes or more failed because of the node itself, not the
	// endpoint. State stays what the probes last concluded, but the node
	// abstains: it casts no vote on the target ([Status.Vote]) until a
	// probe reaches the endpoint again.
	LocalFault string
}

// Vote is what this node says about the target to the merge and to its
// peers: its State, or Unknown (no vote) while it cannot probe the target.
func (s Status) Vote() State {
	if s.LocalFault != "" {
		return Unknown
	}
	return s.State
}

// Snapshot is the Checker's view of its targets at one moment. It is
// immutable and safe for concurrent use; the Checker replaces it with a
// new one on every state transition. A nil *Snapshot has no targets and is
// not ready.
type Snapshot struct {
	statuses map[string]Status
	ready    bool
}

// Get returns the status of the target with the given ID.
func (s *Snapshot) Get(id string) (Status, bool) {
	if s == nil {
		return Status{}, false
	}
	st, ok := s.statuses[id]
	return st, ok
}

// Up reports whether the target may receive traffic as far as this node
// can tell. Only a target whose [Status.Vote] is Down is not up: an
// Unknown target (not probed to a conclusion yet), one this node cannot
// probe at the moment, and an ID this node does not check count as up. Failing open is deliberate: before the first round
// completes the node is not ready and serves nothing, and after it an
// Unknown target is one just added by a reload, which was presumably
// added because it serves.
func (s *Snapshot) Up(id string) bool {
	st, _ := s.Get(id)
	return st.Vote() != Down
}

// States returns a fresh map from target ID to this node's vote on it
// ([Status.Vote]: Unknown while a target cannot be probed from here), for
// building a [Report]. The caller owns it.
func (s *Snapshot) States() map[string]State {
	if s == nil {
		return map[string]State{}
	}
	out := make(map[string]State, len(s.statuses))
	for id, st := range s.statuses {
		out[id] = st.Vote()
	}
	return out
}

// Statuses returns a fresh map from target ID to status. The caller owns
// it.
func (s *Snapshot) Statuses() map[string]Status {
	if s == nil {
		return map[string]Status{}
	}
	return maps.Clone(s.statuses)
}

// Len returns the number of targets.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return len(s.statuses)
}

// Ready reports whether the first probe round is over: every target has
// left Unknown, or [CheckerConfig].FirstRoundBound has passed since the
// Checker started. Once ready, a Checker's snapshots stay ready, also
// across [Checker.Update].
func (s *Snapshot) Ready() bool { return s != nil && s.ready }

// allKnown reports whether no status is Unknown.
func allKnown(statuses map[string]Status) bool {
	for _, st := range statuses {
		if st.State == Unknown {
			return false
		}
	}
	return true
}
