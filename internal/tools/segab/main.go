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
// With -control, the monitor command is started once and its capture is
// switched on and off for the segments through a unix socket it serves
// (`ringwise sensor --lab-capture-control SOCKET`: its BPF programs
// detached and attached again, its reader, publisher and NATS connection
// running all along), so a sensor's whole cost, user space included, is
// costed in segments as short as -toggle's:
//
//	segab -workload flood -pairs 600 -segment 200ms -settle 30ms -ready "capture attached" \
//	  -control /tmp/ctl.sock -aside $NATS_PID -- ringwise sensor ... --lab-capture-control /tmp/ctl.sock
//
// -toggle noop attaches do-nothing programs on the lifecycle tracepoints
// instead: what attaching there costs by itself, window edges included;
// -base noop keeps them in the "without" windows of -toggle lifecycle, so
// that no edge flips a tracepoint on or off. -workload spawn is the
// densest stream of processes (spawn.go), where a lifecycle hook's cost
// per process is a larger share than in the flood and resolves finer.
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
	"path/filepath"
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
	spawners int
	pairs    int
	segment  time.Duration
	settle   time.Duration
	flood    string
	ready    string
	monitor  []string
	// toggle: "" runs the monitor command; syscalls, lifecycle or all
	// toggle measure's counting programs in this process instead.
	toggle string
	// base: "" leaves the lifecycle tracepoints empty in the "without"
	// windows of -toggle lifecycle; noop puts do-nothing programs there.
	base  string
	quiet bool
	// workloadOnly runs the workload until interrupted, nothing else: for
	// scripts that measure beside it.
	workloadOnly bool
	// aside: processes whose CPU is set aside with the monitor's in the
	// other_cpu metric (the NATS server a sensor publishes to)
	aside []int
	// control: the monitor is started once and its capture switched
	// through this unix socket ("on"/"off", answered "ok"): `ringwise
	// sensor --lab-capture-control`.
	control string
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == spawnLoopArg {
		if err := spawnLoop(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "segab spawner:", err)
			os.Exit(1)
		}
		return
	}
	var cfg config
	flag.StringVar(&cfg.workload, "workload", "dd", "steady workload: dd (dd if=/dev/zero of=/dev/null bs=500, syscall-bound), flood (`ringwise flood --parallel 4`, fork-bound) or spawn (-spawners loops that start a minimal static executable that only exits: the densest stream of processes, to cost a lifecycle hook per process)")
	flag.IntVar(&cfg.pairs, "pairs", 30, "pairs of segments (without, with the monitor)")
	flag.DurationVar(&cfg.segment, "segment", 4*time.Second, "length of a segment; a multiple of the monitor's sampling period, so that each segment holds the same number of its windows")
	flag.DurationVar(&cfg.settle, "settle", 300*time.Millisecond, "wait after the monitor counts, and after it exited, before a segment starts")
	flag.StringVar(&cfg.flood, "ringwise", "ringwise", "the ringwise binary for -workload flood")
	flag.StringVar(&cfg.ready, "ready", "counting", "the text the monitor prints on stderr once it counts: \"counting\" for `ringwise measure`, \"capture attached\" for `ringwise sensor`")
	flag.IntVar(&cfg.spawners, "spawners", 4, "with -workload spawn: spawner processes")
	flag.IntVar(&cfg.procs, "procs", 4000000, "with -workload flood: children in all (more than the run needs; the flood is stopped at the end)")
	flag.StringVar(&cfg.toggle, "toggle", "", "instead of a monitor command: attach `ringwise measure`'s programs in this process for the \"with\" segments: syscalls (its sys_exit counter), lifecycle (its fork, exec and exit counters) or all; or noop, do-nothing programs on the fork, exec and exit tracepoints (what attaching there costs by itself). Needs root")
	flag.StringVar(&cfg.base, "base", "", "with -toggle lifecycle: noop attaches do-nothing programs on the same tracepoints in the \"without\" windows, so that the A/B is the counting alone and no window edge flips a tracepoint on or off")
	flag.BoolVar(&cfg.workloadOnly, "workload-only", false, "run the workload until interrupted and measure nothing (for scripts that measure beside it)")
	flag.Func("aside", "`PID`s (comma-separated) whose CPU is set aside with the monitor's in the node_other_cpu metric, e.g. the NATS server a sensor publishes to", func(v string) error {
		for _, f := range strings.Split(v, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || pid <= 0 {
				return fmt.Errorf("%q is not a pid", f)
			}
			cfg.aside = append(cfg.aside, pid)
		}
		return nil
	})
	flag.StringVar(&cfg.control, "control", "", "with a monitor command: start it once and switch its capture on and off for the segments through this unix `socket` (lines \"on\"/\"off\", answered \"ok\"), as `ringwise sensor --lab-capture-control SOCKET` serves: segments as short as -toggle's, with the monitor's whole user-space path (reader, publish, NATS) running")
	flag.BoolVar(&cfg.quiet, "quiet", false, "print the summary line only, not a line per segment")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: segab [flags] -- MONITOR [ARGS...]\n       segab -toggle syscalls|lifecycle|all|noop [-base noop] [flags]\n       segab -workload dd|flood|spawn -workload-only\n\n")
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
	case cfg.workload != "dd" && cfg.workload != "flood" && cfg.workload != "spawn":
		return fmt.Errorf("-workload %q: want dd, flood or spawn", cfg.workload)
	case cfg.workload == "spawn" && cfg.spawners < 1:
		return fmt.Errorf("-spawners %d: want at least 1", cfg.spawners)
	case cfg.workloadOnly && (cfg.toggle != "" || len(cfg.monitor) > 0):
		return errors.New("-workload-only runs the workload alone: no -toggle, no monitor")
	case cfg.workloadOnly:
		return nil
	case cfg.pairs < 2:
		return fmt.Errorf("-pairs %d: want at least 2", cfg.pairs)
	case cfg.segment <= 0 || cfg.settle < 0:
		return errors.New("-segment must be > 0 and -settle >= 0")
	case cfg.toggle != "" && cfg.toggle != "syscalls" && cfg.toggle != "lifecycle" && cfg.toggle != "all" && cfg.toggle != "noop":
		return fmt.Errorf("-toggle %q: want syscalls, lifecycle, all or noop", cfg.toggle)
	case cfg.base != "" && cfg.base != "noop":
		return fmt.Errorf("-base %q: want noop (or nothing)", cfg.base)
	case cfg.base != "" && cfg.toggle != "lifecycle":
		return errors.New("-base noop goes with -toggle lifecycle only")
	case cfg.toggle != "" && len(cfg.monitor) > 0:
		return errors.New("-toggle is its own monitor: no command after --")
	case cfg.control != "" && (cfg.toggle != "" || len(cfg.monitor) == 0):
		return errors.New("-control switches a monitor command's capture: give the command after --, and no -toggle")
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
	// monNs: the CPU ns of the monitor's live threads (schedstat), for
	// its CPU in a segment at a precision ticks (10 ms) lack.
	monNs uint64
	idleUs  uint64 // all CPUs' idle time, µs (cpuidle); 0 without cpuidle
	// asideNs: the CPU ns of the monitor's threads and of -aside's
	// processes (/proc/PID/task/*/schedstat)
	asideNs uint64
}

