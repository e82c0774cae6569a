// Command segab measures what a monitoring process costs a steady workload
// by A/B segments inside one run of that workload: the workload runs the
// whole time, and the monitor (`ringwise measure`, or any command) is
// started and stopped so that segments of equal length alternate without
// it and with it, in ABBA order. Each segment's cost is the node's busy CPU
// time per unit of the workload's progress (and, for dd, dd's own CPU time
// per syscall), so what varies slowly on a shared machine (the host's
// load, the CPU's clock) falls on both halves of a pair alike, and a pair's
// ratio carries only the noise of a few seconds.
//
// Why: whole-run A/B pairs on this kind of VM differ by ±5-12 % from pair
// to pair, so they cannot show a 1 % overhead either way; adjacent
// segments of one run can.
//
//	segab -workload dd -pairs 30 -segment 4s -- ringwise measure --duration 1h --drain 1e9 --what-if-top 0
//
// The monitor's start-up and exit (loading and verifying its BPF, its
// final report) fall in the settle time between segments, not in them: the
// figures are the cost while it runs, its start-up is printed apart. The
// monitor must print -ready's text on stderr once it counts ("counting",
// as `ringwise measure` does; "capture attached" for `ringwise sensor`). Needs whatever the monitor needs (root for BPF).
//
// With -toggle, segab is its own monitor: it loads `ringwise measure`'s
// counting programs (bpf.LoadMeter) once and attaches them for the "with"
// segments and detaches them for the others, so segments can be as short as
// a few tens of ms and a run holds thousands of pairs. On this kind of VM a
// workload's cost moves by 7-9 % from one window to the next, at 50 ms as
// at 1 s, and the noise is not slow: pairs of 8 s segments cannot resolve a
// fraction of 1 %, thousands of 50 ms pairs can (the interval narrows with
// the square root of the pairs). That costs measure's kernel side (its
// programs, and the tracepoint path a sys_exit hook sends every syscall
// through) where it runs; measure's user-space CPU is costed apart.
//
//	segab -toggle syscalls -workload dd -pairs 2000 -segment 50ms -settle 5ms
//
// Output: one "seg" line per segment and a "summary" line of key=value
// pairs, for scripts/measure-overhead.sh.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ringwise/ringwise/bpf"
)

type config struct {
	workload string
	procs    int
	pairs    int
	segment  time.Duration
	settle   time.Duration
	flood    string
	ready    string
	monitor  []string
	// toggle: "" runs the monitor command; syscalls, lifecycle or all
	// toggle measure's counting programs in this process instead.
	toggle string
	quiet  bool
}

func main() {
	var cfg config
	flag.StringVar(&cfg.workload, "workload", "dd", "steady workload: dd (dd if=/dev/zero of=/dev/null bs=500, syscall-bound) or flood (`ringwise flood --parallel 4`, fork-bound)")
	flag.IntVar(&cfg.pairs, "pairs", 30, "pairs of segments (without, with the monitor)")
	flag.DurationVar(&cfg.segment, "segment", 4*time.Second, "length of a segment; a multiple of the monitor's sampling period, so that each segment holds the same number of its windows")
	flag.DurationVar(&cfg.settle, "settle", 300*time.Millisecond, "wait after the monitor counts, and after it exited, before a segment starts")
	flag.StringVar(&cfg.flood, "ringwise", "ringwise", "the ringwise binary for -workload flood")
	flag.StringVar(&cfg.ready, "ready", "counting", "the text the monitor prints on stderr once it counts: \"counting\" for `ringwise measure`, \"capture attached\" for `ringwise sensor`")
	flag.IntVar(&cfg.procs, "procs", 4000000, "with -workload flood: children in all (more than the run needs; the flood is stopped at the end)")
	flag.StringVar(&cfg.toggle, "toggle", "", "instead of a monitor command: attach `ringwise measure`'s programs in this process for the \"with\" segments: syscalls (its sys_exit counter), lifecycle (its fork, exec and exit counters) or all (needs root)")
	flag.BoolVar(&cfg.quiet, "quiet", false, "print the summary line only, not a line per segment")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: segab [flags] -- MONITOR [ARGS...]\n       segab -toggle syscalls|lifecycle|all [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	cfg.monitor = flag.Args()
	if err := validate(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "segab:", err)
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "segab:", err)
		os.Exit(1)
	}
}

