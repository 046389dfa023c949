package health

// heapItem is an element of a 4-ary min-heap kept in a slice: its key
// orders the heap, and it is told its place whenever that changes, so
// that it can later be removed or fixed where it stands (the loop's
// probe deadlines), or not, when it does not need to be (the scheduler's
// entries).
//
// Why 4-ary: telling an element its place writes to the element (a
// connection), which at 10,000 endpoints is mostly a cache miss, and a
// 4-ary heap has half the levels of a binary one; the keys a step
// compares sit next to each other.
type heapItem interface {
	heapKey() int64
	setHeapIndex(int)
}

const heapArity = 4

// heapPush adds e to the heap h and returns the heap.
func heapPush[E heapItem](h []E, e E) []E {
	h = append(h, e)
	heapUp(h, len(h)-1)
	return h
}

// heapRemove takes the element at i out of the heap h, tells it it is at
// -1, and returns the heap.
func heapRemove[E heapItem](h []E, i int) []E {
	e, last := h[i], len(h)-1
	if i != last {
		h[i] = h[last]
		h[i].setHeapIndex(i)
	}
	var zero E
	h[last] = zero
	h = h[:last]
	if i != last {
		heapFix(h, i)
	}
	e.setHeapIndex(-1)
	return h
}

// heapFix restores the heap h after the key of the element at i changed.
func heapFix[E heapItem](h []E, i int) {
	if !heapDown(h, i) {
		heapUp(h, i)
	}
}

// heapUp moves the element at i up to its place.
func heapUp[E heapItem](h []E, i int) {
	e := h[i]
	for i > 0 {
		p := (i - 1) / heapArity
		if h[p].heapKey() <= e.heapKey() {
			break
		}
		h[i] = h[p]
		h[i].setHeapIndex(i)
		i = p
	}
	h[i] = e
	e.setHeapIndex(i)
}

// heapDown moves the element at i down to its place; it reports whether
// it moved.
func heapDown[E heapItem](h []E, i int) bool {
	e, start, n := h[i], i, len(h)
	for {
		first := heapArity*i + 1
		if first >= n {
			break
		}
		c := first
		for j := first + 1; j < min(first+heapArity, n); j++ {
			if h[j].heapKey() < h[c].heapKey() {
				c = j
			}
		}
		if e.heapKey() <= h[c].heapKey() {
			break
		}
		h[i] = h[c]
		h[i].setHeapIndex(i)
		i = c
	}
	h[i] = e
	e.setHeapIndex(i)
	return i > start
}
