package ringmodel

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ringwise/ringwise/services/ringspec"
)

// Options tune Recommend. Zero values mean the defaults.
type Options struct {
	// TargetPct is the highest acceptable predicted share of delivered
	// events missing metadata, in percent; ≤ 0 means ringspec.DefaultTargetPct.
	TargetPct float64
	// Layouts to consider; empty means shared and split. Unknown layouts are
	// skipped.
	Layouts []ringspec.Layout
	// LifecycleSizeBytes is the split layout's lifecycle ring; ≤ 0 means
	// ringspec.DefaultLifecycleRingSize.
	LifecycleSizeBytes int
	// MaxPreset is the largest preset tried, clamped to 1..ringspec.MaxPreset;
	// 0 means ringspec.MaxPreset.
	MaxPreset int
}

func (o Options) withDefaults() Options {
	if !(o.TargetPct > 0) || math.IsInf(o.TargetPct, 0) {
		o.TargetPct = ringspec.DefaultTargetPct
	}
	var ls []ringspec.Layout
	for _, l := range o.Layouts {
		if (l == ringspec.LayoutShared || l == ringspec.LayoutSplit) && !containsLayout(ls, l) {
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
	Preset              int             `json:"preset"`
	SizeBytes           int             `json:"size_bytes"`
	Layout              ringspec.Layout `json:"layout"`
	LifecycleSizeBytes  int             `json:"lifecycle_size_bytes,omitempty"`
	MemoryBytes         int             `json:"memory_bytes"`
	Prediction          Prediction      `json:"prediction"`
	PredictedMissingPct float64         `json:"predicted_missing_pct"`
}

// Evidence is the part of the load a human needs to trust the verdict.
// Every field is finite, so the struct always encodes as JSON.
type Evidence struct {
	// PeakRate is the highest bin arrival rate, records/s, both categories.
	PeakRate float64 `json:"peak_rate_eps"`
	// MeanRate is all arrivals over the whole duration, records/s.
	MeanRate float64 `json:"mean_rate_eps"`
	// BurstMs is the longest run of consecutive bins whose arrival rate
	// exceeds DrainRate: the time the ring must bridge.
	BurstMs float64 `json:"burst_ms"`
	// BurstRecords is the records that run brings beyond what the consumer
	// reads meanwhile: what the ring must hold.
	BurstRecords float64 `json:"burst_records"`
	DrainRate    float64 `json:"drain_rate_eps"`
	// Headroom is DrainRate / MeanRate; 0 when there was no load.
	Headroom float64 `json:"headroom"`
	// ConsumerTooSlow is MeanRate ≥ DrainRate (with some load): the ring
	// fills for good, whatever its size, and only a faster consumer or fewer
	// records help.
	ConsumerTooSlow bool `json:"consumer_too_slow"`
	// Calibration is the factor the prediction used; Samples 0 means the
	// conservative DefaultCalibration.
	Calibration Calibration `json:"calibration"`
}

// Recommendation is Recommend's answer.
//
// When Evidence.ConsumerTooSlow is set, SizeBytes and BufSizePreset are 0 and
// Layout is "": no ring size is recommended because none helps — over a
// finite measurement a huge ring may seem to absorb the overload, but in
// steady state it fills and drops the same share as a small one. Then
// PredictedMissingPct is that steady-state prediction for a shared ring, which
// no size changes. Candidates are still reported.
type Recommendation struct {
	SizeBytes           int             `json:"size_bytes"`
	BufSizePreset       int             `json:"buf_size_preset"`
	Layout              ringspec.Layout `json:"layout"`
	LifecycleSizeBytes  int             `json:"lifecycle_size_bytes,omitempty"`
	TargetPct           float64         `json:"target_pct"`
	PredictedMissingPct float64         `json:"predicted_missing_pct"`
	MeetsTarget         bool            `json:"meets_target"`
	Evidence            Evidence        `json:"evidence"`
	Candidates          []Candidate     `json:"candidates"`
	// Verdict is one human sentence with the answer and the reason.
	Verdict string `json:"verdict"`
}

// Recommend replays load through every preset (1..MaxPreset) and layout and
// chooses the smallest preset, then the least memory (shared SizeBytes vs
// split SizeBytes + LifecycleSizeBytes), whose predicted missing metadata is
// ≤ the target. Smallest preset first because bufSizePreset is the knob users
// turn and what a Falco deployment can express; memory only breaks ties.
//
// If no candidate meets the target, the one with the lowest predicted
// missing share (then smallest, then cheapest) is returned with MeetsTarget
// false. If the consumer is too slow, see Recommendation. If cal has no
// samples, DefaultCalibration(load) is used and the verdict says
// "uncalibrated".
func Recommend(load Load, cal Calibration, opt Options) Recommendation {
	opt = opt.withDefaults()
	if cal.Samples <= 0 || !(cal.MissingPerLifecycleDrop >= 0) || math.IsInf(cal.MissingPerLifecycleDrop, 0) {
		cal = DefaultCalibration(load)
	}
	ev := evidence(load)
	ev.Calibration = cal

	rec := Recommendation{TargetPct: opt.TargetPct, Evidence: ev}
	for p := 1; p <= opt.MaxPreset; p++ {
		for _, l := range opt.Layouts {
			size, _ := ringspec.PresetSize(p) // p is within 1..MaxPreset
			r := Ring{SizeBytes: size, Layout: l}
			if l == ringspec.LayoutSplit {
				r.LifecycleSizeBytes = opt.LifecycleSizeBytes
			}
			pred := Simulate(load, r)
			rec.Candidates = append(rec.Candidates, Candidate{
				Preset:              p,
				SizeBytes:           r.SizeBytes,
				Layout:              l,
				LifecycleSizeBytes:  r.LifecycleSizeBytes,
				MemoryBytes:         r.MemoryBytes(),
				Prediction:          pred,
				PredictedMissingPct: cal.MissingPct(pred),
			})
		}
	}

	if ev.ConsumerTooSlow {
		rec.PredictedMissingPct = cal.MissingPct(steadyState(load))
		rec.Verdict = tooSlowVerdict(ev, rec, opt)
		return rec
	}

	best := -1
	for i, c := range rec.Candidates {
		if best < 0 || better(c, rec.Candidates[best], opt.TargetPct) {
			best = i
		}
	}
	c := rec.Candidates[best]
	rec.SizeBytes, rec.BufSizePreset, rec.Layout = c.SizeBytes, c.Preset, c.Layout
	rec.LifecycleSizeBytes = c.LifecycleSizeBytes
	rec.PredictedMissingPct = c.PredictedMissingPct
	rec.MeetsTarget = c.PredictedMissingPct <= opt.TargetPct
	rec.Verdict = verdict(load, rec, opt)
	return rec
}

// better reports whether a is preferred over b: meeting the target first;
// among those meeting it, the smallest preset, then least memory; among
// those missing it, the lowest predicted share, then the same order.
func better(a, b Candidate, target float64) bool {
	am, bm := a.PredictedMissingPct <= target, b.PredictedMissingPct <= target
	if am != bm {
		return am
	}
	if !am && a.PredictedMissingPct != b.PredictedMissingPct {
		return a.PredictedMissingPct < b.PredictedMissingPct
	}
	if a.Preset != b.Preset {
		return a.Preset < b.Preset
	}
	return a.MemoryBytes < b.MemoryBytes
}

// steadyState is the drop pattern of a shared ring of any size once a too
// slow consumer has filled it: the consumer reads DrainRate records/s, and
// every category loses the same fraction 1 − DrainRate/MeanRate of what it
// offers (a full ring refuses whatever comes next).
func steadyState(load Load) Prediction {
	arr, secs := load.totals()
	var p Prediction
	p.Attempted = arr
	total := arr[lc] + arr[sys]
	if total <= 0 || secs <= 0 {
		return p
	}
	mean := total / secs
	f := 1.0
	if d := load.DrainRate; d > 0 {
		f = max(1-d/mean, 0)
	}
	rb := recordBytes(load.RecordBytes)
	for c := range arr {
		p.Dropped[c] = f * arr[c]
		p.DroppedBytes[c] = p.Dropped[c] * rb[c]
	}
	return p
}

// evidence summarises the load; see Evidence.
func evidence(load Load) Evidence {
	drain := load.DrainRate
	if !(drain > 0) || math.IsInf(drain, 0) {
		drain = 0
	}
	ev := Evidence{DrainRate: drain}
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
			over = rate > drain
		} else {
			over = n > 0 // an instant burst: infinite rate, zero length
		}
		if over {
			runNs += float64(b.DurNs)
			runRec += n - drain*secs
		} else {
			flush()
		}
	}
	flush()
	if ev.MeanRate > 0 {
		ev.Headroom = drain / ev.MeanRate
		ev.ConsumerTooSlow = ev.MeanRate >= drain
	}
	return ev
}

