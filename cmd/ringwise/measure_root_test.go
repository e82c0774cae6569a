package main

import (
	"context"
	"math"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/ringwise/ringwise/internal/flood"
	"github.com/ringwise/ringwise/sensor"
)

// TestMeasureCountsFlood runs the counting-only sensor over a flood of known
// size and checks that it counted every fork, exec and exit of the flood's
// children (run under flock /tmp/ringwise-bpf.lock).
func TestMeasureCountsFlood(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root needed to load BPF (CI runs as root)")
	}
	// Go's first exec probes pidfd support with an extra child: let it
	// happen before counting.
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	type result struct {
		m   *sensor.Measurement
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := sensor.Measure(ctx, sensor.MeasureConfig{WatchTGID: uint32(os.Getpid()), Started: func() { close(started) }})
		done <- result{m, err}
	}()
	select {
	case <-started:
	case r := <-done:
		t.Fatal(r.err)
	}
	const procs = 1500
	fr, err := flood.Run(context.Background(), flood.Config{Procs: procs, Parallel: 4, Burst: 500, Pause: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // a last sample after the last exit
	cancel()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	m := r.m
	n := uint64(fr.Spawned)
	if fr.Spawned != procs || fr.Failed != 0 {
		t.Fatalf("flood spawned %d of %d, %d failed", fr.Spawned, procs, fr.Failed)
	}
	if m.WatchForks != n || m.WatchExecs != n || m.WatchExits != n {
		t.Errorf("counted the flood's forks %d, execs %d, exits %d; ground truth %d each", m.WatchForks, m.WatchExecs, m.WatchExits, n)
	}
	if m.Forks < n || m.Execs < n || m.Exits < n || m.Syscalls < n {
		t.Errorf("node totals below the flood: forks %d execs %d exits %d syscalls %d", m.Forks, m.Execs, m.Exits, m.Syscalls)
	}
	// The per-bin curve adds up to the totals.
	s := m.Series(1, nil)
	var lc, sys float64
	for cpu := range s.Arrivals {
		for _, a := range s.Arrivals[cpu] {
			lc += a[0]
			sys += a[1]
		}
	}
	if uint64(lc) != m.Forks+m.Execs+m.Exits || uint64(sys) != m.Syscalls {
		t.Errorf("series sums lifecycle %v syscall %v, totals %d %d", lc, sys, m.Forks+m.Execs+m.Exits, m.Syscalls)
	}
	// Leaving out execve (59 on x86_64) removes exactly its count.
	if runtime.GOARCH != "amd64" {
		return
	}
	var without float64
	for cpu, a := range m.Series(1, map[uint32]bool{59: true}).Arrivals {
		_ = cpu
		for _, x := range a {
			without += x[1]
		}
	}
	if uint64(math.Round(sys-without)) != m.BySyscall[59] || m.BySyscall[59] < n {
		t.Errorf("without execve: %v fewer, execve count %d", sys-without, m.BySyscall[59])
	}
	if m.Bins < 2 {
		t.Errorf("%d bins", m.Bins)
	}
}

// TestMeasureSampledAgainstContinuous counts one flood twice at once: every
// syscall (the truth) and in windows (20 ms of every 200 ms here, to get
// enough windows in a short test), and checks that the sampled run keeps
// the lifecycle exact, estimates the node's syscalls, and detached its
// counter outside the windows. Both meters leave out this test process.
func TestMeasureSampledAgainstContinuous(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root needed to load BPF (CI runs as root)")
	}
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		m   *sensor.Measurement
		err error
	}
	sample := sensor.SyscallSample{Window: 20 * time.Millisecond, Period: 200 * time.Millisecond}
	var dones [2]chan result
	var starts [2]chan struct{}
	for i, s := range []sensor.SyscallSample{{}, sample} {
		dones[i], starts[i] = make(chan result, 1), make(chan struct{})
		go func() {
			m, err := sensor.Measure(ctx, sensor.MeasureConfig{WatchTGID: uint32(os.Getpid()), Sample: s, Started: func() { close(starts[i]) }})
			dones[i] <- result{m, err}
		}()
		select {
		case <-starts[i]:
		case r := <-dones[i]:
			t.Fatal(r.err)
		}
	}
	const procs = 3000
	fr, err := flood.Run(context.Background(), flood.Config{Procs: procs, Parallel: 4, Burst: 300, Pause: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	all, sampled := <-dones[0], <-dones[1]
	if all.err != nil || sampled.err != nil {
		t.Fatal(all.err, sampled.err)
	}
	a, s := all.m, sampled.m
	n := uint64(fr.Spawned)
	if s.WatchForks != n || s.WatchExecs != n || s.WatchExits != n {
		t.Errorf("sampled run counted the flood's forks %d, execs %d, exits %d; ground truth %d each", s.WatchForks, s.WatchExecs, s.WatchExits, n)
	}
	sp := s.Sampling
	if sp == nil || a.Sampling != nil {
		t.Fatalf("sampling info: continuous %v, sampled %v", a.Sampling, sp)
	}
	var exposed, unexposed int
	for _, e := range sp.Exposure {
		if e > 0 {
			exposed++
		} else {
			unexposed++
		}
	}
	// 20 ms of every 200 ms: about a tenth of the bins, never most.
	if exposed == 0 || unexposed < 4*exposed {
		t.Errorf("%d bins exposed, %d not: the counter was not detached between windows", exposed, unexposed)
	}
	if sp.Counted == 0 || sp.Counted >= a.Syscalls/3 {
		t.Errorf("sampled windows counted %d of the node's %d syscalls", sp.Counted, a.Syscalls)
	}
	ratio := float64(s.Syscalls) / float64(a.Syscalls)
	t.Logf("syscalls: counted %d, estimated %d from %d counted in %d of %d bins (ratio %.3f); fit per CPU base %v per-lifecycle %v",
		a.Syscalls, s.Syscalls, sp.Counted, exposed, len(sp.Exposure), ratio, sp.Base, sp.PerLifecycle)
	if ratio < 0.5 || ratio > 1.5 {
		t.Errorf("estimated %d syscalls, counted %d (ratio %.2f)", s.Syscalls, a.Syscalls, ratio)
	}
}
