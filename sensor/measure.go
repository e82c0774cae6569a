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
// in a 20 ms window every 4 s (0.5 % of the time), lifecycle always. At 1 %
// (20ms/2s) the in-run A/B of BENCHMARKS.md put a syscall-bound dd at
// +0.5-1.4 % of node CPU, its interval reaching past 1 %; half the windows
// halve the part that the windows cost (the hook's slow path for 20 ms,
// and the kernel patching the tracepoint's static key at each attach and
// detach), while a 60 s measurement still calibrates its estimate on 15
// windows.
var DefaultSyscallSample = SyscallSample{Window: 20 * time.Millisecond, Period: 4 * time.Second}

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

// String is the flag form, "20ms/4s" or "all".
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
	// SyscallBins[cpu][bin]; NrBins[group][cpu] lists [nr, count] of the
	// syscall numbers seen (sparse) in a group of bins: one bin when NrSpan
	// is 0 (older files), else the kernel's span of NrSpan bins, the first
	// group holding NrSpan−NrOffset bins. Saved with --save, read with
	// --load.
	DurNs       []uint64        `json:"dur_ns"`
	Lifecycle   [][]float64     `json:"lifecycle"`
	SyscallBins [][]float64     `json:"syscall_bins"`
	NrBins      [][][][2]uint32 `json:"nr_bins"`
	NrSpan      int             `json:"nr_span,omitempty"`
	NrOffset    int             `json:"nr_offset,omitempty"`

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

// DefaultMeasureRead is how often Measure reads the kernel's bins.
const DefaultMeasureRead = time.Second

// Measure loads the counting-only program and counts until Duration has
// passed or ctx is done: no records, no ring. The kernel bins the counts
// per CPU (bins of Interval, see bpf.Meter); Measure reads them about once
// a second and, when sampling, attaches the syscall counter for the
// windows. The measuring process's own syscalls are not counted. The curve
// starts with the bin in which the program was loaded and ends with the one
// in which it was detached.
func Measure(ctx context.Context, cfg MeasureConfig) (*Measurement, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultMeasureInterval
	}
	if cfg.Duration < 0 {
		return nil, fmt.Errorf("measure: duration %v: want >= 0", cfg.Duration)
	}
	// Read well within the kernel's MeterSlots bins, and a span of
	// per-syscall counts per read.
	readEvery := min(DefaultMeasureRead, bpf.MeterSlots*cfg.Interval/4)
	nrSpan := max(1, int(readEvery/cfg.Interval))
	// The kernel compares global tgids: in a container os.Getpid is the
	// namespace's id (1), which would leave the sensor counted and hide
	// the host's pid 1.
	self, err := bpf.GlobalTGID(procfs.HostProc(os.Getenv))
	if err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	k0, err := bpf.KtimeNow()
	if err != nil {
		return nil, err
	}
	m, err := bpf.LoadMeter(bpf.MeterConfig{SelfTGID: self, WatchTGID: cfg.WatchTGID, Bin: cfg.Interval, NrSpan: nrSpan})
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
	first := m.Epoch(k0)
	if nrSpan > 1 {
		res.NrSpan, res.NrOffset = nrSpan, int(first%uint64(nrSpan))
	}
	r := &binReader{m: m, res: res, next: first, nextSpan: first / uint64(nrSpan), span: uint64(nrSpan)}
	// The syscall counter is attached from the load (k0) on; exposed
	// lists the times it was, from before each attach to after each
	// detach, so that no counted syscall falls outside.
	var exposed [][2]uint64
	attachedAt := k0
	watch0, err := m.ReadWatch()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if cfg.Started != nil {
		cfg.Started()
	}
	var deadline <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	read := time.NewTicker(readEvery)
	defer read.Stop()
	// The windows: detach Window after each attach, attach every Period.
	var toggle <-chan time.Time
	var toggleTimer *time.Timer
	attached := true
	if cfg.Sample.On() {
		res.Sampling = &SamplingInfo{SyscallSample: cfg.Sample}
		toggleTimer = time.NewTimer(cfg.Sample.Window)
		defer toggleTimer.Stop()
		toggle = toggleTimer.C
	}
	windowStart := start
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-deadline:
			done = true
		case <-read.C:
			now, err := bpf.KtimeNow()
			if err != nil {
				return nil, err
			}
			if err := r.upTo(m.Epoch(now), false); err != nil {
				return nil, err
			}
		case <-toggle:
			if attached {
				if err := m.SetSyscalls(false); err != nil {
					return nil, err
				}
				k, err := bpf.KtimeNow()
				if err != nil {
					return nil, err
				}
				exposed = append(exposed, [2]uint64{attachedAt, k})
				attached = false
				windowStart = windowStart.Add(cfg.Sample.Period)
				toggleTimer.Reset(time.Until(windowStart))
				continue
			}
			if attachedAt, err = bpf.KtimeNow(); err != nil {
				return nil, err
			}
			if err := m.SetSyscalls(true); err != nil {
				return nil, err
			}
			attached = true
			toggleTimer.Reset(time.Until(windowStart.Add(cfg.Sample.Window)))
		}
	}
	m.Detach()
	// A program running as its link closed may still be finishing.
	time.Sleep(time.Millisecond)
	end, err := bpf.KtimeNow()
	if err != nil {
		return nil, err
	}
	if attached {
		exposed = append(exposed, [2]uint64{attachedAt, end})
	}
	if err := r.upTo(m.Epoch(end), true); err != nil {
		return nil, err
	}
	watch1, err := m.ReadWatch()
	if err != nil {
		return nil, err
	}
	res.finish(k0, end, uint64(cfg.Interval), first, exposed)
	if res.Sampling != nil {
		res.estimate()
	}
	for i := range watch1 {
		res.WatchForks += watch1[i].Forks - watch0[i].Forks
		res.WatchExecs += watch1[i].Execs - watch0[i].Execs
		res.WatchExits += watch1[i].Exits - watch0[i].Exits
	}
	return res, nil
}

