package ringmodel

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ringwise/ringwise/services/ringspec"
)

// Options tune Recommend. Zero values mean the defaults.
type Options struct {
	// TargetPct is the highest acceptable predicted share of delivered
	// events missing metadata, in percent; ≤ 0 means ringspec.DefaultTargetPct.
	TargetPct float64
	// Layouts to choose from; empty means shared and split. Unknown layouts
	// are skipped. Falco's layout is always replayed too, for the Falco
	// answer (Recommendation.Falco), but chosen only when listed here.
	Layouts []ringspec.Layout
	// CPUsPerRing is Falco's cpus_for_each_buffer for the falco layout's
	// candidates; ≤ 0 means ringspec.DefaultCPUsPerRing.
	CPUsPerRing int
	// Syscalls are the per-syscall counts of the events seen (any order):
	// with them Recommend answers what ring would do without the dominant
	// ones (Recommendation.WhatIf).
	Syscalls []SyscallCount
	// WhatIfTop is how many dominant syscalls the what-if leaves out, one
	// more at a time; 0 means DefaultWhatIfTop, < 0 none.
	WhatIfTop int
	// WhatIfKeep are syscall names the what-if never leaves out; nil means
	// DefaultWhatIfKeep (what Falco's state engine needs).
	WhatIfKeep []string
	// LifecycleSizeBytes is the split layout's lifecycle ring; ≤ 0 means
	// ringspec.DefaultLifecycleRingSize.
	LifecycleSizeBytes int
	// MaxPreset is the largest preset tried, clamped to 1..ringspec.MaxPreset;
	// 0 means ringspec.MaxPreset.
	MaxPreset int
	// Measured are rings measured under this load. Measurements outrank
	// the model: a candidate with a measurement meets the target or not by
	// its measured figure, and one without is bounded by the measured rings
	// of its layout (a bigger ring never drops more): a smaller measured
	// ring meeting the target makes it meet, a bigger one missing it makes
	// it miss. A measured ring meeting the target also rules out "too slow".
	Measured []Measured
}

// Measured is one ring configuration measured under the load.
type Measured struct {
	Ring Ring `json:"ring"`
	// MissingPct is the measured share of delivered events missing
	// metadata (mean over the runs).
	MissingPct float64 `json:"missing_pct"`
	// Runs is the number of runs behind MissingPct.
	Runs int `json:"runs"`
}

func (o Options) withDefaults() Options {
	if !(o.TargetPct > 0) || math.IsInf(o.TargetPct, 0) {
		o.TargetPct = ringspec.DefaultTargetPct
	}
	var ls []ringspec.Layout
	for _, l := range o.Layouts {
		if (l == ringspec.LayoutShared || l == ringspec.LayoutSplit || l == ringspec.LayoutFalco) && !containsLayout(ls, l) {
			ls = append(ls, l)
		}
	}
	if len(ls) == 0 {
		ls = []ringspec.Layout{ringspec.LayoutShared, ringspec.LayoutSplit}
	}
	o.Layouts = ls
	if o.LifecycleSizeBytes <= 0 {
		o.LifecycleSizeBytes = ringspec.DefaultLifecycleRingSize
	}
	if o.MaxPreset <= 0 || o.MaxPreset > ringspec.MaxPreset {
		o.MaxPreset = ringspec.MaxPreset
	}
	if o.CPUsPerRing <= 0 {
		o.CPUsPerRing = ringspec.DefaultCPUsPerRing
	}
	if o.WhatIfTop == 0 {
		o.WhatIfTop = DefaultWhatIfTop
	}
	if o.WhatIfKeep == nil {
		o.WhatIfKeep = DefaultWhatIfKeep()
	}
	return o
}

func containsLayout(ls []ringspec.Layout, l ringspec.Layout) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

