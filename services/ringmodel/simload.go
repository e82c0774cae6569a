package ringmodel

import (
	"math"
	"time"
)

// DefaultBinNs is the bin width SimulatedLoad uses when given 0: the
// sensor's default sampling interval.
const DefaultBinNs = 10_000_000

// FloodSpec describes a synthetic process flood (what `ringwise flood` runs
// on a real node): Procs short-lived processes spawned in bursts of Burst,
// ProcsPerSec apart inside a burst, with Pause between bursts, over a steady
// background of BaseRate syscalls per second.
type FloodSpec struct {
	// Procs is the total number of processes spawned.
	Procs int
	// Burst is the processes per burst; ≤ 0 means all of them in one burst.
	Burst int
	// Pause is the quiet time after each burst (including the last, so that
	// the ring can be seen draining).
	Pause time.Duration
	// ProcsPerSec is the spawn rate inside a burst; ≤ 0 means instantly (the
	// whole burst lands in one bin).
	ProcsPerSec float64
	// SyscallsPerProc is the syscall records each process produces.
	SyscallsPerProc float64
	// LifecyclePerProc is the lifecycle records per process; 0 means
	// LifecyclePerProcess (fork, exec, exit).
	LifecyclePerProc float64
	// BaseRate is the background syscall records per second.
	BaseRate float64
}

// SimulatedLoad builds the arrival curve of spec in bins of binNs (0 means
// DefaultBinNs), for nodes where BPF is unavailable: it is a SIMULATED load,
// not a measurement, and nothing in it comes from a kernel. It is fully
// deterministic (no randomness, no clock).
//
// Each process's records are placed at its spawn instant — the flood's
// processes live for microseconds, far less than a bin — and spawns are
// spread uniformly over each burst. The timeline runs from the first burst
// to the end of the last pause; with Procs ≤ 0 it is only background for
// max(Pause, 1 s).
func SimulatedLoad(spec FloodSpec, recordBytes [2]float64, drainRate float64, binNs uint64) Load {
	if binNs == 0 {
		binNs = DefaultBinNs
	}
	bin := float64(binNs)
	pause := float64(max(spec.Pause, 0))
	lcPer := spec.LifecyclePerProc
	if lcPer == 0 {
		lcPer = LifecyclePerProcess
	}
	lcPer, sysPer, base := nonNeg(lcPer), nonNeg(spec.SyscallsPerProc), nonNeg(spec.BaseRate)
	pps := spec.ProcsPerSec
	if !finitePos(pps) {
		pps = 0
	}
	procs := max(spec.Procs, 0)
	burst := spec.Burst
	if burst <= 0 || burst > procs {
		burst = procs
	}

	// Bursts as [start, end) in ns with their process counts.
	type span struct{ start, end, n float64 }
	var spans []span
	var t float64
	for left := procs; left > 0; left -= burst {
		n := float64(min(burst, left))
		d := 0.0
		if pps > 0 {
			d = n / pps * 1e9
		}
		spans = append(spans, span{t, t + d, n})
		t += d + pause
	}
	total := t
	if procs == 0 {
		total = max(pause, 1e9)
	}
	nBins := max(int(math.Ceil(total/bin)), 1)

	procsIn := make([]float64, nBins)
	for _, s := range spans {
		if s.end <= s.start { // instant burst
			i := min(int(s.start/bin), nBins-1)
			procsIn[i] += s.n
			continue
		}
		rate := s.n / (s.end - s.start) // procs per ns
		for i := int(s.start / bin); i < nBins && float64(i)*bin < s.end; i++ {
			lo := max(s.start, float64(i)*bin)
			hi := min(s.end, float64(i+1)*bin)
			if hi > lo {
				procsIn[i] += (hi - lo) * rate
			}
		}
	}

	l := Load{Bins: make([]Bin, nBins), RecordBytes: recordBytes, DrainRate: drainRate}
	for i := range l.Bins {
		dur := binNs
		if i == nBins-1 { // the last bin ends with the timeline
			dur = uint64(math.Round(total - float64(i)*bin))
			if dur == 0 {
				dur = binNs
			}
		}
		b := &l.Bins[i]
		b.DurNs = dur
		b.Arrivals[lc] = procsIn[i] * lcPer
		b.Arrivals[sys] = procsIn[i]*sysPer + base*float64(dur)/1e9
	}
	return l
}
