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
