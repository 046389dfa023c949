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
// The body after it is JSON, except for kindState and kindBeats.
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
	// kindBeats is a heartbeat digest (body: binary, see appendBeats): the
	// sender's latest sign of life from every origin it holds a fresh
	// report of, itself included, with the report's Seq and the sign's
	// age. It rides memberlist's gossip and is relayed, never stored.
	kindBeats kind = 6
	// kindWant asks a peer for the reports of some origins (body:
	// wireWant), when a digest named a report the asker lacks.
	kindWant kind = 7
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
	case kindBeats:
		return "beats"
	case kindWant:
		return "want"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

// errEmpty is returned for a zero-length frame.
var errEmpty = errors.New("empty message")

// wireReport is a health.Report on the wire. AgeMillis is how long ago
// the sender last heard from the origin (0 when the sender is the origin):
// a report relayed through push/pull keeps its true freshness, so a peer
// cannot make a silent node look alive by passing its report along. Beat
// is the origin's heartbeat that age belongs to (see beatEntry); 0 from a
// node of an earlier version, which sends none.
type wireReport struct {
	Origin     string                  `json:"origin"`
	Site       string                  `json:"site"`
	Seq        uint64                  `json:"seq"`
	Time       time.Time               `json:"time"`
	ConfigHash string                  `json:"config_hash,omitempty"`
	Ready      bool                    `json:"ready,omitempty"`
	Targets    map[string]health.State `json:"targets"`
	AgeMillis  int64                   `json:"age_ms,omitempty"`
	Beat       uint64                  `json:"beat,omitempty"`
}

// reportMsg is a decoded kindReport frame.
type reportMsg struct {
	report health.Report
	beat   uint64
	age    time.Duration
}

// wireLeave announces a graceful departure. Seq is the leaving node's
// current sequence number: a leave cannot drop a newer report (one from a
// restarted process of the same name).
type wireLeave struct {
	Origin string `json:"origin"`
	Seq    uint64 `json:"seq"`
}

// encodeReport returns r as a kindReport frame, with the origin's beat
// and its age as the sender knows them.
func encodeReport(r health.Report, beat uint64, age time.Duration) []byte {
	w := wireReport{
		Origin:     r.Origin,
		Site:       r.Site,
		Seq:        r.Seq,
		Time:       r.Time,
		ConfigHash: r.ConfigHash,
		Ready:      r.Ready,
		Targets:    r.Targets,
		AgeMillis:  max(age.Milliseconds(), 0),
		Beat:       beat,
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
		beat: w.Beat,
		age:  millis(uint64(w.AgeMillis)),
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

// beatEntry is one origin's line in a heartbeat digest: the Seq of the
// report the sender holds from it, the origin's latest heartbeat the
// sender has, and how long ago (by the sender's clock) that heartbeat was
// made. An origin's heartbeat number is its clock in milliseconds since
// the Unix epoch when it sent the digest, raised to one more than the
// previous one when the clock has not moved: it grows with every digest
// and across restarts, and a receiver can bound it by its own clock.
type beatEntry struct {
	origin    string
	seq, beat uint64
	age       time.Duration
}

// wireBeats is a decoded kindBeats frame. From names the sender, the peer
// to ask for a report the digest shows is missing.
type wireBeats struct {
	from    string
	entries []beatEntry
}

// maxName bounds a node name in a digest. memberlist sets no limit; a
// name longer than this cannot be a member's in practice (node meta and
// packets would not fit it).
const maxName = 255

// maxAgeMillis bounds an age on the wire, so that it converts to a
// time.Duration without overflow: about 35 years, far older than any
// report is kept.
const maxAgeMillis = 1 << 40

// millis converts a wire age in milliseconds to a Duration, capped at
// maxAgeMillis.
func millis(ms uint64) time.Duration {
	return time.Duration(min(ms, maxAgeMillis)) * time.Millisecond
}

// The body of a kindBeats frame is binary, because it travels in every
// gossip packet and must stay small: the sender's name, then one entry per
// origin until the end, each
//
//	uvarint length, origin name; uvarint seq; uvarint beat; uvarint age in ms
//
// A name is its length as a uvarint and its bytes. A JSON digest was
// twice the size (an entry of 30 to 40 bytes against 60 to 70) and
// several times the decoding work.

// beatsHeader starts a kindBeats frame from the sender from.
func beatsHeader(from string) []byte {
	return appendName([]byte{byte(kindBeats)}, from)
}

// appendBeat appends one entry to a kindBeats frame.
func appendBeat(b []byte, e beatEntry) []byte {
	b = appendName(b, e.origin)
	b = binary.AppendUvarint(b, e.seq)
	b = binary.AppendUvarint(b, e.beat)
	return binary.AppendUvarint(b, uint64(max(e.age.Milliseconds(), 0)))
}

// beatLen is the length appendBeat adds for e.
func beatLen(e beatEntry) int {
	return uvarintLen(uint64(len(e.origin))) + len(e.origin) + uvarintLen(e.seq) + uvarintLen(e.beat) +
		uvarintLen(uint64(max(e.age.Milliseconds(), 0)))
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func appendName(b []byte, name string) []byte {
	b = binary.AppendUvarint(b, uint64(len(name)))
	return append(b, name...)
}

// decodeBeats decodes the body of a kindBeats frame. Every entry must be
// whole: an origin name of 1 to maxName bytes, a Seq and a beat above
// zero. The result owns its memory.
func decodeBeats(body []byte) (wireBeats, error) {
	from, body, err := readName(body)
	if err != nil {
		return wireBeats{}, fmt.Errorf("decode beats: sender: %w", err)
	}
	w := wireBeats{from: from}
	for len(body) > 0 {
		var e beatEntry
		var age uint64
		if e.origin, body, err = readName(body); err != nil {
			return wireBeats{}, fmt.Errorf("decode beats from %q: origin: %w", from, err)
		}
		for _, v := range []*uint64{&e.seq, &e.beat, &age} {
			n, k := binary.Uvarint(body)
			if k <= 0 {
				return wireBeats{}, fmt.Errorf("decode beats from %q: origin %q: bad varint", from, e.origin)
			}
			*v, body = n, body[k:]
		}
		if e.seq == 0 || e.beat == 0 {
			return wireBeats{}, fmt.Errorf("decode beats from %q: origin %q: no seq or beat", from, e.origin)
		}
		e.age = millis(age)
		w.entries = append(w.entries, e)
	}
	return w, nil
}

func readName(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	switch {
	case k <= 0 || n > uint64(len(b)-k):
		return "", nil, errors.New("bad length")
	case n == 0 || n > maxName:
		return "", nil, fmt.Errorf("name of %d bytes", n)
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}

// wireWant asks the receiver for its reports from Origins, to be sent to
// From (a member).
type wireWant struct {
	From    string   `json:"from"`
	Origins []string `json:"origins"`
}

func encodeWant(from string, origins []string) []byte {
	return encode(kindWant, wireWant{From: from, Origins: origins})
}

func decodeWant(body []byte) (wireWant, error) {
	var w wireWant
	if err := json.Unmarshal(body, &w); err != nil {
		return wireWant{}, fmt.Errorf("decode want: %w", err)
	}
	if w.From == "" {
		return wireWant{}, errors.New("decode want: no sender")
	}
	return w, nil
}
