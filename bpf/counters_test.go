package bpf

import (
	"testing"

	"github.com/ringwise/ringwise/services/event"
)

// fakeCounters is a kernel whose programs keep running while user space reads
// the counters: between any two map lookups one more record of every category
// is attempted and dropped (the ring is full), in the kernel's order: the
// attempt is counted before the reserve, the drop after it fails.
type fakeCounters struct {
	vals [3 * event.NumCategories]uint64
}

func (f *fakeCounters) lookup(key uint32) (uint64, error) {
	v := f.vals[key]
	for cat := range event.NumCategories {
		f.vals[counterKey(event.Category(cat), kindAttempted)]++
		f.vals[counterKey(event.Category(cat), kindDropped)]++
	}
	return v, nil
}

// TestReadCountersOrder would have caught Attempted being read before
// Dropped: a drop counted between the two readings then appears in Dropped
// without its attempt, and attempted < delivered + dropped.
func TestReadCountersOrder(t *testing.T) {
	f := &fakeCounters{}
	for round := 0; round < 5; round++ {
		c, err := readCounters(f.lookup)
		if err != nil {
			t.Fatal(err)
		}
		for cat := range event.NumCategories {
			// Nothing was delivered: every attempt so far was dropped.
			if c.Attempted[cat] < c.Dropped[cat] {
				t.Fatalf("round %d %s: attempted %d < dropped %d", round, event.Category(cat), c.Attempted[cat], c.Dropped[cat])
			}
		}
	}
	// The old order, for contrast: the same fake breaks it.
	f = &fakeCounters{}
	var att, drop uint64
	att, _ = f.lookup(counterKey(event.CategorySyscall, kindAttempted))
	drop, _ = f.lookup(counterKey(event.CategorySyscall, kindDropped))
	if att >= drop {
		t.Fatalf("the fake kernel does not expose the Attempted-then-Dropped race (attempted %d, dropped %d)", att, drop)
	}
}
