package ringmodel

import (
	"fmt"
	"math"
	"strings"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
)

// presetBytes is the ring size of bufSizePreset p (0 for an invalid p).
func presetBytes(p int) int {
	n, err := ringspec.PresetSize(p)
	if err != nil {
		return 0
	}
	return n
}

// FalcoRecordsPerSyscall is the ring records Falco's modern eBPF probe
// writes per captured syscall: an enter and an exit event.
const FalcoRecordsPerSyscall = 2

// DefaultFalcoRecordBytes returns the assumed mean ring footprint of one
// Falco record per category: lifecycle (clone/fork and execve exit events
// carry exe, args, cwd, cgroups and more; procexit is small) and syscall
// (header, parameter lengths, a few parameters, an 80-byte data snapshot).
// They are assumptions, not measurements: override them when you know
// better. A function, so nobody can change them under the model.
func DefaultFalcoRecordBytes() [event.NumCategories]float64 {
	return [event.NumCategories]float64{800, 96}
}

// CPUSeries is an arrival curve per CPU: for bin i of DurNs[i] ns,
// Arrivals[cpu][i] records of each category.
type CPUSeries struct {
	DurNs    []uint64
	Arrivals [][][event.NumCategories]float64
}

// NumCPU is the number of CPUs in s.
func (s CPUSeries) NumCPU() int { return len(s.Arrivals) }

// Load is s as a Load whose bins carry the per-CPU arrivals (Bin.CPU) and
// their totals, drained at drain records/s in every bin.
func (s CPUSeries) Load(recordBytes [event.NumCategories]float64, drain float64) Load {
	l := Load{RecordBytes: recordBytes, DrainRate: drain, Bins: make([]Bin, len(s.DurNs))}
	for i, d := range s.DurNs {
		b := &l.Bins[i]
		b.DurNs = d
		b.CPU = make([][event.NumCategories]float64, len(s.Arrivals))
		for cpu := range s.Arrivals {
			if i >= len(s.Arrivals[cpu]) {
				continue
			}
			for c := range event.NumCategories {
				v := nonNeg(s.Arrivals[cpu][i][c])
				b.CPU[cpu][c] = v
				b.Arrivals[c] += v
			}
		}
	}
	return l
}

// Total is s summed over CPUs as one Load (without the per-CPU arrivals).
func (s CPUSeries) Total(recordBytes [event.NumCategories]float64, drain float64) Load {
	l := s.Load(recordBytes, drain)
	for i := range l.Bins {
		l.Bins[i].CPU = nil
	}
	return l
}

// FalcoRingPrediction is what Falco's rings would have done.
type FalcoRingPrediction struct {
	// Rings is the number of rings: ceil(CPUs / cpusPerRing).
	Rings       int `json:"rings"`
	CPUsPerRing int `json:"cpus_per_ring"`
	// SizeBytes is each ring's size (the preset's).
	SizeBytes int `json:"size_bytes"`
	// Prediction sums all rings; PeakFillBytes is the fullest ring's peak.
	Prediction Prediction `json:"prediction"`
	// PerRingDropped is the records each ring dropped.
	PerRingDropped []float64 `json:"per_ring_dropped"`
}

// SimulateFalco replays s through Falco's modern eBPF layout (see
// simulateFalco) with one consumer of drain records/s.
func SimulateFalco(s CPUSeries, recordBytes [event.NumCategories]float64, drain float64, sizeBytes, cpusPerRing int) FalcoRingPrediction {
	if cpusPerRing <= 0 {
		cpusPerRing = ringspec.DefaultCPUsPerRing
	}
	if !(drain > 0) || math.IsInf(drain, 0) {
		drain = 0
	}
	ring := Ring{SizeBytes: sizeBytes, Layout: ringspec.LayoutFalco, CPUsPerRing: cpusPerRing, CPUs: s.NumCPU()}
	p, per, _ := simulateFalco(s.Load(recordBytes, drain), ring, 0)
	return FalcoRingPrediction{Rings: ring.Rings(), CPUsPerRing: cpusPerRing, SizeBytes: sizeBytes, Prediction: p, PerRingDropped: per}
}

