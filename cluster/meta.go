package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// metaVersion is the first byte of our node meta. Version 1 is the site
// and the config hash, each as a uvarint length and the bytes; version 2
// appends the features (a uvarint bit set). Later versions may only
// append fields, so an older node still reads the site and hash of a
// newer one.
const metaVersion = 2

// feature is a bit of nodeMeta.Features: something a node's gossip does
// that a node of an earlier version does not.
type feature uint64

const (
	// featureBeats: the node keeps reports fresh from the heartbeat
	// digests gossip relays (kindBeats) and fetches a report it lacks
	// (kindWant), so it needs no full report from every peer every
	// Heartbeat. A peer without it (an earlier version, during a rolling
	// upgrade) still gets one.
	featureBeats feature = 1 << iota
)

// ourFeatures is what this version does.
const ourFeatures = featureBeats

// nodeMeta is what a node tells every peer about itself through
// memberlist's node meta (limited to [memberlist.MetaMaxSize] bytes).
type nodeMeta struct {
	Site       string
	ConfigHash string
	Features   feature // zero for a node of version 1
}

// encodeMeta returns m in the version 2 layout.
func encodeMeta(m nodeMeta) ([]byte, error) {
	b := []byte{metaVersion}
	b = binary.AppendUvarint(b, uint64(len(m.Site)))
	b = append(b, m.Site...)
	b = binary.AppendUvarint(b, uint64(len(m.ConfigHash)))
	b = append(b, m.ConfigHash...)
	b = binary.AppendUvarint(b, uint64(m.Features))
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node meta is %d bytes, over the limit of %d: shorten site or config hash", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// decodeMeta reads a peer's node meta, of version 1 or later. Trailing
// bytes (fields of a later version) are ignored.
func decodeMeta(b []byte) (nodeMeta, error) {
	if len(b) == 0 {
		return nodeMeta{}, errors.New("no node meta")
	}
	if b[0] < 1 {
		return nodeMeta{}, fmt.Errorf("node meta version %d", b[0])
	}
	version := b[0]
	b = b[1:]
	site, b, err := metaString(b)
	if err != nil {
		return nodeMeta{}, fmt.Errorf("node meta site: %w", err)
	}
	hash, b, err := metaString(b)
	if err != nil {
		return nodeMeta{}, fmt.Errorf("node meta config hash: %w", err)
	}
	m := nodeMeta{Site: site, ConfigHash: hash}
	if version >= 2 {
		f, w := binary.Uvarint(b)
		if w <= 0 {
			return nodeMeta{}, errors.New("node meta features: bad varint")
		}
		m.Features = feature(f)
	}
	return m, nil
}

func metaString(b []byte) (string, []byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return "", nil, errors.New("bad length")
	}
	return string(b[w : w+int(n)]), b[w+int(n):], nil
}
