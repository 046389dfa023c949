package zones

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestHashIsTheJSONOfTheDefinitions: the config hash nodes compare is the
// SHA-256 of the JSON of the sorted service definitions, written out one
// service at a time; it must stay exactly that, or nodes of two versions
// would see each other's definitions as different.
func TestHashIsTheJSONOfTheDefinitions(t *testing.T) {
	set, err := Load(Config{
		Zones:        []ZoneConfig{{Origin: "example.com.", File: "../testdata/demo/example.com.zone"}},
		ServicesFile: "../testdata/demo/services.yaml",
	})
	if err != nil {
		t.Fatal(err)
	}
	canon := make([]Service, 0, len(set.Services()))
	for _, s := range set.Services() {
		c := *s
		c.Zone = ""
		canon = append(canon, c)
	}
	slices.SortFunc(canon, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	b, err := json.Marshal(canon)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if want := hex.EncodeToString(sum[:8]); set.Hash() != want || len(canon) < 2 {
		t.Errorf("Hash() = %s, want %s (the JSON of %d services)", set.Hash(), want, len(canon))
	}
}
