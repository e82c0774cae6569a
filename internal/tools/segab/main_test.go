package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestStats(t *testing.T) {
	med, mean, lo, hi := stats([]float64{3, 1, 2, 4})
	if med != 2.5 || mean != 2.5 {
		t.Fatalf("median, mean = %v, %v; want 2.5, 2.5", med, mean)
	}
	// sd = 1.291, se = 0.6455, t(3) = 3.182: 2.5 ± 2.054
	if math.Abs(lo-0.446) > 0.01 || math.Abs(hi-4.554) > 0.01 {
		t.Errorf("95 %% interval = %.3f..%.3f, want 0.446..4.554", lo, hi)
	}
	if med, _, _, _ := stats([]float64{5, 1, 3}); med != 3 {
		t.Errorf("odd median = %v, want 3", med)
	}
}

// The overhead is with over without within each pair, whatever the order
// the two segments of a pair ran in.
func TestSummarizePairs(t *testing.T) {
	segs := []segment{
		{pair: 1, with: false, wall: 4, units: 1000, busyNs: 100, fineNs: 100, otherNs: 100, workNs: 90},
		{pair: 1, with: true, wall: 4, units: 990, busyNs: 101, fineNs: 102, otherNs: 100.5, workNs: 90.9},
		{pair: 2, with: true, wall: 4, units: 1000, busyNs: 202, fineNs: 204, otherNs: 201, workNs: 181.8},
		{pair: 2, with: false, wall: 4, units: 1010, busyNs: 200, fineNs: 200, otherNs: 200, workNs: 180},
	}
	s := summarize(config{workload: "dd", segment: 4 * time.Second, monitor: []string{"sensor"}}, segs, []float64{0.03, 0.05})
	for _, want := range []string{
		"pairs=2", "node_cpu_overhead_pct_median=1.00", "node_cpu_overhead_pct_min=1.00",
		"work_cpu_overhead_pct_mean=1.00", "wall_per_unit_overhead_pct_median=1.01",
		"monitor_startup_cpu_s_median=0.040", "node_fine_cpu_overhead_pct_median=2.00",
		"without_busy_ns_per_unit_median=150.0", "without_fine_busy_ns_per_unit_median=150.0",
		"node_other_cpu_overhead_pct_median=0.50", "without_other_ns_per_unit_median=150.0",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary %q lacks %q", s, want)
		}
	}
}

// Under -control the monitor runs in both halves: its CPU is summarized
// per half, the "with" median apart from the "without" one.
func TestSummarizeControlMonitorHalves(t *testing.T) {
	segs := []segment{
		{pair: 1, with: false, wall: 0.2, units: 100, busyNs: 100, fineNs: 100, otherNs: 90, monCPUs: 0.002},
		{pair: 1, with: true, wall: 0.2, units: 100, busyNs: 104, fineNs: 104, otherNs: 91, monCPUs: 0.010},
		{pair: 2, with: true, wall: 0.2, units: 100, busyNs: 104, fineNs: 104, otherNs: 91, monCPUs: 0.012},
		{pair: 2, with: false, wall: 0.2, units: 100, busyNs: 100, fineNs: 100, otherNs: 90, monCPUs: 0.003},
	}
	s := summarize(config{workload: "flood", segment: 200 * time.Millisecond, monitor: []string{"sensor"}, control: "ctl.sock"}, segs, nil)
	for _, want := range []string{"control=1", "monitor_cpu_s_per_segment_median=0.0110", "monitor_cpu_s_per_segment_without_median=0.0025"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary %q lacks %q", s, want)
		}
	}
	if s := summarize(config{workload: "flood", segment: time.Second, monitor: []string{"sensor"}}, segs, nil); strings.Contains(s, "monitor_cpu_s_per_segment_without") {
		t.Errorf("summary without -control has the idle monitor's median: %q", s)
	}
}

// threadsNs counts a process's threads at ns: 100 ms of spinning shows.
func TestThreadsNsOfOwnProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("no /proc here:", err)
	}
	n, err := threadsNs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(100 * time.Millisecond); time.Now().Before(deadline); {
	}
	m, err := threadsNs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m-n < 50e6 {
		t.Errorf("threads' CPU %d -> %d ns after 100 ms of spinning: want >= 50 ms more", n, m)
	}
	if _, err := threadsNs(1 << 30); err == nil {
		t.Error("threadsNs of no process = nil error")
	}
}

// A comm may hold spaces and parentheses: the fields after the last ')'
// are what counts.
func TestTaskTicksOfOwnProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here:", err)
	}
	n, err := taskTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	m, err := taskTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m <= n {
		t.Errorf("user+sys ticks %d -> %d after 200 ms of spinning: not counted", n, m)
	}
	busy, forks, err := procStat()
	if err != nil || busy == 0 || forks == 0 {
		t.Errorf("procStat = %d busy ticks, %d forks, %v; want both > 0", busy, forks, err)
	}
}

