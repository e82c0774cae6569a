package ringmodel

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/ringwise/ringwise/services/ringspec"
)

// Run is one measured run of a node: the ring it ran with, its measured
// load, and what the kernel and the enricher counted.
type Run struct {
	// Row groups the runs that are repeats of one configuration (a lab
	// table row). Out-of-sample predictions leave a whole row out. "" makes
	// the run its own row.
	Row  string `json:"row"`
	Ring Ring   `json:"ring"`
	Load Load   `json:"-"`
	// LifecycleDropped is the lifecycle records the kernel dropped. A run
	// without any calibrates nothing (it cannot tell what a drop costs).
	LifecycleDropped float64 `json:"lifecycle_dropped"`
	// MissingLifecycleAttributed is the delivered events whose missing
	// metadata the enricher blamed on a lost lifecycle record.
	MissingLifecycleAttributed float64 `json:"missing_lifecycle_attributed"`
	Delivered                  float64 `json:"delivered"`
	// MissingPct is the measured share of delivered events missing metadata.
	MissingPct float64 `json:"missing_pct"`
	// Modified marks a run whose load a lab mode changed (kernel hints' replays,
	// shedding): it calibrates, but it is neither part of the node's pooled
	// load nor a measurement of a plain ring.
	Modified bool `json:"modified"`
}

// RunPrediction is the model's figures for one run.
type RunPrediction struct {
	// PredictedDroppedPct is the share of all records the model drops.
	PredictedDroppedPct float64 `json:"predicted_dropped_pct"`
	// InSampleMissingPct uses the calibration fitted on every run,
	// this one included: agreement with it is partly by construction.
	InSampleMissingPct float64 `json:"in_sample_missing_pct"`
	// OutOfSampleMissingPct uses a calibration fitted without this run's
	// row (leave one row out): a prediction the row could not influence.
	OutOfSampleMissingPct float64 `json:"out_of_sample_missing_pct"`
	// OutOfSampleCalibrated is false when no other row had lifecycle drops
	// to learn from; then OutOfSampleMissingPct used DefaultCalibration.
	OutOfSampleCalibrated bool `json:"out_of_sample_calibrated"`
}

// Assessment is Assess's answer.
type Assessment struct {
	// Calibration is fitted on every run (in sample).
	Calibration Calibration `json:"calibration"`
	// Runs are the predictions, in the order of the runs given.
	Runs []RunPrediction `json:"runs"`
	// Load is the pooled load of the unmodified runs the recommendation
	// replays.
	Load           Load           `json:"-"`
	Recommendation Recommendation `json:"recommendation"`
}

