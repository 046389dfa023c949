package scenario

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	// qname is the service every poll asks for.
	qname = "talk.example.com"
	// pollGap is the pause between two dig runs of one poller.
	pollGap = 5 * time.Millisecond
	// waitBound bounds every wait for a condition.
	waitBound = 15 * time.Second
)

// answer is what one dig run got from one node.
type answer struct {
	addrs []netip.Addr // sorted; empty for an empty answer
	err   error        // dig failed or printed something other than addresses
	start time.Time
	end   time.Time // when dig returned
}

func (a answer) String() string {
	if a.err != nil {
		return "error: " + a.err.Error()
	}
	if len(a.addrs) == 0 {
		return "(empty)"
	}
	s := make([]string, len(a.addrs))
	for i, x := range a.addrs {
		s[i] = x.String()
	}
	return strings.Join(s, " ")
}

// same reports whether a and b are the same answer (errors included).
func (a answer) same(b answer) bool {
	if (a.err == nil) != (b.err == nil) {
		return false
	}
	return slices.Equal(a.addrs, b.addrs)
}

// dig asks n for qname A with the real dig, once.
func (h *harness) digOnce(ctx context.Context, n *node) answer {
	a := answer{start: time.Now()}
	cmd := h.command(ctx, "client", h.dig, "@"+n.dns.Addr().String(), "-p", fmt.Sprint(n.dns.Port()),
		qname, "A", "+short", "+time=1", "+tries=1")
	out, err := cmd.Output()
	a.end = time.Now()
	if err != nil {
		a.err = fmt.Errorf("dig: %v: %s", err, firstLine(string(out)))
		return a
	}
	a.addrs, a.err = parseShort(string(out))
	return a
}

// parseShort reads dig +short output that must hold IPv4 addresses only.
func parseShort(out string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		a, err := netip.ParseAddr(line)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("dig printed %q", line)
		}
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return addrs, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// A condition on one node's answer.
type condition struct {
	name string
	ok   func(answer) bool
}

// sitesIn returns the sites an answer's addresses belong to.
func (h *harness) sitesIn(a answer) map[string]bool {
	s := map[string]bool{}
	for _, x := range a.addrs {
		s[h.siteOf[x]] = true
	}
	return s
}

// noSite holds when the answer is non-empty and has no address of site.
func (h *harness) noSite(site string) condition {
	return condition{"answers without " + site, func(a answer) bool {
		return a.err == nil && len(a.addrs) > 0 && !h.sitesIn(a)[site]
	}}
}

// onlySite holds when the answer is non-empty and all of site.
func (h *harness) onlySite(site string) condition {
	return condition{"answers " + site, func(a answer) bool {
		s := h.sitesIn(a)
		return a.err == nil && len(a.addrs) > 0 && len(s) == 1 && s[site]
	}}
}

// steady holds when the answer is every endpoint of site, and nothing
// else: the answer of a healthy cluster.
func (h *harness) steady(site string) condition {
	var want []netip.Addr
	for _, e := range h.eps {
		if e.site == site {
			want = append(want, e.addr.Addr())
		}
	}
	slices.SortFunc(want, netip.Addr.Compare)
	return condition{"answers all of " + site, func(a answer) bool {
		return a.err == nil && slices.Equal(a.addrs, want)
	}}
}

// digStats collects how long dig runs take, which is the resolution of
// every figure.
type digStats struct {
	mu    sync.Mutex
	durs  []time.Duration
	count int
}

func (d *digStats) add(a answer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.count++
	if len(d.durs) < 100000 {
		d.durs = append(d.durs, a.end.Sub(a.start))
	}
}

// pollUntil polls every node of nodes concurrently, one dig after
// another, until its answer meets cond, and returns for each node the
// first answer that did. It fails when a node has not met cond waitBound
// after pollUntil started.
func (h *harness) pollUntil(ctx context.Context, nodes []*node, cond condition, stats *digStats) (map[string]answer, error) {
	type result struct {
		n   *node
		a   answer // the first that met cond, or the last one
		err error
	}
	start := time.Now()
	results := make(chan result, len(nodes))
	for _, n := range nodes {
		go func() {
			for {
				a := h.digOnce(ctx, n)
				if stats != nil {
					stats.add(a)
				}
				switch {
				case cond.ok(a):
					results <- result{n: n, a: a}
					return
				case ctx.Err() != nil:
					results <- result{n: n, a: a, err: ctx.Err()}
					return
				case time.Since(start) > waitBound:
					results <- result{n: n, a: a, err: errTimeout}
					return
				}
				time.Sleep(pollGap)
			}
		}()
	}
	out := map[string]answer{}
	var failed []string
	for range nodes {
		r := <-results
		if r.err != nil {
			failed = append(failed, fmt.Sprintf("%s (%s): last answer %s", r.n.name, r.n.dns, r.a))
			continue
		}
		out[r.n.name] = r.a
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		return out, fmt.Errorf("not every node %s within %s: %s", cond.name, waitBound, strings.Join(failed, "; "))
	}
	return out, nil
}

