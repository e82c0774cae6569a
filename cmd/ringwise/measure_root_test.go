package main

import (
	"context"
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
	if uint64(sys-without) != m.BySyscall[59] || m.BySyscall[59] < n {
		t.Errorf("without execve: %v fewer, execve count %d", sys-without, m.BySyscall[59])
	}
	if m.Bins < 2 {
		t.Errorf("%d bins", m.Bins)
	}
}