// simulateFalco replays load through Falco's modern eBPF layout: one ring of
// ring.SizeBytes per group of ring.CPUsPerRing CPUs (ring g holds the records
// of CPUs g·n … (g+1)·n−1: Falco selects the ring by the current CPU), all
// read by one consumer draining load.DrainAt of the node's total arrivals.
// Each ring is the fluid queue of the shared layout; the consumer's reads
// are shared among the rings in proportion to the records waiting in each
// (Falco's consumer takes the oldest event across all rings, so a ring with
// more waiting gets more of the reads), so no read capacity is lost while
// any ring holds data.
//
// With one ring — at most CPUsPerRing CPUs, or a load without per-CPU
// arrivals (Load.CPUs 0), which can only be pooled — it is Simulate's shared
// ring of the same size, exactly. It returns the prediction summed over the
// rings (PeakFillBytes: the fullest ring's; OverflowNs: the longest), the
// records each ring dropped, and the fill of all rings together read against
// trackBytes as in simulate.
func simulateFalco(load Load, ring Ring, trackBytes float64) (Prediction, []float64, Backlog) {
	ncpu := load.CPUs()
	cpr := ring.cpusPerRing()
	n := FalcoRingCount(ncpu, cpr)
	if n <= 1 {
		p, bl := simulate(load, Ring{SizeBytes: ring.SizeBytes, Layout: ringspec.LayoutShared}, trackBytes)
		return p, []float64{p.Dropped[lc] + p.Dropped[sys]}, bl
	}
	rb := recordBytes(load.RecordBytes)
	rings := make([]sim, n)
	for g := range rings {
		rings[g].rb = rb
		rings[g].cap[0] = float64(max(ring.SizeBytes, 0))
	}
	arr := make([][event.NumCategories]float64, n)
	in := make([][event.NumCategories]float64, n)
	waiting := make([]float64, n)
	var fill fillReader
	var t float64 // ns since the start of the load
	track := func() {
		if trackBytes > 0 {
			var q float64
			for g := range rings {
				q += rings[g].q[lc] + rings[g].q[sys]
			}
			fill.read(uint64(math.Round(t)), q >= trackBytes)
		}
	}
	track()
	for _, b := range load.Bins {
		var tot [event.NumCategories]float64
		for g := range arr {
			arr[g] = [event.NumCategories]float64{}
			if b.Start {
				rings[g].q = [event.NumCategories]float64{} // a new run starts empty
			}
		}
		for cpu, a := range b.CPU {
			g := cpu / cpr
			for c := range event.NumCategories {
				v := nonNeg(a[c])
				arr[g][c] += v
				tot[c] += v
			}
		}
		drain := load.DrainAt(tot[lc]+tot[sys], float64(b.DurNs)/1e9)
		steps := max((b.DurNs+MaxStepNs-1)/MaxStepNs, 1)
		dt := float64(b.DurNs) / float64(steps) / 1e9
		empty := true
		for g := range rings {
			for c := range event.NumCategories {
				rings[g].p.Attempted[c] += arr[g][c]
				in[g][c] = arr[g][c] / float64(steps)
			}
			if rings[g].q[lc]+rings[g].q[sys] > 0 {
				empty = false
			}
		}
		if empty && (tot[lc]+tot[sys])/float64(steps) <= drain*dt {
			t += float64(b.DurNs) // exact: every ring stays empty
			track()
			continue
		}
		for range steps {
			var all float64 // records waiting (queued + arriving), all rings
			for g := range rings {
				waiting[g] = 0
				for c := range event.NumCategories {
					waiting[g] += rings[g].q[c]/rb[c] + in[g][c]
				}
				all += waiting[g]
			}
			for g := range rings {
				rings[g].drain = 0
				if all > 0 {
					rings[g].drain = drain * waiting[g] / all
				}
				rings[g].stepShared(in[g], dt)
			}
			t += dt * 1e9
			track()
		}
	}
	var out Prediction
	per := make([]float64, n)
	for g := range rings {
		p := &rings[g].p
		for c := range event.NumCategories {
			out.Attempted[c] += p.Attempted[c]
			out.Dropped[c] += p.Dropped[c]
			out.DroppedBytes[c] += p.DroppedBytes[c]
			per[g] += p.Dropped[c]
		}
		out.PeakFillBytes = max(out.PeakFillBytes, p.PeakFillBytes)
		out.OverflowNs = max(out.OverflowNs, uint64(math.Round(rings[g].overflowNs)))
	}
	return out, per, fill.done()
}

