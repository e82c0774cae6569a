package ringmodel

import (
	"testing"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
)

func TestBacklogFromSamples(t *testing.T) {
	// ts (ms), attempted, delivered, fill; threshold 100 B.
	s := func(ts, att, del uint64, fill int) event.Sample {
		return event.Sample{TsNs: ts * 1e6, Attempted: [2]uint64{0, att}, Delivered: [2]uint64{0, del}, FillBytes: fill}
	}
	samples := []event.Sample{
		s(0, 0, 0, 0),
		s(100, 5_000, 1_000, 500),    // backlog starts
		s(200, 10_000, 2_000, 900),   // burst: 5,000 arrived ≥ 1,000 read in 100 ms
		s(200, 10_000, 2_000, 900),   // duplicate: skipped
		s(300, 10_100, 5_000, 400),   // quiet: 100 arrived < 3,000 read
		s(400, 10_200, 8_000, 50),    // cleared
		s(500, 15_000, 9_000, 300),   // second backlog ...
		s(2700, 22_000, 15_000, 800), // ... still there at the end (7,000 arrived ≥ 6,000 read)
	}
	b := BacklogFromSamples(samples, 100)
	want := Backlog{Samples: 7, Episodes: 2, Cleared: 1, StuckNs: 2200e6, SpanNs: 2700e6,
		BurstReads: 1_000 + 6_000, BurstNs: 100e6 + 2200e6, QuietReads: 3_000, QuietNs: 100e6}
	if b != want {
		t.Fatalf("got  %+v\nwant %+v", b, want)
	}
	near(t, "burst rate", b.BurstRate(), 7_000/2.3, 1e-9)
	near(t, "quiet rate", b.QuietRate(), 30_000, 1e-9)
	if !b.stuck() {
		t.Error("a final backlog of 2.2 s out of 2.7 s is proof")
	}
	if (Backlog{QuietNs: MinDrainNs - 1, QuietReads: 5}).QuietRate() != 0 {
		t.Error("a quiet rate from under MinDrainNs must not count")
	}
	// LoadFromSamples takes the rates from the fill.
	l := LoadFromSamples(samples, [2]float64{}, 1, 400)
	if l.Backlog != BacklogFromSamples(samples, BacklogThreshold(400)) || l.DrainRate != l.Backlog.BurstRate() || l.QuietDrainRate != 30_000 {
		t.Errorf("load %+v", l)
	}
	if BacklogThreshold(400) != 100 || BacklogThreshold(16<<20) != 64<<10 {
		t.Error("BacklogThreshold")
	}
}

// Out of sample means out of sample: a row's prediction must not change
// when that row's own attribution does, and must follow the other rows'.
func TestAssessOutOfSample(t *testing.T) {
	load := burstLoad() // 1 MiB shared drops lifecycle records, 2 MiB does not
	run := func(row string, size int, k float64, missingPct float64) Run {
		p := Simulate(load, Ring{SizeBytes: size})
		return Run{Row: row, Ring: Ring{SizeBytes: size, Layout: ringspec.LayoutShared}, Load: load,
			LifecycleDropped: p.Dropped[lc] + 1, MissingLifecycleAttributed: k * p.Dropped[lc],
			Delivered: 1e4, MissingPct: missingPct}
	}
	small := Simulate(load, Ring{SizeBytes: 512 << 10})
	runs := []Run{
		run("1MiB", mib, 10, 5),
		run("1MiB", mib, 10, 5),
		{Row: "512KiB", Ring: Ring{SizeBytes: 512 << 10}, Load: load, LifecycleDropped: small.Dropped[lc],
			MissingLifecycleAttributed: 30 * small.Dropped[lc], Delivered: 1e4, MissingPct: 20},
		run("2MiB", 2*mib, 10, 0),
	}
	a := Assess(runs, Options{Layouts: []ringspec.Layout{ringspec.LayoutShared}})
	if len(a.Runs) != 4 || a.Calibration.Samples != 3 {
		t.Fatalf("assessment %+v", a)
	}
	p1 := Simulate(load, Ring{SizeBytes: mib})
	// The 1 MiB row's out-of-sample factor comes from the 512 KiB row
	// alone (k = 30), not from its own k = 10 — and not from its repeat.
	near(t, "1 MiB out of sample", a.Runs[0].OutOfSampleMissingPct, Calibration{MissingPerLifecycleDrop: 30, Samples: 1}.MissingPct(p1), 1e-9)
	near(t, "1 MiB in sample", a.Runs[0].InSampleMissingPct, a.Calibration.MissingPct(p1), 1e-9)
	if a.Runs[0].OutOfSampleMissingPct == a.Runs[0].InSampleMissingPct || !a.Runs[0].OutOfSampleCalibrated {
		t.Error("out of sample equals in sample")
	}
	// The 512 KiB row learns from the 1 MiB runs: k = 10.
	near(t, "512 KiB out of sample", a.Runs[2].OutOfSampleMissingPct, Calibration{MissingPerLifecycleDrop: 10, Samples: 2}.MissingPct(small), 1e-9)
	// 2 MiB: no predicted lifecycle drops, 0 either way.
	if a.Runs[3].OutOfSampleMissingPct != 0 || a.Runs[3].InSampleMissingPct != 0 {
		t.Errorf("2 MiB %+v", a.Runs[3])
	}
	// The measured rows reach the recommendation: 1 MiB measured 5%, 2 MiB
	// measured 0% → preset 2 by measurement.
	rec := a.Recommendation
	if rec.BufSizePreset != 2 || rec.Basis != BasisMeasured || rec.MeasuredMissingPct == nil {
		t.Errorf("recommendation %+v", rec)
	}
	// A single row has nothing to learn from out of sample.
	one := Assess(runs[:1], Options{})
	if one.Runs[0].OutOfSampleCalibrated || one.Calibration.Samples != 1 {
		t.Errorf("one run: %+v", one)
	}
}

// Pooled runs each start with an empty ring: what one run left in the ring
// must not overflow the next.
func TestPoolLoadsStartsEachRunEmpty(t *testing.T) {
	one := Load{RecordBytes: [2]float64{200, 100}, DrainRate: 1_000}
	one.Bins = []Bin{{DurNs: 100e6, Arrivals: [2]float64{0, 10_000}}} // 1 MB left in the ring
	ring := Ring{SizeBytes: 1_500_000}
	if p := Simulate(one, ring); p.Dropped[sys] != 0 {
		t.Fatalf("one run drops %v", p.Dropped)
	}
	pooled := PoolLoads([]Run{{Ring: ring, Load: one}, {Ring: ring, Load: one}})
	if !pooled.Bins[1].Start || pooled.Bins[0].Start {
		t.Fatalf("bins %+v", pooled.Bins)
	}
	if p := Simulate(pooled, ring); p.Dropped[sys] != 0 {
		t.Errorf("two pooled runs drop %v: the second run inherited the first one's backlog", p.Dropped)
	}
}