// Candidate is one ring configuration replayed against the load.
type Candidate struct {
	Preset             int             `json:"preset"`
	SizeBytes          int             `json:"size_bytes"`
	Layout             ringspec.Layout `json:"layout"`
	LifecycleSizeBytes int             `json:"lifecycle_size_bytes,omitempty"`
	// Rings and CPUsPerRing are the falco layout's: Rings rings of
	// SizeBytes, one per CPUsPerRing CPUs (Rings is 1 for the others).
	Rings       int `json:"rings"`
	CPUsPerRing int `json:"cpus_per_ring,omitempty"`
	// Comparison marks a falco-layout candidate replayed only for the
	// Falco answer: Recommend does not choose it.
	Comparison          bool       `json:"comparison,omitempty"`
	MemoryBytes         int        `json:"memory_bytes"`
	Prediction          Prediction `json:"prediction"`
	PredictedMissingPct float64    `json:"predicted_missing_pct"`
	// MeasuredMissingPct is the measurement of this very ring, if any.
	MeasuredMissingPct *float64 `json:"measured_missing_pct,omitempty"`
	// MeetsTarget is the decision on this candidate, by Basis.
	MeetsTarget bool `json:"meets_target"`
	// Basis says what decided MeetsTarget: "measured" (this ring was
	// measured), "measured smaller ring" or "measured bigger ring" (bounded
	// by a measurement of the same layout), or "model".
	Basis string `json:"basis"`
}

// Candidate bases.
const (
	BasisMeasured       = "measured"
	BasisMeasuredSmall  = "measured smaller ring"
	BasisMeasuredBigger = "measured bigger ring"
	BasisModel          = "model"
)

// missingPct is the figure that ranks the candidate: measured if measured.
func (c Candidate) missingPct() float64 {
	if c.MeasuredMissingPct != nil {
		return *c.MeasuredMissingPct
	}
	return c.PredictedMissingPct
}

// Evidence is the part of the load a human needs to trust the verdict.
// Every field is finite, so the struct always encodes as JSON.
type Evidence struct {
	// PeakRate is the highest bin arrival rate, records/s, both categories.
	PeakRate float64 `json:"peak_rate_eps"`
	// MeanRate is all arrivals over the whole duration, records/s.
	MeanRate float64 `json:"mean_rate_eps"`
	// BurstMs is the longest run of consecutive bins whose arrival rate
	// exceeds BurstDrainRate: the time the ring must bridge.
	BurstMs float64 `json:"burst_ms"`
	// BurstRecords is the records that run brings beyond what the consumer
	// reads meanwhile: what the ring must hold.
	BurstRecords float64 `json:"burst_records"`
	// DrainRate is the consumer's capacity over the run
	// (Load.CapacityOverRun): its in-burst rate during the bursts and its
	// quiet rate between them, averaged over time. The model drains at
	// these rates, and the mean must stay below DrainRate for the backlog
	// to clear.
	DrainRate float64 `json:"drain_rate_eps"`
	// BurstDrainRate is the consumer's rate while arrivals outpace it,
	// sharing the CPU with the burst (Load.DrainRate).
	BurstDrainRate float64 `json:"burst_drain_rate_eps"`
	// QuietDrainRate is its rate with a backlog between bursts
	// (Load.QuietDrainRate; equal to BurstDrainRate if never measured).
	QuietDrainRate float64 `json:"quiet_drain_rate_eps"`
	// Headroom is DrainRate / MeanRate; 0 when there was no load.
	Headroom float64 `json:"headroom"`
	// Backlog is the fill evidence: the sampled fill of the measured ring
	// (BacklogSource "measured") or, with no fill measured, the model's
	// replay of the load through an unbounded ring ("model").
	Backlog       Backlog `json:"backlog"`
	BacklogSource string  `json:"backlog_source"`
	// ModelTooSlow is the model's view alone: MeanRate ≥ DrainRate.
	ModelTooSlow bool `json:"model_too_slow"`
	// ConsumerTooSlow is the verdict, given only with proof that the
	// backlog does not clear: Backlog ends in an episode that never cleared
	// and lasted at least MinStuckNs and half the sampled time, and no
	// measured ring met the target. Then only a faster consumer or fewer
	// records help; no ring size does.
	ConsumerTooSlow bool `json:"consumer_too_slow"`
	// Calibration is the factor the prediction used; Samples 0 means the
	// conservative DefaultCalibration.
	Calibration Calibration `json:"calibration"`
}

