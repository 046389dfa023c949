package api

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gslbd/gslbd/drain"
)

// The text is what the operator commands printed before it moved here;
// times are zero so that it does not depend on the local time zone.

func TestWriteStatus(t *testing.T) {
	full := Status{Node: "a", Site: "dc1", ConfigHash: "abc123", Generation: 7, Ready: true,
		Services: []ServiceStatus{{Name: "talk.example.com.", Sites: []SiteStatus{
			{Site: "dc1", DrainedBy: []string{"d1", "d2"}, Endpoints: []EndpointStatus{
				{ID: "x", Address: "192.0.2.1", Up: true, Reason: "healthy", Local: "up"},
				{ID: "y", Address: "192.0.2.2", Up: false, Reason: "probe failed", Local: "down", Error: "connection refused"},
			}},
			{Site: "dc2", Endpoints: []EndpointStatus{{ID: "z", Address: "198.51.100.1", Up: true, Reason: "remote", Local: "unknown"}}},
		}}},
		Drains: []drain.Record{
			{ID: "d1", Key: drain.Key{Site: "dc1"}, Reason: "power feed", By: "ops", Stamp: drain.Stamp{Node: "a"}},
			{ID: "d2", Key: drain.Key{Site: "dc1", Service: "talk.example.com.", Clients: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.2/32")}}, Reason: "drill", By: "ops", Stamp: drain.Stamp{Node: "b"}},
		},
		Peers: []PeerStatus{
			{Name: "a", Site: "dc1", Address: "127.0.0.1:7946", State: "alive", ConfigHash: "abc123", SameConfig: true},
			{Name: "b", Site: "dc2", Address: "127.0.0.1:7947", State: "suspect", ConfigHash: "def456"},
		},
	}
	tests := []struct {
		name string
		in   Status
		want string
	}{
		{"a cluster", full, `node a, site dc1, config abc123, generation 7, ready yes

SERVICE            SITE  ENDPOINT      VERDICT  WHY           LOCAL PROBE               DRAINED BY
talk.example.com.  dc1   192.0.2.1     up       healthy       up                        d1,d2
                         192.0.2.2     down     probe failed  down: connection refused  
                   dc2   198.51.100.1  up       remote        unknown                   

DRAIN  SITE  SERVICE            CLIENTS                  EXPIRES  BY   NODE  REASON
d1     dc1   all                all                      never    ops  a     power feed
d2     dc1   talk.example.com.  10.0.0.0/8,127.0.0.2/32  never    ops  b     drill

NODE  SITE  ADDRESS         STATE    CONFIG            LAST REPORT
a     dc1   127.0.0.1:7946  alive    abc123            -
b     dc2   127.0.0.1:7947  suspect  def456 (differs)  -
`},
		{"a drain set aside", Status{Node: "a", Site: "dc1", ConfigHash: "h", Generation: 2,
			Drains: []drain.Record{{ID: "d1", Key: drain.Key{Site: "dc1"}, Reason: "power feed", By: "ops", Stamp: drain.Stamp{Node: "a"}}},
			SetAside: []drain.SetAside{{Drain: drain.Record{ID: "d2", Key: drain.Key{Site: "dc2"}, Reason: "maintenance", By: "ops2", Stamp: drain.Stamp{Node: "b"}},
				Services: []string{"pay.example.com."}}},
		}, `node a, site dc1, config h, generation 2, ready no

DRAIN  SITE  SERVICE  CLIENTS  EXPIRES  BY   NODE  REASON
d1     dc1   all      all      never    ops  a     power feed

set aside by the cluster-wide guardrail, not applied (each would leave a service no site; it applies once the drains before it end):
DRAIN  SITE  SERVICE  CLIENTS  BY    NODE  WOULD LEAVE NO SITE FOR  REASON
d2     dc2   all      all      ops2  b     pay.example.com.         maintenance

no gossip: this node runs alone
`},
		{"a suspect view", Status{Node: "a", Site: "dc1", ConfigHash: "h", Generation: 3, Ready: true, ViewSuspect: true,
			Services: []ServiceStatus{{Name: "talk.example.com.", Sites: []SiteStatus{
				{Site: "dc1", Endpoints: []EndpointStatus{{ID: "x", Address: "192.0.2.1", Up: true, Reason: "site dc1 silent; cross-check 1/1 up",
					Local: "up", LocalFault: "socket: too many open files"}}},
			}}},
			Peers: []PeerStatus{
				{Name: "a", Site: "dc1", Address: "127.0.0.1:7946", State: "alive", ConfigHash: "h", SameConfig: true, ViewSuspect: true},
				{Name: "b", Site: "dc2", Address: "127.0.0.1:7947", State: "alive", ConfigHash: "h", SameConfig: true},
			},
		}, `node a, site dc1, config h, generation 3, ready yes
own view SUSPECT: none of this node's probes succeeds while other nodes see those endpoints up;
  its votes are set aside and its verdicts come from the other nodes (see LOCAL PROBE)

SERVICE            SITE  ENDPOINT   VERDICT  WHY                                  LOCAL PROBE                                               DRAINED BY
talk.example.com.  dc1   192.0.2.1  up       site dc1 silent; cross-check 1/1 up  up (cannot probe from here: socket: too many open files)  

no drains in force

NODE  SITE  ADDRESS         STATE                CONFIG  LAST REPORT
a     dc1   127.0.0.1:7946  alive, view suspect  h       -
b     dc2   127.0.0.1:7947  alive                h       -
`},
		{"a node alone", Status{Node: "solo", Site: "dc9", ConfigHash: "h", Generation: 1}, `node solo, site dc9, config h, generation 1, ready no

no drains in force

no gossip: this node runs alone
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			WriteStatus(&b, tc.in)
			if got := b.String(); got != tc.want {
				t.Errorf("WriteStatus() =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestWriteResult(t *testing.T) {
	rec := drain.Record{ID: "d1", Key: drain.Key{Site: "dc1", Service: "talk.example.com."}, Reason: "power feed", By: "ops"}
	tests := []struct {
		name  string
		write func(*bytes.Buffer, Result)
		in    Result
		want  string
	}{
		{"created", func(b *bytes.Buffer, r Result) { WriteCreated(b, r) },
			Result{Drain: rec, Ack: Ack{Complete: true, Applied: []string{"a", "b"}, WaitedMillis: 12}},
			"drain d1 in force: site dc1, service talk.example.com., every client; \"power feed\" by ops, no expiry\n" +
				"applied on every node (2) within 12ms: a, b\n"},
		{"forced, partly applied", func(b *bytes.Buffer, r Result) { WriteCreated(b, r) },
			Result{Drain: rec, Forced: []string{"talk.example.com.", "pay.example.com."}, Ack: Ack{Applied: []string{"a"}, Missing: []string{"b", "c"}, WaitedMillis: 5000}},
			"drain d1 in force: site dc1, service talk.example.com., every client; \"power feed\" by ops, no expiry\n" +
				"forced: no site is left able to take traffic for talk.example.com., pay.example.com.\n" +
				"applied on 1 of 3 nodes after 5000ms: a\n" +
				"not yet applied on: b, c (gossip keeps delivering it; check with gslbd status on those nodes)\n"},
		{"deleted, applied nowhere", func(b *bytes.Buffer, r Result) { WriteDeleted(b, r) },
			Result{Drain: rec, Ack: Ack{Missing: []string{"b"}, Unreachable: []string{"b"}}},
			"drain d1 ended: site dc1, service talk.example.com., every client\n" +
				"applied on 0 of 1 nodes after 0ms: none\n" +
				"not yet applied on: b (gossip keeps delivering it; check with gslbd status on those nodes)\n" +
				"not reachable from this node: b (failed or cut off; they apply it once back in touch)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tc.write(&b, tc.in)
			if got := b.String(); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestFormatPrefixes(t *testing.T) {
	for _, tc := range []struct {
		in   []netip.Prefix
		want string
	}{
		{nil, ""},
		{[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "10.0.0.0/8"},
		{[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::1/128")}, "10.0.0.0/8,2001:db8::1/128"},
	} {
		if got := FormatPrefixes(tc.in); got != tc.want {
			t.Errorf("FormatPrefixes(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
