package ringmodel

import (
	"math"
	"reflect"
	"testing"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
)

const mib = 1 << 20

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.6f, want %.6f", name, got, want)
	}
}

// oneBin is a load of a single bin.
func oneBin(durNs uint64, lcRec, sysRec float64, rb [2]float64, drain float64) Load {
	return Load{Bins: []Bin{{DurNs: durNs, Arrivals: [2]float64{lcRec, sysRec}}}, RecordBytes: rb, DrainRate: drain}
}

func TestNoOverflowWhenCapacityHoldsBurstMinusDrain(t *testing.T) {
	// 10,000 syscall records × 100 B = 1,000,000 B in 100 ms; the consumer
	// reads 50,000/s × 0.1 s = 5,000 records = 500,000 B meanwhile. The
	// ring must hold burst − drain = 500,000 B.
	load := oneBin(100e6, 0, 10_000, [2]float64{200, 100}, 50_000)

	p := Simulate(load, Ring{SizeBytes: 500_000, Layout: ringspec.LayoutShared})
	if p.Dropped != [2]float64{} || p.OverflowNs != 0 {
		t.Fatalf("capacity = burst − drain: dropped %v, overflow %d ns, want none", p.Dropped, p.OverflowNs)
	}
	near(t, "peak", p.PeakFillBytes, 500_000, 1e-12)

	// 1,000 B less capacity: exactly 1,000 B = 10 records are dropped.
	p = Simulate(load, Ring{SizeBytes: 499_000, Layout: ringspec.LayoutShared})
	near(t, "dropped bytes", p.DroppedBytes[sys], 1_000, 1e-9)
	near(t, "dropped records", p.Dropped[sys], 10, 1e-9)
	near(t, "peak", p.PeakFillBytes, 499_000, 1e-12)
}

func TestSingleBurstExactDrops(t *testing.T) {
	// By hand: one 100 ms bin of 100,000 syscall records × 64 B = 6,400,000 B,
	// i.e. 64,000,000 B/s in. The consumer reads 200,000 rec/s = 12,800,000 B/s,
	// so the ring grows at 51,200,000 B/s and a 1 MiB ring (1,048,576 B) is
	// full after 1,048,576 / 51.2e6 = 20.48 ms; it then drops for 79.52 ms.
	// Read in 100 ms: 20,000 records = 1,280,000 B. Dropped = 6,400,000 −
	// 1,280,000 − 1,048,576 = 4,071,424 B = 63,616 records.
	load := oneBin(100e6, 0, 100_000, [2]float64{300, 64}, 200_000)
	p := Simulate(load, Ring{SizeBytes: mib, Layout: ringspec.LayoutShared})
	near(t, "dropped bytes", p.DroppedBytes[sys], 4_071_424, 1e-9)
	near(t, "dropped records", p.Dropped[sys], 63_616, 1e-9)
	near(t, "peak", p.PeakFillBytes, mib, 1e-12)
	if p.Dropped[lc] != 0 {
		t.Errorf("lifecycle dropped %v, want 0", p.Dropped[lc])
	}
	if d := math.Abs(float64(p.OverflowNs) - 79_520_000); d > 2 {
		t.Errorf("overflow = %d ns, want 79,520,000", p.OverflowNs)
	}
	if p.Attempted != [2]float64{0, 100_000} {
		t.Errorf("attempted = %v", p.Attempted)
	}

	// The answer does not depend on how the same load is binned.
	var split Load
	split.RecordBytes, split.DrainRate = load.RecordBytes, load.DrainRate
	for range 10 {
		split.Bins = append(split.Bins, Bin{DurNs: 10e6, Arrivals: [2]float64{0, 10_000}})
	}
	q := Simulate(split, Ring{SizeBytes: mib})
	near(t, "rebinned dropped", q.Dropped[sys], 63_616, 1e-9)
}

func TestZeroDrainAndCategoryProportions(t *testing.T) {
	// No consumer: a 100,000 B ring keeps the first 100,000 B and drops the
	// rest. 1,000 lifecycle × 200 B + 2,000 syscall × 100 B = 400,000 B, so
	// 300,000 B are dropped, split by arrival bytes (50/50): 150,000 B each,
	// i.e. 750 lifecycle and 1,500 syscall records — the same fraction (3/4)
	// of each category's records.
	load := oneBin(50e6, 1_000, 2_000, [2]float64{200, 100}, 0)
	p := Simulate(load, Ring{SizeBytes: 100_000, Layout: ringspec.LayoutShared})
	near(t, "lifecycle dropped", p.Dropped[lc], 750, 1e-9)
	near(t, "syscall dropped", p.Dropped[sys], 1_500, 1e-9)
	near(t, "lifecycle dropped bytes", p.DroppedBytes[lc], 150_000, 1e-9)
	near(t, "syscall dropped bytes", p.DroppedBytes[sys], 150_000, 1e-9)
	near(t, "peak", p.PeakFillBytes, 100_000, 1e-12)
	// Filled after 1/4 of the bin (12.5 ms): overflow 37.5 ms.
	if d := math.Abs(float64(p.OverflowNs) - 37_500_000); d > 2 {
		t.Errorf("overflow = %d ns, want 37,500,000", p.OverflowNs)
	}
}