// binReader takes the kernel's bins and spans into a Measurement as they
// end.
type binReader struct {
	m              *bpf.Meter
	res            *Measurement
	next, nextSpan uint64 // the first bin and span not read yet
	span           uint64 // bins per span
	rows           [][]bpf.BinCounts
	nrs            []bpf.NrCounts
}

// upTo reads the bins and spans that are over when bin cur is the
// kernel's: those before cur−1 (a bin's last increments may land just
// after its end), or all up to cur once the meter is detached (final).
func (r *binReader) upTo(cur uint64, final bool) error {
	last := cur
	if !final {
		if cur < 2 {
			return nil
		}
		last = cur - 2
	}
	if last >= r.next {
		var err error
		if r.rows, err = r.m.ReadBins(r.next, last, r.rows[:0]); err != nil {
			return fmt.Errorf("measure: %w", err)
		}
		for _, row := range r.rows {
			r.res.addBin(row)
		}
		r.next = last + 1
	}
	for ; (r.nextSpan+1)*r.span-1 <= last || (final && r.nextSpan*r.span <= last); r.nextSpan++ {
		var err error
		if r.nrs, err = r.m.ReadNrSpan(r.nextSpan, r.nrs); err != nil {
			return fmt.Errorf("measure: %w", err)
		}
		r.res.addNrSpan(r.nrs)
	}
	return nil
}

// addBin adds one bin's counts (one per CPU); syscalls are those counted.
func (res *Measurement) addBin(row []bpf.BinCounts) {
	res.Bins++
	for cpu, c := range row {
		res.Lifecycle[cpu] = append(res.Lifecycle[cpu], float64(c.Forks+c.Execs+c.Exits))
		res.SyscallBins[cpu] = append(res.SyscallBins[cpu], float64(c.Syscalls))
		res.Syscalls += c.Syscalls
		res.Forks += c.Forks
		res.Execs += c.Execs
		res.Exits += c.Exits
		res.PerCPUSyscalls[cpu] += c.Syscalls
	}
}

// addNrSpan adds one span's per-syscall-number counts (one per CPU).
func (res *Measurement) addNrSpan(nrs []bpf.NrCounts) {
	span := make([][][2]uint32, len(nrs))
	for cpu := range nrs {
		for nr, d := range nrs[cpu] {
			if d > 0 {
				res.BySyscall[uint32(nr)] += d
				span[cpu] = append(span[cpu], [2]uint32{uint32(nr), uint32(min(d, 1<<32-1))})
			}
		}
	}
	res.NrBins = append(res.NrBins, span)
}

