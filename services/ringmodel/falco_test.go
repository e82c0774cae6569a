package ringmodel

import (
	"math"
	"strings"
	"testing"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
)

// series builds ncpu CPUs × bins of 10 ms; f gives the arrivals of a CPU
// in a bin.
func series(ncpu, bins int, f func(cpu, bin int) [event.NumCategories]float64) CPUSeries {
	s := CPUSeries{DurNs: make([]uint64, bins), Arrivals: make([][][event.NumCategories]float64, ncpu)}
	for i := range s.DurNs {
		s.DurNs[i] = 10_000_000
	}
	for c := range s.Arrivals {
		s.Arrivals[c] = make([][event.NumCategories]float64, bins)
		for i := range bins {
			s.Arrivals[c][i] = f(c, i)
		}
	}
	return s
}

func closeTo(a, b float64) bool { return math.Abs(a-b) <= 1e-6*max(1, math.Abs(a), math.Abs(b)) }

func TestFalcoLayoutOnTwoCPUsIsOneSharedRing(t *testing.T) {
	// On this machine (2 CPUs, cpus_for_each_buffer 2) Falco has one ring:
	// the model must reproduce the shared ring exactly.
	s := series(2, 200, func(cpu, bin int) [2]float64 {
		if bin >= 20 && bin < 60 {
			return [2]float64{30 + float64(cpu), 4000}
		}
		return [2]float64{1, 100}
	})
	rb := [2]float64{800, 96}
	const drain = 150_000.0
	f := SimulateFalco(s, rb, drain, 1<<20, 2)
	sh := Simulate(s.Total(rb, drain), Ring{SizeBytes: 1 << 20, Layout: ringspec.LayoutShared})
	if f.Rings != 1 {
		t.Fatalf("%d rings", f.Rings)
	}
	for c := range event.NumCategories {
		if !closeTo(f.Prediction.Dropped[c], sh.Dropped[c]) || !closeTo(f.Prediction.Attempted[c], sh.Attempted[c]) {
			t.Errorf("category %d: falco %v/%v shared %v/%v", c, f.Prediction.Dropped[c], f.Prediction.Attempted[c], sh.Dropped[c], sh.Attempted[c])
		}
	}
	if sh.Dropped[sys] == 0 {
		t.Fatal("the burst should overflow 1 MiB")
	}
}

func TestFalcoLayoutOn32CPUs(t *testing.T) {
	rb := [2]float64{800, 96}
	const drain = 100_000.0
	burst := func(cpus int) CPUSeries {
		return series(32, 300, func(cpu, bin int) [2]float64 {
			if cpu < cpus && bin >= 10 && bin < 110 {
				return [2]float64{2 / float64(cpus), 6000 / float64(cpus)} // the same total for any spread
			}
			return [2]float64{}
		})
	}
	size := presetBytes(2)
	// The same burst spread over 32 CPUs lands in 16 rings of 2 MiB: 16×
	// the room of one 2 MiB ring.
	spread := SimulateFalco(burst(32), rb, drain, size, 2)
	one := Simulate(burst(32).Total(rb, drain), Ring{SizeBytes: size})
	if spread.Rings != 16 || spread.Prediction.Dropped[sys] >= one.Dropped[sys]/2 {
		t.Errorf("spread: %d rings dropped %v, one ring %v", spread.Rings, spread.Prediction.Dropped[sys], one.Dropped[sys])
	}
	// Concentrated on CPUs 0-1 it fills only ring 0, which then gets all of
	// the consumer: exactly one ring of that size.
	conc := SimulateFalco(burst(2), rb, drain, size, 2)
	oneConc := Simulate(burst(2).Total(rb, drain), Ring{SizeBytes: size})
	if !closeTo(conc.Prediction.Dropped[sys], oneConc.Dropped[sys]) || conc.PerRingDropped[1] != 0 || conc.PerRingDropped[0] == 0 {
		t.Errorf("concentrated: %v vs one ring %v, per ring %v", conc.Prediction.Dropped[sys], oneConc.Dropped[sys], conc.PerRingDropped[:3])
	}
	// Attempts are conserved whatever the layout.
	if !closeTo(spread.Prediction.Attempted[sys], conc.Prediction.Attempted[sys]) {
		t.Errorf("attempted %v vs %v", spread.Prediction.Attempted[sys], conc.Prediction.Attempted[sys])
	}
	// cpus_for_each_buffer 0 means Falco's default 2; 32 means one ring.
	if SimulateFalco(burst(32), rb, drain, size, 0).Rings != 16 || SimulateFalco(burst(32), rb, drain, size, 32).Rings != 1 {
		t.Error("ring count")
	}
}

