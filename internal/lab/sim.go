package lab

import (
	"fmt"

	"github.com/ringwise/ringwise/services/ringmodel"
)

// Simulated flood shape for --source sim, taken once from measured lab
// runs of the standard flood on a 2-core VM (about 1000 children/s inside a
// burst, about 90 syscall records per child, an effective drain of about
// 80% of 1/consumer-cost under the flood's CPU contention, and about 5
// events missing metadata per lost lifecycle record). SIMULATED: nothing
// the sim lab prints is measured.
const (
	simProcsPerSec      = 1000
	simSyscallsPerProc  = 90
	simBaseRate         = 500
	simDrainEfficiency  = 0.8
	simMissingPerLCDrop = 5
)

// runSim fills res from the ring model alone, for machines without BPF.
// Every number it produces is a model output and is labelled simulated.
func runSim(cfg Config, res *Results) error {
	drain := 0.0
	if cfg.ConsumerCost > 0 {
		drain = simDrainEfficiency * 1e9 / float64(cfg.ConsumerCost)
	} else {
		drain = 5e6
	}
	rb := ringmodel.DefaultRecordBytes()
	spec := ringmodel.FloodSpec{Procs: cfg.Procs, Burst: cfg.Burst, Pause: cfg.Pause, ProcsPerSec: simProcsPerSec,
		SyscallsPerProc: simSyscallsPerProc, BaseRate: simBaseRate}
	load := ringmodel.SimulatedLoad(spec, rb, drain, 0)
	cal := ringmodel.Calibration{MissingPerLifecycleDrop: simMissingPerLCDrop, Samples: 1}
	for _, layout := range cfg.Layouts {
		for _, size := range cfg.Sizes {
			ring := modelRing(size, layout, cfg.LifecycleSize)
			l := load
			p := ringmodel.Simulate(l, ring)
			att := p.Attempted[0] + p.Attempted[1]
			miss := cal.MissingPct(p)
			row := Row{
				SizeBytes: size, Layout: layout, Attempted: att,
				DroppedPct:          100 * safeDiv(p.Dropped[0]+p.Dropped[1], att),
				LifecycleDroppedPct: 100 * safeDiv(p.Dropped[0], p.Attempted[0]),
				MissingPct:          miss, PredictedMissingPct: miss, InSampleMissingPct: miss, OutOfSampleCalibrated: true,
				PredictedDroppedPct: 100 * safeDiv(p.Dropped[0]+p.Dropped[1], att),
				BytesPerEvent:       safeDiv(p.Attempted[0]*l.RecordBytes[0]+p.Attempted[1]*l.RecordBytes[1], att),
				Events:              p.Delivered()[0] + p.Delivered()[1],
				ByReason:            map[string]float64{},
			}
			if layout.Sheds() {
				row.Note = "shedding not modelled"
			}
			if layout.Hints() {
				row.Note = "replays of lost records not modelled"
			}
			res.Rows = append(res.Rows, row)
		}
	}
	res.Recommendation = recommendation(cfg, ringmodel.Recommend(load, cal,
		ringmodel.Options{TargetPct: cfg.TargetPct, LifecycleSizeBytes: cfg.LifecycleSize, CPUsPerRing: cfg.CPUsPerRing}))
	if res.Recommendation.Line == "" {
		return fmt.Errorf("lab: simulated recommendation failed")
	}
	return nil
}
