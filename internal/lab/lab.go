// Package lab runs ringwise's buffer-size experiment: each ring size and
// layout through the real pipeline (real BPF, embedded NATS, enricher,
// analyzer) under the same bursty process flood with ground truth, and
// compares measured metadata loss with the ring model's prediction.
package lab

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/internal/flood"
	"github.com/ringwise/ringwise/internal/pipeline"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringmodel"
	"github.com/ringwise/ringwise/services/ringspec"
)

// Defaults of the standard flood and the emulated monitor. On a 2-core
// machine they put the pipeline in the seed's bursty regime: each burst
// outruns the consumer for a while (so a 1 MiB shared ring overflows), yet
// the consumer keeps up with the average rate (so a large ring absorbs it).
const (
	DefaultProcs        = 5400
	DefaultBurst        = 900
	DefaultPause        = 3 * time.Second
	DefaultParallel     = 4
	DefaultConsumerCost = 25 * time.Microsecond
	DefaultRepeat       = 1
)

// DefaultSizes are the seed table's sizes.
func DefaultSizes() []int { return []int{1 << 20, 2 << 20, 4 << 20, 16 << 20} }

// DefaultLayouts are compared by default.
func DefaultLayouts() []ringspec.Layout {
	return []ringspec.Layout{ringspec.LayoutShared, ringspec.LayoutSplit}
}

// DefaultConfig is the standard lab: the seed's sizes, both layouts, the
// standard flood and the default emulated monitor cost.
func DefaultConfig() Config {
	return Config{Sizes: DefaultSizes(), Layouts: DefaultLayouts(), Procs: DefaultProcs, Burst: DefaultBurst,
		Pause: DefaultPause, Parallel: DefaultParallel, ConsumerCost: DefaultConsumerCost, Repeat: DefaultRepeat,
		TargetPct: ringspec.DefaultTargetPct, Source: SourceBPF}
}

// Config configures a lab run. Zero fields take the defaults, except
// Pause and ConsumerCost, for which zero is a meaningful value; start from
// DefaultConfig for the standard lab.
type Config struct {
	Sizes         []int
	Layouts       []ringspec.Layout
	LifecycleSize int
	Procs         int
	Burst         int
	Pause         time.Duration
	Parallel      int
	ConsumerCost  time.Duration
	Repeat        int
	TargetPct     float64
	// Source is SourceBPF (measure on this node) or SourceSim (ring model
	// only).
	Source string
	Node   string
	// ShedSyscalls and the water marks configure the shared+shed layout.
	ShedSyscalls      []uint32
	ShedHigh, ShedLow float64
	// CPUsPerRing is Falco's cpus_for_each_buffer: for the falco layout's
	// runs and for the recommendation's answer in Falco's layout; 0 means
	// ringspec.DefaultCPUsPerRing.
	CPUsPerRing int
	// ArgsMax, when set, adds the args-bound trade-off (ArgsTable): one
	// run per bound on exec records' argv, on the first size and layout,
	// with children whose command lines have this node's real lengths.
	ArgsMax  []int
	Progress *Progress
	Logger   *slog.Logger
}