func recordBytesOrDefault(rb [event.NumCategories]float64) [event.NumCategories]float64 {
	def := DefaultFalcoRecordBytes()
	for c := range rb {
		if !finitePos(rb[c]) {
			rb[c] = def[c]
		}
	}
	return rb
}

// FalcoCandidate is one bufSizePreset replayed in Falco's layout.
type FalcoCandidate struct {
	Preset              int                 `json:"preset"`
	MemoryBytes         int                 `json:"memory_bytes"`
	Rings               FalcoRingPrediction `json:"rings"`
	PredictedMissingPct float64             `json:"predicted_missing_pct"`
	// PredictedDropPct is 100 × dropped / attempted records.
	PredictedDropPct float64 `json:"predicted_drop_pct"`
}

// FalcoRecommendation answers "which bufSizePreset on this node?" in
// Falco's own layout. Everything in it is SIMULATED from a measured load.
type FalcoRecommendation struct {
	BufSizePreset       int              `json:"buf_size_preset"`
	CPUsPerRing         int              `json:"cpus_for_each_buffer"`
	Rings               int              `json:"rings"`
	TargetPct           float64          `json:"target_pct"`
	PredictedMissingPct float64          `json:"predicted_missing_pct"`
	MeetsTarget         bool             `json:"meets_target"`
	Calibration         Calibration      `json:"calibration"`
	DrainRate           float64          `json:"drain_eps"`
	Candidates          []FalcoCandidate `json:"candidates"`
	// TooSlow is set when the mean load is at or above the drain: every
	// ring fills for good whatever its size (BufSizePreset is then 0).
	TooSlow bool `json:"consumer_too_slow"`
	// Verdict is one sentence: the preset, and that Falco's layout was
	// modeled.
	Verdict string `json:"verdict"`
}

