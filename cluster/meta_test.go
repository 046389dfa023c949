package cluster

import (
	"net"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	m := nodeMeta{Site: "dc1", ConfigHash: "sha256:abc"}
	b, err := encodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != metaVersion {
		t.Errorf("first byte %d, want version %d", b[0], metaVersion)
	}
	got, err := decodeMeta(b)
	if err != nil || got != m {
		t.Errorf("decodeMeta(encodeMeta(%+v)) = %+v, %v", m, got, err)
	}
	// A later version appends fields: still readable.
	got, err = decodeMeta(append([]byte{metaVersion + 1}, append(b[1:], 0xde, 0xad)...))
	if err != nil || got != m {
		t.Errorf("decodeMeta(v2 with extra fields) = %+v, %v, want %+v", got, err, m)
	}
}

func TestMetaRejects(t *testing.T) {
	for _, b := range [][]byte{nil, {0}, {1}, {1, 5, 'a'}, {1, 1, 'a', 9}} {
		if got, err := decodeMeta(b); err == nil {
			t.Errorf("decodeMeta(%v) = %+v, want error", b, got)
		}
	}
	if _, err := encodeMeta(nodeMeta{Site: strings.Repeat("x", memberlist.MetaMaxSize)}); err == nil {
		t.Error("encodeMeta with a huge site succeeded, want error")
	}
}

// memberlistNode builds memberlist nodes for event tests.
type memberlistNode struct {
	Name string
	Meta []byte
}

func (n memberlistNode) node() *memberlist.Node {
	return &memberlist.Node{Name: n.Name, Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Meta: n.Meta}
}

func mustMeta(t *testing.T, site, hash string) []byte {
	t.Helper()
	b, err := encodeMeta(nodeMeta{Site: site, ConfigHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
