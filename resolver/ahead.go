package resolver

// With many names, answering a query from the fast path waits on memory
// three times, each wait depending on the one before: the table slot of
// the name, then its record in the arena, then the service's answer
// counter. Taken one query at a time, a batch of queries pays these waits
// one after the other. ahead looks at every query of a batch before any
// is answered, in passes whose loads do not depend on each other within
// a pass (every slot, then every record, then every counter), so that the
// processor has the misses of the whole batch in flight at once; the
// answers that follow find what they read in the cache.

// aheadMax is the most queries looked at ahead: a batch of recvmmsg.
const aheadMax = 32

// aheadFrom is the size of a table (arena and slots) from which a batch
// is looked at ahead. A smaller table stays in a core's own cache, where
// there is no wait to overlap, only the passes' own cost (about 10 ns a
// query).
const aheadFrom = 1 << 20

// ahead is what was worked out for the queries of one batch, for the
// state st. Only the reader's goroutine touches it.
type ahead struct {
	// from is the size of table from which to look ahead: aheadFrom
	// (0, in tests: always).
	from int
	st   *state
	n    int // how many queries of the batch were looked at; 0: none
	// By query: whether the fast path may answer it, what parse found,
	// its name's hash, the template that answers it (-1: none) and
	// whether that is a template of any qtype.
	ok    [aheadMax]bool
	q     [aheadMax]fastQuery
	h     [aheadMax]uint64
	t     [aheadMax]int
	nx    [aheadMax]bool
	names [aheadMax][256]byte
	// sink keeps the loads that only bring memory into the cache.
	sink uint64
}

// prepare looks at pkts, the queries of a batch, with st, and brings
// into the cache what answering them from the fast path reads, counting
// in shard. It reads st only and allocates nothing. A panic leaves
// nothing prepared: the queries are then answered one by one, where it
// is recovered and answered.
func (a *ahead) prepare(st *state, pkts [][]byte, shard int) {
	a.st, a.n = st, 0
	if !a.wants(st, len(pkts)) {
		return
	}
	ft := st.fast
	defer func() {
		if recover() != nil {
			a.n = 0
		}
	}()
	n := min(len(pkts), aheadMax)
	for i := range n {
		q, ok := parse(pkts[i], a.names[i][:])
		a.ok[i] = ok && !isDebugName(q.qtype, q.name)
		if a.ok[i] {
			a.q[i], a.h[i] = q, ft.hash(qnameOf(q))
		}
	}
	sink := uint64(0)
	// The first slot each name probes: nearly always its own.
	for i := range n {
		if a.ok[i] {
			sink += ft.slots[a.h[i]&ft.mask]
		}
	}
	// The record it points to: the name and the first templates, in the
	// lines of its first 128 bytes.
	last := len(ft.arena) - 1
	for i := range n {
		if a.ok[i] {
			if s := ft.slots[a.h[i]&ft.mask]; s != 0 {
				off := int(uint32(s)) - 1
				sink += uint64(ft.arena[off]) + uint64(ft.arena[min(off+64, last)]) + uint64(ft.arena[min(off+127, last)])
			}
		}
	}
	// The template, found now in the cache; then, in a loop of its own
	// so that many are in flight, the answer counter it names.
	for i := range n {
		a.t[i] = -1
		if a.ok[i] {
			a.t[i], a.nx[i] = ft.locate(st, a.q[i], a.h[i])
		}
	}
	for i := range n {
		if t := a.t[i]; t >= 0 {
			if g := tmplSlot(ft.arena, t); g != noSlot {
				sink += loadAnswer(ft.counters, shard, g)
			}
		}
	}
	a.sink += sink
	a.n = n
}

// wants reports whether a batch of n queries is worth looking at ahead
// with st: one query has nothing to overlap with, nor a small table.
func (a *ahead) wants(st *state, n int) bool {
	ft := st.fast
	return ft != nil && n >= 2 && len(ft.arena)+8*len(ft.slots) >= a.from
}

// answer answers query i of the prepared batch, pkt, into out, as fast
// would.
func (a *ahead) answer(i int, pkt, out []byte) (fastHit, bool) {
	if !a.ok[i] {
		return fastHit{}, false
	}
	return a.st.fast.reply(a.st, a.q[i], a.t[i], a.nx[i], pkt, out)
}

// prepared reports whether query i of the batch was looked at with st.
func (a *ahead) prepared(st *state, i int) bool { return i < a.n && a.st == st }

// done forgets the batch, and the state with it.
func (a *ahead) done() { a.st, a.n = nil, 0 }
