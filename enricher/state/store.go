package state

import "github.com/ringwise/ringwise/services/event"

// entry is one process (thread group) in the table. Its strings are
// immutable once set, so Enriched values may share them.
type entry struct {
	startNs uint64
	pid     uint32
	ppid    uint32
	uid     uint32
	gid     uint32
	execID  uint32
	comm    string
	exe     string
	cmdline string
	// container is Falco's container.id ("" for the host).
	container string

	// missing and reason describe fields unknown since the entry was made
	// (exe path and cmdline of a child whose parent was unknown).
	missing event.Field
	reason  event.Reason
	source  event.Source

	execKnown bool // execID is meaningful (false: adopt the first one seen)
	// containerKnown: container is what the process's cgroup says (resolved
	// from a record's cgroup id, or read from /proc), not "" for want of a
	// resolver or after a failed resolution.
	containerKnown bool
	fromProc       bool // startNs is /proc's, clock-tick granular: compare with SameStart
	exited         bool
	inUse          bool

	// noExecAhead is the event exec id for which a search of the batch for
	// the missing exec record already failed (avoids rescanning per event).
	noExecAhead uint32

	prev, next int32 // LRU list links (live or exited list)
}

// matches reports whether an event start time names this entry's process.
func (en *entry) matches(startNs uint64) bool {
	if en.fromProc {
		return event.SameStart(en.startNs, startNs)
	}
	return en.startNs == startNs
}

// lru is an intrusive doubly linked list over the slab; head is most recent.
type lru struct{ head, tail int32 }

const nilIdx int32 = -1

// table is the bounded process table: a slab of entries indexed by pid, with
// two LRU lists (live, exited) for eviction.
type table struct {
	max    int
	slab   []entry
	free   []int32
	byPid  pidIndex
	live   lru
	exited lru
	nLive  int
}

func newTable(max int) table {
	return table{
		max:    max,
		byPid:  newPidIndex(min(max, 4096)),
		live:   lru{nilIdx, nilIdx},
		exited: lru{nilIdx, nilIdx},
	}
}

func (t *table) reset() {
	t.byPid.clear()
	t.slab = t.slab[:0]
	t.free = t.free[:0]
	t.live = lru{nilIdx, nilIdx}
	t.exited = lru{nilIdx, nilIdx}
	t.nLive = 0
}

func (t *table) len() int { return t.byPid.len() }

func (t *table) list(en *entry) *lru {
	if en.exited {
		return &t.exited
	}
	return &t.live
}

func (t *table) unlink(i int32) {
	en := &t.slab[i]
	l := t.list(en)
	if en.prev != nilIdx {
		t.slab[en.prev].next = en.next
	} else {
		l.head = en.next
	}
	if en.next != nilIdx {
		t.slab[en.next].prev = en.prev
	} else {
		l.tail = en.prev
	}
	en.prev, en.next = nilIdx, nilIdx
}

func (t *table) pushFront(i int32) {
	en := &t.slab[i]
	l := t.list(en)
	en.prev = nilIdx
	en.next = l.head
	if l.head != nilIdx {
		t.slab[l.head].prev = i
	} else {
		l.tail = i
	}
	l.head = i
}

// touch marks entry i most recently used.
func (t *table) touch(i int32) {
	if t.list(&t.slab[i]).head == i {
		return
	}
	t.unlink(i)
	t.pushFront(i)
}

// warmMinEntries is the table size from which warm pays: below it the
// table stays in the caches and the pass would only add its lookups.
const warmMinEntries = 4096

// warm reads, for each event of a batch, what enriching it will read: the
// pid's index slot, its entry, the entry's LRU neighbours and the first
// byte of its cmdline. On a table larger than the caches every one of those
// is a likely miss, and in the enrichment loop each waits for the previous
// event's work; in this tight loop of independent loads the CPU overlaps
// them, so that the loop after it finds them in the cache. It only reads:
// an entry changed or removed before the enrichment reaches it costs a
// wasted load, never a wrong result. The sum it returns is kept by the
// caller so that the loads are not optimized away.
func (t *table) warm(evs []event.Enriched) uint64 {
	if t.byPid.len() < warmMinEntries {
		return 0
	}
	var sum uint64
	for i := range evs {
		idx, ok := t.byPid.get(evs[i].Pid)
		if !ok {
			continue
		}
		en := &t.slab[idx]
		sum += en.startNs
		if en.prev != nilIdx {
			sum += t.slab[en.prev].startNs
		}
		if en.next != nilIdx {
			sum += t.slab[en.next].startNs
		}
		if len(en.cmdline) > 0 {
			sum += uint64(en.cmdline[0])
		}
	}
	return sum
}

// get returns the index of pid's entry.
func (t *table) get(pid uint32) (int32, bool) {
	return t.byPid.get(pid)
}

// remove deletes entry i.
func (t *table) remove(i int32) {
	en := &t.slab[i]
	t.unlink(i)
	if !en.exited {
		t.nLive--
	}
	t.byPid.delete(en.pid)
	*en = entry{prev: nilIdx, next: nilIdx}
	t.free = append(t.free, i)
}

