package ringmodel

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ringwise/ringwise/services/ringspec"
)

func TestLearn(t *testing.T) {
	// k = Σxy/Σx² = (10·100 + 20·200) / (10² + 20²) = 5000/500 = 10; the
	// window without drops does not count.
	c := Learn([]Observation{{10, 100, 1e4}, {20, 200, 1e4}, {0, 5, 1e4}})
	if c != (Calibration{MissingPerLifecycleDrop: 10, Samples: 2}) {
		t.Errorf("got %+v", c)
	}
	// (1,1), (2,3): k = (1 + 6) / (1 + 4) = 1.4.
	c = Learn([]Observation{{LifecycleDropped: 1, MissingLifecycleAttributed: 1}, {LifecycleDropped: 2, MissingLifecycleAttributed: 3}})
	near(t, "k", c.MissingPerLifecycleDrop, 1.4, 1e-12)
	if c.Samples != 2 {
		t.Errorf("samples %d", c.Samples)
	}
	for _, obs := range [][]Observation{nil, {{0, 50, 1}}, {{math.NaN(), 1, 1}, {-3, 1, 1}, {2, math.Inf(1), 1}}} {
		if c := Learn(obs); c != (Calibration{}) {
			t.Errorf("Learn(%v) = %+v, want zero", obs, c)
		}
	}
}

func TestMissingPct(t *testing.T) {
	p := Prediction{Attempted: [2]float64{1_000, 9_000}, Dropped: [2]float64{50, 450}}
	// missing = 10 × 50 = 500; delivered = 950 + 8,550 = 9,500 → 5.263…%.
	near(t, "pct", Calibration{MissingPerLifecycleDrop: 10, Samples: 3}.MissingPct(p), 100*500.0/9500, 1e-12)
	// Missing is capped at delivered.
	near(t, "capped", Calibration{MissingPerLifecycleDrop: 1000}.MissingPct(p), 100, 1e-12)
	// No lifecycle drops, no missing.
	near(t, "syscall drops only", Calibration{MissingPerLifecycleDrop: 10}.MissingPct(
		Prediction{Attempted: [2]float64{10, 100}, Dropped: [2]float64{0, 90}}), 0, 0)
	// Nothing offered: 0; everything lost: 100.
	if got := (Calibration{MissingPerLifecycleDrop: 1}).MissingPct(Prediction{}); got != 0 {
		t.Errorf("empty: %v", got)
	}
	if got := (Calibration{MissingPerLifecycleDrop: 1}).MissingPct(Prediction{Attempted: [2]float64{5, 5}, Dropped: [2]float64{5, 5}}); got != 100 {
		t.Errorf("all lost: %v", got)
	}
}

func TestDefaultCalibration(t *testing.T) {
	l := oneBin(1e9, 300, 6_000, [2]float64{}, 1)
	if c := DefaultCalibration(l); c != (Calibration{MissingPerLifecycleDrop: 60}) {
		t.Errorf("got %+v, want 3 × 6000/300 = 60", c)
	}
	if c := DefaultCalibration(Load{}); c.MissingPerLifecycleDrop != 1 || c.Samples != 0 {
		t.Errorf("empty load: %+v", c)
	}
}

func burstLoad() Load {
	l := Load{RecordBytes: [2]float64{200, 100}, DrainRate: 100_000}
	l.Bins = append(l.Bins, Bin{DurNs: 100e6, Arrivals: [2]float64{2_000, 20_000}})
	for range 10 {
		l.Bins = append(l.Bins, Bin{DurNs: 100e6})
	}
	return l
}

var calibrated = Calibration{MissingPerLifecycleDrop: 10, Samples: 5}

