package ringmodel

import (
	"fmt"

	"github.com/ringwise/ringwise/services/ringspec"
)

// FalcoAnswer is Recommend's answer for Falco's own layout: its modern eBPF
// keeps one ring of the preset's size per group of cpus_for_each_buffer
// CPUs, so a burst on a few CPUs fills only their rings, and the kernel
// memory is rings × preset. It is not one shared ring: that is Falco's
// layout only on a node of at most cpus_for_each_buffer CPUs.
type FalcoAnswer struct {
	// CPUs is the node's CPU count, from the per-CPU arrivals in the load
	// (Load.CPUs); 0 when the load has none, and then Falco's rings were
	// modeled as one pooled ring (PerCPU false), exact only when the node
	// has at most CPUsPerRing CPUs.
	CPUs        int  `json:"cpus"`
	PerCPU      bool `json:"per_cpu_arrivals"`
	CPUsPerRing int  `json:"cpus_for_each_buffer"`
	Rings       int  `json:"rings"`
	// MeetsTarget tells whether a preset meets the target in this layout;
	// Candidate is the smallest that does, or the best one.
	MeetsTarget bool      `json:"meets_target"`
	Candidate   Candidate `json:"candidate"`
	// Sentence says it in words, naming the layout that was modeled.
	Sentence string `json:"sentence"`
}

// falcoAnswer picks the falco-layout candidate of rec (the best meeting the
// target, else the one with the least missing) and phrases it.
func falcoAnswer(rec Recommendation, opt Options, cpus int) FalcoAnswer {
	a := FalcoAnswer{CPUs: cpus, PerCPU: cpus > 0, CPUsPerRing: opt.CPUsPerRing, Rings: FalcoRingCount(cpus, opt.CPUsPerRing)}
	best := -1
	for i, c := range rec.Candidates {
		if c.Layout == ringspec.LayoutFalco && (best < 0 || better(c, rec.Candidates[best])) {
			best = i
		}
	}
	if best < 0 {
		return a
	}
	c := rec.Candidates[best]
	a.Candidate, a.MeetsTarget = c, c.MeetsTarget
	where := FalcoLayoutDesc(cpus, opt.CPUsPerRing)
	if c.MeetsTarget {
		a.Sentence = fmt.Sprintf("in %s set bufSizePreset %d (%s per ring, %s kernel memory): %s",
			where, c.Preset, ringspec.ProseSize(c.SizeBytes), ringspec.ProseSize(c.MemoryBytes), candMissingDesc(c))
	} else {
		a.Sentence = fmt.Sprintf("in %s no bufSizePreset up to %d meets the %s%% target: best is %d (%s per ring) with %s",
			where, opt.MaxPreset, fmtPct(opt.TargetPct), c.Preset, ringspec.ProseSize(c.SizeBytes), candMissingDesc(c))
	}
	return a
}

// FalcoLayoutDesc names Falco's layout on a node of cpus CPUs (0: unknown)
// as the model followed it.
func FalcoLayoutDesc(cpus, cpusPerRing int) string {
	if cpusPerRing <= 0 {
		cpusPerRing = ringspec.DefaultCPUsPerRing
	}
	n := FalcoRingCount(cpus, cpusPerRing)
	switch {
	case cpus <= 0:
		return fmt.Sprintf("Falco's layout (one ring per cpus_for_each_buffer=%d CPUs; modeled as one ring: the samples carry no per-CPU arrivals, so this is exact only on a node of at most %d CPUs)", cpusPerRing, cpusPerRing)
	case n == 1:
		return fmt.Sprintf("Falco's layout (one ring per cpus_for_each_buffer=%d CPUs: on this %d-CPU node one ring, the same as shared)", cpusPerRing, cpus)
	}
	return fmt.Sprintf("Falco's layout (%d rings of the preset's size, one per cpus_for_each_buffer=%d CPUs of %d, modeled from the per-CPU arrivals)", n, cpusPerRing, cpus)
}

// candMissingDesc is "measured X% missing (predicted Y%)" or "predicted Y%
// missing" for one candidate.
func candMissingDesc(c Candidate) string {
	switch {
	case c.MeasuredMissingPct != nil:
		return fmt.Sprintf("measured %s%% missing (predicted %s%%)", fmtPct(*c.MeasuredMissingPct), fmtPct(c.PredictedMissingPct))
	case c.Basis == BasisMeasuredSmall:
		return fmt.Sprintf("predicted %s%% missing (a smaller %s ring was measured within the target)", fmtPct(c.PredictedMissingPct), c.Layout)
	case c.Basis == BasisMeasuredBigger:
		return fmt.Sprintf("predicted %s%% missing (a bigger %s ring was measured above the target)", fmtPct(c.PredictedMissingPct), c.Layout)
	}
	return fmt.Sprintf("predicted %s%% missing", fmtPct(c.PredictedMissingPct))
}
