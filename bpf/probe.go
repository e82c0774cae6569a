package bpf

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
	"github.com/ringwise/ringwise/services/syscalls"
)

// BTFPath is where the kernel exposes its BTF; CO-RE relocations and the
// tp_btf attach points are resolved against it.
const BTFPath = "/sys/kernel/btf/vmlinux"

// Config configures Load.
type Config struct {
	// RingSize is the size in bytes of the syscall ring (the only ring in
	// the shared layout): a power of two, at least a page. See
	// ringspec.ParseSize.
	RingSize int
	// LifecycleRingSize is the lifecycle ring of the split layout; 0 means
	// ringspec.DefaultLifecycleRingSize. Ignored by the shared layout.
	LifecycleRingSize int
	// Layout is one of ringspec.ProbeLayouts: ringspec.LayoutShared (the
	// default when empty: one ring for all CPUs), ringspec.LayoutSplit, or
	// ringspec.LayoutFalco (Falco's modern probe: one ring of RingSize per
	// group of CPUsPerRing CPUs, each CPU writing to its group's ring).
	Layout ringspec.Layout
	// CPUsPerRing is Falco's cpus_for_each_buffer for LayoutFalco; 0 means
	// ringspec.DefaultCPUsPerRing. Ignored by the other layouts.
	CPUsPerRing int
	// LegacyGroupDeath makes exit records find group death as kernels
	// before 6.16 must (no group_dead argument to sched_process_exit: the
	// first thread to see signal->live at 0 marks the group leader). The
	// loader picks it by itself when the kernel's BTF lacks the argument;
	// tests set it to check that path on a newer kernel.
	LegacyGroupDeath bool
	// LifecycleOnly records fork, exec and exit only: the per-syscall
	// program (tp_btf/sys_exit) is not attached, so syscalls cost the
	// traced workload nothing.
	LifecycleOnly bool
	// Hints writes a fork or exec record the ring dropped again, flagged
	// FlagHints, at the process's next syscall exit that finds room: the
	// bytes a lost lifecycle record takes away, paid only after a loss
	// (syscall records keep their plain size).
	Hints bool
	// ExcludeTGIDs are thread-group ids whose syscalls, threads, execs and
	// exits are not recorded (the sensor itself, its embedded NATS), so load
	// does not feed on itself. Forks *by* them are still recorded: the
	// subject of a fork is the child.
	ExcludeTGIDs []uint32
	// ExcludeSelf adds the loading process's own thread-group id, as the
	// kernel sees it (GlobalTGID: the initial namespace's id, not
	// os.Getpid, which in a container is a namespace's), to ExcludeTGIDs.
	ExcludeSelf bool
	// ProcRoot is the host's /proc (see procfs.HostProc), read only when
	// the kernel cannot tell the process its global id (GlobalTGID).
	ProcRoot string
	// ShedSyscalls are the syscall numbers dropped by policy while shedding
	// is on (SetShedding).
	ShedSyscalls []uint32
	// CaptureSyscalls, when not nil, are the only syscall numbers captured:
	// the others are neither written nor counted, as in Falco, which only
	// captures the syscalls its rules and base_syscalls need. Lifecycle
	// records are always captured. Numbers ≥ CaptureMaxNr are refused.
	CaptureSyscalls []uint32
	// SyscallHook is how syscall records are hooked: HookAuto (the zero
	// value) attaches one fexit program per kernel function of a capture
	// set when every syscall of the set has one, so syscalls outside the
	// set cost nothing; HookSysExit is the one sys_exit program that every
	// syscall of the node pays for. Without a capture set the hook is
	// always sys_exit. Probe.Hook says what was attached and why.
	SyscallHook SyscallHook
	// ArgsMax bounds the argv bytes an exec record keeps (load time, the
	// exec program's args_max): 0 means ArgsMax (4 KiB, Falco's bound),
	// at most ArgsMax. Longer command lines are cut and flagged
	// FlagTruncated; a smaller bound makes exec records cheaper in the ring
	// (the trade-off `ringwise lab --args-max` measures).
	ArgsMax int
	// WakeupBytes: records are submitted without waking the reader until a
	// ring holds more than this many unread bytes, since one wakeup per
	// record costs the traced workload more than the probe itself. 0 means
	// RingSize/16. Readers must poll with a deadline (Ring.Read).
	WakeupBytes int
}