// polling is a pollUntil running in the background.
type polling struct {
	done chan struct{}
	got  map[string]answer
	err  error
}

// startPolling runs pollUntil in the background, so that polling can begin
// before the event it times.
func (h *harness) startPolling(ctx context.Context, nodes []*node, cond condition, stats *digStats) *polling {
	p := &polling{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.got, p.err = h.pollUntil(ctx, nodes, cond, stats)
	}()
	return p
}

// wait returns the answers once every node met the condition.
func (p *polling) wait() (map[string]answer, error) {
	<-p.done
	return p.got, p.err
}

// recording polls nodes like pollUntil, one dig after another, but keeps
// every answer until it is stopped. A phase that must never see some
// answer (dc1 while drained, dc1 before its endpoints run) checks all of
// them afterwards, and waits on them meanwhile.
type recording struct {
	h    *harness
	stop context.CancelFunc
	wg   sync.WaitGroup

	// mu guards answers and changed.
	mu      sync.Mutex
	answers map[string][]answer // by node name, in the order dig returned
	changed chan struct{}       // closed and replaced on every answer
}

// startRecording starts one dig loop per node of nodes.
func (h *harness) startRecording(ctx context.Context, nodes []*node, stats *digStats) *recording {
	ctx, cancel := context.WithCancel(ctx)
	r := &recording{h: h, stop: cancel, answers: map[string][]answer{}, changed: make(chan struct{})}
	for _, n := range nodes {
		r.wg.Go(func() {
			for ctx.Err() == nil {
				a := h.digOnce(ctx, n)
				if ctx.Err() != nil {
					return // dig was killed: not an answer
				}
				stats.add(a)
				r.mu.Lock()
				r.answers[n.name] = append(r.answers[n.name], a)
				close(r.changed)
				r.changed = make(chan struct{})
				r.mu.Unlock()
				time.Sleep(pollGap)
			}
		})
	}
	return r
}

// waitFor waits until every node of nodes has given an answer that met
// cond to a dig begun at or after since, and returns the first such
// answer of each. A dig begun earlier does not count even when it returned
// later: after a restart it may have been answered by the node's previous
// incarnation. waitFor fails when a node has not answered so, waitBound
// after waitFor began.
func (r *recording) waitFor(ctx context.Context, nodes []*node, cond condition, since time.Time) (map[string]answer, error) {
	deadline := time.NewTimer(waitBound)
	defer deadline.Stop()
	got := map[string]answer{}
	for {
		r.mu.Lock()
		changed := r.changed
		for _, n := range nodes {
			if _, ok := got[n.name]; ok {
				continue
			}
			for _, a := range r.answers[n.name] {
				if !a.start.Before(since) && cond.ok(a) {
					got[n.name] = a
					break
				}
			}
		}
		var failed []string
		if len(got) < len(nodes) {
			for _, n := range nodes {
				if _, ok := got[n.name]; !ok {
					last := "none"
					if as := r.answers[n.name]; len(as) > 0 {
						last = as[len(as)-1].String()
					}
					failed = append(failed, fmt.Sprintf("%s (%s): last answer %s", n.name, n.dns, last))
				}
			}
		}
		r.mu.Unlock()
		if len(failed) == 0 {
			return got, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return got, ctx.Err()
		case <-deadline.C:
			return got, fmt.Errorf("not every node %s within %s: %s", cond.name, waitBound, strings.Join(failed, "; "))
		}
	}
}

// finish stops the dig loops and returns every answer, by node name.
func (r *recording) finish() map[string][]answer {
	r.stop()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.answers
}

// forbidden returns, as readable lines, the answers in all that hold an
// address of site and returned before until.
func (h *harness) forbidden(all map[string][]answer, site string, until time.Time) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(all)) {
		for _, a := range all[name] {
			if a.end.Before(until) && h.sitesIn(a)[site] {
				out = append(out, fmt.Sprintf("%s answered %s to a dig run from %s to %s, %ss before %s was allowed",
					name, a, a.start.Format("15:04:05.000"), a.end.Format("15:04:05.000"), secs(until.Sub(a.end)), site))
			}
		}
	}
	return out
}
