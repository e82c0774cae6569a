package bpf

import (
	"os"
	"os/exec"
	"testing"
)

func TestMeterCounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root needed to load BPF")
	}
	// Go probes pidfd support with one extra child on its first exec: let
	// it happen before counting.
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatal(err)
	}
	m, err := LoadMeter(MeterConfig{WatchTGID: uint32(os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	before, err := m.Read(nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for range n {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
	}
	after, err := m.Read(nil)
	if err != nil {
		t.Fatal(err)
	}
	var d CPUCounts
	for i := range after {
		d.Syscalls += after[i].Syscalls - before[i].Syscalls
		d.WatchForks += after[i].WatchForks - before[i].WatchForks
		d.WatchExecs += after[i].WatchExecs - before[i].WatchExecs
		d.WatchExits += after[i].WatchExits - before[i].WatchExits
		d.Nr[59] += after[i].Nr[59] - before[i].Nr[59]
	}
	if d.WatchForks != n || d.WatchExecs != n || d.WatchExits != n {
		t.Errorf("watched forks %d execs %d exits %d, want %d each", d.WatchForks, d.WatchExecs, d.WatchExits, n)
	}
	// Each successful execve returns once (in the new image).
	if d.Nr[59] < n || d.Syscalls < d.Nr[59] {
		t.Errorf("execve exits %d of %d syscalls, want >= %d", d.Nr[59], d.Syscalls, n)
	}
	if len(after) != m.NumCPU() {
		t.Errorf("%d CPUs read, NumCPU %d", len(after), m.NumCPU())
	}
}