func TestRecommendFalco(t *testing.T) {
	rb := [2]float64{800, 96}
	s := series(4, 400, func(cpu, bin int) [2]float64 {
		if bin >= 50 && bin < 150 {
			return [2]float64{5, 1000}
		}
		return [2]float64{0.2, 50}
	})
	rec := RecommendFalco(s, rb, 200_000, 2, Calibration{}, 0.1)
	if !rec.MeetsTarget || rec.Rings != 2 || rec.BufSizePreset < 1 || len(rec.Candidates) != ringspec.MaxPreset {
		t.Fatalf("%+v", rec)
	}
	// The chosen preset meets the target and the one below does not.
	if p := rec.BufSizePreset; p > 1 && rec.Candidates[p-2].PredictedMissingPct <= rec.TargetPct {
		t.Errorf("preset %d chosen but %d meets the target too", p, p-1)
	}
	for _, w := range []string{"SIMULATED", "modeled Falco's layout: 2 ring(s)", "cpus_for_each_buffer=2 CPUs of 4", "engine.modern_ebpf.buf_size_preset"} {
		if !strings.Contains(rec.Verdict, w) {
			t.Errorf("verdict lacks %q: %s", w, rec.Verdict)
		}
	}
	// A consumer slower than the mean load: nothing meets the target.
	slow := RecommendFalco(s, rb, 1000, 2, Calibration{}, 0.1)
	if slow.MeetsTarget || slow.BufSizePreset != 0 || !slow.TooSlow || !strings.Contains(slow.Verdict, "too slow") {
		t.Errorf("%+v", slow.Verdict)
	}
}

// The recommender (Recommend, used by the lab and the analyzer) answers for
// Falco's layout from the per-CPU arrivals: on a 2-CPU node that is the
// shared ring exactly; on a 32-CPU node with a burst on four CPUs two rings
// take the burst, each of the preset's full size, and a smaller preset does.
func TestRecommendFalcoLayoutFromPerCPULoad(t *testing.T) {
	rb := [2]float64{800, 96}
	const drain = 100_000.0
	burst := func(ncpu int) Load {
		return series(ncpu, 1000, func(cpu, bin int) [2]float64 {
			if cpu < 4 && bin >= 10 && bin < 110 {
				return [2]float64{25, 750} // 4 CPUs × 75k rec/s for 1 s
			}
			return [2]float64{0.01, 1}
		}).Load(rb, drain)
	}

	// 2 CPUs (both bursting, with the load of 4): one ring, the same as shared.
	two := series(2, 1000, func(cpu, bin int) [2]float64 {
		if bin >= 10 && bin < 110 {
			return [2]float64{50, 1500}
		}
		return [2]float64{0.01, 1}
	}).Load(rb, drain)
	if two.CPUs() != 2 {
		t.Fatalf("CPUs %d", two.CPUs())
	}
	rec := Recommend(two, calibrated, Options{Layouts: []ringspec.Layout{ringspec.LayoutShared}})
	if rec.Falco.Rings != 1 || rec.Falco.CPUs != 2 || !rec.Falco.PerCPU {
		t.Fatalf("falco %+v", rec.Falco)
	}
	byPreset := map[int]Candidate{}
	for _, c := range rec.Candidates {
		if c.Layout == ringspec.LayoutShared {
			byPreset[c.Preset] = c
		}
	}
	for _, c := range rec.Candidates {
		if c.Layout != ringspec.LayoutFalco {
			continue
		}
		sh := byPreset[c.Preset]
		if c.Prediction != sh.Prediction || c.MemoryBytes != sh.MemoryBytes || c.Rings != 1 {
			t.Errorf("preset %d: falco %+v\nshared %+v", c.Preset, c.Prediction, sh.Prediction)
		}
	}
	if rec.Falco.Candidate.Preset != rec.BufSizePreset || !strings.Contains(rec.Verdict, "on this 2-CPU node one ring, the same as shared") {
		t.Errorf("falco preset %d, shared %d: %s", rec.Falco.Candidate.Preset, rec.BufSizePreset, rec.Verdict)
	}

	// 32 CPUs, burst on CPUs 0-3: rings 0 and 1 take it.
	big := burst(32)
	rec = Recommend(big, calibrated, Options{Layouts: []ringspec.Layout{ringspec.LayoutShared}})
	f := rec.Falco
	if f.Rings != 16 || f.CPUs != 32 || !f.MeetsTarget || !rec.MeetsTarget {
		t.Fatalf("falco %+v: %s", f, rec.Verdict)
	}
	// Shared: 1 s × (300k − 100k) rec/s ≈ 200k records ≈ 19.6 MB → 32 MiB.
	// Falco: two rings of half that each → 16 MiB per ring.
	if rec.BufSizePreset != 6 || f.Candidate.Preset != 5 || f.Candidate.MemoryBytes != 16*16*mib {
		t.Errorf("shared preset %d, falco preset %d (memory %d): %s", rec.BufSizePreset, f.Candidate.Preset, f.Candidate.MemoryBytes, rec.Verdict)
	}
	for _, w := range []string{"shared: one ring for all CPUs", "16 rings of the preset's size, one per cpus_for_each_buffer=2 CPUs of 32, modeled from the per-CPU arrivals", "set bufSizePreset 5 (16 MiB per ring, 256 MiB kernel memory)"} {
		if !strings.Contains(rec.Verdict, w) {
			t.Errorf("verdict lacks %q: %s", w, rec.Verdict)
		}
	}
	// The same burst without per-CPU arrivals can only be pooled, and says so.
	pooled := burst(32)
	for i := range pooled.Bins {
		pooled.Bins[i].CPU = nil
	}
	rec = Recommend(pooled, calibrated, Options{Layouts: []ringspec.Layout{ringspec.LayoutShared}})
	if rec.Falco.PerCPU || rec.Falco.Candidate.Preset != rec.BufSizePreset || !strings.Contains(rec.Verdict, "modeled as one ring: the samples carry no per-CPU arrivals") {
		t.Errorf("pooled: %+v: %s", rec.Falco, rec.Verdict)
	}
	// cpus_for_each_buffer 4: the burst is in one ring, as in the shared one.
	rec = Recommend(big, calibrated, Options{Layouts: []ringspec.Layout{ringspec.LayoutShared}, CPUsPerRing: 4})
	if rec.Falco.Rings != 8 || rec.Falco.Candidate.Preset != rec.BufSizePreset {
		t.Errorf("4 CPUs per ring: %+v", rec.Falco)
	}
	// Falco's layout chosen on purpose: it is the recommendation itself.
	rec = Recommend(big, calibrated, Options{Layouts: []ringspec.Layout{ringspec.LayoutFalco}})
	if rec.Layout != ringspec.LayoutFalco || rec.BufSizePreset != 5 || rec.Rings != 16 || !strings.Contains(rec.Verdict, "(16 MiB, falco: 16 ring(s) of that size, one per 2 CPUs)") {
		t.Errorf("falco chosen: preset %d %s rings %d: %s", rec.BufSizePreset, rec.Layout, rec.Rings, rec.Verdict)
	}
}