// MinStuckNs is the shortest never-clearing backlog that proves a consumer
// too slow (it must also span half the sampled time).
const MinStuckNs = 2_000_000_000

// stuck reports whether b proves that the backlog does not clear.
func (b Backlog) stuck() bool {
	return b.Episodes > 0 && b.StuckNs >= MinStuckNs && 2*b.StuckNs >= b.SpanNs
}

// Recommendation is Recommend's answer. It always names a ring: SizeBytes,
// BufSizePreset and Layout are set in every case, including when the
// consumer is too slow (Evidence.ConsumerTooSlow); then the ring is the
// split layout's smallest, which keeps lifecycle records at any size, and
// PredictedMissingPct and PredictedSyscallDropPct are the steady-state
// predictions that no size changes (over a finite measurement a huge ring
// may seem to absorb the overload, but in steady state it fills and drops
// like a small one).
type Recommendation struct {
	SizeBytes          int             `json:"size_bytes"`
	BufSizePreset      int             `json:"buf_size_preset"`
	Layout             ringspec.Layout `json:"layout"`
	LifecycleSizeBytes int             `json:"lifecycle_size_bytes,omitempty"`
	// Rings and CPUsPerRing: see Candidate.
	Rings               int     `json:"rings"`
	CPUsPerRing         int     `json:"cpus_per_ring,omitempty"`
	TargetPct           float64 `json:"target_pct"`
	PredictedMissingPct float64 `json:"predicted_missing_pct"`
	// MeasuredMissingPct is the measurement of the recommended ring, if any.
	MeasuredMissingPct *float64 `json:"measured_missing_pct,omitempty"`
	// PredictedSyscallDropPct is the model's share of syscall records the
	// recommended ring still drops (predicted, not measured).
	PredictedSyscallDropPct float64 `json:"predicted_syscall_drop_pct"`
	MeetsTarget             bool    `json:"meets_target"`
	// Basis is the recommended candidate's Basis.
	Basis      string      `json:"basis"`
	Evidence   Evidence    `json:"evidence"`
	Candidates []Candidate `json:"candidates"`
	// Falco is the answer for Falco's own layout: which bufSizePreset, with
	// one ring per cpus_for_each_buffer CPUs of the node. The verdict ends
	// with its sentence unless the recommendation is that layout itself.
	Falco FalcoAnswer `json:"falco"`
	// WhatIf answers, when Options.Syscalls were given, what ring would do
	// without the dominant syscalls (SIMULATED).
	WhatIf []WhatIf `json:"what_if,omitempty"`
	// Disagreements lists, in words, where the model and a measurement
	// disagreed; the verdict followed the measurement.
	Disagreements []string `json:"disagreements,omitempty"`
	// Verdict is one human sentence with the answer and the reason.
	Verdict string `json:"verdict"`
}

// Best returns the preferred candidate of layout l that meets the target
// (by its Basis), if any: e.g. what a single shared ring, as in Falco,
// needs when the recommendation is split.
func (r Recommendation) Best(l ringspec.Layout) (Candidate, bool) {
	var best *Candidate
	for i := range r.Candidates {
		c := &r.Candidates[i]
		if c.Layout == l && c.MeetsTarget && (best == nil || better(*c, *best)) {
			best = c
		}
	}
	if best == nil {
		return Candidate{}, false
	}
	return *best, true
}