func TestRecommendBurstNeedsPreset2(t *testing.T) {
	load := burstLoad()
	p1 := Simulate(load, Ring{SizeBytes: 1 * mib})
	near(t, "1 MiB peak", p1.PeakFillBytes, mib, 1e-12)
	if !(p1.Dropped[lc] > 0) {
		t.Fatalf("1 MiB: no lifecycle drops: %+v", p1)
	}
	p2 := Simulate(load, Ring{SizeBytes: 2 * mib})
	near(t, "2 MiB peak", p2.PeakFillBytes, 2_400_000-10_000*2_400_000/22_000.0, 1e-9)

	rec := Recommend(load, calibrated, Options{Layouts: []ringspec.Layout{ringspec.LayoutShared}})
	if rec.BufSizePreset != 2 || rec.SizeBytes != 2*mib || rec.Layout != ringspec.LayoutShared || !rec.MeetsTarget {
		t.Fatalf("got preset %d %d %q meets=%v: %s", rec.BufSizePreset, rec.SizeBytes, rec.Layout, rec.MeetsTarget, rec.Verdict)
	}
	if rec.PredictedMissingPct != 0 || rec.TargetPct != ringspec.DefaultTargetPct {
		t.Errorf("missing %v target %v", rec.PredictedMissingPct, rec.TargetPct)
	}
	if len(rec.Candidates) != 10 || rec.Candidates[0].PredictedMissingPct <= 1 {
		t.Errorf("candidates: %d, preset 1 missing %v", len(rec.Candidates), rec.Candidates[0].PredictedMissingPct)
	}
	ev := rec.Evidence
	near(t, "peak rate", ev.PeakRate, 220_000, 1e-12)
	near(t, "mean rate", ev.MeanRate, 20_000, 1e-12)
	near(t, "burst ms", ev.BurstMs, 100, 1e-12)
	near(t, "burst records", ev.BurstRecords, 12_000, 1e-12)
	near(t, "headroom", ev.Headroom, 5, 1e-12)
	if ev.ConsumerTooSlow || ev.Calibration != calibrated {
		t.Errorf("evidence %+v", ev)
	}
	want := "set bufSizePreset 2 (2 MiB, shared): predicted 0% missing ≤ 0.1% target; peak 220k ev/s for 100 ms vs drain 100k ev/s"
	if rec.Verdict != want {
		t.Errorf("verdict\n got %q\nwant %q", rec.Verdict, want)
	}
}

func TestRecommendSplitWhenCheaper(t *testing.T) {
	// Same burst; lifecycle arrives at 20k rec/s < 100k rec/s, so with the
	// lifecycle ring served first it never fills: split preset 1 (1 MiB +
	// 256 KiB) loses only syscalls and beats shared preset 2 (2 MiB).
	rec := Recommend(burstLoad(), calibrated, Options{LifecycleSizeBytes: 256 << 10})
	if rec.BufSizePreset != 1 || rec.Layout != ringspec.LayoutSplit || rec.LifecycleSizeBytes != 256<<10 {
		t.Fatalf("got preset %d %q: %s", rec.BufSizePreset, rec.Layout, rec.Verdict)
	}
	var c Candidate
	for _, x := range rec.Candidates {
		if x.Preset == 1 && x.Layout == ringspec.LayoutSplit {
			c = x
		}
	}
	if c.MemoryBytes != mib+256<<10 || c.Prediction.Dropped[lc] != 0 || !(c.Prediction.Dropped[sys] > 0) {
		t.Errorf("split candidate %+v", c)
	}
	if !strings.HasPrefix(rec.Verdict, "set bufSizePreset 1 (1 MiB, split + 256 KiB lifecycle ring): predicted 0% missing") ||
		!strings.Contains(rec.Verdict, "syscall records still dropped") {
		t.Errorf("verdict %q", rec.Verdict)
	}
}

func TestRecommendSharedWinsTieOnMemory(t *testing.T) {
	// Idle: every candidate meets the target; preset 1 shared (1 MiB) is
	// cheaper than preset 1 split (2 MiB).
	var load Load
	load.RecordBytes, load.DrainRate = [2]float64{190, 80}, 100_000
	for range 100 {
		load.Bins = append(load.Bins, Bin{DurNs: 10e6, Arrivals: [2]float64{0.1, 10}})
	}
	rec := Recommend(load, Calibration{}, Options{})
	if rec.BufSizePreset != 1 || rec.Layout != ringspec.LayoutShared || rec.PredictedMissingPct != 0 || !rec.MeetsTarget {
		t.Fatalf("got %+v", rec)
	}
	if len(rec.Candidates) != 20 {
		t.Errorf("%d candidates, want 10 presets × 2 layouts", len(rec.Candidates))
	}
	if rec.Evidence.BurstMs != 0 || !strings.Contains(rec.Verdict, "never exceeds drain 100k ev/s") ||
		!strings.Contains(rec.Verdict, "uncalibrated") {
		t.Errorf("verdict %q evidence %+v", rec.Verdict, rec.Evidence)
	}
	if _, err := json.Marshal(rec); err != nil {
		t.Error(err)
	}
}