func ringDesc(size int, l ringspec.Layout, lcSize int) string {
	if l == ringspec.LayoutSplit {
		return fmt.Sprintf("%s, split + %s lifecycle ring", ringspec.ProseSize(size), ringspec.ProseSize(lcSize))
	}
	return fmt.Sprintf("%s, %s", ringspec.ProseSize(size), l)
}

func loadDesc(ev Evidence) string {
	if ev.BurstMs > 0 || ev.BurstRecords > 0 {
		return fmt.Sprintf("peak %s ev/s for %s ms vs drain %s ev/s",
			fmtRate(ev.PeakRate), fmtNum(ev.BurstMs), fmtRate(ev.DrainRate))
	}
	return fmt.Sprintf("peak %s ev/s never exceeds drain %s ev/s", fmtRate(ev.PeakRate), fmtRate(ev.DrainRate))
}

func calDesc(cal Calibration) string {
	if cal.Samples > 0 {
		return ""
	}
	return fmt.Sprintf("; uncalibrated: no metadata loss measured yet, assuming %s missing events per lost lifecycle record",
		fmtNum(cal.MissingPerLifecycleDrop))
}

func verdict(load Load, rec Recommendation, opt Options) string {
	ev := rec.Evidence
	arr, _ := load.totals()
	ring := ringDesc(rec.SizeBytes, rec.Layout, rec.LifecycleSizeBytes)
	var b strings.Builder
	switch {
	case arr[lc]+arr[sys] == 0:
		fmt.Fprintf(&b, "set bufSizePreset %d (%s): no load measured, nothing to absorb", rec.BufSizePreset, ring)
		return b.String()
	case rec.MeetsTarget:
		fmt.Fprintf(&b, "set bufSizePreset %d (%s): predicted %s%% missing ≤ %s%% target; %s",
			rec.BufSizePreset, ring, fmtPct(rec.PredictedMissingPct), fmtPct(rec.TargetPct), loadDesc(ev))
	default:
		fmt.Fprintf(&b, "no bufSizePreset up to %d meets the %s%% target: best is %d (%s) with predicted %s%% missing; %s",
			opt.MaxPreset, fmtPct(rec.TargetPct), rec.BufSizePreset, ring, fmtPct(rec.PredictedMissingPct), loadDesc(ev))
	}
	if rec.Layout == ringspec.LayoutSplit {
		for _, c := range rec.Candidates {
			if c.Preset == rec.BufSizePreset && c.Layout == ringspec.LayoutSplit && c.Prediction.Dropped[sys] > 0 {
				fmt.Fprintf(&b, " (%s syscall records still dropped)", fmtNum(c.Prediction.Dropped[sys]))
			}
		}
	}
	b.WriteString(calDesc(ev.Calibration))
	return b.String()
}

func tooSlowVerdict(ev Evidence, rec Recommendation, opt Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "your consumer is too slow: mean %s ev/s ≥ drain %s ev/s; no ring size helps — shed syscalls or speed up the consumer (predicted %s%% missing at any size)",
		fmtRate(ev.MeanRate), fmtRate(ev.DrainRate), fmtPct(rec.PredictedMissingPct))
	// A split layout is not a bigger ring: it keeps the state-building
	// records while syscalls are lost, which is worth saying.
	for _, c := range rec.Candidates {
		if c.Layout == ringspec.LayoutSplit && c.PredictedMissingPct <= opt.TargetPct && ev.DrainRate > 0 {
			fmt.Fprintf(&b, "; a split layout would keep lifecycle records (predicted %s%% missing) while syscalls are still lost",
				fmtPct(c.PredictedMissingPct))
			break
		}
	}
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