// Recommend replays load through every preset (1..MaxPreset) and layout and
// chooses the smallest preset, then the least memory (shared SizeBytes vs
// split SizeBytes + LifecycleSizeBytes), that meets the target — by
// measurement where Options.Measured has one, by the model otherwise.
// Smallest preset first because bufSizePreset is the knob users turn and
// what a Falco deployment can express; memory only breaks ties.
//
// If no candidate meets the target, the one with the lowest missing share
// (then smallest, then cheapest) is returned with MeetsTarget false. If the
// consumer is proven too slow, see Recommendation. If cal has no samples,
// DefaultCalibration(load) is used and the verdict says "uncalibrated".
func Recommend(load Load, cal Calibration, opt Options) Recommendation {
	opt = opt.withDefaults()
	if cal.Samples <= 0 || !(cal.MissingPerLifecycleDrop >= 0) || math.IsInf(cal.MissingPerLifecycleDrop, 0) {
		cal = DefaultCalibration(load)
	}
	ev := evidence(load)
	ev.Calibration = cal

	rec := Recommendation{TargetPct: opt.TargetPct, Evidence: ev}
	cpus := load.CPUs()
	layouts := opt.Layouts
	compareFalco := !containsLayout(layouts, ringspec.LayoutFalco)
	if compareFalco {
		layouts = append(slices.Clone(layouts), ringspec.LayoutFalco)
	}
	for p := 1; p <= opt.MaxPreset; p++ {
		var shared *Prediction // this preset's shared replay, if made
		for _, l := range layouts {
			size, _ := ringspec.PresetSize(p) // p is within 1..MaxPreset
			r := Ring{SizeBytes: size, Layout: l}
			switch l {
			case ringspec.LayoutSplit:
				r.LifecycleSizeBytes = opt.LifecycleSizeBytes
			case ringspec.LayoutFalco:
				r.CPUsPerRing, r.CPUs = opt.CPUsPerRing, cpus
			}
			var pred Prediction
			if l == ringspec.LayoutFalco && r.Rings() == 1 && shared != nil {
				pred = *shared // one ring: simulateFalco replays exactly the shared ring
			} else {
				pred = Simulate(load, r)
			}
			if l == ringspec.LayoutShared {
				shared = &pred
			}
			c := Candidate{
				Preset:              p,
				SizeBytes:           r.SizeBytes,
				Layout:              l,
				LifecycleSizeBytes:  r.LifecycleSizeBytes,
				Rings:               r.Rings(),
				CPUsPerRing:         r.CPUsPerRing,
				Comparison:          compareFalco && l == ringspec.LayoutFalco,
				MemoryBytes:         r.MemoryBytes(),
				Prediction:          pred,
				PredictedMissingPct: cal.MissingPct(pred),
			}
			judge(&c, r, opt)
			if !c.Comparison && c.MeasuredMissingPct != nil && (*c.MeasuredMissingPct <= opt.TargetPct) != (c.PredictedMissingPct <= opt.TargetPct) {
				rec.Disagreements = append(rec.Disagreements, fmt.Sprintf("at %s the model predicted %s%% missing, measured %s%%",
					ringDesc(r), fmtPct(c.PredictedMissingPct), fmtPct(*c.MeasuredMissingPct)))
			}
			rec.Candidates = append(rec.Candidates, c)
		}
	}
	rec.Falco = falcoAnswer(rec, opt, cpus)
	rec.WhatIf = whatIfs(load, cal, opt)

	// Too slow needs proof, and a measured ring that meets the target
	// refutes it whatever the model says.
	measuredMeets := false
	for _, m := range opt.Measured {
		if m.Runs > 0 && m.MissingPct <= opt.TargetPct {
			measuredMeets = true
		}
	}
	ev.ConsumerTooSlow = ev.Backlog.stuck() && !measuredMeets
	switch {
	case ev.ModelTooSlow && measuredMeets:
		rec.Disagreements = append(rec.Disagreements, fmt.Sprintf("the model's capacity over the run (%s ev/s) is below the mean (%s ev/s), but a measured ring met the target",
			fmtRate(ev.DrainRate), fmtRate(ev.MeanRate)))
	case ev.ModelTooSlow && !ev.ConsumerTooSlow && ev.BacklogSource == backlogMeasured:
		rec.Disagreements = append(rec.Disagreements, fmt.Sprintf("the model's capacity over the run (%s ev/s) is below the mean (%s ev/s), but the measured ring emptied again after %d of %d backlogs",
			fmtRate(ev.DrainRate), fmtRate(ev.MeanRate), ev.Backlog.Cleared, ev.Backlog.Episodes))
	case !ev.ModelTooSlow && ev.ConsumerTooSlow:
		rec.Disagreements = append(rec.Disagreements, fmt.Sprintf("the model's capacity over the run (%s ev/s) exceeds the mean (%s ev/s), but the measured ring stayed backlogged for the last %s s",
			fmtRate(ev.DrainRate), fmtRate(ev.MeanRate), fmtNum(float64(ev.Backlog.StuckNs)/1e9)))
	}
	rec.Evidence = ev

	if ev.ConsumerTooSlow {
		tooSlow(load, cal, &rec, opt)
		return rec
	}

	best := -1
	for i, c := range rec.Candidates {
		if !c.Comparison && (best < 0 || better(c, rec.Candidates[best])) {
			best = i
		}
	}
	c := rec.Candidates[best]
	rec.choose(c)
	rec.Verdict = verdict(load, rec, opt)
	if rec.Layout != ringspec.LayoutFalco && rec.Falco.Sentence != "" {
		rec.Verdict += "; " + rec.Falco.Sentence
	}
	return rec
}

