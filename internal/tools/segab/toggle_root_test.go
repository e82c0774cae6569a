package main

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwise/ringwise/bpf"
)

// The toggler counts forks while set on and nothing while set off: the
// "with" windows of -toggle lifecycle have measure's programs attached, the
// "without" windows have none.
func TestToggleAttachesAndDetaches(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root needed to load BPF (CI runs as root)")
	}
	tg, err := newToggler("lifecycle", "")
	if err != nil {
		t.Fatal(err)
	}
	defer tg.close()
	forks := func(on bool) uint64 {
		t.Helper()
		if err := tg.set(on); err != nil {
			t.Fatal(err)
		}
		now, err := bpf.KtimeNow()
		if err != nil {
			t.Fatal(err)
		}
		first := tg.m.Epoch(now)
		for i := 0; i < 5; i++ {
			if err := exec.Command("true").Run(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(3 * tg.m.Bin())
		now, _ = bpf.KtimeNow()
		bins, err := tg.m.ReadBins(first, tg.m.Epoch(now)-1, nil)
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, cpus := range bins {
			for _, c := range cpus {
				n += c.Forks
			}
		}
		return n
	}
	if n := forks(true); n < 5 {
		t.Errorf("attached: %d forks counted for 5 processes started", n)
	}
	if n := forks(false); n != 0 {
		t.Errorf("detached: %d forks counted, want none", n)
	}
	if n := forks(true); n < 5 {
		t.Errorf("attached again: %d forks counted for 5 processes started", n)
	}
}

// -toggle noop runs its do-nothing programs on every fork, exec and exit
// while set on and never while set off; -base noop puts them in the
// "without" windows in place of measure's counters, and takes them out
// of the "with" windows.
func TestNoopToggleAndBase(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root needed to load BPF (CI runs as root)")
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Fatalf("enable BPF run statistics: %v", err)
	}
	defer stats.Close()
	runs := func(tg *toggler) uint64 {
		t.Helper()
		var n uint64
		for _, p := range tg.noop.progs {
			s, err := p.Stats()
			if err != nil {
				t.Fatal(err)
			}
			n += s.RunCount
		}
		return n
	}
	// spawn5 starts 5 processes with the toggler set as asked and returns
	// the no-op programs' runs and the meter's forks meanwhile.
	spawn5 := func(tg *toggler, on bool) (noopRuns, forks uint64) {
		t.Helper()
		if err := tg.set(on); err != nil {
			t.Fatal(err)
		}
		r0 := runs(tg)
		var first uint64
		if tg.m != nil {
			now, _ := bpf.KtimeNow()
			first = tg.m.Epoch(now)
		}
		for i := 0; i < 5; i++ {
			if err := exec.Command("true").Run(); err != nil {
				t.Fatal(err)
			}
		}
		noopRuns = runs(tg) - r0
		if tg.m != nil {
			time.Sleep(3 * tg.m.Bin())
			now, _ := bpf.KtimeNow()
			bins, err := tg.m.ReadBins(first, tg.m.Epoch(now)-1, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, cpus := range bins {
				for _, c := range cpus {
					forks += c.Forks
				}
			}
		}
		return noopRuns, forks
	}

	noop, err := newToggler("noop", "")
	if err != nil {
		t.Fatal(err)
	}
	// each process: one fork, one exec, one exit at least
	if r, _ := spawn5(noop, true); r < 15 {
		t.Errorf("-toggle noop, on: %d runs for 5 processes, want >= 15", r)
	}
	if r, _ := spawn5(noop, false); r != 0 {
		t.Errorf("-toggle noop, off: %d runs, want none", r)
	}
	noop.close()

	based, err := newToggler("lifecycle", "noop")
	if err != nil {
		t.Fatal(err)
	}
	defer based.close()
	if r, f := spawn5(based, false); r < 15 || f != 0 {
		t.Errorf("-base noop, without: %d no-op runs, %d forks counted; want >= 15 and none", r, f)
	}
	if r, f := spawn5(based, true); r != 0 || f < 5 {
		t.Errorf("-base noop, with: %d no-op runs, %d forks counted; want none and >= 5", r, f)
	}
}
