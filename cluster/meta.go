package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// metaVersion is the first byte of our node meta. Version 1 is the site
// and the config hash, each as a uvarint length and the bytes. Later
// versions may only append fields, so an older node still reads the site
// and hash of a newer one.
const metaVersion = 1

// nodeMeta is what a node tells every peer about itself through
// memberlist's node meta (limited to [memberlist.MetaMaxSize] bytes).
type nodeMeta struct {
	Site       string
	ConfigHash string
}

// encodeMeta returns m in the version 1 layout.
func encodeMeta(m nodeMeta) ([]byte, error) {
	b := []byte{metaVersion}
	b = binary.AppendUvarint(b, uint64(len(m.Site)))
	b = append(b, m.Site...)
	b = binary.AppendUvarint(b, uint64(len(m.ConfigHash)))
	b = append(b, m.ConfigHash...)
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node meta is %d bytes, over the limit of %d: shorten site or config hash", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// decodeMeta reads a peer's node meta. Trailing bytes (fields of a later
// version) are ignored.
func decodeMeta(b []byte) (nodeMeta, error) {
	if len(b) == 0 {
		return nodeMeta{}, errors.New("no node meta")
	}
	if b[0] < metaVersion {
		return nodeMeta{}, fmt.Errorf("node meta version %d", b[0])
	}
	b = b[1:]
	site, b, err := metaString(b)
	if err != nil {
		return nodeMeta{}, fmt.Errorf("node meta site: %w", err)
	}
	hash, _, err := metaString(b)
	if err != nil {
		return nodeMeta{}, fmt.Errorf("node meta config hash: %w", err)
	}
	return nodeMeta{Site: site, ConfigHash: hash}, nil
}

func metaString(b []byte) (string, []byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return "", nil, errors.New("bad length")
	}
	return string(b[w : w+int(n)]), b[w+int(n):], nil
}
