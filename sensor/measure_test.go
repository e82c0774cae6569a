package sensor

import (
	"math"
	"testing"
	"time"
)

func TestParseSyscallSample(t *testing.T) {
	for in, want := range map[string]SyscallSample{
		"all":     {},
		"20ms/2s": {Window: 20 * time.Millisecond, Period: 2 * time.Second},
		"1s/10s":  {Window: time.Second, Period: 10 * time.Second},
	} {
		got, err := ParseSyscallSample(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
		}
		if in != "all" && got.String() != in {
			t.Errorf("%q: String %q", in, got.String())
		}
	}
	for _, bad := range []string{"20ms", "2s/20ms", "0s/1s", "x/1s", "20ms/y", "20ms/20ms"} {
		if _, err := ParseSyscallSample(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestFinishExposure: bins cut in the kernel's clock get their durations
// (the first from the load, the last up to the end) and the part of each
// that the syscall counter was attached for.
func TestFinishExposure(t *testing.T) {
	const bin = 10
	res := &Measurement{NumCPU: 1, Bins: 4, Syscalls: 7, Sampling: &SamplingInfo{}}
	// Bins 100..103 are [1000,1010) … [1030,1040); counting from 1004 to
	// 1035, the counter attached over [1004,1012) and [1025,1031).
	res.finish(1004, 1035, bin, 100, [][2]uint64{{1004, 1012}, {1025, 1031}})
	wantDur := []uint64{6, 10, 10, 5}
	wantExp := []float64{1, 0.2, 0.5, 0.2}
	for i := range wantDur {
		if res.DurNs[i] != wantDur[i] || math.Abs(res.Sampling.Exposure[i]-wantExp[i]) > 1e-9 {
			t.Errorf("bin %d: %d ns exposed %.2f, want %d ns %.2f", i, res.DurNs[i], res.Sampling.Exposure[i], wantDur[i], wantExp[i])
		}
	}
	if res.Duration != 31 || res.Sampling.ExposedNs != 14 || res.Sampling.Counted != 7 {
		t.Errorf("duration %v, exposed %d ns, counted %d; want 31ns, 14, 7", res.Duration, res.Sampling.ExposedNs, res.Sampling.Counted)
	}
}

// TestSeriesNrGroups: syscall numbers counted per group of bins leave a
// bin in proportion to its syscalls, the group losing exactly its count.
func TestSeriesNrGroups(t *testing.T) {
	// 5 bins, groups of 3 starting 1 bin in: {0,1}, {2,3,4}.
	res := &Measurement{NumCPU: 1, Bins: 5, NrSpan: 3, NrOffset: 1, BySyscall: map[uint32]uint64{},
		DurNs: []uint64{1, 1, 1, 1, 1}, Lifecycle: [][]float64{{0, 0, 0, 0, 0}}, SyscallBins: [][]float64{{10, 30, 0, 50, 50}},
		NrBins: [][][][2]uint32{{{{1, 20}, {2, 20}}}, {{{1, 100}}}}, PerCPUSyscalls: []uint64{140}}
	if err := res.Validate(); err != nil {
		t.Fatal(err)
	}
	got := res.Series(1, map[uint32]bool{2: true}).Arrivals[0]
	want := []float64{5, 15, 0, 50, 50}
	for i, w := range want {
		if math.Abs(got[i][1]-w) > 1e-9 {
			t.Errorf("bin %d: %v syscalls without nr 2, want %v", i, got[i][1], w)
		}
	}
	res.NrBins = res.NrBins[:1]
	if err := res.Validate(); err == nil {
		t.Error("5 bins in 1 group of 3 at offset 1: no error")
	}
}

func TestFitRate(t *testing.T) {
	// y = 300 + 40x exactly.
	xs := []float64{0, 10, 50, 100, 0}
	ys := make([]float64, len(xs))
	ws := []float64{1, 1, 2, 1, 3}
	for i, x := range xs {
		ys[i] = 300 + 40*x
	}
	a, k := fitRate(xs, ys, ws)
	if math.Abs(a-300) > 1e-6 || math.Abs(k-40) > 1e-6 {
		t.Errorf("fit %v + %v x, want 300 + 40 x", a, k)
	}
	// No lifecycle variation: the weighted mean.
	a, k = fitRate([]float64{5, 5}, []float64{100, 200}, []float64{1, 3})
	if k != 0 || math.Abs(a-175) > 1e-9 {
		t.Errorf("flat x: %v + %v x, want 175", a, k)
	}
	// A falling line is no rate: the mean, slope 0.
	a, k = fitRate([]float64{0, 10}, []float64{100, 0}, []float64{1, 1})
	if k != 0 || a != 50 {
		t.Errorf("negative slope: %v + %v x", a, k)
	}
	if a, k = fitRate(nil, nil, nil); a != 0 || k != 0 {
		t.Errorf("empty: %v %v", a, k)
	}
}

// TestEstimateFillsUnexposedBins: a measurement whose windows saw syscalls
// follow lifecycle exactly gets the unexposed bins right, totals and shares
// included, and Series leaves out the windows' share of a syscall.
func TestEstimateFillsUnexposedBins(t *testing.T) {
	const n = 10
	res := &Measurement{NumCPU: 1, Interval: 10 * time.Millisecond, BySyscall: map[uint32]uint64{},
		PerCPUSyscalls: make([]uint64, 1), Lifecycle: make([][]float64, 1), SyscallBins: make([][]float64, 1),
		Sampling: &SamplingInfo{SyscallSample: SyscallSample{Window: 20 * time.Millisecond, Period: 50 * time.Millisecond}}}
	var truth float64
	for i := range n {
		lc := float64(i % 3 * 10)              // lifecycle events in the bin
		sys := (1000 + 50*lc/0.01) * 0.01      // 1000/s + 50 per lifecycle event
		exp := []float64{1, 0.5, 0, 0, 0}[i%5] // a window of a full and a half bin
		res.DurNs = append(res.DurNs, uint64(10*time.Millisecond))
		res.Lifecycle[0] = append(res.Lifecycle[0], lc)
		res.SyscallBins[0] = append(res.SyscallBins[0], sys*exp)
		res.Sampling.Exposure = append(res.Sampling.Exposure, exp)
		res.Sampling.Counted += uint64(sys * exp)
		res.NrBins = append(res.NrBins, nil)
		truth += sys
	}
	res.Bins = n
	res.BySyscall[0] = res.Sampling.Counted / 4 // read: a quarter
	res.BySyscall[1] = res.Sampling.Counted - res.Sampling.Counted/4
	res.estimate()
	if err := res.Validate(); err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(res.Syscalls)-truth) > 2 {
		t.Errorf("estimated %d syscalls, truth %.0f", res.Syscalls, truth)
	}
	if math.Abs(res.Sampling.Base[0]-1000) > 1 || math.Abs(res.Sampling.PerLifecycle[0]-50) > 0.01 {
		t.Errorf("fit %v + %v/lifecycle, want 1000 + 50", res.Sampling.Base[0], res.Sampling.PerLifecycle[0])
	}
	top := res.TopSyscalls()
	if len(top) != 2 || math.Abs(top[1].Pct-25) > 0.1 || math.Abs(float64(top[0].Count+top[1].Count)-float64(res.Syscalls)) > 2 {
		t.Errorf("shares %+v (total %d)", top, res.Syscalls)
	}
	var all, without float64
	for _, a := range res.Series(1, nil).Arrivals[0] {
		all += a[1]
	}
	for _, a := range res.Series(1, map[uint32]bool{0: true}).Arrivals[0] {
		without += a[1]
	}
	// The windows' NrBins are empty here, so only the estimated part loses
	// the quarter.
	var est float64
	for _, e := range res.Sampling.Estimated[0] {
		est += e
	}
	if math.Abs((all-without)-est/4) > 1e-6 {
		t.Errorf("without nr 0: %v fewer, want %v", all-without, est/4)
	}
}