// choose makes c the recommended ring.
func (r *Recommendation) choose(c Candidate) {
	r.SizeBytes, r.BufSizePreset, r.Layout = c.SizeBytes, c.Preset, c.Layout
	r.LifecycleSizeBytes = c.LifecycleSizeBytes
	r.Rings, r.CPUsPerRing = c.Rings, c.CPUsPerRing
	r.PredictedMissingPct = c.PredictedMissingPct
	r.MeasuredMissingPct = c.MeasuredMissingPct
	r.PredictedSyscallDropPct = 100 * safeRatio(c.Prediction.Dropped[sys], c.Prediction.Attempted[sys])
	r.MeetsTarget, r.Basis = c.MeetsTarget, c.Basis
}

// judge decides whether c (ring r) meets the target: by its own
// measurement, else bounded by a measured ring of its layout, else by the
// model (see Options.Measured).
func judge(c *Candidate, r Ring, opt Options) {
	sameKind := func(m Ring) bool {
		ml, rl := m.kind(), r.kind()
		if ml != rl {
			return false
		}
		if rl == ringspec.LayoutFalco && (m.cpusPerRing() != r.cpusPerRing() || m.CPUs != r.CPUs) {
			return false
		}
		return rl != ringspec.LayoutSplit || m.lifecycleSize() >= r.lifecycleSize()
	}
	var exact *Measured
	smallerMeets, biggerFails := false, false
	for i := range opt.Measured {
		m := &opt.Measured[i]
		if m.Runs <= 0 || !sameKind(m.Ring) {
			continue
		}
		meets := m.MissingPct <= opt.TargetPct
		switch {
		case m.Ring.SizeBytes == r.SizeBytes && m.Ring.lifecycleSize() == r.lifecycleSize():
			exact = m
		case m.Ring.SizeBytes <= r.SizeBytes && meets:
			smallerMeets = true
		case m.Ring.SizeBytes >= r.SizeBytes && !meets:
			biggerFails = true
		}
	}
	switch {
	case exact != nil:
		v := exact.MissingPct
		c.MeasuredMissingPct = &v
		c.MeetsTarget, c.Basis = v <= opt.TargetPct, BasisMeasured
	case biggerFails:
		c.MeetsTarget, c.Basis = false, BasisMeasuredBigger
	case smallerMeets:
		c.MeetsTarget, c.Basis = true, BasisMeasuredSmall
	default:
		c.MeetsTarget, c.Basis = c.PredictedMissingPct <= opt.TargetPct, BasisModel
	}
}

// kind is the layout r behaves as: Falco's with one ring on a node of known
// CPUs is the shared ring (so a measured shared ring bounds it, and the
// other way round); "" is shared.
func (r Ring) kind() ringspec.Layout {
	switch {
	case r.Layout == "":
		return ringspec.LayoutShared
	case r.Layout == ringspec.LayoutFalco && r.CPUs > 0 && r.Rings() == 1:
		return ringspec.LayoutShared
	}
	return r.Layout
}