// CaptureMaxNr bounds Config.CaptureSyscalls (the kernel map's size).
const CaptureMaxNr = 1024

func (c *Config) normalize() error {
	for _, nr := range c.CaptureSyscalls {
		if nr >= CaptureMaxNr {
			return fmt.Errorf("ringwise bpf: capture syscall %d: want < %d", nr, CaptureMaxNr)
		}
	}
	if _, err := ParseSyscallHook(string(c.SyscallHook)); err != nil {
		return fmt.Errorf("ringwise bpf: %w", err)
	}
	if c.Layout == "" {
		c.Layout = ringspec.DefaultLayout
	}
	if _, err := ringspec.ParseLayout(string(c.Layout), ringspec.ProbeLayouts()...); err != nil {
		return fmt.Errorf("ringwise bpf: %w", err)
	}
	if err := ringspec.ValidateRingSize(c.RingSize); err != nil {
		return fmt.Errorf("ringwise bpf: ring size %w", err)
	}
	if c.Layout == ringspec.LayoutFalco {
		if c.CPUsPerRing == 0 {
			c.CPUsPerRing = ringspec.DefaultCPUsPerRing
		}
		if c.CPUsPerRing < 1 {
			return fmt.Errorf("ringwise bpf: %d CPUs per ring: want at least 1", c.CPUsPerRing)
		}
	}
	if c.Layout.HasLifecycleRing() {
		if c.LifecycleRingSize == 0 {
			c.LifecycleRingSize = ringspec.DefaultLifecycleRingSize
		}
		if err := ringspec.ValidateRingSize(c.LifecycleRingSize); err != nil {
			return fmt.Errorf("ringwise bpf: lifecycle ring size %w", err)
		}
	}
	if c.ArgsMax == 0 {
		c.ArgsMax = ArgsMax
	}
	if c.ArgsMax < 0 || c.ArgsMax > ArgsMax {
		return fmt.Errorf("ringwise bpf: args max %d: want 1..%d bytes", c.ArgsMax, ArgsMax)
	}
	if c.WakeupBytes < 0 {
		return fmt.Errorf("ringwise bpf: negative wakeup bytes %d", c.WakeupBytes)
	}
	if c.WakeupBytes == 0 {
		c.WakeupBytes = c.RingSize / 16
	}
	return nil
}

// Probe is a loaded and attached sensor. Close it to release the kernel
// objects.
type Probe struct {
	cfg   Config
	objs  probeObjects
	inner []*ebpf.Map // LayoutFalco's rings
	mu    sync.Mutex
	links []link.Link
	// lifecycle is the split layout's lifecycle ring (nil otherwise);
	// syscall holds syscall records (and, for shared, everything; nil for
	// falco); cpus are the falco layout's rings, one per CPU group.
	lifecycle, syscall *Ring
	cpus               []*Ring
	closed             bool
	// final: Detach ran; SetCapture no longer attaches.
	final bool
	self  uint32 // global tgid excluded by ExcludeSelf
	hook  HookPlan
	// fexit are the copies of rw_sys_fexit, by kernel function (HookFexit).
	fexit map[string]*ebpf.Program
}

// Hook is the syscall hook Load attached (HookSysExit or HookFexit, with
// its kernel functions) and why; Hook is "" for LifecycleOnly.
func (p *Probe) Hook() HookPlan { return p.hook }

// SelfTGID is the loading process's global thread-group id when
// Config.ExcludeSelf was set (0 otherwise).
func (p *Probe) SelfTGID() uint32 { return p.self }