func (c *Config) defaults() error {
	if len(c.Sizes) == 0 {
		c.Sizes = DefaultSizes()
	}
	for _, s := range c.Sizes {
		if err := ringspec.ValidateRingSize(s); err != nil {
			return fmt.Errorf("lab: --sizes: %w", err)
		}
	}
	if len(c.Layouts) == 0 {
		c.Layouts = DefaultLayouts()
	}
	for _, l := range c.Layouts {
		if _, err := ringspec.ParseLayout(string(l), ringspec.LabLayouts()...); err != nil {
			return fmt.Errorf("lab: --layouts: %w", err)
		}
	}
	if c.LifecycleSize == 0 {
		c.LifecycleSize = ringspec.DefaultLifecycleRingSize
	}
	if c.Procs == 0 {
		c.Procs = DefaultProcs
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.Parallel == 0 {
		c.Parallel = DefaultParallel
	}
	if c.Repeat == 0 {
		c.Repeat = DefaultRepeat
	}
	if c.Repeat < 0 || c.Repeat > 100 {
		return fmt.Errorf("lab: --repeat %d: want 1..100", c.Repeat)
	}
	if c.TargetPct == 0 {
		c.TargetPct = ringspec.DefaultTargetPct
	}
	if c.TargetPct < 0 || c.TargetPct >= 100 {
		return fmt.Errorf("lab: --target %v: want a percentage in (0, 100)", c.TargetPct)
	}
	if c.ConsumerCost < 0 {
		return fmt.Errorf("lab: --consumer-cost %v: must be >= 0", c.ConsumerCost)
	}
	if c.Source == "" {
		c.Source = SourceBPF
	}
	if c.Source != SourceBPF && c.Source != SourceSim {
		return fmt.Errorf("lab: --source %q: want bpf or sim", c.Source)
	}
	if c.CPUsPerRing == 0 {
		c.CPUsPerRing = ringspec.DefaultCPUsPerRing
	}
	if c.CPUsPerRing < 0 {
		return fmt.Errorf("lab: --cpus-per-ring %d: want at least 1", c.CPUsPerRing)
	}
	if err := validateArgsMax(c.ArgsMax); err != nil {
		return err
	}
	if len(c.ArgsMax) > 0 && c.Source == SourceSim {
		return fmt.Errorf("lab: --args-max needs --source bpf: the trade-off is measured, not simulated")
	}
	if c.ShedHigh == 0 {
		c.ShedHigh, c.ShedLow = ringspec.DefaultShedHighWater, ringspec.DefaultShedLowWater
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	fc := flood.Config{Procs: c.Procs, Burst: c.Burst, Pause: c.Pause, Parallel: c.Parallel}
	return fc.Validate()
}

// Runs returns how many pipeline runs cfg makes (for a progress bar).
func (c Config) Runs() int {
	sizes, layouts, rep := len(c.Sizes), len(c.Layouts), c.Repeat
	if sizes == 0 {
		sizes = len(DefaultSizes())
	}
	if layouts == 0 {
		layouts = len(DefaultLayouts())
	}
	if rep == 0 {
		rep = DefaultRepeat
	}
	return (sizes*layouts + len(c.ArgsMax)) * rep
}

// Run runs the lab and returns its results; the caller writes them.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	started := time.Now()
	res := &Results{
		Params: Params{
			ConsumerCostNs: int64(cfg.ConsumerCost), Procs: cfg.Procs, Burst: cfg.Burst,
			PauseMs: float64(cfg.Pause) / 1e6, Parallel: cfg.Parallel, Repeat: cfg.Repeat, Source: cfg.Source,
			Sizes: cfg.Sizes, Layouts: cfg.Layouts, LifecycleSize: cfg.LifecycleSize, TargetPct: cfg.TargetPct,
		},
		Seed:      SeedTable(),
		Node:      cfg.Node,
		Kernel:    kernelRelease(),
		StartedAt: started.UTC().Format(time.RFC3339),
	}
	var err error
	if cfg.Source == SourceSim {
		err = runSim(cfg, res)
	} else {
		err = runBPF(ctx, cfg, res)
		if err == nil && len(cfg.ArgsMax) > 0 {
			err = runArgs(ctx, cfg, res)
		}
	}
	res.DurationSec = time.Since(started).Seconds()
	return res, err
}

// measured is one run's raw material for its row and the model.
type measured struct {
	run         RunResult
	load        ringmodel.Load
	byReason    map[string]uint64
	byField     map[string]uint64
	bySyscall   map[string]uint64
	truth       struct{ procs, matched, wrong int }
	recordBytes [event.NumCategories]float64
	delivered   [event.NumCategories]uint64
	execs       sensor.ExecStats
}

// runOpts are what a run may change beyond its ring: the exec records'
// argv bound (0: the probe's default) and the children's argv lengths.
type runOpts struct {
	argsMax int
	argv    []int
}

func runBPF(ctx context.Context, cfg Config, res *Results) error {
	type key struct {
		size   int
		layout ringspec.Layout
	}
	runs := map[key][]measured{}
	// Interleave repeats (all combinations once, then again) so that a
	// drift in the machine's load spreads over every row alike.
	for rep := 0; rep < cfg.Repeat; rep++ {
		for _, layout := range cfg.Layouts {
			for _, size := range cfg.Sizes {
				if err := ctx.Err(); err != nil {
					return err
				}
				label := fmt.Sprintf("%s %s #%d", ringspec.ProseSize(size), layout, rep+1)
				if cfg.Progress != nil {
					cfg.Progress.Start(label)
				}
				m, err := runOne(ctx, cfg, size, layout, runOpts{})
				if err != nil {
					return fmt.Errorf("lab run %s: %w", label, err)
				}
				runs[key{size, layout}] = append(runs[key{size, layout}], m)
				if cfg.Progress != nil {
					cfg.Progress.Done(fmt.Sprintf("%-22s attempted %7d  dropped %6.2f%%  lifecycle dropped %6.2f%%  missing %6.2f%%",
						label, m.run.Attempted, pct(m.run.Dropped, m.run.Attempted), pct(m.run.DroppedLifecycle, m.attemptedLifecycle()), m.run.MissingPct))
				}
			}
		}
	}

	// The model's whole calibration sequence in one call: every run's
	// predicted lifecycle drops, the missing-per-drop factor learned in
	// sample and leaving each row out, both predictions per run, and the
	// recommendation over the pooled load with the measured rows
	// outranking the model.
	var mruns []ringmodel.Run
	sysCounts := map[string]uint64{}
	for _, layout := range cfg.Layouts {
		for _, size := range cfg.Sizes {
			for _, m := range runs[key{size, layout}] {
				if !layout.Sheds() { // shedding changes the mix of syscalls seen
					for k, v := range m.bySyscall {
						sysCounts[k] += v
					}
				}
				ring := modelRing(size, layout, cfg.LifecycleSize)
				if layout == ringspec.LayoutFalco {
					ring.CPUsPerRing, ring.CPUs = cfg.CPUsPerRing, m.load.CPUs()
				}
				mruns = append(mruns, ringmodel.Run{
					Row:                        string(layout) + " " + ringspec.FlagSize(size),
					Ring:                       ring,
					Load:                       m.load,
					LifecycleDropped:           float64(m.run.DroppedLifecycle),
					MissingLifecycleAttributed: float64(m.run.LifecycleAttributed),
					Delivered:                  float64(m.run.Delivered),
					MissingPct:                 m.run.MissingPct,
					Modified:                   layout != ringspec.LayoutShared && layout != ringspec.LayoutSplit,
				})
			}
		}
	}
	opt := ringmodel.Options{TargetPct: cfg.TargetPct, LifecycleSizeBytes: cfg.LifecycleSize, CPUsPerRing: cfg.CPUsPerRing}
	for k, v := range sysCounts {
		opt.Syscalls = append(opt.Syscalls, ringmodel.SyscallCount{Name: k, Count: v})
	}
	a := ringmodel.Assess(mruns, opt)
	n := 0
	for _, layout := range cfg.Layouts {
		for _, size := range cfg.Sizes {
			ms := runs[key{size, layout}]
			row := buildRow(size, layout, ms)
			var oos, ins, dpreds []float64
			row.OutOfSampleCalibrated = true
			for range ms {
				rp := a.Runs[n]
				n++
				oos = append(oos, rp.OutOfSampleMissingPct)
				ins = append(ins, rp.InSampleMissingPct)
				dpreds = append(dpreds, rp.PredictedDroppedPct)
				row.OutOfSampleCalibrated = row.OutOfSampleCalibrated && rp.OutOfSampleCalibrated
			}
			row.PredictedMissingPct, _ = meanStd(oos)
			row.InSampleMissingPct, _ = meanStd(ins)
			row.PredictedDroppedPct, _ = meanStd(dpreds)
			res.Rows = append(res.Rows, row)
		}
	}
	res.Recommendation = recommendation(cfg, a.Recommendation)
	return nil
}

func (m measured) attemptedLifecycle() uint64 { return m.run.attemptedLC }

func runOne(ctx context.Context, cfg Config, size int, layout ringspec.Layout, o runOpts) (measured, error) {
	pc := bpf.Config{RingSize: size, Layout: layout.Base(), Hints: layout.Hints(), CPUsPerRing: cfg.CPUsPerRing, ArgsMax: o.argsMax}
	scfg := sensor.Config{Node: cfg.Node, ExcludeSelf: true, ConsumerCost: cfg.ConsumerCost}
	if layout.HasLifecycleRing() {
		pc.LifecycleRingSize = cfg.LifecycleSize
	}
	if layout.Sheds() {
		pc.ShedSyscalls = cfg.ShedSyscalls
		scfg.ShedHighWater, scfg.ShedLowWater = cfg.ShedHigh, cfg.ShedLow
	}
	scfg.Probe = pc
	fc := &flood.Config{Procs: cfg.Procs, Burst: cfg.Burst, Pause: cfg.Pause, Parallel: cfg.Parallel, ArgvBytes: o.argv}
	t0 := time.Now()
	// Capture goes on for one more pause after the last burst, as after
	// every other: the ring drains in it, and the measured load is the
	// flood's steady rhythm, not a run cut short at its busiest.
	tail := max(cfg.Pause, 300*time.Millisecond)
	pr, err := pipeline.Run(ctx, pipeline.Options{Sensor: scfg, Flood: fc, StopAfterFlood: true, Tail: tail, Logger: cfg.Logger})
	if err != nil {
		return measured{}, err
	}
	s := pr.Summary
	c := pr.Sensor.Counters
	m := measured{byReason: s.Analyzer.ByReason, byField: s.Analyzer.ByField, bySyscall: s.Analyzer.BySyscall, recordBytes: pr.Sensor.RecordBytes,
		delivered: pr.Sensor.Counters.Delivered, execs: pr.Sensor.Execs}
	m.run = RunResult{
		Attempted: s.Sensor.Attempted, Dropped: s.Sensor.Dropped, DroppedLifecycle: s.Sensor.DroppedLifecycle,
		Delivered: s.Sensor.Delivered, Shed: s.Sensor.Shed, Events: s.Analyzer.Events, Missing: s.Analyzer.Missing,
		MissingPct: s.Analyzer.MissingPct, WrongEvents: s.Truth.WrongEvents, TruthEvents: s.Truth.Events,
		DrainRate: pr.Sensor.DrainRate, LifecycleAttributed: s.Analyzer.LifecycleAttributed,
		DurationSec: time.Since(t0).Seconds(), Consistent: pr.Sensor.Consistent,
		attemptedLC: c.Attempted[event.CategoryLifecycle],
	}
	m.truth.procs, m.truth.matched, m.truth.wrong = s.Truth.Processes, s.Truth.Matched, s.Truth.Wrong
	m.load = ringmodel.LoadFromSamples(pr.Sensor.Series, pr.Sensor.RecordBytes, pr.Sensor.DrainRate, size)
	m.run.PeakRate = peakRate(m.load)
	if s.Analyzer.Events != s.Sensor.Delivered {
		return m, fmt.Errorf("analyzer saw %d events but the sensor delivered %d: the drain lost events (sensor: %d batches, %d publish errors; enricher: %d batches, %d events, %d sequence gaps, bad input %v; analyzer: %d batches, %d gaps)",
			s.Analyzer.Events, s.Sensor.Delivered, pr.Sensor.Batches, pr.Sensor.PublishErrors, pr.Enricher.Batches, pr.Enricher.Events,
			pr.Enricher.SeqGaps, pr.Enricher.BadInput, s.Analyzer.Batches, s.Analyzer.BatchGaps)
	}
	return m, nil
}

func buildRow(size int, layout ringspec.Layout, ms []measured) Row {
	row := Row{SizeBytes: size, Layout: layout, ByReason: map[string]float64{}, MissingByFieldPct: map[string]float64{}}
	var att, drop, lcDrop, shed, miss, wrong, bpe, evs, tp, tm, tw []float64
	for _, m := range ms {
		r := m.run
		row.Runs = append(row.Runs, r)
		att = append(att, float64(r.Attempted))
		drop = append(drop, pct(r.Dropped, r.Attempted))
		lcDrop = append(lcDrop, pct(r.DroppedLifecycle, r.attemptedLC))
		shed = append(shed, pct(r.Shed, r.Attempted+r.Shed))
		miss = append(miss, r.MissingPct)
		wrong = append(wrong, pct(uint64(r.WrongEvents), uint64(r.TruthEvents)))
		evs = append(evs, float64(r.Events))
		tp = append(tp, float64(m.truth.procs))
		tm = append(tm, float64(m.truth.matched))
		tw = append(tw, float64(m.truth.wrong))
		var b, n float64
		for c := range m.recordBytes {
			d := float64(0)
			if c == int(event.CategoryLifecycle) {
				d = float64(r.attemptedLC - r.DroppedLifecycle)
			} else {
				d = float64(r.Delivered) - float64(r.attemptedLC-r.DroppedLifecycle)
			}
			b += m.recordBytes[c] * d
			n += d
		}
		bpe = append(bpe, safeDiv(b, n))
		for k, v := range m.byReason {
			row.ByReason[k] += float64(v) / float64(len(ms))
		}
		for k, v := range m.byField {
			row.MissingByFieldPct[k] += pct(v, r.Events) / float64(len(ms))
		}
	}
	row.Attempted, _ = meanStd(att)
	row.DroppedPct, _ = meanStd(drop)
	row.LifecycleDroppedPct, _ = meanStd(lcDrop)
	row.ShedPct, _ = meanStd(shed)
	row.MissingPct, row.MissingPctSpread = meanStd(miss)
	row.WrongPct, _ = meanStd(wrong)
	row.BytesPerEvent, _ = meanStd(bpe)
	row.Events, _ = meanStd(evs)
	row.TruthProcesses, _ = meanStd(tp)
	row.TruthMatched, _ = meanStd(tm)
	row.TruthWrong, _ = meanStd(tw)
	return row
}

// modelRing is the ring the model replays for a layout: the shared variants
// are the shared ring; the falco layout is its rings per CPU group (the
// caller sets CPUsPerRing and the run's CPUs: the model splits the run's
// per-CPU arrivals into them).
func modelRing(size int, layout ringspec.Layout, lcSize int) ringmodel.Ring {
	switch {
	case layout.HasLifecycleRing():
		return ringmodel.Ring{SizeBytes: size, LifecycleSizeBytes: lcSize, Layout: ringspec.LayoutSplit}
	case layout == ringspec.LayoutFalco:
		return ringmodel.Ring{SizeBytes: size, Layout: ringspec.LayoutFalco}
	}
	return ringmodel.Ring{SizeBytes: size, Layout: ringspec.LayoutShared}
}

// recommendation phrases the model's recommendation for the lab: its
// verdict, the evidence behind it, then what Falco's own layout needs (one
// ring of the preset's size per cpus_for_each_buffer CPUs, replayed from the
// runs' per-CPU arrivals), and the fewer-syscalls what-ifs.
func recommendation(cfg Config, rec ringmodel.Recommendation) Recommendation {
	out := Recommendation{SizeBytes: rec.SizeBytes, BufSizePreset: rec.BufSizePreset, Layout: rec.Layout,
		TargetPct: cfg.TargetPct, Evidence: rec}
	ev := rec.Evidence
	verdict := rec.Verdict
	falco := ""
	if f := rec.Falco.Sentence; f != "" && strings.HasSuffix(verdict, "; "+f) {
		verdict, falco = strings.TrimSuffix(verdict, "; "+f), "; "+f
	}
	out.Line = fmt.Sprintf("%s [evidence: peak %.0f ev/s, longest burst %.0f ms (%.0f records beyond the in-burst drain), mean %.0f ev/s, consumer capacity over the run %.0f ev/s (%.0f in bursts, %.0f between), headroom %.2fx; %s fill: %d backlogs, %d cleared]%s",
		verdict, ev.PeakRate, ev.BurstMs, ev.BurstRecords, ev.MeanRate, ev.DrainRate, ev.BurstDrainRate, ev.QuietDrainRate, ev.Headroom,
		ev.BacklogSource, ev.Backlog.Episodes, ev.Backlog.Cleared, falco)
	for _, w := range rec.WhatIf {
		out.WhatIf = append(out.WhatIf, w.Sentence)
	}
	return out
}

func peakRate(l ringmodel.Load) float64 {
	var peak float64
	for _, b := range l.Bins {
		if b.DurNs == 0 {
			continue
		}
		r := (b.Arrivals[0] + b.Arrivals[1]) / (float64(b.DurNs) / 1e9)
		peak = max(peak, r)
	}
	return peak
}

func pct(num, den uint64) float64 {
	if den == 0 {
		return 0
	}
	return 100 * float64(num) / float64(den)
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// meanStd returns the mean and the sample standard deviation.
func meanStd(xs []float64) (mean, std float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)-1))
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
