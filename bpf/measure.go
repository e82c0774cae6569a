package bpf

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// MeasureMaxNr is how many syscall numbers the meter counts one by one;
// higher numbers are counted together (CPUCounts.NrOther).
const MeasureMaxNr = 512

// MeterConfig configures LoadMeter.
type MeterConfig struct {
	// SelfTGID is the measuring process (global tgid): its own syscalls are
	// not counted. 0 counts everything.
	SelfTGID uint32
	// WatchTGID, when nonzero, also counts the processes this thread group
	// forks, their execs and their exits (CPUCounts.Watch*): a way to check
	// the counts against a workload whose size is known.
	WatchTGID uint32
}

// CPUCounts is one CPU's cumulative counters.
type CPUCounts struct {
	Syscalls uint64 // syscall exits
	Forks    uint64 // new processes and threads
	Execs    uint64
	Exits    uint64 // exiting threads
	// NrOther counts syscalls whose number is ≥ MeasureMaxNr (they are in
	// Syscalls too).
	NrOther uint64
	// WatchForks, WatchExecs and WatchExits count the lifecycle of the
	// children of MeterConfig.WatchTGID: processes forked by it, execs of
	// its children, group-leader exits of its children.
	WatchForks, WatchExecs, WatchExits uint64
	// Nr counts syscall exits per syscall number.
	Nr [MeasureMaxNr]uint64
}

// Meter is the loaded, attached counting-only program of `ringwise
// measure`: no records, no ring.
type Meter struct {
	objs    measureObjects
	links   []link.Link // lifecycle: attached from LoadMeter to Close
	sysExit link.Link   // the per-syscall counter, when attached
	ncpu    int
	buf     []measureMeasureCounts
	mu      sync.Mutex
	closed  bool
}

// LoadMeter loads and attaches the counting-only program.
func LoadMeter(cfg MeterConfig) (*Meter, error) {
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(BTFPath); err != nil {
		return nil, fmt.Errorf("ringwise meter: no BTF at %s (kernel needs CONFIG_DEBUG_INFO_BTF=y): %w", BTFPath, err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("ringwise meter: cannot remove the memlock rlimit: %w", err)
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("ringwise meter: possible CPUs: %w", err)
	}
	spec, err := loadMeasure()
	if err != nil {
		return nil, fmt.Errorf("ringwise meter: %w", err)
	}
	for name, v := range map[string]uint32{measureVarSelfTgid: cfg.SelfTGID, measureVarWatchTgid: cfg.WatchTGID} {
		vs, ok := spec.Variables[name]
		if !ok {
			return nil, fmt.Errorf("ringwise meter: object has no variable %q", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("ringwise meter: set %s: %w", name, err)
		}
	}
	m := &Meter{ncpu: ncpu, buf: make([]measureMeasureCounts, ncpu)}
	if err := spec.LoadAndAssign(&m.objs, nil); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("ringwise meter: verifier rejected the program: %+v", verr)
		}
		return nil, fmt.Errorf("ringwise meter: loading objects: %w", err)
	}
	for _, prog := range []struct {
		name string
		prog *ebpf.Program
	}{
		{"sched_process_fork", m.objs.M_fork},
		{"sched_process_exec", m.objs.M_exec},
		{"sched_process_exit", m.objs.M_exit},
	} {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog.prog})
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("ringwise meter: attach tp_btf/%s: %w", prog.name, err)
		}
		m.links = append(m.links, l)
	}
	if err := m.SetSyscalls(true); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// SetSyscalls attaches (on) or detaches the per-syscall counter; the
// lifecycle counters stay attached. Any program on sys_exit sends every
// syscall of every task through the kernel's slow exit path (the tracepoint
// sets SYSCALL_WORK_SYSCALL_TRACEPOINT on all tasks), and on a
// syscall-bound workload that path, not the counting, is most of the cost:
// detached, syscalls cost the node nothing. Measure uses it to sample
// syscalls in short windows.
func (m *Meter) SetSyscalls(on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("ringwise meter: closed")
	}
	if !on {
		if m.sysExit != nil {
			m.sysExit.Close()
			m.sysExit = nil
		}
		return nil
	}
	if m.sysExit != nil {
		return nil
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: m.objs.M_sysExit})
	if err != nil {
		return fmt.Errorf("ringwise meter: attach tp_btf/sys_exit: %w", err)
	}
	m.sysExit = l
	return nil
}

// NumCPU is the number of possible CPUs: the length of Read's result.
func (m *Meter) NumCPU() int { return m.ncpu }

// Read returns every CPU's cumulative counters, reusing dst when it has
// room.
func (m *Meter) Read(dst []CPUCounts) ([]CPUCounts, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return dst, errors.New("ringwise meter: closed")
	}
	if err := m.objs.CountsMap.Lookup(uint32(0), &m.buf); err != nil {
		return dst, fmt.Errorf("ringwise meter: read counters: %w", err)
	}
	if cap(dst) < len(m.buf) {
		dst = make([]CPUCounts, len(m.buf))
	}
	dst = dst[:len(m.buf)]
	for i := range m.buf {
		b, d := &m.buf[i], &dst[i]
		d.Syscalls, d.Forks, d.Execs, d.Exits, d.NrOther = b.Kinds[0], b.Kinds[1], b.Kinds[2], b.Kinds[3], b.Kinds[4]
		d.WatchForks, d.WatchExecs, d.WatchExits = b.Kinds[5], b.Kinds[6], b.Kinds[7]
		d.Nr = b.Nr
	}
	return dst, nil
}

// Detach stops counting; Read still works until Close.
func (m *Meter) Detach() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.links {
		l.Close()
	}
	m.links = nil
	if m.sysExit != nil {
		m.sysExit.Close()
		m.sysExit = nil
	}
}

// Close detaches and releases the kernel objects.
func (m *Meter) Close() error {
	m.Detach()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	return m.objs.Close()
}
