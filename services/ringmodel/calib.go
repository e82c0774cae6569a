package ringmodel

import "math"

// LifecyclePerProcess is the lifecycle records one short-lived process
// writes: fork, exec, exit.
const LifecyclePerProcess = 3

// Calibration turns predicted lifecycle drops into predicted missing
// metadata. Missing metadata follows lifecycle drops — a lost fork or exec
// leaves the rest of that process's events without metadata — but how many
// events each lost record costs depends on the workload (events per process,
// whether /proc lookups rescue it), so the factor is learned from measurement:
// the enricher attributes every event with missing metadata to a reason.
type Calibration struct {
	// MissingPerLifecycleDrop is the events with missing metadata blamed on
	// lost lifecycle records, per lifecycle record dropped.
	MissingPerLifecycleDrop float64 `json:"missing_per_lifecycle_drop"`
	// Samples is the number of observations with lifecycle drops behind the
	// factor; 0 means uncalibrated (no drops ever observed, or a default).
	Samples int `json:"samples"`
}

// Observation is one measurement window of a node.
type Observation struct {
	// LifecycleDropped is the lifecycle records the kernel dropped.
	LifecycleDropped float64 `json:"lifecycle_dropped"`
	// MissingLifecycleAttributed is the delivered events whose missing
	// metadata the enricher blamed on a lost lifecycle record.
	MissingLifecycleAttributed float64 `json:"missing_lifecycle_attributed"`
	// Delivered is the events delivered in the window (kept for context;
	// the fit does not need it).
	Delivered float64 `json:"delivered"`
}

// Learn fits missing = k × lifecycle drops by least squares through the
// origin (k = Σxy / Σx²): no drops, no missing-by-drop, so the line must pass
// through zero, and the windows with the most drops, being the most
// informative, weigh most. Observations with no drops, or with non-finite or
// negative values, are ignored; with none left the result is the zero
// (uncalibrated) Calibration.
func Learn(obs []Observation) Calibration {
	var sxy, sxx float64
	n := 0
	for _, o := range obs {
		x, y := o.LifecycleDropped, o.MissingLifecycleAttributed
		if !finitePos(x) || !(y >= 0) || math.IsInf(y, 0) {
			continue
		}
		sxy += x * y
		sxx += x * x
		n++
	}
	if n == 0 || !finitePos(sxx) {
		return Calibration{}
	}
	return Calibration{MissingPerLifecycleDrop: sxy / sxx, Samples: n}
}

// DefaultCalibration is the conservative factor used before any drop has
// been observed: every lost lifecycle record is assumed to cost the metadata
// of all the syscall records of one process, estimated from the load as
// LifecyclePerProcess × (syscall arrivals / lifecycle arrivals), at least 1.
// It errs high on purpose — a lost exit costs almost nothing, and background
// syscalls of long-lived processes inflate the ratio — because an
// uncalibrated recommendation should rather buy a bigger ring than promise a
// target it cannot check. Samples is 0.
func DefaultCalibration(load Load) Calibration {
	arr, _ := load.totals()
	k := 1.0
	if arr[lc] > 0 {
		k = max(k, LifecyclePerProcess*arr[sys]/arr[lc])
	}
	return Calibration{MissingPerLifecycleDrop: k}
}

// MissingPct predicts the share, in percent, of delivered events that lack
// metadata: 100 × min(missing, delivered) / delivered, where missing =
// MissingPerLifecycleDrop × lifecycle records dropped and delivered = attempted
// − dropped over both categories. Missing is capped at delivered because only
// delivered events can lack metadata. With nothing delivered the result is 0
// if nothing was offered and 100 if everything was lost.
func (c Calibration) MissingPct(p Prediction) float64 {
	var attempted, delivered float64
	for i, d := range p.Delivered() {
		attempted += nonNeg(p.Attempted[i])
		delivered += d
	}
	if !(delivered > 0) {
		if attempted > 0 {
			return 100
		}
		return 0
	}
	k := c.MissingPerLifecycleDrop
	if !finitePos(k) {
		return 0
	}
	missing := min(k*nonNeg(p.Dropped[lc]), delivered)
	return 100 * missing / delivered
}
