package sensor

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
	"github.com/ringwise/ringwise/services/ringmodel"
)

// DefaultMeasureInterval is how often Measure reads the kernel counters:
// the bin width of the arrival curve.
const DefaultMeasureInterval = 10 * time.Millisecond

// MeasureConfig configures Measure.
type MeasureConfig struct {
	// Duration is how long to count; 0 counts until ctx is done.
	Duration time.Duration
	// Interval is the sampling interval; 0 means DefaultMeasureInterval.
	Interval time.Duration
	// WatchTGID, when nonzero, also counts the lifecycle of the processes
	// this thread group forks (see bpf.MeterConfig).
	WatchTGID uint32
	// Started, when set, is called once counting has begun (the program is
	// attached and the first reading taken).
	Started func()
}

// Measurement is what Measure counted: per CPU and per bin, syscall and
// lifecycle arrivals, and per syscall number. It holds counts only.
type Measurement struct {
	NumCPU   int           `json:"num_cpu"`
	Interval time.Duration `json:"interval_ns"`
	Duration time.Duration `json:"duration_ns"`
	Bins     int           `json:"bins"`
	// Totals over all CPUs.
	Syscalls uint64 `json:"syscalls"`
	Forks    uint64 `json:"forks"`
	Execs    uint64 `json:"execs"`
	Exits    uint64 `json:"exits"`
	// Watch* count the lifecycle of MeasureConfig.WatchTGID's children.
	WatchForks uint64 `json:"watch_forks"`
	WatchExecs uint64 `json:"watch_execs"`
	WatchExits uint64 `json:"watch_exits"`
	// PerCPUSyscalls is the syscall arrivals per CPU.
	PerCPUSyscalls []uint64 `json:"per_cpu_syscalls"`
	// BySyscall is the arrivals per syscall number; numbers ≥
	// bpf.MeasureMaxNr are under bpf.MeasureMaxNr.
	BySyscall map[uint32]uint64 `json:"by_syscall"`

	// The curve: DurNs[bin]; Lifecycle[cpu][bin] (forks+execs+exits) and
	// SyscallBins[cpu][bin]; NrBins[bin][cpu] lists [nr, count] of the
	// syscall numbers seen (sparse). Saved with --save, read with --load.
	DurNs       []uint64        `json:"dur_ns"`
	Lifecycle   [][]float64     `json:"lifecycle"`
	SyscallBins [][]float64     `json:"syscall_bins"`
	NrBins      [][][][2]uint32 `json:"nr_bins"`
}

// Measure loads the counting-only program and reads its per-CPU counters
// every Interval until Duration has passed or ctx is done: no records, no
// ring. The measuring process's own syscalls are not counted.
func Measure(ctx context.Context, cfg MeasureConfig) (*Measurement, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultMeasureInterval
	}
	if cfg.Duration < 0 {
		return nil, fmt.Errorf("measure: duration %v: want >= 0", cfg.Duration)
	}
	// The kernel compares global tgids: in a container os.Getpid is the
	// namespace's id (1), which would leave the sensor counted and hide
	// the host's pid 1.
	self, err := bpf.GlobalTGID(procfs.HostProc(os.Getenv))
	if err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	m, err := bpf.LoadMeter(bpf.MeterConfig{SelfTGID: self, WatchTGID: cfg.WatchTGID})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	ncpu := m.NumCPU()
	res := &Measurement{
		NumCPU: ncpu, Interval: cfg.Interval, BySyscall: map[uint32]uint64{},
		PerCPUSyscalls: make([]uint64, ncpu),
		Lifecycle:      make([][]float64, ncpu), SyscallBins: make([][]float64, ncpu),
	}
	prev, err := m.Read(nil)
	if err != nil {
		return nil, err
	}
	first := prev
	prev = slices.Clone(prev)
	cur := make([]bpf.CPUCounts, ncpu)
	start := time.Now()
	last := start
	if cfg.Started != nil {
		cfg.Started()
	}
	var deadline <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	done := false
	for !done {
		select {
		case <-ctx.Done():
			done = true
		case <-deadline:
			done = true
		case <-tick.C:
		}
		if cur, err = m.Read(cur); err != nil {
			return nil, err
		}
		now := time.Now()
		res.addBin(prev, cur, uint64(now.Sub(last)))
		last = now
		prev, cur = cur, prev
	}
	m.Detach()
	res.Duration = last.Sub(start)
	for i := range prev {
		p, f := &prev[i], &first[i]
		res.WatchForks += p.WatchForks - f.WatchForks
		res.WatchExecs += p.WatchExecs - f.WatchExecs
		res.WatchExits += p.WatchExits - f.WatchExits
	}
	return res, nil
}

