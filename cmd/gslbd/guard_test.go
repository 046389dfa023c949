package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/admin/api"
	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/internal/testwait"
)

// guardServices adds pay.example.com (dc2 then dc1, SERVFAIL when neither
// can serve, as in the demo) to the drain cluster's talk.example.com.
const guardServices = `sites: [dc1, dc2, dc3]
services:
  talk.example.com:
    order: [dc1, dc2, dc3]
    check: {type: http, port: %[1]d, path: /healthz}
    sites:
      dc1: [127.0.1.10]
      dc2: [127.0.2.10]
      dc3: [127.0.3.10]
  pay.example.com:
    order: [dc2, dc1]
    all_down: servfail
    check: {type: http, port: %[1]d, path: /healthz}
    sites:
      dc1: [127.0.1.10]
      dc2: [127.0.2.10]
`

// answer returns a node's answer for name: its A records, or the rcode
// when it is not NOERROR.
func answer(t *testing.T, server, name string) string {
	t.Helper()
	r := query(t, server, name, dns.TypeA)
	if r.Rcode != dns.RcodeSuccess {
		return dns.RcodeToString[r.Rcode]
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return strings.Join(out, ",")
}

// status reads a node's status document.
func (c *drainCluster) status(name string) api.Status {
	c.t.Helper()
	var s api.Status
	if err := json.Unmarshal([]byte(getJSON(c.t, c.nodes[name].bound.Admin, "/api/v1/status", testReadToken)), &s); err != nil {
		c.t.Fatal(err)
	}
	return s
}

// setAside returns the IDs a node's status lists as set aside.
func (c *drainCluster) setAside(name string) []string {
	var ids []string
	for _, sa := range c.status(name).SetAside {
		ids = append(ids, sa.Drain.ID)
	}
	return ids
}

// everywhere reports whether every node answers want for name.
func (c *drainCluster) everywhere(name, want string) bool {
	for _, n := range c.nodes {
		if answer(c.t, n.bound.DNS[0], name) != want {
			return false
		}
	}
	return true
}

// TestGuardrailAcrossCluster: two drains made at the same moment on two
// nodes, each allowed by its own node's guardrail, that together drain
// both sites of pay.example.com. Before the cluster-wide guardrail every
// node then answered SERVFAIL for pay; now every node sets the later one
// aside, says so in its status, events and metrics, and keeps answering.
func TestGuardrailAcrossCluster(t *testing.T) {
	c := newDrainCluster(t)
	writeFile(t, filepath.Join(c.dir, "services.yaml"), fmt.Sprintf(guardServices, c.port))

	// a (dc1) and b (dc2) run apart: neither can see the other's write,
	// which is what two writes at the same moment look like to the
	// guardrail of each.
	a, b := c.startOne("a"), c.startOne("b")
	testwait.Until(t, 10*time.Second, "a and b answer pay from dc2", func() bool {
		return answer(t, a.bound.DNS[0], "pay.example.com.") == "127.0.2.10" && answer(t, b.bound.DNS[0], "pay.example.com.") == "127.0.2.10"
	})
	drainOn := func(node, site string) drain.Record {
		t.Helper()
		out, errOut, err := c.cli(node, testWriteToken, "drain", site, "--reason", "maintenance of "+site, "--wait", "0s", "-o", "json")
		if err != nil {
			t.Fatalf("gslbd drain %s on %s: %v\n%s%s", site, node, err, out, errOut)
		}
		var res api.Result
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		return res.Drain
	}
	first := drainOn("a", "dc1")
	second := drainOn("b", "dc2")
	if first.Force || second.Force {
		t.Fatalf("drains made without force are recorded as forced: %+v %+v", first, second)
	}

	// c joins both: the cluster forms and the drains merge everywhere.
	c.startOne("c", a.bound.Gossip, b.bound.Gossip)
	c.waitAlive()
	testwait.Until(t, 10*time.Second, "every node holds both drains and sets the later one aside", func() bool {
		for _, name := range c.names {
			if !slices.Equal(c.setAside(name), []string{second.ID}) {
				return false
			}
		}
		return true
	})
	if got := c.answersFor("pay.example.com."); !c.everywhere("pay.example.com.", "127.0.2.10") {
		t.Errorf("pay with dc1 drained and the dc2 drain set aside: %v, want 127.0.2.10 everywhere (never SERVFAIL)", got)
	}
	if got := c.answersFor("talk.example.com."); !c.everywhere("talk.example.com.", "127.0.2.10") {
		t.Errorf("talk: %v, want dc2 (dc1 drained, the dc2 drain set aside) everywhere", got)
	}
	for _, name := range c.names {
		n := c.nodes[name]
		st := c.status(name)
		if len(st.SetAside) != 1 || !slices.Equal(st.SetAside[0].Services, []string{"pay.example.com."}) || len(st.Drains) != 1 || st.Drains[0].ID != first.ID {
			t.Errorf("status on %s: drains %+v, set aside %+v; want %s applied, %s set aside for pay", name, st.Drains, st.SetAside, first.ID, second.ID)
		}
		if got := metric(t, n.bound.Admin, "gslb_drain_set_aside"); got != "1" {
			t.Errorf("gslb_drain_set_aside on %s = %s, want 1", name, got)
		}
		ev := getJSON(t, n.bound.Admin, "/api/v1/events", testReadToken)
		if !strings.Contains(ev, `"action": "set_aside"`) || !strings.Contains(ev, `"via": "guardrail"`) {
			t.Errorf("events on %s lack the set-aside:\n%s", name, ev)
		}
		for _, st := range st.Services {
			for _, site := range st.Sites {
				if site.Site == "dc2" && len(site.DrainedBy) > 0 {
					t.Errorf("status on %s says %s dc2 is drained by %v, want not drained", name, st.Name, site.DrainedBy)
				}
			}
		}
	}
	out, _, err := c.cli("c", testReadToken, "status")
	if err != nil || !strings.Contains(out, "set aside by the cluster-wide guardrail") || !strings.Contains(out, second.ID) {
		t.Errorf("gslbd status on c: %v\n%s\nwant the set-aside drain", err, out)
	}

	// The drain before it ends: the set-aside one applies, everywhere.
	if _, errOut, err := c.cli("c", testWriteToken, "undrain", "dc1", "--reason", "done"); err != nil {
		t.Fatalf("undrain dc1: %v %s", err, errOut)
	}
	testwait.Until(t, 10*time.Second, "pay moves to dc1 as the dc2 drain applies", func() bool {
		return c.everywhere("pay.example.com.", "127.0.1.10") && c.everywhere("talk.example.com.", "127.0.1.10")
	})
	for _, name := range c.names {
		if ids := c.setAside(name); len(ids) != 0 {
			t.Errorf("set aside on %s after the undrain = %v, want none", name, ids)
		}
		if ev := getJSON(t, c.nodes[name].bound.Admin, "/api/v1/events?limit=2", testReadToken); !strings.Contains(ev, `"action": "apply"`) {
			t.Errorf("events on %s lack the dc2 drain applying:\n%s", name, ev)
		}
	}
	if _, errOut, err := c.cli("a", testWriteToken, "undrain", "dc2"); err != nil {
		t.Fatalf("undrain dc2: %v %s", err, errOut)
	}
	testwait.Until(t, 10*time.Second, "pay back on dc2", func() bool { return c.everywhere("pay.example.com.", "127.0.2.10") })

	// Now on the formed cluster, truly at once: dc1 on a and dc2 on b,
	// released together. Each call may win its node's guardrail or be
	// refused by it; whatever happens, pay keeps a site on every node and
	// every node sets aside the same drain.
	for trial := range 5 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := map[string]error{}
		var mu sync.Mutex
		for node, site := range map[string]string{"a": "dc1", "b": "dc2"} {
			wg.Go(func() {
				<-start
				_, _, err := c.cli(node, testWriteToken, "drain", site, "--reason", "at once", "--wait", "0s")
				mu.Lock()
				errs[site] = err
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		both := errs["dc1"] == nil && errs["dc2"] == nil
		testwait.Until(t, 10*time.Second, "every node agrees on the drains", func() bool {
			var want []string
			for i, name := range c.names {
				ids := c.setAside(name)
				if i == 0 {
					want = ids
				}
				if !slices.Equal(ids, want) || (both && len(ids) != 1) {
					return false
				}
			}
			return true
		})
		if got := c.answersFor("pay.example.com."); slices.Contains(got, "SERVFAIL") || got[0] == "" {
			t.Errorf("trial %d (both accepted: %v): pay answers %v, want a site on every node", trial, both, got)
		}
		t.Logf("trial %d: dc1 on a: %v; dc2 on b: %v; set aside: %v", trial, errs["dc1"], errs["dc2"], c.setAside("a"))
		for _, site := range []string{"dc1", "dc2"} {
			if errs[site] == nil {
				if _, errOut, err := c.cli("c", testWriteToken, "undrain", site); err != nil {
					t.Fatalf("undrain %s: %v %s", site, err, errOut)
				}
			}
		}
		testwait.Until(t, 10*time.Second, "no drain left", func() bool { return c.everywhere("talk.example.com.", "127.0.1.10") })
	}
}

// answersFor returns every node's answer for name, in node order.
func (c *drainCluster) answersFor(name string) []string {
	var out []string
	for _, n := range c.names {
		out = append(out, answer(c.t, c.nodes[n].bound.DNS[0], name))
	}
	return out
}