// better reports whether a is preferred over b: meeting the target first;
// among those meeting it, the smallest preset, then least memory; among
// those missing it, the lowest missing share (measured if measured), then
// the same order.
func better(a, b Candidate) bool {
	if a.MeetsTarget != b.MeetsTarget {
		return a.MeetsTarget
	}
	if !a.MeetsTarget && a.missingPct() != b.missingPct() {
		return a.missingPct() < b.missingPct()
	}
	if a.Preset != b.Preset {
		return a.Preset < b.Preset
	}
	return a.MemoryBytes < b.MemoryBytes
}

// tooSlow fills rec for a consumer proven too slow: the split layout's
// smallest ring (size does not matter once the ring fills for good; the
// split layout keeps lifecycle records as long as the consumer outpaces
// them alone), with steady-state predictions, and the verdict.
func tooSlow(load Load, cal Calibration, rec *Recommendation, opt Options) {
	layout := ringspec.LayoutShared
	if containsLayout(opt.Layouts, ringspec.LayoutSplit) {
		layout = ringspec.LayoutSplit
	}
	for _, c := range rec.Candidates {
		if c.Layout == layout && !c.Comparison {
			rec.choose(c) // the first is the smallest preset
			break
		}
	}
	ss := steadyState(load, Ring{SizeBytes: rec.SizeBytes, Layout: layout, LifecycleSizeBytes: rec.LifecycleSizeBytes})
	rec.PredictedMissingPct = cal.MissingPct(ss)
	rec.PredictedSyscallDropPct = 100 * safeRatio(ss.Dropped[sys], ss.Attempted[sys])
	rec.MeetsTarget = rec.PredictedMissingPct <= opt.TargetPct
	rec.Basis = BasisModel
	rec.Verdict = tooSlowVerdict(rec.Evidence, *rec)
}

// steadyState is the drop pattern once a too slow consumer has filled the
// ring, whatever its size: the consumer reads its capacity over the run, C
// records/s. A shared ring refuses whatever comes next, so every category
// loses the same fraction 1 − C/mean of what it offers. The split layout
// serves the lifecycle ring first: lifecycle loses max(0, 1 − C/lifecycle
// mean), and syscalls get what capacity is left.
func steadyState(load Load, ring Ring) Prediction {
	arr, secs := load.totals()
	var p Prediction
	p.Attempted = arr
	total := arr[lc] + arr[sys]
	if total <= 0 || secs <= 0 {
		return p
	}
	capRecs := max(load.CapacityOverRun(), 0) * secs // records the consumer can read
	if ring.Layout == ringspec.LayoutSplit {
		p.Dropped[lc] = max(arr[lc]-capRecs, 0)
		p.Dropped[sys] = max(arr[sys]-max(capRecs-arr[lc], 0), 0)
	} else {
		f := max(1-capRecs/total, 0)
		for c := range arr {
			p.Dropped[c] = f * arr[c]
		}
	}
	rb := recordBytes(load.RecordBytes)
	for c := range arr {
		p.DroppedBytes[c] = p.Dropped[c] * rb[c]
	}
	return p
}

func safeRatio(a, b float64) float64 {
	if !(b > 0) {
		return 0
	}
	return a / b
}

// Backlog sources.
const (
	backlogMeasured = "measured"
	backlogModel    = "model"
)

