package health

// machine is the per-target state machine: the current state plus the
// length of the current run of results that disagree with it. It is a
// value; next returns the following one and changes nothing.
//
// The rules give hysteresis in both directions, so that one lost or slow
// probe never flips a verdict:
//
//   - Unknown: one success goes Up (a fresh node should serve as soon as it
//     has evidence); fall consecutive failures go Down.
//   - Up: fall consecutive failures go Down; any success resets the count.
//   - Down: rise consecutive successes go Up; any failure resets the count.
type machine struct {
	state State
	// run counts consecutive results against state: failures while Unknown
	// or Up, successes while Down. It is zero right after a transition.
	run int
}

// next returns the machine after one probe result. Thresholds below 1
// count as 1.
func (m machine) next(ok bool, rise, fall int) machine {
	rise, fall = max(rise, 1), max(fall, 1)
	switch m.state {
	case Up:
		if ok {
			return machine{state: Up}
		}
		if m.run+1 >= fall {
			return machine{state: Down}
		}
		return machine{state: Up, run: m.run + 1}
	case Down:
		if !ok {
			return machine{state: Down}
		}
		if m.run+1 >= rise {
			return machine{state: Up}
		}
		return machine{state: Down, run: m.run + 1}
	default:
		if ok {
			return machine{state: Up}
		}
		if m.run+1 >= fall {
			return machine{state: Down}
		}
		return machine{state: Unknown, run: m.run + 1}
	}
}

// pending reports whether the last result disagreed with the state without
// flipping it yet: a failure while not Down, or a success while Down. The
// Checker then confirms quickly instead of waiting a full interval.
func (m machine) pending() bool { return m.run > 0 }
