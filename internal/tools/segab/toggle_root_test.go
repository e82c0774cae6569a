package main

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/ringwise/ringwise/bpf"
)

// The toggler counts forks while set on and nothing while set off: the
// "with" windows of -toggle lifecycle have measure's programs attached, the
// "without" windows have none.
func TestToggleAttachesAndDetaches(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root needed to load BPF (CI runs as root)")
	}
	tg, err := newToggler("lifecycle")
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