func validate(cfg config) error {
	switch {
	case cfg.workload != "dd" && cfg.workload != "flood":
		return fmt.Errorf("-workload %q: want dd or flood", cfg.workload)
	case cfg.pairs < 2:
		return fmt.Errorf("-pairs %d: want at least 2", cfg.pairs)
	case cfg.segment <= 0 || cfg.settle < 0:
		return errors.New("-segment must be > 0 and -settle >= 0")
	case cfg.toggle != "" && cfg.toggle != "syscalls" && cfg.toggle != "lifecycle" && cfg.toggle != "all":
		return fmt.Errorf("-toggle %q: want syscalls, lifecycle or all", cfg.toggle)
	case cfg.toggle != "" && len(cfg.monitor) > 0:
		return errors.New("-toggle is its own monitor: no command after --")
	case cfg.toggle == "" && len(cfg.monitor) == 0:
		return errors.New("no monitor command after -- (or -toggle)")
	case cfg.ready == "":
		return errors.New("-ready must not be empty")
	}
	return nil
}

// sample is what segab reads at a segment's start and end.
type sample struct {
	at      time.Time
	units   uint64 // the workload's progress: dd's syscalls, or the node's forks
	busy    uint64 // the node's busy CPU time, USER_HZ ticks (no idle, iowait, steal)
	workCPU uint64 // dd's own CPU time in ns (schedstat); 0 for the flood
	monCPU  uint64 // the monitor's user+sys ticks; 0 without it
}

// segment is one measured segment.
type segment struct {
	pair    int
	with    bool
	wall    float64 // s
	units   float64
	busyNs  float64 // node busy CPU ns per unit
	workNs  float64 // dd's own CPU ns per unit (0 for the flood)
	monCPUs float64 // the monitor's CPU s in the segment
}

func run(ctx context.Context, cfg config, out io.Writer) error {
	hz, err := clockTicks()
	if err != nil {
		return err
	}
	wl, wlDone, err := startWorkload(cfg)
	if err != nil {
		return err
	}
	defer stopWorkload(wl, wlDone)
	var hooks *toggler
	if cfg.toggle != "" {
		if hooks, err = newToggler(cfg.toggle); err != nil {
			return err
		}
		defer hooks.close()
	}
	// Warm-up: page cache, the helper's copy, the CPU's clock.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	var segs []segment
	var startups []float64
	for p := 1; p <= cfg.pairs; p++ {
		order := []bool{false, true}
		if p%2 == 0 {
			order = []bool{true, false}
		}
		for _, with := range order {
			s, startup, err := measureSegment(ctx, cfg, wl.Process.Pid, with, hz, hooks)
			if err != nil {
				return fmt.Errorf("pair %d (%s): %w", p, side(with), err)
			}
			if ended(wlDone) {
				return errors.New("the workload ended during the run: give it more work (-procs)")
			}
			s.pair = p
			segs = append(segs, s)
			if with {
				startups = append(startups, startup)
			}
			if cfg.quiet {
				continue
			}
			fmt.Fprintf(out, "seg pair=%d %s wall=%.3f units=%.0f busy_ns_per_unit=%.2f work_ns_per_unit=%.2f monitor_cpu_s=%.3f\n",
				p, side(with), s.wall, s.units, s.busyNs, s.workNs, s.monCPUs)
		}
	}
	fmt.Fprintln(out, summarize(cfg, segs, startups))
	return nil
}

func side(with bool) string {
	if with {
		return "with"
	}
	return "without"
}

