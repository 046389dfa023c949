package health

import "time"

// State is the probed state of one endpoint.
type State uint8

// States. Unknown means not probed to a conclusion yet.
const (
	Unknown State = iota
	Up
	Down
)

// String returns "unknown", "up" or "down".
func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	default:
		return "unknown"
	}
}

// Report is what one node says about every endpoint it probes. Nodes
// gossip their reports; each origin numbers its reports with Seq, so a
// receiver keeps the highest Seq per origin and ignores older ones.
// A Report is immutable once built.
type Report struct {
	Origin     string    // node name
	Site       string    // the origin's site
	Seq        uint64    // increases with every report of the origin, across restarts
	Time       time.Time // when the origin built it (informational: receivers age reports by their own clock)
	ConfigHash string    // zones.Set.Hash of the origin
	// Ready is true once the origin finished its first probe round.
	Ready bool
	// Targets maps endpoint ID to the origin's probed state of it.
	Targets map[string]State
}

// Received is a Report as a node holds it: with the local time it last
// arrived (or was refreshed), by which freshness is judged.
type Received struct {
	Report
	At time.Time
}
