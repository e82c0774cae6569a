package sensor

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
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
	// Sample, when set, counts syscalls only in windows (SyscallSample);
	// the zero value counts every syscall for the whole run.
	Sample SyscallSample
}

// DefaultSyscallSample is `ringwise measure`'s default: syscalls counted
// in a 20 ms window every 2 s (1 % of the time), lifecycle always.
var DefaultSyscallSample = SyscallSample{Window: 20 * time.Millisecond, Period: 2 * time.Second}

// SyscallSample is a duty cycle for the per-syscall counter: attached for
// Window out of every Period. Any program on sys_exit sends every syscall of
// the node through the kernel's slow exit path, and on a syscall-bound
// workload that costs more than the counting (see BENCHMARKS.md), so
// counting only in windows divides the cost by Period/Window. Bins outside
// a window get their syscalls ESTIMATED from the node's lifecycle activity
// (Measurement.Sampling says how).
type SyscallSample struct {
	Window time.Duration `json:"window_ns"`
	Period time.Duration `json:"period_ns"`
}

// On reports whether s samples (false: count continuously).
func (s SyscallSample) On() bool { return s.Period > 0 }

// String is the flag form, "20ms/2s" or "all".
func (s SyscallSample) String() string {
	if !s.On() {
		return "all"
	}
	return s.Window.String() + "/" + s.Period.String()
}

// ParseSyscallSample reads "all" (count continuously) or "WINDOW/PERIOD"
// (e.g. "20ms/2s").
func ParseSyscallSample(v string) (SyscallSample, error) {
	if v == "all" || v == "" {
		return SyscallSample{}, nil
	}
	w, p, ok := strings.Cut(v, "/")
	if !ok {
		return SyscallSample{}, fmt.Errorf("syscall sample %q: want all or WINDOW/PERIOD, e.g. 20ms/2s", v)
	}
	win, err := time.ParseDuration(w)
	if err != nil {
		return SyscallSample{}, fmt.Errorf("syscall sample %q: window: %w", v, err)
	}
	per, err := time.ParseDuration(p)
	if err != nil {
		return SyscallSample{}, fmt.Errorf("syscall sample %q: period: %w", v, err)
	}
	if win <= 0 || per <= win {
		return SyscallSample{}, fmt.Errorf("syscall sample %q: want 0 < window < period", v)
	}
	return SyscallSample{Window: win, Period: per}, nil
}

// bins gives the window and the period in bins of interval: a window covers
// at least two bins, since the bin in which the counter is attached is
// counted only in part.
func (s SyscallSample) bins(interval time.Duration) (window, period int) {
	window = max(2, int((s.Window+interval-1)/interval))
	period = max(window+1, int((s.Period+interval/2)/interval))
	return window, period
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

	// Sampling is set when syscalls were counted only in windows
	// (MeasureConfig.Sample): Syscalls, PerCPUSyscalls and SyscallBins are
	// then ESTIMATES, BySyscall holds the counts of the windows only.
	Sampling *SamplingInfo `json:"sampling,omitempty"`
}

// SamplingInfo says how a sampled measurement's syscalls were estimated.
type SamplingInfo struct {
	SyscallSample
	// Exposure[bin] is the part of the bin the counter was attached for
	// (1 whole, 0 not at all).
	Exposure []float64 `json:"exposure"`
	// Counted is the syscalls counted in the windows; ExposedNs the time
	// they cover, summed over the bins.
	Counted   uint64 `json:"counted"`
	ExposedNs uint64 `json:"exposed_ns"`
	// Estimated[cpu][bin] is the estimated part of SyscallBins[cpu][bin]:
	// syscalls/s = Base[cpu] + PerLifecycle[cpu] × lifecycle events/s, a
	// weighted least-squares fit over the exposed bins of that CPU.
	Estimated    [][]float64 `json:"estimated"`
	Base         []float64   `json:"base_per_s"`
	PerLifecycle []float64   `json:"per_lifecycle"`
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
	// The counter is attached from the start: the first window is bins
	// 0..winBins-1, then one every perBins.
	winBins, perBins := cfg.Sample.bins(cfg.Interval)
	if cfg.Sample.On() {
		res.Sampling = &SamplingInfo{SyscallSample: cfg.Sample}
	}
	attached := true
	var attachedAt time.Time // when the counter came back, within the bin being counted
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
		exposure := 1.0
		if res.Sampling != nil {
			switch {
			case !attached:
				exposure = 0
			case !attachedAt.IsZero() && attachedAt.After(last):
				exposure = min(1, float64(now.Sub(attachedAt))/float64(max(now.Sub(last), 1)))
			}
		}
		res.addBin(prev, cur, uint64(now.Sub(last)), exposure)
		last = now
		prev, cur = cur, prev
		if res.Sampling != nil && !done {
			// The next bin is res.Bins (0-based).
			switch pos := res.Bins % perBins; {
			case pos == 0 && !attached:
				if err := m.SetSyscalls(true); err != nil {
					return nil, err
				}
				attached, attachedAt = true, time.Now()
			case pos == winBins && attached:
				if err := m.SetSyscalls(false); err != nil {
					return nil, err
				}
				attached = false
			}
		}
	}
	m.Detach()
	if res.Sampling != nil {
		res.estimate()
	}
	res.Duration = last.Sub(start)
	for i := range prev {
		p, f := &prev[i], &first[i]
		res.WatchForks += p.WatchForks - f.WatchForks
		res.WatchExecs += p.WatchExecs - f.WatchExecs
		res.WatchExits += p.WatchExits - f.WatchExits
	}
	return res, nil
}

