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

// Total is s summed over CPUs as one Load.
func (s CPUSeries) Total(recordBytes [event.NumCategories]float64, drain float64) Load {
	loads := s.Groups(max(len(s.Arrivals), 1), recordBytes, drain)
	if len(loads) == 0 {
		return Load{RecordBytes: recordBytes, DrainRate: drain}
	}
	return loads[0]
}

// Groups splits s into the loads of Falco's rings: ring g holds the records
// of CPUs g·cpusPerRing … (g+1)·cpusPerRing−1 (Falco selects the ring by the
// current CPU). cpusPerRing ≤ 0 means ringspec.DefaultCPUsPerRing. The drain is
// left whole in each Load: the consumer is shared, see SimulateFalco.
func (s CPUSeries) Groups(cpusPerRing int, recordBytes [event.NumCategories]float64, drain float64) []Load {
	if cpusPerRing <= 0 {
		cpusPerRing = ringspec.DefaultCPUsPerRing
	}
	n := (len(s.Arrivals) + cpusPerRing - 1) / cpusPerRing
	loads := make([]Load, n)
	for g := range loads {
		l := Load{RecordBytes: recordBytes, DrainRate: drain, Bins: make([]Bin, len(s.DurNs))}
		for i, d := range s.DurNs {
			l.Bins[i].DurNs = d
		}
		for cpu := g * cpusPerRing; cpu < min((g+1)*cpusPerRing, len(s.Arrivals)); cpu++ {
			for i := range l.Bins {
				if i >= len(s.Arrivals[cpu]) {
					break
				}
				for c := range event.NumCategories {
					l.Bins[i].Arrivals[c] += nonNeg(s.Arrivals[cpu][i][c])
				}
			}
		}
		loads[g] = l
	}
	return loads
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

// SimulateFalco replays s through Falco's modern eBPF layout: one ring of
// sizeBytes per group of cpusPerRing CPUs, all read by one consumer of
// drain records/s. Each ring is the fluid queue of Simulate's shared layout;
// the consumer's reads are shared among the rings in proportion to the
// records waiting in each (Falco's consumer takes the oldest event across
// all rings, so a ring with more waiting gets more of the reads).
func SimulateFalco(s CPUSeries, recordBytes [event.NumCategories]float64, drain float64, sizeBytes, cpusPerRing int) FalcoRingPrediction {
	if cpusPerRing <= 0 {
		cpusPerRing = ringspec.DefaultCPUsPerRing
	}
	loads := s.Groups(cpusPerRing, recordBytes, drain)
	out := FalcoRingPrediction{Rings: len(loads), CPUsPerRing: cpusPerRing, SizeBytes: sizeBytes, PerRingDropped: make([]float64, len(loads))}
	if len(loads) == 0 {
		return out
	}
	if !(drain > 0) || math.IsInf(drain, 0) {
		drain = 0
	}
	rb := recordBytesOrDefault(recordBytes)
	rings := make([]sim, len(loads))
	waiting := make([]float64, len(loads))
	in := make([][event.NumCategories]float64, len(loads))
	for g := range rings {
		rings[g].rb = rb
		rings[g].cap[0] = float64(max(sizeBytes, 0))
	}
	for i, d := range s.DurNs {
		steps := max((d+MaxStepNs-1)/MaxStepNs, 1)
		dt := float64(d) / float64(steps) / 1e9
		empty := true
		var inTotal float64
		for g := range loads {
			for c := range event.NumCategories {
				a := nonNeg(loads[g].Bins[i].Arrivals[c])
				rings[g].p.Attempted[c] += a
				in[g][c] = a / float64(steps)
				inTotal += in[g][c]
			}
			if rings[g].q[lc]+rings[g].q[sys] > 0 {
				empty = false
			}
		}
		if empty && inTotal <= drain*dt {
			continue // exact: every ring stays empty
		}
		for range steps {
			// Records waiting (queued + arriving) per ring.
			var all float64
			for g := range rings {
				waiting[g] = 0
				for c := range event.NumCategories {
					waiting[g] += rings[g].q[c]/rb[c] + in[g][c]
				}
				all += waiting[g]
			}
			for g := range rings {
				share := 0.0
				if all > 0 {
					share = drain * waiting[g] / all
				}
				rings[g].drain = share
				rings[g].stepShared(in[g], dt)
			}
		}
	}
	for g := range rings {
		p := &rings[g].p
		for c := range event.NumCategories {
			out.Prediction.Attempted[c] += p.Attempted[c]
			out.Prediction.Dropped[c] += p.Dropped[c]
			out.Prediction.DroppedBytes[c] += p.DroppedBytes[c]
			out.PerRingDropped[g] += p.Dropped[c]
		}
		out.Prediction.PeakFillBytes = max(out.Prediction.PeakFillBytes, p.PeakFillBytes)
		out.Prediction.OverflowNs = max(out.Prediction.OverflowNs, uint64(math.Round(rings[g].overflowNs)))
	}
	return out
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