func TestRecommendEmptyLoad(t *testing.T) {
	rec := Recommend(Load{}, Calibration{}, Options{MaxPreset: 3})
	if rec.BufSizePreset != 1 || rec.Layout != ringspec.LayoutShared || len(rec.Candidates) != 6 ||
		rec.Evidence.ConsumerTooSlow || rec.Evidence.Headroom != 0 {
		t.Fatalf("got %+v", rec)
	}
	if !strings.Contains(rec.Verdict, "no load measured") {
		t.Errorf("verdict %q", rec.Verdict)
	}
	if _, err := json.Marshal(rec); err != nil {
		t.Error(err)
	}
}

func TestRecommendConsumerTooSlow(t *testing.T) {
	// Steady 150k rec/s against a 100k rec/s consumer for 1 s.
	var load Load
	load.RecordBytes, load.DrainRate = [2]float64{200, 100}, 100_000
	for range 100 {
		load.Bins = append(load.Bins, Bin{DurNs: 10e6, Arrivals: [2]float64{100, 1_400}})
	}
	rec := Recommend(load, calibrated, Options{})
	ev := rec.Evidence
	if !ev.ConsumerTooSlow || rec.BufSizePreset != 0 || rec.SizeBytes != 0 || rec.Layout != "" || rec.MeetsTarget {
		t.Fatalf("got %+v", rec)
	}
	near(t, "mean", ev.MeanRate, 150_000, 1e-12)
	near(t, "headroom", ev.Headroom, 2.0/3, 1e-12)
	near(t, "burst ms", ev.BurstMs, 1000, 1e-9)
	near(t, "burst records", ev.BurstRecords, 50_000, 1e-9)
	// Steady state: 1/3 of everything is lost: 3,333.3 lifecycle records →
	// 33,333 missing of 100,000 delivered = 33.3%.
	near(t, "steady-state missing", rec.PredictedMissingPct, 100.0/3, 1e-9)
	if len(rec.Candidates) != 20 {
		t.Errorf("%d candidates", len(rec.Candidates))
	}
	if !strings.HasPrefix(rec.Verdict, "your consumer is too slow: mean 150k ev/s ≥ drain 100k ev/s; no ring size helps — shed syscalls or speed up the consumer") {
		t.Errorf("verdict %q", rec.Verdict)
	}
	// Lifecycle alone (10k rec/s) is well under the drain, so the split
	// layout keeps it; the verdict says so without recommending a size.
	if !strings.Contains(rec.Verdict, "split layout would keep lifecycle records") {
		t.Errorf("verdict %q", rec.Verdict)
	}
	// No drain at all: too slow, everything lost.
	load.DrainRate = 0
	rec = Recommend(load, calibrated, Options{})
	if !rec.Evidence.ConsumerTooSlow || rec.PredictedMissingPct != 100 || rec.BufSizePreset != 0 {
		t.Errorf("zero drain: %+v", rec)
	}
	if _, err := json.Marshal(rec); err != nil {
		t.Error(err)
	}
}

func TestRecommendTargetNotMet(t *testing.T) {
	rec := Recommend(burstLoad(), calibrated, Options{Layouts: []ringspec.Layout{ringspec.LayoutShared, "nope"}, MaxPreset: 1})
	if rec.MeetsTarget || rec.BufSizePreset != 1 || len(rec.Candidates) != 1 {
		t.Fatalf("got %+v", rec)
	}
	if !strings.HasPrefix(rec.Verdict, "no bufSizePreset up to 1 meets the 0.1% target: best is 1 (1 MiB, shared)") {
		t.Errorf("verdict %q", rec.Verdict)
	}
}

func TestRecommendFollowsTarget(t *testing.T) {
	// A lax target accepts the 1 MiB ring's loss.
	p1 := Recommend(burstLoad(), calibrated, Options{Layouts: []ringspec.Layout{ringspec.LayoutShared}, MaxPreset: 1}).PredictedMissingPct
	rec := Recommend(burstLoad(), calibrated, Options{Layouts: []ringspec.Layout{ringspec.LayoutShared}, TargetPct: p1 + 1})
	if rec.BufSizePreset != 1 || !rec.MeetsTarget {
		t.Errorf("target %v: got preset %d", p1+1, rec.BufSizePreset)
	}
}