// finish sets the bins' durations (the first and the last bin count from
// k0 and up to end only) and, when sampling, each bin's exposure: the part
// of it within the exposed intervals (ktime ns).
func (res *Measurement) finish(k0, end, binNs, first uint64, exposed [][2]uint64) {
	res.DurNs = make([]uint64, res.Bins)
	var exp []float64
	if res.Sampling != nil {
		exp = make([]float64, res.Bins)
	}
	for i := range res.Bins {
		lo, hi := (first+uint64(i))*binNs, (first+uint64(i)+1)*binNs
		lo, hi = max(lo, k0), min(hi, end)
		d := max(hi, lo+1) - lo
		res.DurNs[i] = d
		res.Duration += time.Duration(d)
		if exp == nil {
			continue
		}
		var in uint64
		for _, iv := range exposed {
			if a, b := max(lo, iv[0]), min(hi, iv[1]); b > a {
				in += b - a
			}
		}
		exp[i] = min(1, float64(in)/float64(d))
		res.Sampling.ExposedNs += in
	}
	if sp := res.Sampling; sp != nil {
		sp.Exposure = exp
		sp.Counted = res.Syscalls
	}
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
	if res.NrSpan < 0 || res.NrOffset < 0 || (res.NrSpan > 0 && res.NrOffset >= res.NrSpan) {
		return fmt.Errorf("measurement: syscall-number groups of %d bins at offset %d", res.NrSpan, res.NrOffset)
	}
	if res.Bins != n || len(res.NrBins) != res.nrGroups(n) || len(res.Lifecycle) != res.NumCPU || len(res.SyscallBins) != res.NumCPU {
		return fmt.Errorf("measurement: %d bins but %d durations, %d syscall-number groups (want %d), %d/%d CPU curves for %d CPUs",
			res.Bins, n, len(res.NrBins), res.nrGroups(n), len(res.Lifecycle), len(res.SyscallBins), res.NumCPU)
	}
	for cpu := range res.NumCPU {
		if len(res.Lifecycle[cpu]) != n || len(res.SyscallBins[cpu]) != n {
			return fmt.Errorf("measurement: CPU %d has %d/%d bins, want %d", cpu, len(res.Lifecycle[cpu]), len(res.SyscallBins[cpu]), n)
		}
	}
	for i, b := range res.NrBins {
		if len(b) != 0 && len(b) != res.NumCPU {
			return fmt.Errorf("measurement: group %d has syscall numbers for %d CPUs, want %d", i, len(b), res.NumCPU)
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

// nrGroups is how many NrBins groups n bins make.
func (res *Measurement) nrGroups(n int) int {
	if res.NrSpan <= 1 || n == 0 {
		return n
	}
	return (n+res.NrOffset-1)/res.NrSpan + 1
}

// nrGroup is the NrBins group of bin i.
func (res *Measurement) nrGroup(i int) int {
	if res.NrSpan <= 1 {
		return i
	}
	return (i + res.NrOffset) / res.NrSpan
}

// Series returns the arrival curve per CPU as records of a monitor that
// writes recordsPerSyscall records per syscall (Falco: an enter and an exit
// event) and one per fork, exec and exit, leaving out the syscalls in
// without (a what-if: "if these were not captured"). The kernel counts
// syscall numbers per group of bins (NrSpan): a bin loses the group's share
// of left-out syscalls in proportion to its counted syscalls, so that the
// group as a whole loses exactly what was counted.
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
	counted := func(cpu, i int) float64 {
		c := res.SyscallBins[cpu][i]
		if res.Sampling != nil {
			c -= res.Sampling.Estimated[cpu][i]
		}
		return c
	}
	for cpu := range res.NumCPU {
		// Per group: the left-out part of its counted syscalls.
		var leftOut []float64
		if len(without) > 0 {
			groupCounted := make([]float64, len(res.NrBins))
			for i := range res.DurNs {
				groupCounted[res.nrGroup(i)] += counted(cpu, i)
			}
			leftOut = make([]float64, len(res.NrBins))
			for g, b := range res.NrBins {
				if len(b) <= cpu || groupCounted[g] <= 0 {
					continue
				}
				var n float64
				for _, nc := range b[cpu] {
					if without[nc[0]] {
						n += float64(nc[1])
					}
				}
				leftOut[g] = n / groupCounted[g]
			}
		}
		a := make([][event.NumCategories]float64, len(res.DurNs))
		for i := range a {
			sys := res.SyscallBins[cpu][i]
			if leftOut != nil {
				sys -= counted(cpu, i) * leftOut[res.nrGroup(i)]
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
