package health

import (
	"fmt"
	"strings"
	"testing"
)

// results turns "+-+" into success, failure, success.
func results(s string) []bool {
	out := make([]bool, len(s))
	for i, c := range s {
		out[i] = c == '+'
	}
	return out
}

func run(seq string, rise, fall int) machine {
	var m machine
	for _, ok := range results(seq) {
		m = m.next(ok, rise, fall)
	}
	return m
}

func TestMachineNext(t *testing.T) {
	tests := []struct {
		name       string
		from       machine
		ok         bool
		rise, fall int
		want       machine
	}{
		{"unknown success goes up", machine{Unknown, 0}, true, 2, 2, machine{Up, 0}},
		{"unknown success after failures goes up", machine{Unknown, 1}, true, 2, 3, machine{Up, 0}},
		{"unknown first failure waits", machine{Unknown, 0}, false, 2, 2, machine{Unknown, 1}},
		{"unknown fall failures go down", machine{Unknown, 1}, false, 2, 2, machine{Down, 0}},
		{"unknown fall 1 goes down at once", machine{Unknown, 0}, false, 2, 1, machine{Down, 0}},
		{"unknown fall 3 second failure waits", machine{Unknown, 1}, false, 2, 3, machine{Unknown, 2}},
		{"up success stays", machine{Up, 0}, true, 2, 2, machine{Up, 0}},
		{"up success resets failures", machine{Up, 1}, true, 2, 2, machine{Up, 0}},
		{"up first failure waits", machine{Up, 0}, false, 2, 2, machine{Up, 1}},
		{"up fall failures go down", machine{Up, 1}, false, 2, 2, machine{Down, 0}},
		{"up fall 1 goes down at once", machine{Up, 0}, false, 2, 1, machine{Down, 0}},
		{"up fall 3 second failure waits", machine{Up, 1}, false, 2, 3, machine{Up, 2}},
		{"up fall 3 third failure goes down", machine{Up, 2}, false, 2, 3, machine{Down, 0}},
		{"down failure stays", machine{Down, 0}, false, 2, 2, machine{Down, 0}},
		{"down failure resets successes", machine{Down, 1}, false, 2, 2, machine{Down, 0}},
		{"down first success waits", machine{Down, 0}, true, 2, 2, machine{Down, 1}},
		{"down rise successes go up", machine{Down, 1}, true, 2, 2, machine{Up, 0}},
		{"down rise 1 goes up at once", machine{Down, 0}, true, 1, 2, machine{Up, 0}},
		{"down rise 3 second success waits", machine{Down, 1}, true, 3, 2, machine{Down, 2}},
		{"zero thresholds count as 1: fall", machine{Up, 0}, false, 0, 0, machine{Down, 0}},
		{"zero thresholds count as 1: rise", machine{Down, 0}, true, 0, 0, machine{Up, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.from.next(tc.ok, tc.rise, tc.fall)
			if got != tc.want {
				t.Errorf("%+v.next(%v, %d, %d) = %+v, want %+v", tc.from, tc.ok, tc.rise, tc.fall, got, tc.want)
			}
		})
	}
}

func TestMachineSequences(t *testing.T) {
	tests := []struct {
		seq        string
		rise, fall int
		want       State
	}{
		{"", 2, 2, Unknown},
		{"-", 2, 2, Unknown},
		{"--", 2, 2, Down},
		{"-+", 2, 2, Up},
		{"+-", 2, 2, Up},        // one lost probe does not flip
		{"+-+-+-", 2, 2, Up},    // nor do alternating ones
		{"+--", 2, 2, Down},     // two in a row do
		{"--+", 2, 2, Down},     // one success does not recover
		{"--+-+", 2, 2, Down},   // nor do alternating ones
		{"--++", 2, 2, Up},      // two in a row do
		{"+--+", 2, 3, Up},      // fall 3 needs three
		{"+---", 2, 3, Down},    // and gets them
		{"---++", 3, 3, Down},   // rise 3 needs three
		{"---+++", 3, 3, Up},    // and gets them
		{"--++--+", 2, 2, Down}, // down again, one success short
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q rise %d fall %d", tc.seq, tc.rise, tc.fall), func(t *testing.T) {
			if got := run(tc.seq, tc.rise, tc.fall).state; got != tc.want {
				t.Errorf("state after %q = %v, want %v", tc.seq, got, tc.want)
			}
		})
	}
}

// reference states the rules a second way, from the whole history: the
// previous state plus the length of the trailing run of equal results.
// (A counter reset happens exactly where the trailing run starts, so the
// two formulations must agree.)
func reference(seq []bool, rise, fall int) State {
	if len(seq) == 0 {
		return Unknown
	}
	prev := reference(seq[:len(seq)-1], rise, fall)
	last := seq[len(seq)-1]
	run := 0
	for i := len(seq) - 1; i >= 0 && seq[i] == last; i-- {
		run++
	}
	switch {
	case prev == Unknown && last:
		return Up
	case prev != Down && !last && run >= max(fall, 1):
		return Down
	case prev == Down && last && run >= max(rise, 1):
		return Up
	}
	return prev
}

// TestMachineExhaustive compares every result sequence up to length 10
// for thresholds 1 to 4 with the reference, and checks the hysteresis
// promise: a single result against the state never flips it when the
// threshold is above 1, and that pending (which makes the Checker confirm
// quickly) is set exactly when the last result disagrees with the state.
func TestMachineExhaustive(t *testing.T) {
	const maxLen = 10
	for rise := 1; rise <= 4; rise++ {
		for fall := 1; fall <= 4; fall++ {
			for n := 0; n <= maxLen; n++ {
				for bits := 0; bits < 1<<n; bits++ {
					seq := make([]bool, n)
					var b strings.Builder
					for i := range seq {
						seq[i] = bits&(1<<i) != 0
						b.WriteByte("-+"[bits>>i&1])
					}
					var m machine
					for i, ok := range seq {
						prev := m
						m = m.next(ok, rise, fall)
						if want := reference(seq[:i+1], rise, fall); m.state != want {
							t.Fatalf("rise %d fall %d: state after %q = %v, want %v", rise, fall, b.String()[:i+1], m.state, want)
						}
						isolated := i == 0 || seq[i-1] != ok
						if prev.state == Up && !ok && fall > 1 && isolated && m.state != Up {
							t.Fatalf("rise %d fall %d: one failure after %q flipped Up", rise, fall, b.String()[:i])
						}
						if prev.state == Down && ok && rise > 1 && isolated && m.state != Down {
							t.Fatalf("rise %d fall %d: one success after %q flipped Down", rise, fall, b.String()[:i])
						}
						// pending: the last result disagrees with the state.
						if want := ok == (m.state == Down); m.pending() != want {
							t.Fatalf("rise %d fall %d: after %q pending() = %v, want %v", rise, fall, b.String()[:i+1], m.pending(), want)
						}
					}
				}
			}
		}
	}
}
