package state

import (
	"math/rand/v2"
	"testing"
)

// TestPidIndex drives the index and a Go map with the same random sets and
// deletes (pids drawn from a small range, so that probe runs collide,
// wrap around and are shifted back on delete) and requires them to agree
// on every pid after every operation batch.
func TestPidIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, pidRange := range []uint32{8, 64, 5000} {
		x := newPidIndex(4)
		m := map[uint32]int32{}
		for step := 0; step < 20000; step++ {
			pid := rng.Uint32N(pidRange)
			if rng.IntN(3) == 0 {
				x.delete(pid)
				delete(m, pid)
			} else {
				idx := rng.Int32N(1 << 20)
				x.set(pid, idx)
				m[pid] = idx
			}
			if step%97 != 0 {
				continue
			}
			if x.len() != len(m) {
				t.Fatalf("range %d step %d: len %d, map %d", pidRange, step, x.len(), len(m))
			}
			if 4*x.len() > 3*len(x.slots) {
				t.Fatalf("range %d: %d entries in %d slots: more than 3/4 full", pidRange, x.len(), len(x.slots))
			}
			for p := uint32(0); p < pidRange; p++ {
				got, ok := x.get(p)
				want, wok := m[p]
				if ok != wok || got != want {
					t.Fatalf("range %d step %d pid %d: got %d,%v want %d,%v", pidRange, step, p, got, ok, want, wok)
				}
			}
		}
		x.clear()
		if _, ok := x.get(0); ok || x.len() != 0 {
			t.Fatal("clear left entries")
		}
	}
	// The extremes of both halves of a slot.
	x := newPidIndex(0)
	x.set(0, 0)
	x.set(^uint32(0), 1<<31-1)
	if i, ok := x.get(0); !ok || i != 0 {
		t.Fatalf("pid 0: %d %v", i, ok)
	}
	if i, ok := x.get(^uint32(0)); !ok || i != 1<<31-1 {
		t.Fatalf("max pid: %d %v", i, ok)
	}
}
