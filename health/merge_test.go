package health

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// snap builds a snapshot from "id=state" pairs.
func snap(states map[string]State) *Snapshot {
	s := &Snapshot{statuses: map[string]Status{}, ready: true}
	for id, st := range states {
		s.statuses[id] = Status{State: st}
	}
	return s
}

// report builds a fresh-enough remote report: age is how long ago it
// arrived.
func report(origin, site string, age time.Duration, targets map[string]State) Received {
	return Received{
		Report: Report{Origin: origin, Site: site, Seq: 1, ConfigHash: "h", Ready: true, Targets: targets},
		At:     t0.Add(-age),
	}
}

type want struct {
	up     bool
	reason string
}

func TestMerge(t *testing.T) {
	// a1 and a2 are in dc1, b1 in dc2. This node, n1, is in dc1.
	sites := map[string]string{"a1": "dc1", "a2": "dc1", "b1": "dc2"}
	const U, D, X = Up, Down, Unknown
	mismatched := report("n9", "dc2", 0, map[string]State{"b1": D})
	mismatched.ConfigHash = "other"
	older := report("n3", "dc2", 0, map[string]State{"b1": D})
	newer := report("n3", "dc2", time.Second, map[string]State{"b1": U})
	newer.Seq = 2

	tests := []struct {
		name       string
		local      map[string]State // nil: no local snapshot
		remote     []Received
		want       map[string]want
		wantStale  []string
		wantExpiry time.Time
	}{
		{
			name:  "local only",
			local: map[string]State{"a1": U, "a2": D, "b1": D},
			want: map[string]want{
				"a1": {true, "own site 1/1 up"},
				"a2": {false, "own site 0/1 up"},
				"b1": {false, "site dc2 silent; cross-check 0/1 up"},
			},
		},
		{
			name:   "remote only",
			remote: []Received{report("n3", "dc2", time.Second, map[string]State{"a1": D, "a2": U, "b1": U})},
			want: map[string]want{
				"a1": {false, "site dc1 silent; cross-check 0/1 up"},
				"a2": {true, "site dc1 silent; cross-check 1/1 up"},
				"b1": {true, "own site 1/1 up"},
			},
			wantExpiry: t0.Add(4 * time.Second),
		},
		{
			name:  "own site majority up",
			local: map[string]State{"a1": D},
			remote: []Received{
				report("n2", "dc1", 0, map[string]State{"a1": U}),
				report("n4", "dc1", 0, map[string]State{"a1": U}),
			},
			want:       map[string]want{"a1": {true, "own site 2/3 up"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			name:  "own site majority down",
			local: map[string]State{"a1": U},
			remote: []Received{
				report("n2", "dc1", 0, map[string]State{"a1": D}),
				report("n4", "dc1", 0, map[string]State{"a1": D}),
			},
			want:       map[string]want{"a1": {false, "own site 1/3 up"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			name:       "own site tie counts as up",
			local:      map[string]State{"a1": D},
			remote:     []Received{report("n2", "dc1", 0, map[string]State{"a1": U})},
			want:       map[string]want{"a1": {true, "own site 1/2 up"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			name:  "own site outranks other sites",
			local: map[string]State{"b1": D},
			remote: []Received{
				report("n3", "dc2", 0, map[string]State{"b1": U}),
				report("n5", "dc3", 0, map[string]State{"b1": D}),
			},
			want:       map[string]want{"b1": {true, "own site 1/1 up"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			name:  "unknown states do not vote",
			local: map[string]State{"a1": X},
			remote: []Received{
				report("n2", "dc1", 0, map[string]State{"a1": X}),
				report("n4", "dc1", 0, map[string]State{"a1": D}),
			},
			want:       map[string]want{"a1": {false, "own site 0/1 up"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			name:  "silent site: cross-check majority up",
			local: map[string]State{"b1": U},
			remote: []Received{
				report("n5", "dc3", 0, map[string]State{"b1": U}),
				report("n6", "dc3", 0, map[string]State{"b1": D}),
			},
			want:       map[string]want{"b1": {true, "site dc2 silent; cross-check 2/3 up"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			// Before issue 8 a tie withdrew a silent site: one witness
			// outweighed another.
			name:       "silent site: a cross-check tie keeps it",
			local:      map[string]State{"b1": U},
			remote:     []Received{report("n5", "dc3", 0, map[string]State{"b1": D})},
			want:       map[string]want{"b1": {true, "site dc2 silent; cross-check 1/2 up"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			name:  "silent site: a strict majority of cross-checks down withdraws it",
			local: map[string]State{"b1": D},
			remote: []Received{
				report("n5", "dc3", 0, map[string]State{"b1": D}),
				report("n6", "dc3", 0, map[string]State{"b1": U}),
			},
			want:       map[string]want{"b1": {false, "site dc2 silent; cross-check 1/3 up"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			name:  "black-holed site: its last report goes stale, the cross-check withdraws it",
			local: map[string]State{"a1": U, "b1": D},
			remote: []Received{
				report("n3", "dc2", 5*time.Second, map[string]State{"a1": U, "b1": U}),
			},
			want: map[string]want{
				"a1": {true, "own site 1/1 up"},
				"b1": {false, "site dc2 silent; cross-check 0/1 up"},
			},
			wantStale: []string{"n3"},
		},
		{
			// Before issue 8 the one own-site node won.
			name:  "one own-site down does not beat every other site up",
			local: map[string]State{"b1": U},
			remote: []Received{
				report("n3", "dc2", 0, map[string]State{"b1": D}),
				report("n5", "dc3", 0, map[string]State{"b1": U}),
			},
			want:       map[string]want{"b1": {true, "own site 0/1 up, but every other site sees it up (2/2 sites)"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			name:  "own site down, one other site agrees: withdrawn",
			local: map[string]State{"b1": U},
			remote: []Received{
				report("n3", "dc2", 0, map[string]State{"b1": D}),
				report("n5", "dc3", 0, map[string]State{"b1": D}),
			},
			want:       map[string]want{"b1": {false, "own site 0/1 up"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			name:  "own site down, another site split: not contradicted by every site, withdrawn",
			local: map[string]State{"b1": U},
			remote: []Received{
				report("n3", "dc2", 0, map[string]State{"b1": D}),
				report("n5", "dc3", 0, map[string]State{"b1": U}),
				report("n6", "dc3", 0, map[string]State{"b1": D}),
			},
			want:       map[string]want{"b1": {false, "own site 0/1 up"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			name:  "own site majority up outranks every other site down",
			local: map[string]State{"a1": U},
			remote: []Received{
				report("n3", "dc2", 0, map[string]State{"a1": D}),
				report("n5", "dc3", 0, map[string]State{"a1": D}),
			},
			want:       map[string]want{"a1": {true, "own site 1/1 up"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			// Before issue 8 a tie inside a site always counted as up.
			name:  "own site tie broken by the cross-check: down",
			local: map[string]State{"a1": D},
			remote: []Received{
				report("n2", "dc1", 0, map[string]State{"a1": U}),
				report("n3", "dc2", 0, map[string]State{"a1": D}),
				report("n5", "dc3", 0, map[string]State{"a1": D}),
			},
			want:       map[string]want{"a1": {false, "own site 1/2 up, tie broken by cross-check 0/2 up"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			name:  "own site tie, cross-check tie: up",
			local: map[string]State{"a1": D},
			remote: []Received{
				report("n2", "dc1", 0, map[string]State{"a1": U}),
				report("n3", "dc2", 0, map[string]State{"a1": U}),
				report("n5", "dc3", 0, map[string]State{"a1": D}),
			},
			want:       map[string]want{"a1": {true, "own site 1/2 up"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			name:  "site whose nodes know nothing counts as silent",
			local: map[string]State{"b1": U},
			remote: []Received{
				report("n3", "dc2", 0, map[string]State{"b1": X}),
				report("n7", "dc2", 0, map[string]State{}),
			},
			want:       map[string]want{"b1": {true, "site dc2 silent; cross-check 1/1 up"}},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			name:  "stale report ignored",
			local: map[string]State{"b1": D},
			remote: []Received{
				report("n3", "dc2", 10*time.Second, map[string]State{"b1": U}),
				report("n7", "dc2", 5*time.Second, map[string]State{"b1": U}), // exactly Staleness old
			},
			want:      map[string]want{"b1": {false, "site dc2 silent; cross-check 0/1 up"}},
			wantStale: []string{"n3", "n7"},
		},
		{
			name:       "just fresh report used",
			local:      map[string]State{"b1": D},
			remote:     []Received{report("n3", "dc2", 5*time.Second-1, map[string]State{"b1": U})},
			want:       map[string]want{"b1": {true, "own site 1/1 up"}},
			wantExpiry: t0.Add(1),
		},
		{
			name:      "other config hash ignored",
			local:     map[string]State{"b1": U},
			remote:    []Received{mismatched},
			want:      map[string]want{"b1": {true, "site dc2 silent; cross-check 1/1 up"}},
			wantStale: []string{"n9"},
		},
		{
			name:  "isolated node decides from its own probes",
			local: map[string]State{"a1": U, "a2": D, "b1": U},
			remote: []Received{
				report("n2", "dc1", time.Minute, map[string]State{"a1": D, "a2": U, "b1": D}),
				report("n3", "dc2", time.Minute, map[string]State{"a1": D, "a2": U, "b1": D}),
			},
			want: map[string]want{
				"a1": {true, "own site 1/1 up"},
				"a2": {false, "own site 0/1 up"},
				"b1": {true, "site dc2 silent; cross-check 1/1 up"},
			},
			wantStale: []string{"n2", "n3"},
		},
		{
			name:   "nobody knows: fail open",
			local:  map[string]State{"a1": X},
			remote: []Received{report("n3", "dc2", 0, map[string]State{"a1": X})},
			want: map[string]want{
				"a1": {true, "no known state; fail open"},
				"b1": {true, "no known state; fail open"},
			},
			wantExpiry: t0.Add(5 * time.Second),
		},
		{
			name:   "own echo ignored in favour of the local snapshot",
			local:  map[string]State{"a1": U},
			remote: []Received{report("n1", "dc1", 0, map[string]State{"a1": D})},
			want:   map[string]want{"a1": {true, "own site 1/1 up"}},
		},
		{
			name:       "highest seq per origin wins",
			remote:     []Received{newer, older},
			want:       map[string]want{"b1": {true, "own site 1/1 up"}},
			wantExpiry: t0.Add(4 * time.Second),
		},
		{
			name:  "next expiry is the earliest used report",
			local: map[string]State{},
			remote: []Received{
				report("n2", "dc1", 1*time.Second, nil),
				report("n3", "dc2", 3*time.Second, nil),
				report("n4", "dc2", 9*time.Second, nil), // stale: not used
			},
			want:       map[string]want{"a1": {true, "no known state; fail open"}},
			wantStale:  []string{"n4"},
			wantExpiry: t0.Add(2 * time.Second),
		},
		{
			name:  "endpoint not in sites is up",
			local: map[string]State{"zz": D},
			want:  map[string]want{"zz": {true, "unknown endpoint; fail open"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := MergeInput{
				Self: "n1", Site: "dc1", ConfigHash: "h",
				Remote: tc.remote, Sites: sites, Now: t0, Staleness: 5 * time.Second,
			}
			if tc.local != nil {
				in.Local = snap(tc.local)
			}
			v := Merge(in)
			for id, w := range tc.want {
				got := v.Verdict(id)
				if got.Up != w.up || got.Reason != w.reason {
					t.Errorf("Merge().Verdict(%q) = %v %q, want %v %q", id, got.Up, got.Reason, w.up, w.reason)
				}
				if v.Up(id) != w.up {
					t.Errorf("Merge().Up(%q) = %v, want %v", id, v.Up(id), w.up)
				}
			}
			if got := v.Stale(); !slices.Equal(got, tc.wantStale) {
				t.Errorf("Merge().Stale() = %q, want %q", got, tc.wantStale)
			}
			if got := v.NextExpiry(); !got.Equal(tc.wantExpiry) {
				t.Errorf("Merge().NextExpiry() = %v, want %v", got, tc.wantExpiry)
			}
		})
	}
}

func TestMergeVotesAndLists(t *testing.T) {
	mis := report("n9", "dc1", 0, map[string]State{"a1": Down})
	mis.ConfigHash = "other"
	v := Merge(MergeInput{
		Self: "n1", Site: "dc1", ConfigHash: "h",
		Local: snap(map[string]State{"a1": Up}),
		Remote: []Received{
			report("n2", "dc1", 0, map[string]State{"a1": Down}),
			report("n3", "dc2", 0, map[string]State{"a1": Up}),
			report("n5", "dc3", 0, map[string]State{"a1": Down}),
			report("n8", "dc2", time.Hour, map[string]State{"a1": Down}),
			mis,
		},
		Sites: map[string]string{"a1": "dc1"}, Now: t0, Staleness: 5 * time.Second,
	})
	got := v.Verdict("a1")
	want := Verdict{Up: true, Reason: "own site 1/2 up", Site: "dc1", Own: Votes{Up: 1, Down: 1}, Cross: Votes{Up: 1, Down: 1},
		CrossSites: SiteVotes{Up: 1, Down: 1}}
	if got != want {
		t.Errorf("Verdict(a1) = %+v, want %+v", got, want)
	}
	if got := v.Verdicts(); len(got) != 1 || got["a1"] != want {
		t.Errorf("Verdicts() = %+v, want only a1", got)
	}
	if got, want := v.Stale(), []string{"n8", "n9"}; !slices.Equal(got, want) {
		t.Errorf("Stale() = %q, want %q", got, want)
	}
	if got, want := v.Mismatched(), []string{"n9"}; !slices.Equal(got, want) {
		t.Errorf("Mismatched() = %q, want %q", got, want)
	}
}

// TestMergeQuietSite: an endpoint whose own site has gone Quiet without
// a heartbeat is withdrawn as soon as the cross-check would withdraw it
// once that site went stale, and not otherwise; until then the view asks
// to be merged again when the site turns quiet.
func TestMergeQuietSite(t *testing.T) {
	// a1 in dc1; this node, n5, is in dc3 unless said otherwise.
	sites := map[string]string{"a1": "dc1"}
	const U, D = Up, Down
	one := func(st State) map[string]State { return map[string]State{"a1": st} }
	const staleness, quiet = 700 * time.Millisecond, 400 * time.Millisecond
	tests := []struct {
		name       string
		site       string // this node's; dc3 when empty
		local      State
		remote     []Received
		quiet      time.Duration
		want       want
		wantExpiry time.Time
	}{
		{
			name:   "quiet site, cross-check down: withdrawn",
			local:  D,
			remote: []Received{report("n1", "dc1", 500*time.Millisecond, one(U)), report("n2", "dc2", 0, one(D))},
			quiet:  quiet,
			want:   want{false, "site dc1 quiet (no heartbeat for 400ms; own site 1/1 up); cross-check 0/2 up"},
			// dc1's report goes stale.
			wantExpiry: t0.Add(200 * time.Millisecond),
		},
		{
			name:   "quiet off: own site decides until stale",
			local:  D,
			remote: []Received{report("n1", "dc1", 500*time.Millisecond, one(U)), report("n2", "dc2", 0, one(D))},
			want:   want{true, "own site 1/1 up"},
			// dc1's report goes stale.
			wantExpiry: t0.Add(200 * time.Millisecond),
		},
		{
			name:   "quiet not shorter than staleness: off",
			local:  D,
			remote: []Received{report("n1", "dc1", 500*time.Millisecond, one(U)), report("n2", "dc2", 0, one(D))},
			quiet:  staleness,
			want:   want{true, "own site 1/1 up"},
			// dc1's report goes stale.
			wantExpiry: t0.Add(200 * time.Millisecond),
		},
		{
			name:   "site heard lately: up, merge again when it turns quiet",
			local:  D,
			remote: []Received{report("n1", "dc1", 300*time.Millisecond, one(U)), report("n2", "dc2", 0, one(D))},
			quiet:  quiet,
			want:   want{true, "own site 1/1 up"},
			// dc1 turns quiet.
			wantExpiry: t0.Add(100 * time.Millisecond),
		},
		{
			name:  "one of the site's nodes heard lately: not quiet",
			local: D,
			remote: []Received{
				report("n1", "dc1", 500*time.Millisecond, one(U)),
				report("n4", "dc1", 100*time.Millisecond, one(U)),
				report("n2", "dc2", 0, one(D)),
			},
			quiet: quiet,
			want:  want{true, "own site 2/2 up"},
			// n1 goes stale before dc1 turns quiet.
			wantExpiry: t0.Add(200 * time.Millisecond),
		},
		{
			name:   "quiet site, cross-check up: up",
			local:  U,
			remote: []Received{report("n1", "dc1", 500*time.Millisecond, one(U)), report("n2", "dc2", 0, one(D))},
			quiet:  quiet,
			want:   want{true, "own site 1/1 up"},
			// dc1's report goes stale; nothing to recheck at quiet.
			wantExpiry: t0.Add(200 * time.Millisecond),
		},
		{
			name:       "quiet site, cross-check tied: up",
			local:      D,
			remote:     []Received{report("n1", "dc1", 500*time.Millisecond, one(U)), report("n2", "dc2", 0, one(U))},
			quiet:      quiet,
			want:       want{true, "own site 1/1 up"},
			wantExpiry: t0.Add(200 * time.Millisecond),
		},
		{
			name:       "this node in the site is never quiet",
			site:       "dc1",
			local:      U,
			remote:     []Received{report("n2", "dc2", 0, one(D)), report("n3", "dc3", 0, one(D))},
			quiet:      quiet,
			want:       want{true, "own site 1/1 up"},
			wantExpiry: t0.Add(staleness),
		},
		{
			name:       "quiet site saying down stays down",
			local:      U,
			remote:     []Received{report("n1", "dc1", 500*time.Millisecond, one(D)), report("n2", "dc2", 0, one(D))},
			quiet:      quiet,
			want:       want{false, "own site 0/1 up"},
			wantExpiry: t0.Add(200 * time.Millisecond),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			site := tc.site
			if site == "" {
				site = "dc3"
			}
			v := Merge(MergeInput{
				Self: "n5", Site: site, ConfigHash: "h", Local: snap(map[string]State{"a1": tc.local}),
				Remote: tc.remote, Sites: sites, Now: t0, Staleness: staleness, Quiet: tc.quiet,
			})
			got := v.Verdict("a1")
			if got.Up != tc.want.up || got.Reason != tc.want.reason {
				t.Errorf("a1: up=%v %q, want up=%v %q", got.Up, got.Reason, tc.want.up, tc.want.reason)
			}
			if got := v.NextExpiry(); !got.Equal(tc.wantExpiry) {
				t.Errorf("NextExpiry() = %v after now, want %v", got.Sub(t0), tc.wantExpiry.Sub(t0))
			}
		})
	}
}

// TestMergeContested: the endpoints this node sees up while another
// fresh, trusted report says down are the ones to probe again now.
func TestMergeContested(t *testing.T) {
	sites := map[string]string{"a1": "dc1", "a2": "dc1", "b1": "dc2"}
	const U, D = Up, Down
	stale := report("n4", "dc2", time.Hour, map[string]State{"a2": D})
	v := Merge(MergeInput{
		Self: "n1", Site: "dc1", ConfigHash: "h",
		Local: snap(map[string]State{"a1": U, "a2": U, "b1": D}),
		Remote: []Received{
			report("n2", "dc1", 0, map[string]State{"a1": D, "a2": U, "b1": D}),
			report("n3", "dc2", 0, map[string]State{"a1": U, "a2": U, "b1": U}),
			stale,
		},
		Sites: sites, Now: t0, Staleness: 5 * time.Second,
	})
	// a1: up here, down at n2. a2: down only in a stale report. b1: down
	// here already.
	if got, want := v.Contested(), []string{"a1"}; !slices.Equal(got, want) {
		t.Errorf("Contested() = %q, want %q", got, want)
	}
	// Without local probes nothing is contested.
	v = Merge(MergeInput{Self: "n1", Site: "dc1", ConfigHash: "h",
		Remote: []Received{report("n2", "dc1", 0, map[string]State{"a1": D})}, Sites: sites, Now: t0, Staleness: 5 * time.Second})
	if got := v.Contested(); len(got) != 0 {
		t.Errorf("Contested() without local probes = %q, want none", got)
	}
	if got := (*View)(nil).Contested(); got != nil {
		t.Errorf("nil View: Contested() = %q", got)
	}
}

// TestMergeSuspectView: a node whose probes fail in every site while
// others see the same endpoints up is set aside, whether it is a peer or
// this node; real outages make nobody suspect.
func TestMergeSuspectView(t *testing.T) {
	// a1 in dc1, b1 in dc2, c1 in dc3. This node, n1, is in dc1.
	sites := map[string]string{"a1": "dc1", "b1": "dc2", "c1": "dc3"}
	const U, D, X = Up, Down, Unknown
	all := func(st State) map[string]State { return map[string]State{"a1": st, "b1": st, "c1": st} }
	abstaining := &Snapshot{ready: true, statuses: map[string]Status{
		"a1": {State: Up, LocalFault: "socket: too many open files"},
		"b1": {State: Up, LocalFault: "socket: too many open files"},
		"c1": {State: Down},
	}}
	tests := []struct {
		name        string
		local       *Snapshot
		remote      []Received
		want        map[string]want
		wantSuspect []string
	}{
		{
			// Before issue 8: n3 alone in dc2 withdrew b1 everywhere.
			name:  "a peer that sees everything down while others see it up",
			local: snap(all(U)),
			remote: []Received{
				report("n3", "dc2", 0, all(D)),
				report("n5", "dc3", 0, all(U)),
			},
			want: map[string]want{
				"a1": {true, "own site 1/1 up"},
				"b1": {true, "site dc2 silent; cross-check 2/2 up"},
				"c1": {true, "own site 1/1 up"},
			},
			wantSuspect: []string{"n3"},
		},
		{
			name:  "two sites: the other node sees everything down",
			local: snap(map[string]State{"a1": U, "b1": U}),
			remote: []Received{
				report("n3", "dc2", 0, map[string]State{"a1": D, "b1": D}),
			},
			want: map[string]want{
				"a1": {true, "own site 1/1 up"},
				"b1": {true, "site dc2 silent; cross-check 1/1 up"},
			},
			wantSuspect: []string{"n3"},
		},
		{
			name:  "this node sees everything down: its view is set aside",
			local: snap(all(D)),
			remote: []Received{
				report("n3", "dc2", 0, all(U)),
				report("n5", "dc3", 0, all(U)),
			},
			want: map[string]want{
				"a1": {true, "site dc1 silent; cross-check 2/2 up"},
				"b1": {true, "own site 1/1 up"},
			},
			wantSuspect: []string{"n1"},
		},
		{
			name:  "this node cannot probe, or sees down, everything",
			local: abstaining,
			remote: []Received{
				report("n3", "dc2", 0, all(U)),
			},
			want: map[string]want{
				"a1": {true, "site dc1 silent; cross-check 1/1 up"},
				"c1": {true, "site dc3 silent; cross-check 1/1 up"},
			},
			wantSuspect: []string{"n1"},
		},
		{
			name:  "everything down everywhere: nobody is suspect",
			local: snap(all(D)),
			remote: []Received{
				report("n3", "dc2", 0, all(D)),
				report("n5", "dc3", 0, all(D)),
			},
			want: map[string]want{
				"a1": {false, "own site 0/1 up"},
				"b1": {false, "own site 0/1 up"},
			},
		},
		{
			name:  "one site's endpoints failing is an outage, not a suspect view",
			local: snap(map[string]State{"a1": D, "b1": X, "c1": X}),
			remote: []Received{
				report("n3", "dc2", 0, all(U)),
				report("n5", "dc3", 0, all(U)),
			},
			want: map[string]want{
				"a1": {true, "own site 0/1 up, but every other site sees it up (2/2 sites)"},
			},
		},
		{
			// n1 sees dc1 really fail and has not yet seen dc2 come up.
			name:  "a view that lags on one site while another really fails is not suspect",
			local: snap(map[string]State{"a1": D, "b1": D}),
			remote: []Received{
				report("n3", "dc2", 0, map[string]State{"a1": D, "b1": U}),
			},
			want: map[string]want{
				"a1": {false, "own site 0/1 up"},
				"b1": {true, "own site 1/1 up"},
			},
		},
		{
			name:  "a node that sees something up is not suspect",
			local: snap(map[string]State{"a1": D, "b1": D, "c1": U}),
			remote: []Received{
				report("n3", "dc2", 0, all(U)),
				report("n5", "dc3", 0, map[string]State{"a1": D, "b1": D, "c1": U}),
			},
			want: map[string]want{
				"a1": {false, "own site 0/1 up"},
			},
		},
		{
			name:  "a suspect peer, even with company: the majority decides",
			local: snap(all(U)),
			remote: []Received{
				report("n2", "dc1", 0, all(D)),
				report("n3", "dc2", 0, all(D)),
				report("n5", "dc3", 0, all(U)),
				report("n6", "dc3", 0, all(U)),
			},
			want: map[string]want{
				"a1": {true, "own site 1/1 up"},
				"b1": {true, "site dc2 silent; cross-check 3/3 up"},
			},
			wantSuspect: []string{"n2", "n3"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Merge(MergeInput{
				Self: "n1", Site: "dc1", ConfigHash: "h", Local: tc.local,
				Remote: tc.remote, Sites: sites, Now: t0, Staleness: 5 * time.Second,
			})
			for id, w := range tc.want {
				if got := v.Verdict(id); got.Up != w.up || got.Reason != w.reason {
					t.Errorf("Merge().Verdict(%q) = %v %q, want %v %q", id, got.Up, got.Reason, w.up, w.reason)
				}
			}
			if got := v.Suspect(); !slices.Equal(got, tc.wantSuspect) {
				t.Errorf("Merge().Suspect() = %q, want %q", got, tc.wantSuspect)
			}
		})
	}
}

func TestNilViewAndSnapshotFailOpen(t *testing.T) {
	var v *View
	if !v.Up("x") || !v.Verdict("x").Up || v.Stale() != nil || !v.NextExpiry().IsZero() {
		t.Error("nil View is not fail-open and empty")
	}
	var s *Snapshot
	if !s.Up("x") || s.Ready() || s.Len() != 0 || len(s.States()) != 0 {
		t.Error("nil Snapshot is not fail-open, empty and unready")
	}
	s = snap(map[string]State{"u": Up, "d": Down, "x": Unknown})
	for id, want := range map[string]bool{"u": true, "d": false, "x": true, "absent": true} {
		if got := s.Up(id); got != want {
			t.Errorf("Snapshot.Up(%q) = %v, want %v", id, got, want)
		}
	}
}
