package cluster

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gslbd/gslbd/health"
)

// kind is the first byte of every message cluster hands to memberlist.
// The body after it is JSON, except for kindState.
//
// Adding a kind takes: a constant here, a
// wire type with its encode and decode functions, one case in
// Cluster.apply, and, if the kind is state rather than an event, a loop
// in Cluster.localState so that push/pull carries it. Deltas and full
// state then share the same apply path.
type kind uint8

const (
	// kindReport carries one node's [health.Report] (body: wireReport).
	kindReport kind = 1
	// kindLeave says a node is leaving gracefully (body: wireLeave), so
	// peers drop its report at once and show it as left, not dead.
	kindLeave kind = 2
	// kindState is the push/pull payload: a sequence of frames of the
	// other kinds, each preceded by its length as a uvarint. It is only
	// valid in LocalState/MergeRemoteState and never nests.
	kindState kind = 3
	// kindDrains carries operator drain records (body: wireDrains). It is
	// state: push/pull carries every record too.
	kindDrains kind = 4
	// kindDrainAck says which drain versions a node applied (body:
	// wireDrainAck). It is an event, sent to the node that made the write.
	kindDrainAck kind = 5
)

func (k kind) String() string {
	switch k {
	case kindReport:
		return "report"
	case kindLeave:
		return "leave"
	case kindState:
		return "state"
	case kindDrains:
		return "drains"
	case kindDrainAck:
		return "drain ack"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

// errEmpty is returned for a zero-length frame.
var errEmpty = errors.New("empty message")

// wireReport is a health.Report on the wire. AgeMillis is how long ago
// the sender last heard from the origin (0 when the sender is the origin):
// a report relayed through push/pull keeps its true freshness, so a peer
// cannot make a silent node look alive by passing its report along.
type wireReport struct {
	Origin     string                  `json:"origin"`
	Site       string                  `json:"site"`
	Seq        uint64                  `json:"seq"`
	Time       time.Time               `json:"time"`
	ConfigHash string                  `json:"config_hash,omitempty"`
	Ready      bool                    `json:"ready,omitempty"`
	Targets    map[string]health.State `json:"targets"`
	AgeMillis  int64                   `json:"age_ms,omitempty"`
}

// reportMsg is a decoded kindReport frame.
type reportMsg struct {
	report health.Report
	age    time.Duration
}

// wireLeave announces a graceful departure. Seq is the leaving node's
// current sequence number: a leave cannot drop a newer report (one from a
// restarted process of the same name).
type wireLeave struct {
	Origin string `json:"origin"`
	Seq    uint64 `json:"seq"`
}

// encodeReport returns r as a kindReport frame.
func encodeReport(r health.Report, age time.Duration) []byte {
	w := wireReport{
		Origin:     r.Origin,
		Site:       r.Site,
		Seq:        r.Seq,
		Time:       r.Time,
		ConfigHash: r.ConfigHash,
		Ready:      r.Ready,
		Targets:    r.Targets,
		AgeMillis:  max(age.Milliseconds(), 0),
	}
	return encode(kindReport, w)
}

// decodeReport decodes the body of a kindReport frame. The result owns
// its memory: nothing refers to body afterwards.
func decodeReport(body []byte) (reportMsg, error) {
	var w wireReport
	if err := json.Unmarshal(body, &w); err != nil {
		return reportMsg{}, fmt.Errorf("decode report: %w", err)
	}
	switch {
	case w.Origin == "":
		return reportMsg{}, errors.New("decode report: no origin")
	case w.Seq == 0:
		return reportMsg{}, fmt.Errorf("decode report from %q: no seq", w.Origin)
	case w.AgeMillis < 0:
		return reportMsg{}, fmt.Errorf("decode report from %q: negative age", w.Origin)
	}
	for id, s := range w.Targets {
		if s > health.Down {
			return reportMsg{}, fmt.Errorf("decode report from %q: target %q: invalid state %d", w.Origin, id, s)
		}
	}
	if w.Targets == nil {
		w.Targets = map[string]health.State{}
	}
	return reportMsg{
		report: health.Report{
			Origin:     w.Origin,
			Site:       w.Site,
			Seq:        w.Seq,
			Time:       w.Time,
			ConfigHash: w.ConfigHash,
			Ready:      w.Ready,
			Targets:    w.Targets,
		},
		age: time.Duration(w.AgeMillis) * time.Millisecond,
	}, nil
}

// encodeLeave returns a kindLeave frame.
func encodeLeave(origin string, seq uint64) []byte {
	return encode(kindLeave, wireLeave{Origin: origin, Seq: seq})
}

// decodeLeave decodes the body of a kindLeave frame.
func decodeLeave(body []byte) (wireLeave, error) {
	var w wireLeave
	if err := json.Unmarshal(body, &w); err != nil {
		return wireLeave{}, fmt.Errorf("decode leave: %w", err)
	}
	if w.Origin == "" {
		return wireLeave{}, errors.New("decode leave: no origin")
	}
	return w, nil
}

// encode frames v, which must be one of our wire types (they always
// marshal), behind its kind byte.
func encode(k kind, v any) []byte {
	body, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("cluster: encode %v: %v", k, err)) // unreachable: plain structs of strings, numbers, maps and times
	}
	frame := make([]byte, 0, 1+len(body))
	frame = append(frame, byte(k))
	return append(frame, body...)
}

// splitKind returns the kind and body of a frame.
func splitKind(frame []byte) (kind, []byte, error) {
	if len(frame) == 0 {
		return 0, nil, errEmpty
	}
	return kind(frame[0]), frame[1:], nil
}

// appendStateFrame appends one frame to a kindState message.
func appendStateFrame(state, frame []byte) []byte {
	state = binary.AppendUvarint(state, uint64(len(frame)))
	return append(state, frame...)
}

// splitState calls fn with each frame in the body of a kindState message,
// in order. It stops at the first error, from fn or from the framing.
func splitState(body []byte, fn func(frame []byte) error) error {
	for len(body) > 0 {
		n, w := binary.Uvarint(body)
		if w <= 0 || n > uint64(len(body)-w) {
			return errors.New("decode state: bad frame length")
		}
		frame := body[w : w+int(n)]
		body = body[w+int(n):]
		if len(frame) > 0 && kind(frame[0]) == kindState {
			return errors.New("decode state: nested state")
		}
		if err := fn(frame); err != nil {
			return err
		}
	}
	return nil
}