// startWorkload starts the workload; the channel is closed when it ends.
func startWorkload(cfg config) (*exec.Cmd, chan struct{}, error) {
	var c *exec.Cmd
	switch cfg.workload {
	case "dd":
		c = exec.Command("dd", "if=/dev/zero", "of=/dev/null", "bs=500", "count=100000000000")
	default:
		c = exec.Command(cfg.flood, "flood", "--procs", strconv.Itoa(cfg.procs), "--parallel", "4")
	}
	c.Stdout, c.Stderr = io.Discard, io.Discard
	if err := c.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", cfg.workload, err)
	}
	done := make(chan struct{})
	go func() {
		_ = c.Wait()
		close(done)
	}()
	return c, done, nil
}

func ended(done chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// stopWorkload interrupts the workload (the flood then removes its helper
// copy) and kills it if it has not ended within 10 s.
func stopWorkload(c *exec.Cmd, done chan struct{}) {
	_ = c.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.Process.Kill()
		<-done
	}
}

// measureSegment runs one segment, with or without the monitor, and
// returns it and (with) the monitor's start-up CPU seconds.
func measureSegment(ctx context.Context, cfg config, wpid int, with bool, hz float64, hooks *toggler) (segment, float64, error) {
	var mon *monitor
	if hooks != nil {
		if err := hooks.set(with); err != nil {
			return segment{}, 0, err
		}
	} else if with {
		var err error
		if mon, err = startMonitor(ctx, cfg.monitor, cfg.ready); err != nil {
			return segment{}, 0, err
		}
		defer mon.stop()
	}
	if err := sleep(ctx, cfg.settle); err != nil {
		return segment{}, 0, err
	}
	s0, err := read(cfg.workload, wpid, mon)
	if err != nil {
		return segment{}, 0, err
	}
	if err := sleep(ctx, cfg.segment); err != nil {
		return segment{}, 0, err
	}
	s1, err := read(cfg.workload, wpid, mon)
	if err != nil {
		return segment{}, 0, err
	}
	var startup float64
	if mon != nil {
		startup = float64(s0.monCPU) / hz
		if err := mon.stop(); err != nil {
			return segment{}, 0, err
		}
		if err := sleep(ctx, cfg.settle); err != nil {
			return segment{}, 0, err
		}
	}
	units := float64(s1.units - s0.units)
	if units == 0 {
		return segment{}, 0, errors.New("the workload made no progress in a segment")
	}
	seg := segment{
		with:    with,
		wall:    s1.at.Sub(s0.at).Seconds(),
		units:   units,
		busyNs:  float64(s1.busy-s0.busy) / hz * 1e9 / units,
		monCPUs: float64(s1.monCPU-s0.monCPU) / hz,
	}
	if cfg.workload == "dd" {
		seg.workNs = float64(s1.workCPU-s0.workCPU) / units
	}
	return seg, startup, nil
}

type monitor struct {
	cmd  *exec.Cmd
	done chan error
}

// startMonitor starts the monitor and returns once it printed ready.
func startMonitor(ctx context.Context, argv []string, ready string) (*monitor, error) {
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdout = io.Discard
	stderr, err := c.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("start monitor %s: %w", argv[0], err)
	}
	m := &monitor{cmd: c, done: make(chan error, 1)}
	counting := make(chan struct{})
	var tail []string
	go func() {
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			if !seen {
				tail = append(tail, sc.Text())
				if strings.Contains(sc.Text(), ready) {
					seen = true
					close(counting)
				}
			}
		}
		m.done <- c.Wait()
	}()
	select {
	case <-counting:
		return m, nil
	case err := <-m.done:
		m.done <- err
		return nil, fmt.Errorf("monitor %s exited before it counted (%v): %s", argv[0], err, strings.Join(tail, " | "))
	case <-time.After(30 * time.Second):
		m.stop()
		return nil, fmt.Errorf("monitor %s did not print %q within 30 s", argv[0], ready)
	case <-ctx.Done():
		m.stop()
		return nil, ctx.Err()
	}
}