func TestDrainFasterThanArrivals(t *testing.T) {
	// 10,000 rec/s offered, 20,000 rec/s read: nothing ever waits, so even a
	// ring with no slack drops nothing.
	var load Load
	load.RecordBytes, load.DrainRate = [2]float64{200, 100}, 20_000
	for range 100 {
		load.Bins = append(load.Bins, Bin{DurNs: 10e6, Arrivals: [2]float64{10, 90}})
	}
	for _, r := range []Ring{{SizeBytes: 0}, {SizeBytes: 4096}, {SizeBytes: 0, Layout: ringspec.LayoutSplit, LifecycleSizeBytes: 4096}} {
		p := Simulate(load, r)
		if p.Dropped != [2]float64{} || p.PeakFillBytes != 0 {
			t.Errorf("%+v: dropped %v peak %v, want nothing", r, p.Dropped, p.PeakFillBytes)
		}
		near(t, "attempted", p.Attempted[lc]+p.Attempted[sys], 10_000, 1e-12)
	}
}

func TestSplitShieldsLifecycle(t *testing.T) {
	// 100 ms: 1,000 lifecycle × 200 B (10k rec/s) and 100,000 syscall × 80 B;
	// consumer 100k rec/s. Split: lifecycle is served first and arrives
	// slower than the consumer, so its ring never fills: 0 drops. The
	// syscall ring gets 90k rec/s: reads 9,000 × 80 = 720,000 B of 8,000,000 B;
	// dropped = 8,000,000 − 720,000 − 1,048,576 = 6,231,424 B = 77,892.8 rec.
	load := oneBin(100e6, 1_000, 100_000, [2]float64{200, 80}, 100_000)
	sp := Simulate(load, Ring{SizeBytes: mib, LifecycleSizeBytes: mib, Layout: ringspec.LayoutSplit})
	if sp.Dropped[lc] != 0 {
		t.Errorf("split: lifecycle dropped %v, want 0", sp.Dropped[lc])
	}
	near(t, "split syscall dropped bytes", sp.DroppedBytes[sys], 6_231_424, 1e-9)
	near(t, "split syscall dropped", sp.Dropped[sys], 77_892.8, 1e-9)

	sh := Simulate(load, Ring{SizeBytes: mib, Layout: ringspec.LayoutShared})
	if !(sh.Dropped[lc] > 0 && sh.Dropped[sys] > 0) {
		t.Fatalf("shared: dropped %v, want both categories", sh.Dropped)
	}
	// Shared drops take the same fraction of each category's arrivals.
	near(t, "shared drop fractions", sh.Dropped[lc]/1_000, sh.Dropped[sys]/100_000, 1e-9)
}

func TestSplitLifecycleRingTooSmall(t *testing.T) {
	// No consumer; the lifecycle ring (10,000 B) gets 1,000 × 100 B: 90,000 B
	// dropped = 900 records. The syscall ring (1 MiB) holds its 500 × 100 B.
	load := oneBin(10e6, 1_000, 500, [2]float64{100, 100}, 0)
	p := Simulate(load, Ring{SizeBytes: mib, LifecycleSizeBytes: 10_000, Layout: ringspec.LayoutSplit})
	near(t, "lifecycle dropped", p.Dropped[lc], 900, 1e-9)
	if p.Dropped[sys] != 0 {
		t.Errorf("syscall dropped %v, want 0", p.Dropped[sys])
	}
	near(t, "peak (both rings)", p.PeakFillBytes, 10_000+50_000, 1e-12)
	// Lifecycle ring full after 10% of the bin.
	if d := math.Abs(float64(p.OverflowNs) - 9_000_000); d > 2 {
		t.Errorf("overflow = %d ns, want 9,000,000", p.OverflowNs)
	}
}

func TestSimulateSanitizesInput(t *testing.T) {
	load := Load{
		Bins: []Bin{
			{DurNs: 0, Arrivals: [2]float64{math.NaN(), -5}},
			{DurNs: 1e6, Arrivals: [2]float64{math.Inf(1), 10}},
		},
		RecordBytes: [2]float64{0, math.NaN()}, // → defaults
		DrainRate:   math.NaN(),
	}
	p := Simulate(load, Ring{SizeBytes: mib, Layout: "bogus"})
	if p.Attempted != [2]float64{0, 10} || p.Dropped != [2]float64{} {
		t.Errorf("got %+v", p)
	}
	near(t, "peak", p.PeakFillBytes, 10*DefaultRecordBytes()[sys], 1e-12)
	if got := Simulate(Load{}, Ring{SizeBytes: mib}); got != (Prediction{}) {
		t.Errorf("empty load: %+v", got)
	}
}