// evidence summarises the load; see Evidence. ConsumerTooSlow is left to
// Recommend, which knows the measurements.
func evidence(load Load) Evidence {
	burst := load.DrainAt(1, 0)
	ev := Evidence{BurstDrainRate: burst, QuietDrainRate: load.DrainAt(0, 0), DrainRate: load.CapacityOverRun()}
	arr, secs := load.totals()
	total := arr[lc] + arr[sys]
	if secs > 0 {
		ev.MeanRate = total / secs
	}
	var runNs, runRec float64
	flush := func() {
		if runNs > ev.BurstMs*1e6 || (runNs == ev.BurstMs*1e6 && runRec > ev.BurstRecords) {
			ev.BurstMs, ev.BurstRecords = runNs/1e6, runRec
		}
		runNs, runRec = 0, 0
	}
	for _, b := range load.Bins {
		n := nonNeg(b.Arrivals[lc]) + nonNeg(b.Arrivals[sys])
		secs := float64(b.DurNs) / 1e9
		over := false
		if secs > 0 {
			rate := n / secs
			ev.PeakRate = max(ev.PeakRate, rate)
			over = rate > burst
		} else {
			over = n > 0 // an instant burst: infinite rate, zero length
		}
		if over {
			runNs += float64(b.DurNs)
			runRec += n - burst*secs
		} else {
			flush()
		}
	}
	flush()
	if ev.MeanRate > 0 {
		ev.Headroom = ev.DrainRate / ev.MeanRate
		ev.ModelTooSlow = ev.MeanRate >= ev.DrainRate
	}
	// The fill evidence: measured if the samples carried a fill, else the
	// model's replay through a ring that never drops, read the same way.
	if load.Backlog.Samples > 0 {
		ev.Backlog, ev.BacklogSource = load.Backlog, backlogMeasured
	} else if total > 0 {
		_, bl := simulate(load, Ring{SizeBytes: math.MaxInt32, Layout: ringspec.LayoutShared}, float64(BacklogThreshold(0)))
		ev.Backlog, ev.BacklogSource = bl, backlogModel
	}
	return ev
}

// ringDesc names a ring and its layout, saying what shared and falco mean.
func ringDesc(r Ring) string {
	switch r.Layout {
	case ringspec.LayoutSplit:
		return fmt.Sprintf("%s, split + %s lifecycle ring", ringspec.ProseSize(r.SizeBytes), ringspec.ProseSize(r.lifecycleSize()))
	case ringspec.LayoutFalco:
		return fmt.Sprintf("%s, falco: %d ring(s) of that size, one per %d CPUs", ringspec.ProseSize(r.SizeBytes), r.Rings(), r.cpusPerRing())
	case ringspec.LayoutShared, "":
		return fmt.Sprintf("%s, shared: one ring for all CPUs", ringspec.ProseSize(r.SizeBytes))
	}
	return fmt.Sprintf("%s, %s", ringspec.ProseSize(r.SizeBytes), r.Layout)
}

// ring is the ring configuration of r.
func (r Recommendation) ring() Ring {
	return Ring{SizeBytes: r.SizeBytes, LifecycleSizeBytes: r.LifecycleSizeBytes, Layout: r.Layout, CPUsPerRing: r.CPUsPerRing,
		CPUs: cpusOf(r.Rings, r.CPUsPerRing)}
}

// cpusOf is a CPU count that gives rings rings at cpr CPUs per ring (for
// descriptions only).
func cpusOf(rings, cpr int) int {
	if rings <= 1 {
		return 0
	}
	return rings * max(cpr, 1)
}

func loadDesc(ev Evidence) string {
	drain := fmt.Sprintf("capacity over the run %s ev/s (%s ev/s in bursts, %s ev/s between)",
		fmtRate(ev.DrainRate), fmtRate(ev.BurstDrainRate), fmtRate(ev.QuietDrainRate))
	if ev.BurstMs > 0 || ev.BurstRecords > 0 {
		return fmt.Sprintf("peak %s ev/s for %s ms, mean %s ev/s vs %s",
			fmtRate(ev.PeakRate), fmtNum(ev.BurstMs), fmtRate(ev.MeanRate), drain)
	}
	return fmt.Sprintf("peak %s ev/s never exceeds the in-burst drain %s ev/s; capacity over the run %s ev/s",
		fmtRate(ev.PeakRate), fmtRate(ev.BurstDrainRate), fmtRate(ev.DrainRate))
}

func calDesc(cal Calibration) string {
	if cal.Samples > 0 {
		return ""
	}
	return fmt.Sprintf("; uncalibrated: no metadata loss measured yet, assuming %s missing events per lost lifecycle record",
		fmtNum(cal.MissingPerLifecycleDrop))
}