// Load validates cfg, loads the BPF objects with the ring sizes and
// constants of cfg, fills the exclusion and shedding maps, opens the ring
// readers and attaches the programs. Its errors name what is missing
// (privileges, kernel BTF, memlock) and wrap the underlying error; a verifier
// rejection includes the full verifier log.
func Load(cfg Config) (*Probe, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(BTFPath); err != nil {
		return nil, fmt.Errorf("ringwise bpf: no BTF at %s (kernel needs CONFIG_DEBUG_INFO_BTF=y; in a container mount it: /sys/kernel/btf:/sys/kernel/btf:ro): %w", BTFPath, err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("ringwise bpf: cannot remove the memlock rlimit (needs CAP_SYS_RESOURCE on kernels < 5.11): %w", err)
	}

	spec, err := loadRingwise()
	if err != nil {
		return nil, fmt.Errorf("ringwise bpf: %w", err)
	}
	page := os.Getpagesize()
	layout := uint32(layoutShared)
	sysSize, lcSize, nRings := cfg.RingSize, page, 1 // unused rings: keep them minimal
	switch cfg.Layout {
	case ringspec.LayoutSplit:
		layout, lcSize = layoutSplit, cfg.LifecycleRingSize
	case ringspec.LayoutFalco:
		cpus, err := ebpf.PossibleCPU()
		if err != nil {
			return nil, fmt.Errorf("ringwise bpf: possible CPUs: %w", err)
		}
		layout, sysSize, nRings = layoutFalco, page, FalcoRings(cpus, cfg.CPUsPerRing)
	}
	spec.Maps[ringwiseMapRbSyscall].MaxEntries = uint32(sysSize)
	spec.Maps[ringwiseMapRbLifecycle].MaxEntries = uint32(lcSize)
	spec.Maps[ringwiseMapRbCpus].MaxEntries = uint32(nRings)
	innerSpec := spec.Maps[ringwiseMapRbCpus].InnerMap
	innerSpec.MaxEntries = uint32(cfg.RingSize)
	// Each ring wakes the reader at its own sixteenth: the syscall ring's
	// threshold may exceed the whole lifecycle ring.
	lcWakeup := lcSize / 16
	capture := uint32(0)
	if cfg.CaptureSyscalls != nil {
		capture = 1
	}
	hints := uint32(0)
	if cfg.Hints {
		hints = 1
	}
	cpusPerRing := uint32(max(cfg.CPUsPerRing, 1))
	for name, v := range map[string]any{
		ringwiseVarLayout:        layout,
		ringwiseVarCpusPerRing:   cpusPerRing,
		ringwiseVarHints:         hints,
		ringwiseVarWakeupBytes:   uint64(cfg.WakeupBytes),
		ringwiseVarLcWakeupBytes: uint64(lcWakeup),
		ringwiseVarCaptureFilter: capture,
		ringwiseVarArgsMax:       uint32(cfg.ArgsMax),
	} {
		vs, ok := spec.Variables[name]
		if !ok {
			return nil, fmt.Errorf("ringwise bpf: object has no variable %q", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("ringwise bpf: set %s: %w", name, err)
		}
	}
	// One exit program: with the kernel's group_dead argument when the
	// kernel has it (6.16+), else the legacy one.
	if !cfg.LegacyGroupDeath && !ExitHasGroupDead() {
		cfg.LegacyGroupDeath = true
	}
	if cfg.LegacyGroupDeath {
		spec.Programs[ringwiseProgRwExit] = spec.Programs[ringwiseProgRwExitLegacy]
	}
	delete(spec.Programs, ringwiseProgRwExitLegacy)

	p := &Probe{cfg: cfg}
	// The fexit template has no target: one copy per kernel function.
	tmpl := spec.Programs[ringwiseProgRwSysFexit]
	delete(spec.Programs, ringwiseProgRwSysFexit)
	if !cfg.LifecycleOnly {
		has := func(string) bool { return false }
		if cfg.CaptureSyscalls != nil && cfg.SyscallHook != HookSysExit {
			if has, err = kernelFuncs(); err != nil {
				return nil, err
			}
		}
		if p.hook, err = planHook(cfg.SyscallHook, cfg.CaptureSyscalls, syscalls.Native(), nativeGOARCH(), has); err != nil {
			return nil, err
		}
		if p.hook.Hook == HookFexit && len(p.hook.Funcs) > 0 {
			if ferr := fexitLoadable(p.hook.Funcs[0]); ferr != nil {
				if cfg.SyscallHook == HookFexit {
					return nil, fmt.Errorf("ringwise bpf: the kernel refuses fexit programs (needs CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS and no LSM policy against BPF trampolines); use the sys_exit hook: %w", ferr)
				}
				p.hook = HookPlan{Hook: HookSysExit, Reason: fmt.Sprintf("the kernel refuses fexit programs (%v)", ferr)}
			}
		}
		for _, fn := range p.hook.Funcs {
			c := tmpl.Copy()
			c.AttachTo, c.AttachType = fn, ebpf.AttachTraceFExit
			spec.Programs[fexitProgKey(fn)] = c
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{})
	if err == nil {
		err = coll.Assign(&p.objs)
		p.fexit = make(map[string]*ebpf.Program, len(p.hook.Funcs))
		for _, fn := range p.hook.Funcs {
			p.fexit[fn] = coll.Programs[fexitProgKey(fn)]
			delete(coll.Programs, fexitProgKey(fn))
		}
		coll.Close() // what is left: .rodata and the like, held by the programs
	}
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("ringwise bpf: verifier rejected the program: %+v", verr)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("ringwise bpf: loading denied: not root / missing CAP_BPF+CAP_PERFMON (or locked down kernel): %w", err)
		}
		return nil, fmt.Errorf("ringwise bpf: loading objects: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()

	if cfg.ExcludeSelf {
		self, err := whoami(p.objs.Whoami)
		if err != nil {
			if self, err = nsPidOuter(cfg.ProcRoot); err != nil {
				return nil, fmt.Errorf("ringwise bpf: own global tgid to exclude: %w", err)
			}
		}
		p.self = self
		p.cfg.ExcludeTGIDs = append(p.cfg.ExcludeTGIDs[:len(p.cfg.ExcludeTGIDs):len(p.cfg.ExcludeTGIDs)], self)
	}
	one := uint8(1)
	for _, tgid := range p.cfg.ExcludeTGIDs {
		if err := p.objs.ExcludedTgids.Put(tgid, one); err != nil {
			return nil, fmt.Errorf("ringwise bpf: exclude tgid %d: %w", tgid, err)
		}
	}
	for _, nr := range cfg.CaptureSyscalls {
		if err := p.objs.CaptureSyscalls.Put(nr, one); err != nil {
			return nil, fmt.Errorf("ringwise bpf: capture syscall %d: %w", nr, err)
		}
	}
	for _, nr := range cfg.ShedSyscalls {
		if err := p.objs.ShedSyscalls.Put(nr, one); err != nil {
			return nil, fmt.Errorf("ringwise bpf: shed syscall %d: %w", nr, err)
		}
	}

	if cfg.Layout == ringspec.LayoutFalco {
		for i := range nRings {
			m, err := ebpf.NewMap(innerSpec)
			if err != nil {
				return nil, fmt.Errorf("ringwise bpf: create ring %d of %d: %w", i, nRings, err)
			}
			p.inner = append(p.inner, m)
			if err := p.objs.RbCpus.Put(uint32(i), m); err != nil {
				return nil, fmt.Errorf("ringwise bpf: insert ring %d: %w", i, err)
			}
		}
	}

	// Readers first, so nothing written after attach can be missed.
	for i, m := range p.inner {
		first := i * cfg.CPUsPerRing
		r, err := newRing(fmt.Sprintf("cpus%d-%d", first, first+cfg.CPUsPerRing-1), m)
		if err != nil {
			return nil, err
		}
		p.cpus = append(p.cpus, r)
	}
	sysName := "shared"
	if cfg.Layout.HasLifecycleRing() {
		sysName = "syscall"
		if p.lifecycle, err = newRing("lifecycle", p.objs.RbLifecycle); err != nil {
			return nil, err
		}
	}
	if cfg.Layout != ringspec.LayoutFalco {
		if p.syscall, err = newRing(sysName, p.objs.RbSyscall); err != nil {
			return nil, err
		}
	}

	if err := p.attach(); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// attach attaches the programs Load chose: the lifecycle tracepoints, the
// cgroup one, and the syscall hook (sys_exit, or one fexit per kernel
// function) unless LifecycleOnly. On an error the links made so far stay
// in p.links, for Detach or Close to release.
func (p *Probe) attach() error {
	cfg := p.cfg
	for _, prog := range []struct {
		name string
		prog *ebpf.Program
	}{
		{"sched_process_fork", p.objs.Fork},
		{"sched_process_exec", p.objs.Exec},
		{"sched_process_exit", p.objs.Exit},
		{"cgroup_attach_task", p.objs.Cgroup},
		{"sys_exit", p.objs.SysExit},
	} {
		if prog.prog == p.objs.SysExit && (cfg.LifecycleOnly || p.hook.Hook != HookSysExit) {
			continue
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: prog.prog})
		if err != nil {
			return fmt.Errorf("ringwise bpf: attach tp_btf/%s: %w", prog.name, err)
		}
		p.links = append(p.links, l)
	}
	for _, fn := range p.hook.Funcs {
		l, err := link.AttachTracing(link.TracingOptions{Program: p.fexit[fn], AttachType: ebpf.AttachTraceFExit})
		if err != nil {
			return fmt.Errorf("ringwise bpf: attach fexit/%s (the kernel needs fexit support: CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS; else use the sys_exit hook): %w", fn, err)
		}
		p.links = append(p.links, l)
	}
	return nil
}

// SetCapture detaches (false) or attaches again (true) the programs Load
// attached, keeping maps, rings and counters. It is for a lab's in-run A/B
// of what capture costs (segab -control, through the sensor's
// Config.CaptureControl): while detached the node's fork, exec, exit and
// syscalls are neither recorded nor counted, so a sensor's process state
// misses what started meanwhile. Setting the state it is in is a no-op;
// after Detach or Close it fails.
func (p *Probe) SetCapture(on bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.final {
		return errors.New("ringwise bpf: capture already detached for good (Detach or Close)")
	}
	if !on {
		return p.closeLinks()
	}
	if len(p.links) > 0 {
		return nil
	}
	if err := p.attach(); err != nil {
		return errors.Join(err, p.closeLinks())
	}
	return nil
}

func (p *Probe) closeLinks() error {
	var errs []error
	for _, l := range p.links {
		if err := l.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	p.links = nil
	return errors.Join(errs...)
}

// checkPrivileges fails early with a readable message instead of an EPERM
// from deep inside the loader: loading tracing programs needs CAP_SYS_ADMIN,
// or CAP_BPF plus CAP_PERFMON.
// Capability numbers (linux/capability.h).
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// checkPrivileges names what is missing to load the programs. It reads the
// effective capabilities whatever the uid: root in a container has only the
// capabilities the engine granted it.
func checkPrivileges() error {
	eff, err := effectiveCaps()
	if err != nil {
		if os.Geteuid() == 0 {
			return nil // no /proc/self/status: let the load say what fails
		}
		return fmt.Errorf("ringwise bpf: not root and cannot read capabilities: %w", err)
	}
	return missingCaps(eff)
}

// missingCaps returns nil when the effective capability set eff can load
// and attach the programs: CAP_BPF and CAP_PERFMON (kernel >= 5.8), or
// CAP_SYS_ADMIN, which the kernel accepts for both. Otherwise its error
// names the missing capabilities and how a container grants them.
func missingCaps(eff uint64) error {
	has := func(c uint) bool { return eff&(1<<c) != 0 }
	if has(capSysAdmin) || (has(capBPF) && has(capPerfmon)) {
		return nil
	}
	var missing []string
	if !has(capBPF) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(capPerfmon) {
		missing = append(missing, "CAP_PERFMON")
	}
	return fmt.Errorf("ringwise bpf: missing %s (effective capabilities %#x): loading needs CAP_BPF and CAP_PERFMON, "+
		"or CAP_SYS_ADMIN in their place (in a container: cap_add BPF, PERFMON; SYS_ADMIN on engines that do not know CAP_BPF, such as Docker 20.10)",
		strings.Join(missing, " and "), eff)
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapEff in /proc/self/status")
}

// Config returns the normalized configuration the probe was loaded with.
func (p *Probe) Config() Config { return p.cfg }

// LifecycleRing is the split layout's lifecycle ring (fork, exec, exit), nil
// for the shared layout. Read each ring from one goroutine.
func (p *Probe) LifecycleRing() *Ring { return p.lifecycle }

// SyscallRing is the ring of syscall records: for the shared layout, the one
// ring that holds every record; nil for the falco layout (CPURings).
func (p *Probe) SyscallRing() *Ring { return p.syscall }

// CPURings are the falco layout's rings, one per group of CPUsPerRing CPUs
// in CPU order, each holding every record of its CPUs; nil for the other
// layouts. Read each from one goroutine.
func (p *Probe) CPURings() []*Ring { return p.cpus }

// Rings returns every ring of the probe: the lifecycle ring first, if any,
// then the syscall ring, or the falco layout's CPU rings.
func (p *Probe) Rings() []*Ring {
	switch {
	case p.cpus != nil:
		return p.cpus
	case p.lifecycle != nil:
		return []*Ring{p.lifecycle, p.syscall}
	}
	return []*Ring{p.syscall}
}

// DetachGrace is how long Detach waits after closing the links, so that
// programs already running on other CPUs finish their reserve/submit and the
// counters read after Detach and a drain are final.
const DetachGrace = 20 * time.Millisecond

// Detach detaches the programs but keeps maps and rings open, then waits
// DetachGrace, so that a caller can drain the rings completely (Ring.Flush)
// and then read final counters for which attempted == delivered + dropped
// holds exactly. It is idempotent; only the first call waits.
func (p *Probe) Detach() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.final = true
	if len(p.links) == 0 {
		return nil
	}
	err := p.closeLinks()
	time.Sleep(DetachGrace)
	return err
}

// Close detaches the programs and releases rings and maps. Blocked
// Ring.Read calls return os.ErrClosed. Closing twice is a no-op.
func (p *Probe) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	errs := []error{p.Detach()}
	for _, r := range append([]*Ring{p.lifecycle, p.syscall}, p.cpus...) {
		if r != nil {
			errs = append(errs, r.close())
		}
	}
	errs = append(errs, p.objs.close())
	for _, prog := range p.fexit {
		if prog != nil {
			errs = append(errs, prog.Close())
		}
	}
	for _, m := range p.inner {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}

// Counters reads the kernel's cumulative counters, summed over CPUs:
// Attempted (every reserve attempt), Dropped (reserve failed: ring full) and
// Shed (syscall records not attempted because of SetShedding). Delivered is
// left zero: the reader fills it (see Ring.Delivered).
//
// Within a category Dropped is read before Attempted. The kernel counts an
// attempt before the reserve and a drop after it fails, so every drop in the
// Dropped reading has its attempt in the later Attempted reading: a caller
// that read Delivered first always sees attempted >= delivered + dropped.
func (p *Probe) Counters() (event.Counters, error) {
	c, _, err := p.CountersByCPU()
	return c, err
}

// CountersByCPU is Counters plus Attempted per CPU (index = the kernel's
// CPU number, over its possible CPUs), from the same lookups: the arrival
// curve per CPU that the ring model needs for Falco's per-CPU-group rings.
func (p *Probe) CountersByCPU() (event.Counters, [][event.NumCategories]uint64, error) {
	var vals []uint64
	var perCPU [][event.NumCategories]uint64
	c, err := readCounters(func(key uint32) (uint64, error) {
		if err := p.objs.Counters.Lookup(key, &vals); err != nil {
			return 0, err
		}
		attempted := int(key)%3 == kindAttempted
		if attempted && perCPU == nil {
			perCPU = make([][event.NumCategories]uint64, len(vals))
		}
		var s uint64
		for i, v := range vals {
			s += v
			if attempted && i < len(perCPU) {
				perCPU[i][int(key)/3] = v
			}
		}
		return s, nil
	})
	return c, perCPU, err
}

// counterKey is the index of a counter in the kernel's counters map
// (category*3 + kind, as in ringwise.bpf.c).
func counterKey(cat event.Category, kind int) uint32 { return uint32(int(cat)*3 + kind) }

const (
	kindAttempted = 0
	kindDropped   = 1
	kindShed      = 2
)

// readCounters reads every counter through lookup (the sum over CPUs of one
// key), Dropped before Attempted within each category (see Counters).
func readCounters(lookup func(key uint32) (uint64, error)) (event.Counters, error) {
	var c event.Counters
	for cat := range event.NumCategories {
		for _, k := range []struct {
			kind int
			row  *[event.NumCategories]uint64
		}{{kindDropped, &c.Dropped}, {kindAttempted, &c.Attempted}, {kindShed, &c.Shed}} {
			key := counterKey(event.Category(cat), k.kind)
			v, err := lookup(key)
			if err != nil {
				return c, fmt.Errorf("ringwise bpf: read counter %d: %w", key, err)
			}
			k.row[cat] = v
		}
	}
	return c, nil
}

// SetShedding turns adaptive shedding on or off. While on, syscall records
// whose number is in Config.ShedSyscalls are not written but counted as shed.
// The sensor turns it on above a ring fill high-water mark (Ring.Pending).
func (p *Probe) SetShedding(on bool) error {
	v := uint32(0)
	if on {
		v = 1
	}
	if err := p.objs.ShedState.Put(uint32(0), v); err != nil {
		return fmt.Errorf("ringwise bpf: set shedding: %w", err)
	}
	return nil
}

// SetShedSyscall adds (on) or removes a syscall number from the shed set.
func (p *Probe) SetShedSyscall(nr uint32, on bool) error {
	if on {
		return p.objs.ShedSyscalls.Put(nr, uint8(1))
	}
	if err := p.objs.ShedSyscalls.Delete(nr); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// Exclude adds (on) or removes a thread-group id from the exclusion set at
// run time, e.g. for a helper process the sensor starts after Load.
func (p *Probe) Exclude(tgid uint32, on bool) error {
	if on {
		return p.objs.ExcludedTgids.Put(tgid, uint8(1))
	}
	if err := p.objs.ExcludedTgids.Delete(tgid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

const (
	layoutShared = 0 // LAYOUT_SHARED in ringwise.bpf.c
	layoutSplit  = 1
	layoutFalco  = 2
)

// probeObjects are the objects Load loads: the maps, and one exit program
// (rw_exit, or rw_exit_legacy under its name).
type probeObjects struct {
	ringwiseMaps
	Fork    *ebpf.Program `ebpf:"rw_fork"`
	Exec    *ebpf.Program `ebpf:"rw_exec"`
	Exit    *ebpf.Program `ebpf:"rw_exit"`
	Cgroup  *ebpf.Program `ebpf:"rw_cgroup_attach"`
	SysExit *ebpf.Program `ebpf:"rw_sys_exit"`
	Whoami  *ebpf.Program `ebpf:"rw_whoami"`
}

func (o *probeObjects) close() error {
	errs := []error{o.ringwiseMaps.Close()}
	for _, p := range []*ebpf.Program{o.Fork, o.Exec, o.Exit, o.Cgroup, o.SysExit, o.Whoami} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	return errors.Join(errs...)
}

// fexitProgKey is the collection's name for the copy of rw_sys_fexit
// attached to kernel function fn.
func fexitProgKey(fn string) string { return ringwiseProgRwSysFexit + "@" + fn }

// FalcoRings is the number of rings of Falco's layout on a node with cpus
// CPUs: one per group of cpusPerRing, the last group possibly smaller.
func FalcoRings(cpus, cpusPerRing int) int {
	if cpusPerRing < 1 {
		cpusPerRing = 1
	}
	return max(1, (cpus+cpusPerRing-1)/cpusPerRing)
}

// ExitHasGroupDead reports whether the kernel's sched_process_exit
// tracepoint passes group_dead (Linux 6.16 and later), read from the
// kernel's BTF (the btf_trace_sched_process_exit typedef: ctx, task,
// group_dead).
func ExitHasGroupDead() bool {
	k, err := btf.LoadKernelSpec()
	if err != nil {
		return false
	}
	var td *btf.Typedef
	if err := k.TypeByName("btf_trace_sched_process_exit", &td); err != nil {
		return false
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return false
	}
	fp, ok := ptr.Target.(*btf.FuncProto)
	return ok && len(fp.Params) >= 3
}