// A lab or analyzer run of the falco layout calibrates with its own rings,
// and its measurement bounds the falco candidates, not the shared ones.
func TestAssessFalcoRun(t *testing.T) {
	rb := [2]float64{800, 96}
	load := series(32, 1000, func(cpu, bin int) [2]float64 {
		if cpu < 4 && bin >= 10 && bin < 110 {
			return [2]float64{25, 750}
		}
		return [2]float64{0.01, 1}
	}).Load(rb, 100_000)
	ring := Ring{SizeBytes: 16 * mib, Layout: ringspec.LayoutFalco, CPUsPerRing: 2, CPUs: 32}
	a := Assess([]Run{{Ring: ring, Load: load, Delivered: 1e5, MissingPct: 0}}, Options{Layouts: []ringspec.Layout{ringspec.LayoutShared}})
	if a.Runs[0].PredictedDroppedPct != 0 {
		t.Errorf("16 MiB falco rings should hold the burst: %+v", a.Runs[0])
	}
	if shared := Simulate(load, Ring{SizeBytes: 16 * mib}); shared.Dropped[sys] == 0 {
		t.Error("one 16 MiB ring should not")
	}
	f := a.Recommendation.Falco.Candidate
	if f.Preset != 5 || f.Basis != BasisMeasured || f.MeasuredMissingPct == nil {
		t.Errorf("falco candidate %+v", f)
	}
	for _, c := range a.Recommendation.Candidates {
		if c.Layout == ringspec.LayoutShared && c.Basis != BasisModel {
			t.Errorf("shared %d judged by the falco measurement: %s", c.Preset, c.Basis)
		}
	}
}

// On a node of one ring, falco and shared runs of a size are one measured
// ring: their missing shares are pooled.
func TestAssessFalcoOneRingPoolsWithShared(t *testing.T) {
	load := series(2, 100, func(cpu, bin int) [2]float64 { return [2]float64{1, 100} }).Load([2]float64{800, 96}, 1e6)
	a := Assess([]Run{
		{Ring: Ring{SizeBytes: mib, Layout: ringspec.LayoutFalco, CPUs: 2}, Load: load, Delivered: 1e4, MissingPct: 1},
		{Ring: Ring{SizeBytes: mib, Layout: ringspec.LayoutShared}, Load: load, Delivered: 1e4, MissingPct: 3},
	}, Options{Layouts: []ringspec.Layout{ringspec.LayoutShared}})
	c := a.Recommendation.Candidates[0]
	if c.Layout != ringspec.LayoutShared || c.SizeBytes != mib || c.MeasuredMissingPct == nil || *c.MeasuredMissingPct != 2 {
		t.Errorf("1 MiB shared: %+v", c)
	}
}