// missingDesc is "measured X% (predicted Y%)" or "predicted Y%".
func missingDesc(rec Recommendation) string {
	if rec.MeasuredMissingPct != nil {
		return fmt.Sprintf("measured %s%% missing (predicted %s%%)", fmtPct(*rec.MeasuredMissingPct), fmtPct(rec.PredictedMissingPct))
	}
	if rec.Basis == BasisMeasuredSmall {
		return fmt.Sprintf("predicted %s%% missing (a smaller %s ring was measured within the target)", fmtPct(rec.PredictedMissingPct), rec.Layout)
	}
	return fmt.Sprintf("predicted %s%% missing", fmtPct(rec.PredictedMissingPct))
}

func disagreeDesc(rec Recommendation) string {
	if len(rec.Disagreements) == 0 {
		return ""
	}
	return "; model and measurement disagree — " + strings.Join(rec.Disagreements, "; ") + " — the verdict follows the measurement"
}

func verdict(load Load, rec Recommendation, opt Options) string {
	ev := rec.Evidence
	arr, _ := load.totals()
	ring := ringDesc(rec.ring())
	var b strings.Builder
	switch {
	case arr[lc]+arr[sys] == 0:
		fmt.Fprintf(&b, "set bufSizePreset %d (%s): no load measured, nothing to absorb", rec.BufSizePreset, ring)
		return b.String()
	case rec.MeetsTarget:
		fmt.Fprintf(&b, "set bufSizePreset %d (%s) for the %s%% target: %s; %s",
			rec.BufSizePreset, ring, fmtPct(rec.TargetPct), missingDesc(rec), loadDesc(ev))
	default:
		fmt.Fprintf(&b, "no bufSizePreset up to %d meets the %s%% target: best is %d (%s) with %s; %s",
			opt.MaxPreset, fmtPct(rec.TargetPct), rec.BufSizePreset, ring, missingDesc(rec), loadDesc(ev))
	}
	if rec.Layout == ringspec.LayoutSplit && rec.PredictedSyscallDropPct > 0 {
		fmt.Fprintf(&b, " (predicted: %s%% of syscall records still dropped)", fmtPct(rec.PredictedSyscallDropPct))
	}
	b.WriteString(disagreeDesc(rec))
	b.WriteString(calDesc(ev.Calibration))
	return b.String()
}

func tooSlowVerdict(ev Evidence, rec Recommendation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "your consumer is too slow: the backlog never clears (%s fill: backlogged for the last %s s of %s s; mean %s ev/s vs capacity over the run %s ev/s); no ring size helps",
		ev.BacklogSource, fmtNum(float64(ev.Backlog.StuckNs)/1e9), fmtNum(float64(ev.Backlog.SpanNs)/1e9), fmtRate(ev.MeanRate), fmtRate(ev.DrainRate))
	ring := ringDesc(rec.ring())
	if rec.Layout == ringspec.LayoutSplit {
		fmt.Fprintf(&b, " — set bufSizePreset %d (%s), which keeps lifecycle records at any size (predicted %s%% missing)",
			rec.BufSizePreset, ring, fmtPct(rec.PredictedMissingPct))
	} else {
		fmt.Fprintf(&b, " — bufSizePreset %d (%s) is as good as any (predicted %s%% missing)", rec.BufSizePreset, ring, fmtPct(rec.PredictedMissingPct))
	}
	fmt.Fprintf(&b, ", and shed syscalls or speed up the consumer: predicted %s%% of syscall records dropped at any size",
		fmtPct(rec.PredictedSyscallDropPct))
	b.WriteString(disagreeDesc(rec))
	b.WriteString(calDesc(ev.Calibration))
	return b.String()
}

// fmtRate prints a rate with a k/M suffix and up to three significant digits.
func fmtRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmtNum(r/1e6) + "M"
	case r >= 1e3:
		return fmtNum(r/1e3) + "k"
	}
	return fmtNum(r)
}

func fmtNum(x float64) string {
	if x >= 100 {
		return strconv.FormatFloat(math.Round(x), 'f', -1, 64)
	}
	return strconv.FormatFloat(x, 'g', 3, 64)
}

func fmtPct(x float64) string {
	switch {
	case x == 0:
		return "0"
	case x >= 10:
		return strconv.FormatFloat(x, 'f', 0, 64) // 100, not 1e+02
	case x >= 1:
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strconv.FormatFloat(x, 'g', 2, 64)
}
