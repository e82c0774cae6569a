package lab

import (
	"github.com/ringwise/ringwise/services/ringmodel"
	"github.com/ringwise/ringwise/services/ringspec"
)

// Sources of a lab's figures (Config.Source, Params.Source).
const (
	// SourceBPF measures on this node through the real pipeline (root).
	SourceBPF = "bpf"
	// SourceSim runs the ring model alone: every figure is SIMULATED.
	SourceSim = "sim"
)

// Results is results.json: every row with its parameters, and the
// recommendation with its evidence. Field names are part of ringwise's
// interface.
type Results struct {
	Params         Params         `json:"params"`
	Rows           []Row          `json:"rows"`
	Recommendation Recommendation `json:"recommendation"`
	// Args is the args-bound trade-off, when Config.ArgsMax asked for it.
	Args *ArgsTable `json:"args,omitempty"`
	// Seed is the article's table, for comparison (its own figures).
	Seed []SeedRow `json:"seed"`
	// Node and Kernel describe where the lab ran.
	Node   string `json:"node"`
	Kernel string `json:"kernel"`
	// StartedAt and DurationSec time the lab run.
	StartedAt   string  `json:"started_at"`
	DurationSec float64 `json:"duration_sec"`
}

// Params are the lab's parameters.
type Params struct {
	ConsumerCostNs int64             `json:"consumer_cost_ns"`
	Procs          int               `json:"procs"`
	Burst          int               `json:"burst"`
	PauseMs        float64           `json:"pause_ms"`
	Parallel       int               `json:"parallel"`
	Repeat         int               `json:"repeat"`
	Source         string            `json:"source"` // "bpf" (measured) or "sim" (simulated)
	Sizes          []int             `json:"sizes"`
	Layouts        []ringspec.Layout `json:"layouts"`
	LifecycleSize  int               `json:"lifecycle_size_bytes"`
	TargetPct      float64           `json:"target_pct"`
}

// Row is one (size, layout) combination, averaged over the repeats.
type Row struct {
	SizeBytes int             `json:"size_bytes"`
	Layout    ringspec.Layout `json:"layout"`
	// Note qualifies the row (e.g. what the simulated lab cannot model).
	Note string `json:"note,omitempty"`
	// Attempted is the mean number of records the kernel tried to write.
	Attempted           float64 `json:"attempted"`
	DroppedPct          float64 `json:"dropped_pct"`
	LifecycleDroppedPct float64 `json:"lifecycle_dropped_pct"`
	ShedPct             float64 `json:"shed_pct"`
	MissingPct          float64 `json:"missing_pct"`
	// MissingPctSpread is the standard deviation over repeats (0 for one).
	MissingPctSpread float64 `json:"missing_pct_spread"`
	WrongPct         float64 `json:"wrong_pct"`
	// PredictedMissingPct is the ring model's prediction out of sample:
	// calibrated on the other rows only (leave one row out), so that this
	// row's own measurement cannot pull it into agreement.
	PredictedMissingPct float64 `json:"predicted_missing_pct"`
	// OutOfSampleCalibrated is false when no other row had lifecycle drops
	// to calibrate on (the prediction then used the conservative default).
	OutOfSampleCalibrated bool `json:"out_of_sample_calibrated"`
	// InSampleMissingPct is the same prediction calibrated on every row,
	// this one included: a fit, partly in agreement by construction.
	InSampleMissingPct float64 `json:"in_sample_missing_pct"`
	// PredictedDroppedPct is the ring model's drop prediction for this row.
	PredictedDroppedPct float64 `json:"predicted_dropped_pct"`
	// BytesPerEvent is the mean ring footprint per record (hints cost more).
	BytesPerEvent  float64            `json:"bytes_per_event"`
	Events         float64            `json:"events"`
	TruthProcesses float64            `json:"truth_processes"`
	TruthMatched   float64            `json:"truth_matched"`
	TruthWrong     float64            `json:"truth_wrong"`
	ByReason       map[string]float64 `json:"by_reason"`
	// MissingByFieldPct is, per Falco field (proc.exepath, proc.ppid, ...),
	// the share of delivered events whose value of that field could not be
	// filled (mean over repeats): which fields a lost fork or exec takes
	// away, and which ones hints fill.
	MissingByFieldPct map[string]float64 `json:"missing_by_field_pct,omitempty"`
	Runs              []RunResult        `json:"runs"`
}

// RunResult is one repeat of a row, as measured.
type RunResult struct {
	Attempted           uint64  `json:"attempted"`
	Dropped             uint64  `json:"dropped"`
	DroppedLifecycle    uint64  `json:"dropped_lifecycle"`
	Delivered           uint64  `json:"delivered"`
	Shed                uint64  `json:"shed"`
	Events              uint64  `json:"events"`
	Missing             uint64  `json:"missing"`
	MissingPct          float64 `json:"missing_pct"`
	WrongEvents         int     `json:"wrong_events"`
	TruthEvents         int     `json:"truth_events"`
	DrainRate           float64 `json:"drain_rate_eps"`
	PeakRate            float64 `json:"peak_rate_eps"`
	LifecycleAttributed uint64  `json:"lifecycle_attributed"`
	DurationSec         float64 `json:"duration_sec"`
	Consistent          bool    `json:"consistent"`
	attemptedLC         uint64
}

// Recommendation is the lab's answer: what to set on this node.
type Recommendation struct {
	SizeBytes     int             `json:"size_bytes"`
	BufSizePreset int             `json:"buf_size_preset"`
	Layout        ringspec.Layout `json:"layout"`
	TargetPct     float64         `json:"target_pct"`
	// Line is the one-line recommendation printed under the table.
	Line string `json:"line"`
	// WhatIf are the fewer-syscalls what-ifs, one sentence each, printed
	// under the line (SIMULATED, from the syscall events seen).
	WhatIf   []string                 `json:"what_if,omitempty"`
	Evidence ringmodel.Recommendation `json:"evidence"`
}

// SeedRow is a row of the seed article's table.
type SeedRow struct {
	SizeBytes  int     `json:"size_bytes"`
	MissingPct float64 `json:"missing_pct"`
	Note       string  `json:"note,omitempty"`
}

// SeedTable is the article's measurement (share of events missing metadata
// in a process flood, Falco's modern eBPF probe).
func SeedTable() []SeedRow {
	return []SeedRow{
		{SizeBytes: 1 << 20, MissingPct: 17.2},
		{SizeBytes: 2 << 20, MissingPct: 11.8},
		{SizeBytes: 4 << 20, MissingPct: 5.5, Note: "Falco default in the article"},
		{SizeBytes: 16 << 20, MissingPct: 0, Note: "essentially 0"},
	}
}