// segment is one measured segment.
type segment struct {
	pair    int
	with    bool
	wall    float64 // s
	units   float64
	busyNs  float64 // node busy CPU ns per unit
	workNs  float64 // dd's own CPU ns per unit (0 for the flood)
	monCPUs float64 // the monitor's CPU s in the segment (its threads' schedstat)
	// fineNs: the node's busy CPU ns per unit at µs precision, every CPU's
	// wall time less its idle time (cpuidle); 0 without cpuidle. /proc/stat
	// counts in 10 ms ticks, ±2.5 % of a 200 ms window on 2 CPUs; this is
	// the flood's metric (steal counts as busy here: it falls on both
	// halves of a pair alike).
	fineNs float64
	// otherNs: fineNs less the monitor's and -aside's CPU: what the
	// workload, and the kernel on its behalf, pay per unit (the BPF
	// programs run in the workload's context, the reader's CPU is the
	// monitor's). 0 without cpuidle.
	otherNs float64
}

func run(ctx context.Context, cfg config, out io.Writer) error {
	hz, err := clockTicks()
	if err != nil {
		return err
	}
	idle, err := openCPUIdle()
	if err != nil {
		return err
	}
	wl, err := startWorkload(cfg)
	if err != nil {
		return err
	}
	defer wl.stop()
	if cfg.workloadOnly {
		select {
		case <-ctx.Done():
			return nil
		case <-wl.done:
			return errors.New("the workload ended before it was interrupted")
		}
	}
	// hooks switches capture for the segments; nil: the monitor is
	// started for each "with" segment and stopped after it. mon is the
	// monitor that runs the whole time (-control).
	var hooks switcher
	var mon *monitor
	switch {
	case cfg.toggle != "":
		t, err := newToggler(cfg.toggle, cfg.base)
		if err != nil {
			return err
		}
		defer t.close()
		hooks = t
	case cfg.control != "":
		if mon, err = startMonitor(ctx, cfg.monitor, cfg.ready); err != nil {
			return err
		}
		defer mon.stop()
		c, err := dialControl(ctx, cfg.control)
		if err != nil {
			return err
		}
		defer c.close()
		if err := c.set(false); err != nil {
			return err
		}
		hooks = c
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
			s, startup, err := measureSegment(ctx, cfg, wl.pid, with, hz, hooks, mon, idle)
			if err != nil {
				return fmt.Errorf("pair %d (%s): %w", p, side(with), err)
			}
			if ended(wl.done) {
				return errors.New("the workload ended during the run: give it more work (-procs)")
			}
			if mon != nil && mon.exited() {
				return errors.New("the monitor exited during the run")
			}
			s.pair = p
			segs = append(segs, s)
			if with {
				startups = append(startups, startup)
			}
			if cfg.quiet {
				continue
			}
			fmt.Fprintf(out, "seg pair=%d %s wall=%.3f units=%.0f busy_ns_per_unit=%.2f fine_busy_ns_per_unit=%.2f other_ns_per_unit=%.2f work_ns_per_unit=%.2f monitor_cpu_s=%.3f\n",
				p, side(with), s.wall, s.units, s.busyNs, s.fineNs, s.otherNs, s.workNs, s.monCPUs)
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

// workload is the running workload: pid is dd's (for its own counters),
// done is closed when it ends, stop ends it.
type workload struct {
	pid  int
	done chan struct{}
	stop func()
}

// startWorkload starts the workload.
func startWorkload(cfg config) (*workload, error) {
	var c *exec.Cmd
	switch cfg.workload {
	case "dd":
		c = exec.Command("dd", "if=/dev/zero", "of=/dev/null", "bs=500", "count=100000000000")
	case "spawn":
		sp, err := startSpawners(cfg.spawners)
		if err != nil {
			return nil, err
		}
		return &workload{pid: sp.procs[0].Process.Pid, done: sp.done, stop: sp.stop}, nil
	default:
		c = exec.Command(cfg.flood, "flood", "--procs", strconv.Itoa(cfg.procs), "--parallel", "4")
	}
	c.Stdout, c.Stderr = io.Discard, io.Discard
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.workload, err)
	}
	done := make(chan struct{})
	go func() {
		_ = c.Wait()
		close(done)
	}()
	// The flood removes its helper copy on an interrupt; dd ends on it.
	stop := func() {
		_ = c.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
	return &workload{pid: c.Process.Pid, done: done, stop: stop}, nil
}

func ended(done chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// switcher puts a segment's side in place: a toggler's programs, or a
// running monitor's capture (-control).
type switcher interface{ set(on bool) error }

// measureSegment runs one segment, with or without the monitor, and
// returns it and (with, a monitor started for it) the monitor's start-up
// CPU seconds. mon, when set, runs the whole time and hooks switches its
// capture; its CPU is read in every segment.
func measureSegment(ctx context.Context, cfg config, wpid int, with bool, hz float64, hooks switcher, mon *monitor, idle cpuIdle) (segment, float64, error) {
	started := false
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
		started = true
	}
	if err := sleep(ctx, cfg.settle); err != nil {
		return segment{}, 0, err
	}
	s0, err := read(cfg, wpid, mon, idle)
	if err != nil {
		return segment{}, 0, err
	}
	if err := sleep(ctx, cfg.segment); err != nil {
		return segment{}, 0, err
	}
	s1, err := read(cfg, wpid, mon, idle)
	if err != nil {
		return segment{}, 0, err
	}
	var startup float64
	if started {
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
		monCPUs: float64(s1.monNs-s0.monNs) / 1e9,
	}
	if cfg.workload == "dd" {
		seg.workNs = float64(s1.workCPU-s0.workCPU) / units
	}
	if idle.cpus > 0 {
		busyUs := float64(idle.cpus)*float64(s1.at.Sub(s0.at).Microseconds()) - float64(s1.idleUs-s0.idleUs)
		seg.fineNs = busyUs * 1e3 / units
		seg.otherNs = (busyUs*1e3 - float64(s1.asideNs-s0.asideNs)) / units
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

// exited reports whether the monitor has ended (without consuming its
// result, which stop still returns).
func (m *monitor) exited() bool {
	select {
	case err := <-m.done:
		m.done <- err
		return true
	default:
		return false
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

func read(cfg config, wpid int, mon *monitor, idle cpuIdle) (sample, error) {
	workload := cfg.workload
	s := sample{at: time.Now()}
	var err error
	if s.idleUs, err = idle.read(); err != nil {
		return s, err
	}
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
		if s.monNs, err = threadsNs(mon.cmd.Process.Pid); err != nil {
			return s, err
		}
		s.asideNs = s.monNs
	}
	for _, pid := range cfg.aside {
		ns, err := threadsNs(pid)
		if err != nil {
			return s, fmt.Errorf("-aside %d: %w", pid, err)
		}
		s.asideNs += ns
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

// cpuIdle is each online CPU's cpuidle state residency files, µs of idle
// time since boot, and how many CPUs they cover; no files where the kernel
// has no cpuidle driver.
type cpuIdle struct {
	files []string
	cpus  int
}

func openCPUIdle() (cpuIdle, error) {
	files, err := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/cpuidle/state[0-9]*/time")
	if err != nil {
		return cpuIdle{}, err
	}
	cpus := map[string]bool{}
	for _, f := range files {
		cpus[filepath.Dir(filepath.Dir(filepath.Dir(f)))] = true
	}
	return cpuIdle{files: files, cpus: len(cpus)}, nil
}

func (c cpuIdle) read() (uint64, error) {
	var us uint64
	for _, f := range c.files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", f, err)
		}
		us += v
	}
	return us, nil
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

// threadsNs is the CPU ns of all a process's live threads, at the
// scheduler's precision (/proc/PID/task/*/schedstat). A thread that exits
// between two reads takes its time with it: for long-lived services (a
// sensor, a NATS server) whose threads live as long as they do.
func threadsNs(pid int) (uint64, error) {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil {
		return 0, err
	}
	if len(files) == 0 {
		return 0, fmt.Errorf("/proc/%d: no threads (has it exited?)", pid)
	}
	var ns uint64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited since the glob
		}
		if fs := strings.Fields(string(b)); len(fs) > 0 {
			v, err := strconv.ParseUint(fs[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", f, err)
			}
			ns += v
		}
	}
	return ns, nil
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
// progress (the monitor's own CPU included), from /proc/stat's ticks and,
// finer, from cpuidle's µs; dd's own CPU per syscall; and wall time per
// unit (the workload's throughput, which the host's steal also moves).
// Then the "without" windows' median cost per unit, which turns an
// overhead into ns per unit.
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
	var busy, fine, other, work, wall, mon, monWithout []float64
	for _, p := range by {
		if p[0] == nil || p[1] == nil {
			continue
		}
		busy = append(busy, 100*(p[1].busyNs/p[0].busyNs-1))
		if p[0].fineNs > 0 {
			fine = append(fine, 100*(p[1].fineNs/p[0].fineNs-1))
			if len(cfg.monitor) > 0 || len(cfg.aside) > 0 {
				other = append(other, 100*(p[1].otherNs/p[0].otherNs-1))
			}
		}
		wall = append(wall, 100*((p[1].wall/p[1].units)/(p[0].wall/p[0].units)-1))
		if p[0].workNs > 0 {
			work = append(work, 100*(p[1].workNs/p[0].workNs-1))
		}
		mon = append(mon, p[1].monCPUs)
		monWithout = append(monWithout, p[0].monCPUs)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "summary workload=%s pairs=%d segment_s=%.3f", cfg.workload, len(busy), cfg.segment.Seconds())
	if cfg.toggle != "" {
		fmt.Fprintf(&b, " toggle=%s", cfg.toggle)
	}
	if cfg.control != "" {
		b.WriteString(" control=1")
	}
	if cfg.base != "" {
		fmt.Fprintf(&b, " base=%s", cfg.base)
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
	write("node_fine_cpu_overhead_pct", fine)
	write("node_other_cpu_overhead_pct", other)
	write("work_cpu_overhead_pct", work)
	write("wall_per_unit_overhead_pct", wall)
	// The "without" windows' cost per unit: what an overhead is a share
	// of, to turn it into ns per unit.
	var base, baseFine, baseOther []float64
	for _, p := range by {
		if p[0] != nil {
			base = append(base, p[0].busyNs)
			if p[0].fineNs > 0 {
				baseFine = append(baseFine, p[0].fineNs)
				baseOther = append(baseOther, p[0].otherNs)
			}
		}
	}
	if med, _, _, _ := stats(base); len(base) > 0 {
		fmt.Fprintf(&b, " without_busy_ns_per_unit_median=%.1f", med)
	}
	if med, _, _, _ := stats(baseFine); len(baseFine) > 0 {
		fmt.Fprintf(&b, " without_fine_busy_ns_per_unit_median=%.1f", med)
	}
	if med, _, _, _ := stats(baseOther); len(other) > 0 {
		fmt.Fprintf(&b, " without_other_ns_per_unit_median=%.1f", med)
	}
	med, _, _, _ := stats(mon)
	fmt.Fprintf(&b, " monitor_cpu_s_per_segment_median=%.4f", med)
	if cfg.control != "" {
		// Under -control the monitor runs in both halves: its CPU in the
		// "without" segments is what it costs idle, kept apart from the
		// "with" median above.
		med, _, _, _ := stats(monWithout)
		fmt.Fprintf(&b, " monitor_cpu_s_per_segment_without_median=%.4f", med)
	}
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

// toggler attaches and detaches, in this process, `ringwise measure`'s
// counting programs (segab -toggle syscalls|lifecycle|all) or do-nothing
// programs on the same lifecycle tracepoints (-toggle noop).
type toggler struct {
	m                   *bpf.Meter // nil for -toggle noop
	syscalls, lifecycle bool
	// noop: the toggled set for -toggle noop; with -base noop, what the
	// "without" windows hold in place of measure's lifecycle counters.
	noop *noopLifecycle
	base bool
}

func newToggler(what, base string) (*toggler, error) {
	t := &toggler{}
	if what == "noop" || base == "noop" {
		n, err := loadNoopLifecycle()
		if err != nil {
			return nil, err
		}
		t.noop, t.base = n, base == "noop"
	}
	if what != "noop" {
		m, err := bpf.LoadMeter(bpf.MeterConfig{SelfTGID: uint32(os.Getpid())})
		if err != nil {
			t.close()
			return nil, err
		}
		t.m, t.syscalls, t.lifecycle = m, what != "lifecycle", what != "syscalls"
	}
	// LoadMeter attached everything: start in the "without" state.
	if err := t.set(false); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// set puts the "with" (on) or "without" programs in place; measure's other
// programs stay detached. With -base noop the incoming set is attached
// before the outgoing one is detached, so no lifecycle tracepoint is ever
// left without a program (and its static key never flips).
func (t *toggler) set(on bool) error {
	if t.m == nil {
		return t.noop.set(on)
	}
	if err := t.m.SetSyscalls(on && t.syscalls); err != nil {
		return err
	}
	if !t.base {
		return t.m.SetLifecycle(on && t.lifecycle)
	}
	if on {
		if err := t.m.SetLifecycle(true); err != nil {
			return err
		}
		return t.noop.set(false)
	}
	if err := t.noop.set(true); err != nil {
		return err
	}
	return t.m.SetLifecycle(false)
}

func (t *toggler) close() {
	if t.m != nil {
		t.m.Close()
	}
	if t.noop != nil {
		t.noop.close()
	}
}