// stop interrupts the monitor and waits for it; a second call is a no-op.
func (m *monitor) stop() error {
	if m.cmd == nil {
		return nil
	}
	_ = m.cmd.Process.Signal(os.Interrupt)
	var err error
	select {
	case err = <-m.done:
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		err = <-m.done
	}
	m.cmd = nil
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 130 {
		err = nil // interrupted, as asked
	}
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	return nil
}

func read(workload string, wpid int, mon *monitor) (sample, error) {
	s := sample{at: time.Now()}
	busy, forks, err := procStat()
	if err != nil {
		return s, err
	}
	s.busy = busy
	if workload == "dd" {
		if s.units, err = ddSyscalls(wpid); err != nil {
			return s, err
		}
		if s.workCPU, err = schedstatNs(wpid); err != nil {
			return s, err
		}
	} else {
		s.units = forks
	}
	if mon != nil && mon.cmd != nil {
		if s.monCPU, err = taskTicks(mon.cmd.Process.Pid); err != nil {
			return s, err
		}
	}
	return s, nil
}

// procStat returns the node's busy CPU ticks (user, nice, system, irq,
// softirq; guest time is inside user) and the forks since boot.
func procStat() (busy, forks uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 7 && f[0] == "cpu":
			for _, i := range []int{1, 2, 3, 6, 7} {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					return 0, 0, fmt.Errorf("/proc/stat cpu line: %w", err)
				}
				busy += v
			}
		case len(f) == 2 && f[0] == "processes":
			if forks, err = strconv.ParseUint(f[1], 10, 64); err != nil {
				return 0, 0, fmt.Errorf("/proc/stat processes: %w", err)
			}
		}
	}
	return busy, forks, nil
}

// ddSyscalls is dd's read plus write syscalls so far (/proc/PID/io).
func ddSyscalls(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if ok && (k == "syscr" || k == "syscw") {
			x, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/io %s: %w", pid, k, err)
			}
			n += x
		}
	}
	return n, nil
}

// schedstatNs is the task's CPU time in ns, at the scheduler's precision.
func schedstatNs(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 0, fmt.Errorf("/proc/%d/schedstat: empty", pid)
	}
	return strconv.ParseUint(f[0], 10, 64)
}

// taskTicks is a process's user+sys CPU ticks (all its threads).
func taskTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	k, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return u + k, nil
}

func clockTicks() (float64, error) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100, nil // Linux's USER_HZ everywhere we run
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("getconf CLK_TCK = %q", out)
	}
	return v, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// summarize gives, per metric, the pairs' overhead (with over without,
// minus one): median, spread, mean and the mean's 95 % interval (Student's
// t), and the number of pairs. The metrics: the node's busy CPU per unit of
// progress (the monitor's own CPU included), dd's own CPU per syscall, and
// wall time per unit (the workload's throughput, which the host's steal
// also moves).
func summarize(cfg config, segs []segment, startups []float64) string {
	by := map[int][2]*segment{}
	for i := range segs {
		s := &segs[i]
		p := by[s.pair]
		if s.with {
			p[1] = s
		} else {
			p[0] = s
		}
		by[s.pair] = p
	}
	var busy, work, wall, mon []float64
	for _, p := range by {
		if p[0] == nil || p[1] == nil {
			continue
		}
		busy = append(busy, 100*(p[1].busyNs/p[0].busyNs-1))
		wall = append(wall, 100*((p[1].wall/p[1].units)/(p[0].wall/p[0].units)-1))
		if p[0].workNs > 0 {
			work = append(work, 100*(p[1].workNs/p[0].workNs-1))
		}
		mon = append(mon, p[1].monCPUs)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "summary workload=%s pairs=%d segment_s=%.3f", cfg.workload, len(busy), cfg.segment.Seconds())
	if cfg.toggle != "" {
		fmt.Fprintf(&b, " toggle=%s", cfg.toggle)
	}
	write := func(name string, v []float64) {
		if len(v) == 0 {
			return
		}
		med, mean, lo, hi := stats(v)
		mn, mx := v[0], v[0]
		for _, x := range v {
			mn, mx = math.Min(mn, x), math.Max(mx, x)
		}
		mlo, mhi, conf := medianInterval(v)
		fmt.Fprintf(&b, " %s_median=%.2f %s_median_lo=%.2f %s_median_hi=%.2f %s_median_conf=%.1f %s_min=%.2f %s_max=%.2f %s_mean=%.2f %s_ci95_lo=%.2f %s_ci95_hi=%.2f",
			name, med, name, mlo, name, mhi, name, 100*conf, name, mn, name, mx, name, mean, name, lo, name, hi)
	}
	write("node_cpu_overhead_pct", busy)
	write("work_cpu_overhead_pct", work)
	write("wall_per_unit_overhead_pct", wall)
	med, _, _, _ := stats(mon)
	fmt.Fprintf(&b, " monitor_cpu_s_per_segment_median=%.3f", med)
	if len(startups) > 0 {
		smed, _, _, _ := stats(startups)
		fmt.Fprintf(&b, " monitor_startup_cpu_s_median=%.3f", smed)
	}
	return b.String()
}