func TestSimulatedLoad(t *testing.T) {
	// Two bursts of 50 procs at 1,000/s (50 ms each), 100 ms pause after
	// each: 300 ms = 30 bins of 10 ms. Bins 0–4 and 15–19 spawn 10 procs.
	spec := FloodSpec{Procs: 100, Burst: 50, Pause: 100 * time.Millisecond, ProcsPerSec: 1_000,
		SyscallsPerProc: 20, BaseRate: 1_000}
	l := SimulatedLoad(spec, [2]float64{190, 80}, 50_000, 0)
	if len(l.Bins) != 30 || l.DrainRate != 50_000 || l.RecordBytes != [2]float64{190, 80} {
		t.Fatalf("%d bins, %+v", len(l.Bins), l)
	}
	for i, b := range l.Bins {
		procs := 0.0
		if i < 5 || (i >= 15 && i < 20) {
			procs = 10
		}
		want := Bin{DurNs: 10e6, Arrivals: [2]float64{3 * procs, 20*procs + 10}}
		if math.Abs(b.Arrivals[0]-want.Arrivals[0]) > 1e-9 || math.Abs(b.Arrivals[1]-want.Arrivals[1]) > 1e-9 || b.DurNs != want.DurNs {
			t.Errorf("bin %d = %+v, want %+v", i, b, want)
		}
	}
	arr, secs := l.totals()
	near(t, "lifecycle", arr[lc], 300, 1e-9)
	near(t, "syscall", arr[sys], 2_000+300, 1e-9)
	near(t, "secs", secs, 0.3, 1e-12)

	// Deterministic.
	l2 := SimulatedLoad(spec, [2]float64{190, 80}, 50_000, 0)
	for i := range l.Bins {
		if l.Bins[i] != l2.Bins[i] {
			t.Fatal("not deterministic")
		}
	}

	// A burst not aligned to bins, a partial last burst and a short last bin.
	spec = FloodSpec{Procs: 25, Burst: 10, Pause: 5 * time.Millisecond, ProcsPerSec: 700, SyscallsPerProc: 1, LifecyclePerProc: 2}
	l = SimulatedLoad(spec, [2]float64{}, 1, 3e6)
	arr, secs = l.totals()
	near(t, "lifecycle", arr[lc], 50, 1e-9)
	near(t, "syscall", arr[sys], 25, 1e-9)
	near(t, "secs", secs, (25.0/700)+0.015, 1e-9)

	// Instant spawns land in one bin each.
	l = SimulatedLoad(FloodSpec{Procs: 10, Burst: 5, Pause: 20 * time.Millisecond, SyscallsPerProc: 4}, [2]float64{}, 1, 0)
	if len(l.Bins) != 4 || l.Bins[0].Arrivals != [2]float64{15, 20} || l.Bins[2].Arrivals != [2]float64{15, 20} ||
		l.Bins[1].Arrivals != [2]float64{} {
		t.Errorf("instant: %+v", l.Bins)
	}

	// Background only.
	l = SimulatedLoad(FloodSpec{BaseRate: 500}, [2]float64{}, 1, 0)
	arr, secs = l.totals()
	near(t, "background", arr[sys], 500, 1e-9)
	near(t, "secs", secs, 1, 1e-12)
}

// The flood of the seed: a 4 MiB ring drops lifecycle records, 16 MiB does
// not, and the recommender picks a preset in between or at 16 MiB.
func TestSimulatedFloodRecommendation(t *testing.T) {
	spec := FloodSpec{Procs: 20_000, Burst: 5_000, Pause: time.Second, ProcsPerSec: 50_000, SyscallsPerProc: 40, BaseRate: 10_000}
	load := SimulatedLoad(spec, DefaultRecordBytes(), 400_000, 0)
	p4 := Simulate(load, Ring{SizeBytes: 4 * mib})
	p16 := Simulate(load, Ring{SizeBytes: 16 * mib})
	if !(p4.Dropped[lc] > 0) || p16.Dropped[lc] != 0 {
		t.Fatalf("4 MiB dropped %v, 16 MiB dropped %v", p4.Dropped, p16.Dropped)
	}
	rec := Recommend(load, Calibration{}, Options{Layouts: []ringspec.Layout{ringspec.LayoutShared}})
	if rec.BufSizePreset < 4 || rec.BufSizePreset > 5 || !rec.MeetsTarget || rec.Evidence.ConsumerTooSlow {
		t.Errorf("got %d: %s", rec.BufSizePreset, rec.Verdict)
	}
	t.Log(rec.Verdict)
}
