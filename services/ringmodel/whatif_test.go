package ringmodel

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
)

func TestFewerSyscalls(t *testing.T) {
	ranked := RankSyscalls([]SyscallCount{{Name: "close", Count: 300}, {Name: "write", Count: 200}, {Name: "read", Count: 400}, {Name: "mmap", Count: 100}, {Name: "openat", Count: 0}})
	if ranked[0].Name != "read" || ranked[0].Pct != 40 || ranked[1].Name != "close" || ranked[3].Name != "mmap" {
		t.Fatalf("ranked %+v", ranked)
	}
	keep := map[string]bool{}
	for _, n := range DefaultWhatIfKeep() {
		keep[n] = true
	}
	got := FewerSyscalls(ranked, 3, func(n string) bool { return keep[n] })
	want := []Fewer{
		{Without: []string{"read"}, SharePct: 40, CustomSet: "[!read]"},
		{Without: []string{"read", "write"}, SharePct: 60, CustomSet: "[!read, !write]"},
		{Without: []string{"read", "write", "mmap"}, SharePct: 70, CustomSet: "[!read, !write, !mmap]"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if n := len(FewerSyscalls(ranked, 1, nil)); n != 1 {
		t.Errorf("top 1: %d steps", n)
	}
	if FewerSyscalls(nil, 3, nil) != nil {
		t.Error("nothing to leave out")
	}
}

// The what-if in Recommend: a burst that a shared 1 MiB ring cannot hold
// fits once the dominant syscall is gone.
func TestRecommendWhatIf(t *testing.T) {
	load := burstLoad()
	rec := Recommend(load, calibrated, Options{Layouts: []ringspec.Layout{ringspec.LayoutShared},
		Syscalls: []SyscallCount{{Name: "read", Count: 900}, {Name: "execve", Count: 50}, {Name: "openat", Count: 50}}})
	if rec.BufSizePreset != 2 {
		t.Fatalf("full load: preset %d", rec.BufSizePreset)
	}
	if len(rec.WhatIf) != 2 {
		t.Fatalf("what-if %+v", rec.WhatIf)
	}
	w := rec.WhatIf[0]
	if w.Without[0] != "read" || w.SharePct != 90 || w.BufSizePreset != 1 || !w.MeetsTarget || w.FalcoPreset != 1 || !w.FalcoMeetsTarget {
		t.Errorf("without read: %+v", w)
	}
	for _, s := range []string{"SIMULATED what-if: without read (90% of the syscall events seen), bufSizePreset 1 (1 MiB, shared: one ring for all CPUs) would do",
		"in Falco's layout bufSizePreset 1", "base_syscalls.custom_set: [!read]"} {
		if !strings.Contains(w.Sentence, s) {
			t.Errorf("sentence lacks %q: %s", s, w.Sentence)
		}
	}
	// execve is kept (Falco's state engine needs it): openat comes next.
	if got := rec.WhatIf[1].Without; !reflect.DeepEqual(got, []string{"read", "openat"}) {
		t.Errorf("second step %v", got)
	}
	// The reduced load: syscall arrivals scaled, lifecycle untouched.
	l := load.scaleSyscalls(0.1)
	a0, _ := load.totals()
	a1, _ := l.totals()
	near(t, "syscalls", a1[event.CategorySyscall], a0[event.CategorySyscall]/10, 1e-12)
	near(t, "lifecycle", a1[event.CategoryLifecycle], a0[event.CategoryLifecycle], 0)
	if len(Recommend(load, calibrated, Options{WhatIfTop: -1, Syscalls: []SyscallCount{{Name: "read", Count: 1}}}).WhatIf) != 0 {
		t.Error("WhatIfTop < 0 still answered")
	}
}

func TestLoadFromSamplesPerCPU(t *testing.T) {
	s := []event.Sample{
		{TsNs: 0, Attempted: [2]uint64{0, 0}, AttemptedCPU: [][2]uint64{{0, 0}, {0, 0}}},
		{TsNs: 10e6, Attempted: [2]uint64{3, 30}, AttemptedCPU: [][2]uint64{{1, 10}, {2, 20}}},
		{TsNs: 20e6, Attempted: [2]uint64{4, 40}},                                              // no per-CPU reading
		{TsNs: 30e6, Attempted: [2]uint64{5, 50}, AttemptedCPU: [][2]uint64{{2, 20}, {3, 30}}}, // after one without
	}
	l := LoadFromSamples(s[:2], [2]float64{100, 80}, 1e5, mib)
	if l.CPUs() != 2 || !reflect.DeepEqual(l.Bins[0].CPU, [][2]float64{{1, 10}, {2, 20}}) {
		t.Fatalf("bins %+v", l.Bins)
	}
	if l = LoadFromSamples(s, [2]float64{100, 80}, 1e5, mib); l.CPUs() != 0 || len(l.Bins) != 3 {
		t.Errorf("a bin without per-CPU arrivals makes the load pooled: %d CPUs, %+v", l.CPUs(), l.Bins)
	}
	if cpuDelta([][2]uint64{{5, 5}}, [][2]uint64{{4, 6}}) != nil {
		t.Error("a per-CPU counter going backwards is no reading")
	}
}
