package bpf

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
)

func TestFalcoRings(t *testing.T) {
	for _, tc := range []struct{ cpus, per, want int }{{2, 2, 1}, {1, 2, 1}, {3, 2, 2}, {32, 2, 16}, {64, 4, 16}, {5, 1, 5}} {
		if got := FalcoRings(tc.cpus, tc.per); got != tc.want {
			t.Errorf("FalcoRings(%d, %d) = %d, want %d", tc.cpus, tc.per, got, tc.want)
		}
	}
}

// TestFalcoLayout loads Falco's layout: one ring of the configured size per
// group of CPUsPerRing possible CPUs (on this 2-CPU machine one: the shared
// layout), every record of a CPU in its group's ring, and the lifecycle of
// each child complete in it. With one CPU per ring every CPU has its own.
func TestFalcoLayout(t *testing.T) {
	needRoot(t)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	for _, per := range []int{ringspec.DefaultCPUsPerRing, 1} {
		t.Run(fmt.Sprintf("cpus-per-ring=%d", per), func(t *testing.T) {
			p := load(t, Config{RingSize: 4 << 20, Layout: ringspec.LayoutFalco, CPUsPerRing: per, ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
			rs := p.Rings()
			if len(rs) != FalcoRings(cpus, per) || p.SyscallRing() != nil || p.LifecycleRing() != nil {
				t.Fatalf("%d rings for %d CPUs at %d per ring", len(rs), cpus, per)
			}
			for _, r := range rs {
				if r.Size() != 4<<20 {
					t.Errorf("ring %s of %d bytes, want the full size", r.Name(), r.Size())
				}
			}
			c := collect(p)
			pids := runTrue(t, 5)
			time.Sleep(50 * time.Millisecond)
			recs, cnt := c.finish(t)
			if cnt.Dropped[event.CategoryLifecycle] != 0 {
				t.Fatalf("lifecycle drops: %v", cnt.Dropped)
			}
			for _, r := range recs {
				group := int(r.CPU) / per
				first := group * per
				if want := fmt.Sprintf("cpus%d-%d", first, first+per-1); r.ring != want {
					t.Fatalf("%s record of CPU %d in ring %s, want %s", r.Type, r.CPU, r.ring, want)
				}
			}
			for pid, l := range byPid(recs, pids) {
				checkChild(t, pid, l, "")
			}
		})
	}
}

// TestCountersByCPU: the per-CPU attempts sum to the totals of the same
// reading, and children pinned to one CPU show up on that CPU.
func TestCountersByCPU(t *testing.T) {
	needRoot(t)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	p := load(t, Config{RingSize: 4 << 20, ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	c0, before, err := p.CountersByCPU()
	if err != nil {
		t.Fatal(err)
	}
	cpu := cpus - 1
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		t.Fatal(err)
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	pids := runTrue(t, 5) // children inherit the affinity
	if err := unix.SchedSetaffinity(0, &old); err != nil {
		t.Fatal(err)
	}
	c1, after, err := p.CountersByCPU()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != cpus || len(before) != cpus {
		t.Fatalf("%d/%d per-CPU readings for %d possible CPUs", len(before), len(after), cpus)
	}
	var sum [event.NumCategories]uint64
	for _, v := range after {
		for c := range sum {
			sum[c] += v[c]
		}
	}
	if sum != c1.Attempted {
		t.Errorf("per-CPU sum %v, totals %v", sum, c1.Attempted)
	}
	// Each child's exec and exit ran on the pinned CPU (its fork, on the
	// spawner's thread, too).
	if got := after[cpu][event.CategoryLifecycle] - before[cpu][event.CategoryLifecycle]; got < uint64(2*len(pids)) {
		t.Errorf("CPU %d: %d lifecycle attempts for %d children (totals %v → %v)", cpu, got, len(pids), c0.Attempted, c1.Attempted)
	}
}
