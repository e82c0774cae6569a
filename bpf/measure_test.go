package bpf

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestMeterCounts runs 20 processes and reads them back from the kernel's
// bins: every fork, exec and exit of the children, and their execves, in
// the bins and the spans of the time they ran. Both ways of reading the
// bins: the batch syscalls and one lookup per bin (the fallback).
func TestMeterCounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root needed to load BPF")
	}
	t.Run("batch", func(t *testing.T) { testMeterCounts(t, false) })
	t.Run("per-bin", func(t *testing.T) { testMeterCounts(t, true) })
}

func testMeterCounts(t *testing.T, perBin bool) {
	// Go probes pidfd support with one extra child on its first exec: let
	// it happen before counting.
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatal(err)
	}
	k0, err := KtimeNow()
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadMeter(MeterConfig{WatchTGID: uint32(os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.noBatch = perBin
	if got := m.objs.BinsMap.MaxEntries(); got != MeterSlots {
		t.Errorf("bins map has %d slots, MeterSlots %d", got, MeterSlots)
	}
	if got := m.objs.NrMap.MaxEntries(); got != MeterNrSlots {
		t.Errorf("nr map has %d slots, MeterNrSlots %d", got, MeterNrSlots)
	}
	const n = 20
	for range n {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
	}
	m.Detach()
	time.Sleep(time.Millisecond)
	k1, err := KtimeNow()
	if err != nil {
		t.Fatal(err)
	}
	first, last := m.Epoch(k0), m.Epoch(k1)
	bins, err := m.ReadBins(first, last, nil)
	if err != nil {
		t.Fatal(err)
	}
	var d BinCounts
	for _, row := range bins {
		for _, c := range row {
			d.Syscalls += c.Syscalls
			d.Forks += c.Forks
			d.Execs += c.Execs
			d.Exits += c.Exits
		}
	}
	var execve, spanSyscalls uint64
	for s := first / uint64(m.NrSpan()); s <= last/uint64(m.NrSpan()); s++ {
		nrs, err := m.ReadNrSpan(s, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range nrs {
			execve += c[59]
			for _, x := range c {
				spanSyscalls += x
			}
		}
	}
	w, err := m.ReadWatch()
	if err != nil {
		t.Fatal(err)
	}
	var wd WatchCounts
	for _, c := range w {
		wd.Forks += c.Forks
		wd.Execs += c.Execs
		wd.Exits += c.Exits
	}
	if wd.Forks != n || wd.Execs != n || wd.Exits != n {
		t.Errorf("watched forks %d execs %d exits %d, want %d each", wd.Forks, wd.Execs, wd.Exits, n)
	}
	if d.Forks < n || d.Execs < n || d.Exits < n {
		t.Errorf("binned forks %d execs %d exits %d, want >= %d each", d.Forks, d.Execs, d.Exits, n)
	}
	// Each successful execve returns once (in the new image); the spans
	// hold exactly the bins' syscalls.
	if execve < n || spanSyscalls != d.Syscalls {
		t.Errorf("execve exits %d; spans hold %d syscalls, bins %d", execve, spanSyscalls, d.Syscalls)
	}
	// Read and cleared: a second read finds nothing.
	again, err := m.ReadBins(first, last, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, row := range again {
		for cpu, c := range row {
			if c != (BinCounts{}) {
				t.Fatalf("bin %d CPU %d after clearing: %+v", first+uint64(i), cpu, c)
			}
		}
	}
	if len(bins) != int(last-first+1) || len(bins[0]) != m.NumCPU() {
		t.Errorf("%d bins of %d CPUs read, want %d of %d", len(bins), len(bins[0]), last-first+1, m.NumCPU())
	}
	if m.noBatch != perBin {
		t.Errorf("the kernel refused the batch read (noBatch set): this kernel should take it")
	}
}