// markExited moves entry i to the exited list.
func (t *table) markExited(i int32) {
	en := &t.slab[i]
	if en.exited {
		t.touch(i)
		return
	}
	t.unlink(i)
	en.exited = true
	t.nLive--
	t.pushFront(i)
}

// victim returns the entry to evict: the least recently used exited one,
// else the least recently used live one.
func (t *table) victim() int32 {
	if t.exited.tail != nilIdx {
		return t.exited.tail
	}
	return t.live.tail
}

// insert stores a fresh live entry for en.pid (which must not be present)
// and returns its index. The caller evicts first if the table is full.
func (t *table) insert(en entry) int32 {
	var i int32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		t.slab = append(t.slab, entry{})
		i = int32(len(t.slab) - 1)
	}
	en.inUse = true
	en.exited = false
	t.slab[i] = en
	t.byPid.set(en.pid, i)
	t.nLive++
	t.pushFront(i)
	return i
}

// replace overwrites entry i in place with a fresh live entry (same pid).
func (t *table) replace(i int32, en entry) {
	t.unlink(i)
	if !t.slab[i].exited {
		t.nLive--
	}
	en.inUse = true
	en.exited = false
	t.slab[i] = en
	t.nLive++
	t.pushFront(i)
}

// pidStart keys a process.
type pidStart struct {
	pid   uint32
	start uint64
}

// boundedMap is a map that remembers at most its capacity of the latest
// puts, forgetting the oldest first (a ring of keys orders them). A put
// replaces an older value of the same key, and the ring slot of the older
// value then no longer removes the newer one.
type boundedMap[K comparable, V any] struct {
	m    map[K]boundedVal[V]
	ring []boundedSlot[K]
	next int
	seq  uint64
}

type boundedVal[V any] struct {
	v   V
	seq uint64
}

type boundedSlot[K comparable] struct {
	key K
	seq uint64
}

func newBoundedMap[K comparable, V any](n int) boundedMap[K, V] {
	n = max(n, 0)
	return boundedMap[K, V]{m: make(map[K]boundedVal[V], min(n, 1024)), ring: make([]boundedSlot[K], n)}
}

func (b *boundedMap[K, V]) reset() {
	clear(b.m)
	clear(b.ring)
	b.next = 0
}

func (b *boundedMap[K, V]) len() int { return len(b.m) }

func (b *boundedMap[K, V]) get(k K) (V, bool) {
	v, ok := b.m[k]
	return v.v, ok
}

func (b *boundedMap[K, V]) put(k K, v V) {
	if len(b.ring) == 0 {
		return
	}
	if old := b.ring[b.next]; old.seq != 0 {
		if cur, ok := b.m[old.key]; ok && cur.seq == old.seq {
			delete(b.m, old.key)
		}
	}
	b.seq++
	b.ring[b.next] = boundedSlot[K]{key: k, seq: b.seq}
	b.m[k] = boundedVal[V]{v: v, seq: b.seq}
	b.next = (b.next + 1) % len(b.ring)
}

func (b *boundedMap[K, V]) delete(k K) { delete(b.m, k) }

// tomb is an evicted process, remembered per pid (the latest), so that a
// later event of it says ReasonEvicted.
type tomb struct {
	start    uint64
	fromProc bool
}

// tombstones remembers evicted processes in a bounded map.
type tombstones struct{ boundedMap[uint32, tomb] }

func newTombstones(n int) tombstones { return tombstones{newBoundedMap[uint32, tomb](n)} }

func (t *tombstones) add(en *entry) {
	t.put(en.pid, tomb{start: en.startNs, fromProc: en.fromProc})
}

func (t *tombstones) has(pid uint32, start uint64) bool {
	tb, ok := t.get(pid)
	if !ok {
		return false
	}
	if tb.fromProc {
		return event.SameStart(tb.start, start)
	}
	return tb.start == start
}

// negCache remembers (pid, start) pairs whose enrichment failed, with the
// reason, in a bounded map.
type negCache struct {
	boundedMap[pidStart, event.Reason]
}

func newNegCache(n int) negCache { return negCache{newBoundedMap[pidStart, event.Reason](n)} }

// forget drops pid's cached failures (the process got state).
func (c *negCache) forget(k pidStart) { c.delete(k) }

// interner shares the strings of recurring comms, paths and command lines
// (a process flood runs the same binary again and again), so that lifecycle
// records do not allocate per event. It is bounded: when full it starts over.
type interner struct {
	m   map[string]string
	max int
}

func newInterner(max int) interner {
	return interner{m: make(map[string]string, 256), max: max}
}

func (in *interner) bytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	if len(b) > 512 { // long, probably unique: do not keep
		return string(b)
	}
	if len(in.m) >= in.max {
		clear(in.m)
	}
	s := string(b)
	in.m[s] = s
	return s
}

func (in *interner) str(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := in.m[s]; ok {
		return v
	}
	if len(s) > 512 {
		return s
	}
	if len(in.m) >= in.max {
		clear(in.m)
	}
	in.m[s] = s
	return s
}