// addBin adds the deltas cur − prev as one bin of durNs.
func (res *Measurement) addBin(prev, cur []bpf.CPUCounts, durNs uint64) {
	res.DurNs = append(res.DurNs, durNs)
	res.Bins++
	binNrs := make([][][2]uint32, len(cur))
	for cpu := range cur {
		p, c := &prev[cpu], &cur[cpu]
		sys := c.Syscalls - p.Syscalls
		forks, execs, exits := c.Forks-p.Forks, c.Execs-p.Execs, c.Exits-p.Exits
		res.Syscalls += sys
		res.Forks += forks
		res.Execs += execs
		res.Exits += exits
		res.PerCPUSyscalls[cpu] += sys
		res.Lifecycle[cpu] = append(res.Lifecycle[cpu], float64(forks+execs+exits))
		res.SyscallBins[cpu] = append(res.SyscallBins[cpu], float64(sys))
		if sys == 0 {
			continue
		}
		for nr := range c.Nr {
			if d := c.Nr[nr] - p.Nr[nr]; d > 0 {
				res.BySyscall[uint32(nr)] += d
				binNrs[cpu] = append(binNrs[cpu], [2]uint32{uint32(nr), uint32(min(d, 1<<32-1))})
			}
		}
		if d := c.NrOther - p.NrOther; d > 0 {
			res.BySyscall[bpf.MeasureMaxNr] += d
		}
	}
	res.NrBins = append(res.NrBins, binNrs)
}

// Validate checks a Measurement read back from JSON: the curve's shape
// matches NumCPU and Bins, so that Series cannot index out of range.
func (res *Measurement) Validate() error {
	if res.NumCPU < 1 || res.NumCPU > 1<<14 {
		return fmt.Errorf("measurement: %d CPUs", res.NumCPU)
	}
	n := len(res.DurNs)
	if res.Bins != n || len(res.NrBins) != n || len(res.Lifecycle) != res.NumCPU || len(res.SyscallBins) != res.NumCPU {
		return fmt.Errorf("measurement: %d bins but %d durations, %d syscall-number bins, %d/%d CPU curves for %d CPUs",
			res.Bins, n, len(res.NrBins), len(res.Lifecycle), len(res.SyscallBins), res.NumCPU)
	}
	for cpu := range res.NumCPU {
		if len(res.Lifecycle[cpu]) != n || len(res.SyscallBins[cpu]) != n {
			return fmt.Errorf("measurement: CPU %d has %d/%d bins, want %d", cpu, len(res.Lifecycle[cpu]), len(res.SyscallBins[cpu]), n)
		}
	}
	for i, b := range res.NrBins {
		if len(b) != 0 && len(b) != res.NumCPU {
			return fmt.Errorf("measurement: bin %d has syscall numbers for %d CPUs, want %d", i, len(b), res.NumCPU)
		}
	}
	if res.BySyscall == nil {
		res.BySyscall = map[uint32]uint64{}
	}
	return nil
}

// SyscallShare is one syscall number's part of the load.
type SyscallShare struct {
	Nr    uint32  `json:"nr"`
	Count uint64  `json:"count"`
	Pct   float64 `json:"pct"`
}

// TopSyscalls returns the syscall numbers by arrivals, most first.
func (res *Measurement) TopSyscalls() []SyscallShare {
	out := make([]SyscallShare, 0, len(res.BySyscall))
	for nr, n := range res.BySyscall {
		s := SyscallShare{Nr: nr, Count: n}
		if res.Syscalls > 0 {
			s.Pct = 100 * float64(n) / float64(res.Syscalls)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b SyscallShare) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Nr, b.Nr)
	})
	return out
}

// Series returns the arrival curve per CPU as records of a monitor that
// writes recordsPerSyscall records per syscall (Falco: an enter and an exit
// event) and one per fork, exec and exit, leaving out the syscalls in
// without (a what-if: "if these were not captured").
func (res *Measurement) Series(recordsPerSyscall float64, without map[uint32]bool) ringmodel.CPUSeries {
	s := ringmodel.CPUSeries{DurNs: slices.Clone(res.DurNs), Arrivals: make([][][event.NumCategories]float64, res.NumCPU)}
	for cpu := range res.NumCPU {
		a := make([][event.NumCategories]float64, len(res.DurNs))
		for i := range a {
			sys := res.SyscallBins[cpu][i]
			if len(without) > 0 && len(res.NrBins[i]) > cpu {
				for _, nc := range res.NrBins[i][cpu] {
					if without[nc[0]] {
						sys -= float64(nc[1])
					}
				}
			}
			a[i][event.CategoryLifecycle] = res.Lifecycle[cpu][i]
			a[i][event.CategorySyscall] = max(sys, 0) * recordsPerSyscall
		}
		s.Arrivals[cpu] = a
	}
	return s
}