// medianInterval is a distribution-free interval for the median of v: the
// k-th smallest and k-th largest values, with k the largest that keeps the
// chance of the median outside at most 5 % (the binomial sign test), and
// that chance's complement. Unlike the mean's interval, one outlier
// segment (a flood's segment can lose 10 % of its forks to the host) does
// not widen it.
func medianInterval(v []float64) (lo, hi, conf float64) {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0, 0, 0
	}
	// cdf(j) = P(Binomial(n, 1/2) <= j)
	cdf := func(j int) float64 {
		var sum float64
		for i := 0; i <= j; i++ {
			sum += math.Exp(lchoose(n, i) - float64(n)*math.Ln2)
		}
		return sum
	}
	k := 1
	for k+1 <= n/2 && cdf(k) <= 0.025 {
		k++
	}
	return s[k-1], s[n-k], 1 - 2*cdf(k-1)
}

func lchoose(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

// stats returns the median, the mean and the mean's 95 % interval.
func stats(v []float64) (med, mean, lo, hi float64) {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return
	}
	if n%2 == 1 {
		med = s[n/2]
	} else {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	for _, x := range s {
		mean += x
	}
	mean /= float64(n)
	if n < 2 {
		return med, mean, mean, mean
	}
	var ss float64
	for _, x := range s {
		ss += (x - mean) * (x - mean)
	}
	se := math.Sqrt(ss/float64(n-1)) / math.Sqrt(float64(n))
	t := tQuantile975(n - 1)
	return med, mean, mean - t*se, mean + t*se
}

// tQuantile975 is Student's t 97.5 % quantile for df degrees of freedom
// (two-sided 95 %), from the table for small df.
func tQuantile975(df int) float64 {
	table := []float64{0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
		2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}
	if df < len(table) {
		return table[df]
	}
	if df < 60 {
		return 2.00
	}
	return 1.98
}

// toggler attaches and detaches `ringwise measure`'s counting programs in
// this process (segab -toggle).
type toggler struct {
	m                   *bpf.Meter
	syscalls, lifecycle bool
}

func newToggler(what string) (*toggler, error) {
	m, err := bpf.LoadMeter(bpf.MeterConfig{SelfTGID: uint32(os.Getpid())})
	if err != nil {
		return nil, err
	}
	t := &toggler{m: m, syscalls: what != "lifecycle", lifecycle: what != "syscalls"}
	// LoadMeter attached everything: start detached.
	if err := t.set(false); err != nil {
		m.Close()
		return nil, err
	}
	return t, nil
}

// set attaches (on) or detaches the toggled programs; the others stay
// detached.
func (t *toggler) set(on bool) error {
	if err := t.m.SetSyscalls(on && t.syscalls); err != nil {
		return err
	}
	return t.m.SetLifecycle(on && t.lifecycle)
}

func (t *toggler) close() { t.m.Close() }