// RecommendFalco replays s through every preset 1..ringspec.MaxPreset in Falco's
// layout (see SimulateFalco) and picks the smallest whose predicted missing
// metadata is ≤ targetPct (≤ 0: ringspec.DefaultTargetPct); if none does, the one
// with the least. cal with no samples is replaced by DefaultCalibration of
// the whole load.
func RecommendFalco(s CPUSeries, recordBytes [event.NumCategories]float64, drain float64, cpusPerRing int, cal Calibration, targetPct float64) FalcoRecommendation {
	if cpusPerRing <= 0 {
		cpusPerRing = ringspec.DefaultCPUsPerRing
	}
	if !(targetPct > 0) || math.IsInf(targetPct, 0) {
		targetPct = ringspec.DefaultTargetPct
	}
	if cal.Samples <= 0 {
		cal = DefaultCalibration(s.Total(recordBytes, drain))
	}
	rec := FalcoRecommendation{CPUsPerRing: cpusPerRing, TargetPct: targetPct, Calibration: cal, DrainRate: drain}
	best := -1
	for p := 1; p <= ringspec.MaxPreset; p++ {
		r := SimulateFalco(s, recordBytes, drain, presetBytes(p), cpusPerRing)
		var att, drop float64
		for c := range event.NumCategories {
			att += r.Prediction.Attempted[c]
			drop += r.Prediction.Dropped[c]
		}
		c := FalcoCandidate{Preset: p, MemoryBytes: r.Rings * r.SizeBytes, Rings: r, PredictedMissingPct: cal.MissingPct(r.Prediction)}
		if att > 0 {
			c.PredictedDropPct = 100 * drop / att
		}
		rec.Candidates = append(rec.Candidates, c)
		i := len(rec.Candidates) - 1
		switch {
		case best < 0:
			best = i
		case rec.Candidates[best].PredictedMissingPct > targetPct && c.PredictedMissingPct < rec.Candidates[best].PredictedMissingPct:
			best = i
		}
	}
	c := rec.Candidates[best]
	rec.BufSizePreset, rec.Rings, rec.PredictedMissingPct = c.Preset, c.Rings.Rings, c.PredictedMissingPct
	rec.MeetsTarget = c.PredictedMissingPct <= targetPct
	// Too slow needs proof: the mean exceeds the drain and the model's
	// unbounded replay never clears its backlog (no fill is measured here).
	if ev := evidence(s.Total(recordBytes, drain)); ev.ModelTooSlow && ev.Backlog.stuck() {
		// Over a finite measurement a huge ring seems to absorb the
		// overload; in steady state it fills and drops like a small one.
		rec.TooSlow, rec.MeetsTarget, rec.BufSizePreset = true, false, 0
		rec.PredictedMissingPct = cal.MissingPct(steadyState(s.Total(recordBytes, drain), Ring{Layout: ringspec.LayoutShared}))
		rec.Verdict = fmt.Sprintf("SIMULATED: Falco's consumer is too slow for this node: mean %s ev/s ≥ drain %s ev/s, so no buf_size_preset helps (predicted %s%% missing at any size; modeled Falco's layout: %d ring(s), cpus_for_each_buffer=%d) — capture fewer syscalls (base_syscalls.custom_set)",
			fmtRate(ev.MeanRate), fmtRate(drain), fmtPct(rec.PredictedMissingPct), rec.Rings, cpusPerRing)
		return rec
	}
	rec.Verdict = falcoVerdict(rec, s.NumCPU())
	return rec
}

func falcoVerdict(rec FalcoRecommendation, ncpu int) string {
	var b strings.Builder
	layout := fmt.Sprintf("modeled Falco's layout: %d ring(s) of %s, one per cpus_for_each_buffer=%d CPUs of %d",
		rec.Rings, ringspec.ProseSize(presetBytes(rec.BufSizePreset)), rec.CPUsPerRing, ncpu)
	if rec.MeetsTarget {
		fmt.Fprintf(&b, "SIMULATED: set engine.modern_ebpf.buf_size_preset: %d (%s): predicted %s%% missing ≤ %s%% target at drain %s ev/s; %s",
			rec.BufSizePreset, layout, fmtPct(rec.PredictedMissingPct), fmtPct(rec.TargetPct), fmtRate(rec.DrainRate), layoutMem(rec))
	} else {
		fmt.Fprintf(&b, "SIMULATED: no buf_size_preset up to %d meets the %s%% target: best is %d (%s) with predicted %s%% missing at drain %s ev/s: capture fewer syscalls (base_syscalls.custom_set) or lower cpus_for_each_buffer",
			ringspec.MaxPreset, fmtPct(rec.TargetPct), rec.BufSizePreset, layout, fmtPct(rec.PredictedMissingPct), fmtRate(rec.DrainRate))
	}
	b.WriteString(calDesc(rec.Calibration))
	return b.String()
}

func layoutMem(rec FalcoRecommendation) string {
	return fmt.Sprintf("kernel memory %s", ringspec.ProseSize(rec.Rings*presetBytes(rec.BufSizePreset)))
}