// addBin adds the deltas cur − prev as one bin of durNs, of which the
// syscall counter was attached for the part exposure (1 when not sampling;
// at 0 the bin's syscall counts, a few left over from the detach, are
// dropped and estimated later).
func (res *Measurement) addBin(prev, cur []bpf.CPUCounts, durNs uint64, exposure float64) {
	res.DurNs = append(res.DurNs, durNs)
	res.Bins++
	if res.Sampling != nil {
		res.Sampling.Exposure = append(res.Sampling.Exposure, exposure)
		res.Sampling.ExposedNs += uint64(exposure * float64(durNs))
	}
	binNrs := make([][][2]uint32, len(cur))
	for cpu := range cur {
		p, c := &prev[cpu], &cur[cpu]
		sys := c.Syscalls - p.Syscalls
		if exposure == 0 {
			sys = 0
		}
		if res.Sampling != nil {
			res.Sampling.Counted += sys
		}
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

// estimate fills the syscalls of the bins outside the windows (and the
// unexposed part of partly exposed ones) from the lifecycle curve: per CPU,
// syscalls/s = base + k × lifecycle events/s, fitted by least squares
// weighted by exposed time over the exposed bins. Under a process flood a
// node's syscalls follow its processes (each short-lived process makes
// about the same syscalls), and between floods the base rate remains. The
// totals become estimates; Sampling keeps what was counted.
func (res *Measurement) estimate() {
	sp := res.Sampling
	sp.Estimated = make([][]float64, res.NumCPU)
	sp.Base = make([]float64, res.NumCPU)
	sp.PerLifecycle = make([]float64, res.NumCPU)
	res.Syscalls = 0
	for cpu := range res.NumCPU {
		xs, ys, ws := make([]float64, 0, len(res.DurNs)), make([]float64, 0, len(res.DurNs)), make([]float64, 0, len(res.DurNs))
		for i, d := range res.DurNs {
			e := sp.Exposure[i]
			if e <= 0 || d == 0 {
				continue
			}
			secs := float64(d) / 1e9
			xs = append(xs, res.Lifecycle[cpu][i]/secs)
			ys = append(ys, res.SyscallBins[cpu][i]/(secs*e))
			ws = append(ws, secs*e)
		}
		a, k := fitRate(xs, ys, ws)
		sp.Base[cpu], sp.PerLifecycle[cpu] = a, k
		est := make([]float64, len(res.DurNs))
		var total float64
		for i, d := range res.DurNs {
			secs := float64(d) / 1e9
			est[i] = (a + k*res.Lifecycle[cpu][i]/secs) * secs * (1 - sp.Exposure[i])
			res.SyscallBins[cpu][i] += est[i]
			total += res.SyscallBins[cpu][i]
		}
		sp.Estimated[cpu] = est
		res.PerCPUSyscalls[cpu] = uint64(math.Round(total))
		res.Syscalls += res.PerCPUSyscalls[cpu]
	}
}

// fitRate fits y = a + k·x by weighted least squares with a, k ≥ 0 (a
// negative slope or intercept is not a rate: the constrained optimum then
// lies on that axis).
func fitRate(xs, ys, ws []float64) (a, k float64) {
	var sw, sx, sy, sxx, sxy float64
	for i := range xs {
		w := ws[i]
		sw += w
		sx += w * xs[i]
		sy += w * ys[i]
		sxx += w * xs[i] * xs[i]
		sxy += w * xs[i] * ys[i]
	}
	if sw == 0 {
		return 0, 0
	}
	den := sw*sxx - sx*sx
	if den > 1e-12*sw*sxx && den > 0 {
		k = (sw*sxy - sx*sy) / den
		a = (sy - k*sx) / sw
	} else {
		k, a = 0, sy/sw
	}
	switch {
	case k < 0:
		k, a = 0, sy/sw
	case a < 0:
		a = 0
		if sxx > 0 {
			k = sxy / sxx
		}
	}
	return a, k
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
	if sp := res.Sampling; sp != nil {
		if len(sp.Exposure) != n || len(sp.Estimated) != res.NumCPU {
			return fmt.Errorf("measurement: sampling has %d exposures and %d CPU estimates for %d bins, %d CPUs", len(sp.Exposure), len(sp.Estimated), n, res.NumCPU)
		}
		for cpu, e := range sp.Estimated {
			if len(e) != n {
				return fmt.Errorf("measurement: CPU %d has %d estimated bins, want %d", cpu, len(e), n)
			}
		}
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
	// Sampled: the shares are those of the windows, the counts scaled to
	// the estimated total.
	counted, scale := res.Syscalls, 1.0
	if res.Sampling != nil {
		counted = res.Sampling.Counted
		if counted > 0 {
			scale = float64(res.Syscalls) / float64(counted)
		}
	}
	for nr, n := range res.BySyscall {
		s := SyscallShare{Nr: nr, Count: uint64(math.Round(float64(n) * scale))}
		if counted > 0 {
			s.Pct = 100 * float64(n) / float64(counted)
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
	// Sampled: the estimated part of a bin loses the windows' share of the
	// left-out syscalls.
	var withoutShare float64
	if sp := res.Sampling; sp != nil && sp.Counted > 0 && len(without) > 0 {
		var n uint64
		for nr, c := range res.BySyscall {
			if without[nr] {
				n += c
			}
		}
		withoutShare = float64(n) / float64(sp.Counted)
	}
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
			if withoutShare > 0 {
				sys -= res.Sampling.Estimated[cpu][i] * withoutShare
			}
			a[i][event.CategoryLifecycle] = res.Lifecycle[cpu][i]
			a[i][event.CategorySyscall] = max(sys, 0) * recordsPerSyscall
		}
		s.Arrivals[cpu] = a
	}
	return s
}
