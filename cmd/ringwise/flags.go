package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/ringspec"
	"github.com/ringwise/ringwise/services/syscalls"
)

// sizeFlag is a ring size in bytes given with a unit (64KiB, 16MiB).
type sizeFlag struct{ n *int }

func (s sizeFlag) String() string {
	if s.n == nil || *s.n == 0 {
		return ""
	}
	return ringspec.FlagSize(*s.n)
}

func (s sizeFlag) Set(v string) error {
	n, err := ringspec.ParseSize(v)
	if err != nil {
		return err
	}
	*s.n = n
	return nil
}

// sensorFlags are the flags every command that runs a sensor shares.
type sensorFlags struct {
	node          string
	ringSize      int
	preset        int
	layout        string
	cpusPerRing   int
	lifecycleSize int
	hints         bool
	lifecycleOnly bool
	excludeSelf   bool
	consumerCost  time.Duration
	captureCtl    string
	shedHigh      float64
	shedLow       float64
	shedSyscalls  string
	syscalls      string
	syscallHook   string
	batchEvents   int
	batchDelay    time.Duration
	argsMax       int
}

func (f *sensorFlags) register(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	fs.StringVar(&f.node, "node", host, "node name, the last token of every subject")
	fs.Var(sizeFlag{&f.ringSize}, "ring-size", "ring size in bytes, a power of two with an optional unit: 64KiB, 16MiB (overrides --buf-size-preset)")
	fs.IntVar(&f.preset, "buf-size-preset", ringspec.DefaultPreset, "ring size as Falco's bufSizePreset: "+ringspec.PresetHelp())
	fs.StringVar(&f.layout, "layout", string(ringspec.DefaultLayout), "ring layout: shared (one ring for all CPUs), split (lifecycle events get their own ring) or falco (Falco's modern probe: one ring of the preset size per group of --cpus-per-ring CPUs; the same as shared on a node of at most that many CPUs)")
	fs.IntVar(&f.cpusPerRing, "cpus-per-ring", ringspec.DefaultCPUsPerRing, "CPUs per ring in the falco layout (Falco's cpus_for_each_buffer)")
	fs.Var(sizeFlag{&f.lifecycleSize}, "lifecycle-ring-size", "lifecycle ring size of the split layout (default "+ringspec.FlagSize(ringspec.DefaultLifecycleRingSize)+")")
	fs.BoolVar(&f.lifecycleOnly, "lifecycle-only", false, "capture fork, exec and exit only: the per-syscall program is not attached")
	fs.BoolVar(&f.hints, "hints", false, "write a fork or exec record the ring dropped again at the process's next syscall exit (plain syscall records; bytes only after a loss)")
	fs.BoolVar(&f.excludeSelf, "exclude-self", true, "leave this process's own threads out of capture, in the kernel")
	fs.DurationVar(&f.consumerCost, "consumer-cost", 0, "LAB KNOB: busy work added per event in the sensor's reader to emulate a loaded monitor (e.g. 20us)")
	fs.StringVar(&f.captureCtl, "lab-capture-control", "", "LAB KNOB: a unix socket PATH on which the lines \"off\" and \"on\" detach and attach the sensor's BPF programs while it keeps running, for an in-run A/B of what capture costs (internal/tools/segab -control); while off, the node's processes are not seen")
	fs.Float64Var(&f.shedHigh, "shed-high", 0, "adaptive shedding: ring fill fraction above which low-value syscalls are shed (0 = off; the lab's shared+shed uses "+strconv.FormatFloat(ringspec.DefaultShedHighWater, 'g', -1, 64)+")")
	fs.Float64Var(&f.shedLow, "shed-low", ringspec.DefaultShedLowWater, "adaptive shedding: ring fill fraction below which shedding stops")
	fs.StringVar(&f.shedSyscalls, "shed-syscalls", sensor.DefaultShedSyscalls, "comma-separated syscall names eligible for shedding; names this architecture lacks are skipped")
	fs.StringVar(&f.syscalls, "syscalls", "", "comma-separated syscall names to capture, as Falco's base_syscalls.custom_set, or \"all\" for every syscall (Falco's -A); the others are neither written nor counted; fork, exec and exit records are always captured. Default: the process, credential, file, network and kernel-module calls a security team reads ("+strconv.Itoa(len(strings.Split(syscalls.DefaultCapture(), ",")))+" names: "+syscalls.DefaultCapture()+"), not the read/write, mmap, signal, clock, poll and fd-table calls that dominate a busy node")
	fs.StringVar(&f.syscallHook, "syscall-hook", string(bpf.HookSysExit), "how syscall records are hooked: sys_exit (one program every syscall of the node pays for, filtering the capture set; the default, and the hook CI tests), fexit (one program per kernel syscall function of the set: syscalls outside it cost nothing; needs a kernel that takes fexit programs, and is not tested in CI, whose kernel refuses them), or auto (fexit when the kernel takes it and every name has a function, else sys_exit; the sensor logs which)")
	fs.IntVar(&f.argsMax, "args-max", bpf.ArgsMax, "bytes of argv an exec record keeps (1.."+strconv.Itoa(bpf.ArgsMax)+"); longer command lines are cut and flagged truncated; smaller costs less ring space (see ringwise lab --args-max)")
	fs.IntVar(&f.batchEvents, "batch-events", sensor.DefaultBatchMaxEvents, "max events per published batch")
	fs.DurationVar(&f.batchDelay, "batch-delay", sensor.DefaultBatchMaxDelay, "max time an event waits in an open batch")
}

