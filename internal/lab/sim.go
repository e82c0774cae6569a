package lab

import (
	"fmt"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringmodel"
)

// Simulated flood shape for --source sim: rates typical of the standard
// flood on a small machine. SIMULATED: nothing here is measured.
const (
	simProcsPerSec     = 1500
	simSyscallsPerProc = 40
	simBaseRate        = 500
)

// runSim fills res from the ring model alone, for machines without BPF.
// Every number it produces is a model output and is labelled simulated.
func runSim(cfg Config, res *Results) error {
	drain := 0.0
	if cfg.ConsumerCost > 0 {
		drain = 1e9 / float64(cfg.ConsumerCost)
	} else {
		drain = 5e6
	}
	rb := ringmodel.DefaultRecordBytes()
	spec := ringmodel.FloodSpec{Procs: cfg.Procs, Burst: cfg.Burst, Pause: cfg.Pause, ProcsPerSec: simProcsPerSec,
		SyscallsPerProc: simSyscallsPerProc, BaseRate: simBaseRate}
	load := ringmodel.SimulatedLoad(spec, rb, drain, 0)
	// Each lost lifecycle record costs about a third of a flood process's
	// syscall records (fork, exec, exit: the exit costs nothing, fork+exec
	// lose everything after them).
	cal := ringmodel.Calibration{MissingPerLifecycleDrop: simSyscallsPerProc / 2}
	for _, layout := range cfg.Layouts {
		for _, size := range cfg.Sizes {
			ring := modelRing(size, layout, cfg.LifecycleSize)
			l := load
			if layout == LayoutSharedHints {
				l.RecordBytes[event.CategorySyscall] = float64(bpf.RecordSize(event.TypeSyscall, true))
			}
			p := ringmodel.Simulate(l, ring)
			att := p.Attempted[0] + p.Attempted[1]
			miss := cal.MissingPct(p)
			row := Row{
				SizeBytes: size, Layout: layout, Attempted: att,
				DroppedPct:          100 * safeDiv(p.Dropped[0]+p.Dropped[1], att),
				LifecycleDroppedPct: 100 * safeDiv(p.Dropped[0], p.Attempted[0]),
				MissingPct:          miss, PredictedMissingPct: miss,
				PredictedDroppedPct: 100 * safeDiv(p.Dropped[0]+p.Dropped[1], att),
				BytesPerEvent:       safeDiv(p.Attempted[0]*l.RecordBytes[0]+p.Attempted[1]*l.RecordBytes[1], att),
				Events:              p.Delivered()[0] + p.Delivered()[1],
				ByReason:            map[string]float64{},
			}
			if layout == LayoutSharedShed {
				row.Layout = layout + " (shedding not modelled)"
			}
			res.Rows = append(res.Rows, row)
		}
	}
	res.Recommendation = recommend(cfg, []ringmodel.Load{load}, cal)
	if res.Recommendation.Line == "" {
		return fmt.Errorf("lab: simulated recommendation failed")
	}
	return nil
}