// Assess is the model's whole calibration sequence over a node's measured
// runs, for the lab and the live analyzer alike:
//
//  1. simulate every run's own ring under its own load, for the lifecycle
//     drops the model predicts there;
//  2. learn the missing-per-lifecycle-drop factor from those predicted
//     drops against the enricher's attribution — fitted on the model's own
//     figure, not the kernel's count, so that the model's split of drops
//     over categories does not bias the prediction — once on every run (in
//     sample) and once per row on the other rows only (out of sample);
//  3. predict every run's missing share with both calibrations;
//  4. recommend a ring from the pooled load of the unmodified runs (of all
//     runs if every run was modified), with each unmodified measured ring's
//     mean missing share outranking the model.
func Assess(runs []Run, opt Options) Assessment {
	preds := make([]Prediction, len(runs))
	obs := make([]Observation, len(runs))
	for i, r := range runs {
		preds[i] = Simulate(r.Load, r.Ring)
		o := Observation{MissingLifecycleAttributed: r.MissingLifecycleAttributed, Delivered: r.Delivered}
		if r.LifecycleDropped > 0 {
			o.LifecycleDropped = preds[i].Dropped[lc]
		}
		obs[i] = o
	}
	row := func(i int) string {
		if runs[i].Row == "" {
			return "\x00run " + strconv.Itoa(i) // no lab row is named like this
		}
		return runs[i].Row
	}
	a := Assessment{Calibration: Learn(obs), Runs: make([]RunPrediction, len(runs))}
	loo := map[string]Calibration{}
	for i, r := range runs {
		key := row(i)
		out, ok := loo[key]
		if !ok {
			var rest []Observation
			for j := range runs {
				if row(j) != key {
					rest = append(rest, obs[j])
				}
			}
			out = Learn(rest)
			loo[key] = out
		}
		p := preds[i]
		rp := RunPrediction{
			PredictedDroppedPct:   100 * safeRatio(p.Dropped[lc]+p.Dropped[sys], p.Attempted[lc]+p.Attempted[sys]),
			InSampleMissingPct:    orDefault(a.Calibration, r.Load).MissingPct(p),
			OutOfSampleMissingPct: orDefault(out, r.Load).MissingPct(p),
			OutOfSampleCalibrated: out.Samples > 0,
		}
		a.Runs[i] = rp
	}

	// Measured rings: the unmodified runs' mean missing share per ring.
	type ringKey struct {
		size, lcSize, cpr, cpus int
		layout                  ringspec.Layout
	}
	var plain []Run
	byRing := map[ringKey]*Measured{}
	var order []ringKey
	for _, r := range runs {
		if r.Modified {
			continue
		}
		plain = append(plain, r)
		// kind: Falco's layout with one ring is the shared ring, so its runs
		// and the shared ones of that size are one measurement.
		k := ringKey{size: r.Ring.SizeBytes, layout: r.Ring.kind()}
		switch k.layout {
		case ringspec.LayoutSplit:
			k.lcSize = r.Ring.lifecycleSize()
		case ringspec.LayoutFalco:
			k.cpr, k.cpus = r.Ring.cpusPerRing(), r.Ring.CPUs
		}
		m, ok := byRing[k]
		if !ok {
			m = &Measured{Ring: Ring{SizeBytes: k.size, LifecycleSizeBytes: k.lcSize, Layout: k.layout, CPUsPerRing: k.cpr, CPUs: k.cpus}}
			byRing[k] = m
			order = append(order, k)
		}
		m.MissingPct += r.MissingPct
		m.Runs++
	}
	for _, k := range order {
		m := byRing[k]
		m.MissingPct /= float64(m.Runs)
		opt.Measured = append(opt.Measured, *m)
	}
	if len(plain) == 0 {
		plain = runs // only modified runs: their load is all there is
	}
	a.Load = PoolLoads(plain)
	a.Recommendation = Recommend(a.Load, a.Calibration, opt)
	return a
}

// orDefault is cal, or DefaultCalibration(load) when cal has no samples.
func orDefault(cal Calibration, load Load) Calibration {
	if cal.Samples <= 0 {
		return DefaultCalibration(load)
	}
	return cal
}

// PoolLoads concatenates the runs' loads into one (the node's load under the
// same workload, run after run): bins in order, each run's first bin marked
// Start (the ring was empty when it began), RecordBytes and the drain
// rates averaged over the runs that measured them. The fill evidence is the
// runs' with the largest ring: a ring that dropped most of a burst empties
// quickly whatever the consumer, so only the ring that kept the most tells
// whether the backlog clears.
func PoolLoads(runs []Run) Load {
	var out Load
	var rbs recordBytesMean
	var drains, quiets []float64
	largest := 0
	for _, r := range runs {
		largest = max(largest, r.Ring.SizeBytes)
	}
	for _, r := range runs {
		l := r.Load
		n := len(out.Bins)
		out.Bins = append(out.Bins, l.Bins...)
		if n > 0 && len(out.Bins) > n {
			out.Bins[n].Start = true
		}
		rbs.add(l.RecordBytes)
		if finitePos(l.DrainRate) {
			drains = append(drains, l.DrainRate)
		}
		if finitePos(l.QuietDrainRate) {
			quiets = append(quiets, l.QuietDrainRate)
		}
		if r.Ring.SizeBytes == largest {
			out.Backlog = out.Backlog.Add(l.Backlog)
		}
	}
	out.RecordBytes = rbs.mean()
	out.DrainRate, out.QuietDrainRate = mean(drains), mean(quiets)
	return out
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range slices.SortedFunc(slices.Values(xs), cmp.Compare) { // sorted: order-independent sum
		s += x
	}
	return s / float64(len(xs))
}