// config turns the flags into a sensor configuration.
func (f *sensorFlags) config() (sensor.Config, error) {
	size := f.ringSize
	if size == 0 {
		n, err := ringspec.PresetSize(f.preset)
		if err != nil {
			return sensor.Config{}, fmt.Errorf("--buf-size-preset: %w", err)
		}
		size = n
	}
	if f.consumerCost < 0 {
		return sensor.Config{}, fmt.Errorf("--consumer-cost %v: must be >= 0", f.consumerCost)
	}
	layout, err := ringspec.ParseLayout(f.layout, ringspec.ProbeLayouts()...)
	if err != nil {
		return sensor.Config{}, fmt.Errorf("--layout: %w", err)
	}
	if f.cpusPerRing < 0 {
		return sensor.Config{}, fmt.Errorf("--cpus-per-ring %d: want at least 1", f.cpusPerRing)
	}
	// The sensor traces this machine's syscalls: its own ABI's numbers.
	shed, _, err := parseSyscallNames("shed-syscalls", f.shedSyscalls)
	if err != nil {
		return sensor.Config{}, err
	}
	var capture []uint32 // nil: every syscall
	switch set := strings.TrimSpace(f.syscalls); set {
	case syscalls.AllSyscalls:
	case "":
		// The default set: names this architecture lacks are skipped.
		if capture, _, err = parseSyscallNames("syscalls", syscalls.DefaultCapture()); err != nil {
			return sensor.Config{}, err
		}
	default:
		if capture, _, err = parseSyscallNames("syscalls", set); err != nil {
			return sensor.Config{}, err
		}
		if capture == nil {
			capture = []uint32{} // only names this architecture lacks: capture none
		}
	}
	hook, err := bpf.ParseSyscallHook(f.syscallHook)
	if err != nil {
		return sensor.Config{}, fmt.Errorf("--syscall-hook: %w", err)
	}
	if hook == bpf.HookFexit && capture == nil {
		return sensor.Config{}, fmt.Errorf("--syscall-hook fexit needs a capture set: with --syscalls all every syscall is hooked on sys_exit")
	}
	cfg := sensor.Config{
		Node: f.node,
		Probe: bpf.Config{RingSize: size, LifecycleRingSize: f.lifecycleSize, Layout: layout, Hints: f.hints, LifecycleOnly: f.lifecycleOnly,
			ShedSyscalls: shed, CPUsPerRing: f.cpusPerRing, CaptureSyscalls: capture, SyscallHook: hook, ArgsMax: f.argsMax}, // CPUsPerRing 0: ringspec.DefaultCPUsPerRing
		ExcludeSelf:    f.excludeSelf,
		ConsumerCost:   f.consumerCost,
		CaptureControl: f.captureCtl,
		BatchMaxEvents: f.batchEvents,
		BatchMaxDelay:  f.batchDelay,
	}
	if f.shedHigh > 0 {
		cfg.ShedHighWater, cfg.ShedLowWater = f.shedHigh, f.shedLow
	}
	return cfg, nil
}
