package state

import "math/bits"

// pidIndex maps a pid to its entry's slab index. It replaces a Go map on
// the enricher's per-event path: one lookup per event into a table of up to
// MaxProcs processes, where the map's lookups were a third of the
// enrichment's CPU at 10k processes (several dependent loads per lookup,
// each a likely cache miss). This is one flat array of 8-byte slots, open
// addressing with linear probing kept at most half full, so that a lookup
// is one hash and usually a single load. Deletion shifts later entries of
// the probe run back (no tombstones), so lookups never slow down with churn.
type pidIndex struct {
	// slots hold pid<<32 | idx+1; 0 is an empty slot (idx+1 is never 0,
	// whatever the pid, 0 included).
	slots []uint64
	shift uint // 64 - log2(len(slots))
	mask  uint64
	n     int
}

func newPidIndex(capacity int) pidIndex {
	var x pidIndex
	x.alloc(capacity)
	return x
}

// alloc makes room for capacity entries at most 3/4 full (16 slots at
// least).
func (x *pidIndex) alloc(capacity int) {
	size := 16
	if c := (4*capacity + 2) / 3; c > size {
		size = 1 << bits.Len(uint(c-1))
	}
	x.slots = make([]uint64, size)
	x.shift = uint(64 - bits.TrailingZeros(uint(size)))
	x.mask = uint64(size - 1)
	x.n = 0
}

// home is pid's first slot (Fibonacci hashing: consecutive pids spread).
func (x *pidIndex) home(pid uint32) uint64 {
	return (uint64(pid) * 0x9e3779b97f4a7c15) >> x.shift
}

func (x *pidIndex) len() int { return x.n }

func (x *pidIndex) clear() {
	clear(x.slots)
	x.n = 0
}

// slot returns the slot holding pid, or the empty slot where it would go.
func (x *pidIndex) slot(pid uint32) (uint64, bool) {
	for i := x.home(pid); ; i = (i + 1) & x.mask {
		s := x.slots[i]
		if s == 0 {
			return i, false
		}
		if uint32(s>>32) == pid {
			return i, true
		}
	}
}

func (x *pidIndex) get(pid uint32) (int32, bool) {
	i, ok := x.slot(pid)
	if !ok {
		return 0, false
	}
	return int32(uint32(x.slots[i]) - 1), true
}

func (x *pidIndex) set(pid uint32, idx int32) {
	i, ok := x.slot(pid)
	if !ok {
		if 4*(x.n+1) > 3*len(x.slots) {
			x.grow()
			i, _ = x.slot(pid)
		}
		x.n++
	}
	x.slots[i] = uint64(pid)<<32 | uint64(uint32(idx)+1)
}

func (x *pidIndex) grow() {
	old := x.slots
	x.alloc(len(old)) // twice the slots
	for _, s := range old {
		if s != 0 {
			i, _ := x.slot(uint32(s >> 32))
			x.slots[i] = s
			x.n++
		}
	}
}

func (x *pidIndex) delete(pid uint32) {
	i, ok := x.slot(pid)
	if !ok {
		return
	}
	x.n--
	for {
		x.slots[i] = 0
		j := i
		for {
			j = (j + 1) & x.mask
			s := x.slots[j]
			if s == 0 {
				return
			}
			// s can fill the hole at i if its probe run from home to j
			// passes through i.
			if h := x.home(uint32(s >> 32)); (j-h)&x.mask >= (j-i)&x.mask {
				x.slots[i] = s
				i = j
				break
			}
		}
	}
}