func TestRingMemory(t *testing.T) {
	if got := (Ring{SizeBytes: 4 * mib, Layout: ringspec.LayoutShared, LifecycleSizeBytes: mib}).MemoryBytes(); got != 4*mib {
		t.Errorf("shared memory %d", got)
	}
	if got := (Ring{SizeBytes: 4 * mib, Layout: ringspec.LayoutSplit}).MemoryBytes(); got != 5*mib {
		t.Errorf("split memory %d", got)
	}
}

func TestLoadFromSamples(t *testing.T) {
	s := func(ts, a0, a1 uint64) event.Sample {
		return event.Sample{TsNs: ts * 1e6, Attempted: [2]uint64{a0, a1}} // ts in ms
	}
	samples := []event.Sample{
		s(100, 0, 0),
		s(110, 2, 20),
		s(110, 2, 20), // duplicate
		s(105, 1, 10), // out of order
		s(130, 5, 50),
		s(140, 0, 3), // restart: new baseline
		s(150, 1, 13),
		s(151, 2, 14), // 1 ms later: folded into the next bin
		s(160, 4, 20),
	}
	l := LoadFromSamples(samples, [2]float64{190, 80}, 1e5, 1<<20)
	want := []Bin{
		{DurNs: 10, Arrivals: [2]float64{2, 20}},
		{DurNs: 20, Arrivals: [2]float64{3, 30}},
		{DurNs: 10, Arrivals: [2]float64{1, 10}},
		{DurNs: 10, Arrivals: [2]float64{3, 7}},
	}
	for i := range want {
		want[i].DurNs *= 1e6
	}
	if len(l.Bins) != len(want) {
		t.Fatalf("bins = %+v, want %+v", l.Bins, want)
	}
	for i := range want {
		if !reflect.DeepEqual(l.Bins[i], want[i]) {
			t.Errorf("bin %d = %+v, want %+v", i, l.Bins[i], want[i])
		}
	}
	if l.RecordBytes != [2]float64{190, 80} || l.DrainRate != 1e5 {
		t.Errorf("constants not carried: %+v", l)
	}
	if got := LoadFromSamples(nil, [2]float64{}, 0, 0); len(got.Bins) != 0 {
		t.Errorf("nil samples: %+v", got)
	}
	if got := LoadFromSamples(samples[:1], [2]float64{}, 0, 0); len(got.Bins) != 0 {
		t.Errorf("one sample: %+v", got)
	}
}

func TestLoadFromStats(t *testing.T) {
	stats := []event.Stats{
		{RecordBytes: [2]float64{200, 80}, DrainRate: 100, Series: []event.Sample{{TsNs: 0}, {TsNs: 10e6, Attempted: [2]uint64{1, 2}}}},
		{RecordBytes: [2]float64{0, 100}, DrainRate: 300, Series: []event.Sample{{TsNs: 20e6, Attempted: [2]uint64{2, 4}}}},
		{DrainRate: 200},
	}
	l := LoadFromStats(stats)
	if len(l.Bins) != 2 || !reflect.DeepEqual(l.Bins[1], Bin{DurNs: 10e6, Arrivals: [2]float64{1, 2}}) {
		t.Errorf("bins %+v", l.Bins)
	}
	if l.RecordBytes != [2]float64{200, 90} || l.DrainRate != 200 {
		t.Errorf("constants %+v / %v", l.RecordBytes, l.DrainRate)
	}
}

func BenchmarkSimulate(b *testing.B) {
	// 60 s of 10 ms bins with a flood every 5 s: 60,000 model steps.
	load := SimulatedLoad(FloodSpec{Procs: 12_000, Burst: 1_000, Pause: 5e9, ProcsPerSec: 20_000,
		SyscallsPerProc: 30, BaseRate: 20_000}, DefaultRecordBytes(), 150_000, DefaultBinNs)
	for _, l := range []ringspec.Layout{ringspec.LayoutShared, ringspec.LayoutSplit} {
		b.Run(string(l), func(b *testing.B) {
			for b.Loop() {
				Simulate(load, Ring{SizeBytes: 4 * mib, Layout: l})
			}
		})
	}
}

// BenchmarkRecommend is the analyzer's periodic recommendation over 60 s
// of a node's load: every preset in shared, split and Falco's layout, plus
// three fewer-syscalls what-ifs.
func BenchmarkRecommend(b *testing.B) {
	load := SimulatedLoad(FloodSpec{Procs: 12_000, Burst: 1_000, Pause: 5e9, ProcsPerSec: 20_000,
		SyscallsPerProc: 30, BaseRate: 20_000}, DefaultRecordBytes(), 150_000, DefaultBinNs)
	sys := []SyscallCount{{Name: "read", Count: 50}, {Name: "write", Count: 30}, {Name: "mmap", Count: 20}, {Name: "openat", Count: 10}}
	b.Run("no-what-if", func(b *testing.B) {
		for b.Loop() {
			Recommend(load, Calibration{}, Options{})
		}
	})
	b.Run("what-if", func(b *testing.B) {
		for b.Loop() {
			Recommend(load, Calibration{}, Options{Syscalls: sys})
		}
	})
}