func TestValidate(t *testing.T) {
	ok := config{workload: "dd", pairs: 5, segment: time.Second, ready: "counting", monitor: []string{"true"}}
	if err := validate(ok); err != nil {
		t.Fatalf("validate(%+v) = %v", ok, err)
	}
	for _, tg := range []string{"syscalls", "lifecycle", "all", "noop"} {
		toggled := config{workload: "flood", pairs: 5, segment: 50 * time.Millisecond, ready: "counting", toggle: tg}
		if err := validate(toggled); err != nil {
			t.Errorf("validate(%+v) = %v", toggled, err)
		}
	}
	for _, good := range []config{
		{workload: "spawn", spawners: 4, pairs: 5, segment: 50 * time.Millisecond, ready: "counting", toggle: "lifecycle", base: "noop"},
		{workload: "spawn", spawners: 1, pairs: 5, segment: 50 * time.Millisecond, ready: "counting", toggle: "noop"},
		{workload: "spawn", spawners: 4, workloadOnly: true},
		{workload: "flood", pairs: 5, segment: 200 * time.Millisecond, ready: "capture attached", control: "/tmp/ctl.sock", monitor: []string{"ringwise", "sensor"}},
	} {
		if err := validate(good); err != nil {
			t.Errorf("validate(%+v) = %v", good, err)
		}
	}
	for _, bad := range []config{
		// -toggle is its own monitor, and names what it toggles.
		{workload: "dd", pairs: 5, segment: time.Second, ready: "counting", toggle: "sys_exit"},
		{workload: "dd", pairs: 5, segment: time.Second, ready: "counting", toggle: "syscalls", monitor: []string{"true"}},
		{workload: "ls", pairs: 5, segment: time.Second, ready: "counting", monitor: []string{"true"}},
		{workload: "dd", pairs: 1, segment: time.Second, ready: "counting", monitor: []string{"true"}},
		{workload: "dd", pairs: 5, segment: 0, ready: "counting", monitor: []string{"true"}},
		{workload: "dd", pairs: 5, segment: time.Second, ready: "counting"},
		{workload: "dd", pairs: 5, segment: time.Second, monitor: []string{"true"}},
		// -base noop replaces the lifecycle counters only.
		{workload: "flood", pairs: 5, segment: time.Second, ready: "counting", toggle: "syscalls", base: "noop"},
		{workload: "flood", pairs: 5, segment: time.Second, ready: "counting", toggle: "lifecycle", base: "empty"},
		{workload: "spawn", spawners: 0, pairs: 5, segment: time.Second, ready: "counting", toggle: "noop"},
		{workload: "spawn", spawners: 4, workloadOnly: true, toggle: "lifecycle"},
		// -control switches a monitor command's capture, not -toggle's.
		{workload: "flood", pairs: 5, segment: time.Second, ready: "counting", control: "/tmp/ctl.sock"},
		{workload: "flood", pairs: 5, segment: time.Second, ready: "counting", control: "/tmp/ctl.sock", toggle: "lifecycle"},
	} {
		if err := validate(bad); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", bad)
		}
	}
}

// The sign-test interval: for 24 pairs the 7th smallest and 7th largest
// (97.7 %), for 6 the extremes (96.9 %); an outlier does not move it.
func TestMedianInterval(t *testing.T) {
	v := make([]float64, 24)
	for i := range v {
		v[i] = float64(i + 1)
	}
	v[0] = -1000
	lo, hi, conf := medianInterval(v)
	if lo != 7 || hi != 18 || math.Abs(conf-0.9773) > 0.0001 {
		t.Errorf("24 values: interval %v..%v at %.4f, want 7..18 at 0.9773", lo, hi, conf)
	}
	lo, hi, conf = medianInterval([]float64{3, 1, 2, 6, 5, 4})
	if lo != 1 || hi != 6 || math.Abs(conf-0.96875) > 1e-9 {
		t.Errorf("6 values: interval %v..%v at %.5f, want 1..6 at 0.96875", lo, hi, conf)
	}
}

// The minimal executable of -workload spawn runs and exits 0, and the
// spawners start it over and over.
func TestExitELFRuns(t *testing.T) {
	elf, err := exitELF(runtime.GOARCH)
	if err != nil {
		t.Skip(err)
	}
	tiny := filepath.Join(t.TempDir(), "exit0")
	if err := os.WriteFile(tiny, elf, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tiny).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v (%q)", tiny, err, out)
	}
	if _, err := exitELF("mips"); err == nil {
		t.Error("exitELF(mips) = nil error, want one naming the architecture")
	}
}

// The test binary stands in for segab when the spawn workload re-executes
// itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == spawnLoopArg {
		if err := spawnLoop(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "spawner:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// The spawn workload makes processes (the node's fork count climbs by
// many while it runs), and stop leaves no spawner and no ELF behind.
func TestSpawnWorkload(t *testing.T) {
	if _, err := exitELF(runtime.GOARCH); err != nil {
		t.Skip(err)
	}
	_, f0, err := procStat()
	if err != nil {
		t.Skip("no /proc/stat:", err)
	}
	w, err := startSpawners(2)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	_, f1, _ := procStat()
	if ended(w.done) {
		t.Fatal("a spawner ended on its own")
	}
	w.stop()
	if f1-f0 < 50 {
		t.Errorf("%d processes started in 500 ms by 2 spawners, want >= 50", f1-f0)
	}
	if _, err := os.Stat(w.dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after stop (%v)", w.dir, err)
	}
	if !ended(w.done) {
		t.Error("done not closed after stop")
	}
	for _, c := range w.procs {
		if c.ProcessState == nil {
			t.Errorf("spawner %d not waited for", c.Process.Pid)
		}
	}
}
