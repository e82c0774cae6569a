package bpf

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// MeasureMaxNr is how many syscall numbers the meter counts one by one;
// higher numbers are counted together, under MeasureMaxNr.
const MeasureMaxNr = 512

// MeterSlots is how many bins the kernel keeps per CPU (measure.bpf.c's
// NUM_SLOTS): a reader must read a bin within MeterSlots−2 bins of its end.
const MeterSlots = 512

// MeterNrSlots is how many spans of per-syscall-number counts the kernel
// keeps per CPU (NUM_NR_SLOTS).
const MeterNrSlots = 8

// DefaultMeterBin is the bin width of the kernel's counters.
const DefaultMeterBin = 10 * time.Millisecond

// MeterConfig configures LoadMeter.
type MeterConfig struct {
	// SelfTGID is the measuring process (global tgid): its own syscalls are
	// not counted. 0 counts everything.
	SelfTGID uint32
	// WatchTGID, when nonzero, also counts the processes this thread group
	// forks, their execs and their exits (WatchCounts): a way to check the
	// counts against a workload whose size is known.
	WatchTGID uint32
	// Bin is the width of a bin; 0 means DefaultMeterBin.
	Bin time.Duration
	// NrSpan is how many bins one span of per-syscall-number counts covers;
	// 0 means a second's worth.
	NrSpan int
}

// BinCounts is one CPU's counts in one bin.
type BinCounts struct {
	Syscalls uint64 // syscall exits
	Forks    uint64 // new processes and threads
	Execs    uint64
	Exits    uint64 // exiting threads
}

// NrCounts is one CPU's syscall exits per syscall number in one span;
// numbers ≥ MeasureMaxNr are under MeasureMaxNr.
type NrCounts [MeasureMaxNr + 1]uint64

// WatchCounts is one CPU's cumulative count of the lifecycle of the
// children of MeterConfig.WatchTGID: processes forked by it, execs of its
// children, group-leader exits of its children.
type WatchCounts struct {
	Forks, Execs, Exits uint64
}

// ErrMeterBehind is returned by ReadBins and ReadNrSpan when a slot already
// holds a later bin or span than the one asked for: the reader came too
// late and those counts are gone.
var ErrMeterBehind = errors.New("ringwise meter: read too late, the kernel reused the slot")

// Meter is the loaded, attached counting-only program of `ringwise
// measure`: no records, no ring. The kernel counts per CPU in bins of Bin
// (measure.bpf.c says how no increment is lost at a bin's edge); the
// reader takes each bin once it is over and clears its slot.
type Meter struct {
	objs    measureObjects
	links   []link.Link // lifecycle: attached from LoadMeter to Close
	sysExit link.Link   // the per-syscall counter, when attached
	ncpu    int
	bin     time.Duration
	nrSpan  int
	binBuf  []measureBinCounts
	binZero []measureBinCounts
	// The batch path of ReadBins: every slot's per-CPU counts in one
	// BPF_MAP_LOOKUP_BATCH, the read slots cleared in one
	// BPF_MAP_UPDATE_BATCH. noBatch is set once the kernel refused it.
	binKeys    []uint32
	binAll     []measureBinCounts
	clearKeys  []uint32
	clearZeros []measureBinCounts
	noBatch    bool
	nrBuf      []measureNrCounts
	nrZero     []measureNrCounts
	mu         sync.Mutex
	closed     bool
}

// KtimeNow is the kernel's bpf_ktime_get_ns clock (CLOCK_MONOTONIC), in
// which the meter's bins are cut: bin e is [e·Bin, (e+1)·Bin).
func KtimeNow() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("ringwise meter: CLOCK_MONOTONIC: %w", err)
	}
	return uint64(ts.Nano()), nil
}

// LoadMeter loads and attaches the counting-only program.
func LoadMeter(cfg MeterConfig) (*Meter, error) {
	if cfg.Bin <= 0 {
		cfg.Bin = DefaultMeterBin
	}
	if cfg.NrSpan <= 0 {
		cfg.NrSpan = max(1, int(time.Second/cfg.Bin))
	}
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
	for name, v := range map[string]any{
		measureVarSelfTgid: cfg.SelfTGID, measureVarWatchTgid: cfg.WatchTGID,
		measureVarBinNs: uint64(cfg.Bin), measureVarNrSpan: uint64(cfg.NrSpan),
	} {
		vs, ok := spec.Variables[name]
		if !ok {
			return nil, fmt.Errorf("ringwise meter: object has no variable %q", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("ringwise meter: set %s: %w", name, err)
		}
	}
	m := &Meter{
		ncpu: ncpu, bin: cfg.Bin, nrSpan: cfg.NrSpan,
		binBuf: make([]measureBinCounts, ncpu), binZero: make([]measureBinCounts, ncpu),
		binKeys: make([]uint32, MeterSlots), binAll: make([]measureBinCounts, MeterSlots*ncpu),
		nrBuf: make([]measureNrCounts, ncpu), nrZero: make([]measureNrCounts, ncpu),
	}
	if err := spec.LoadAndAssign(&m.objs, nil); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("ringwise meter: verifier rejected the program: %+v", verr)
		}
		return nil, fmt.Errorf("ringwise meter: loading objects: %w", err)
	}
	if err := m.SetLifecycle(true); err != nil {
		m.Close()
		return nil, err
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

// SetLifecycle attaches (on) or detaches the fork, exec and exit counters.
// Measure keeps them attached from LoadMeter to Close; benchmarks toggle
// them to cost them in short alternating windows (internal/tools/segab
// -toggle).
func (m *Meter) SetLifecycle(on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("ringwise meter: closed")
	}
	if !on {
		m.closeLifecycle()
		return nil
	}
	if len(m.links) > 0 {
		return nil
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
			m.closeLifecycle()
			return fmt.Errorf("ringwise meter: attach tp_btf/%s: %w", prog.name, err)
		}
		m.links = append(m.links, l)
	}
	return nil
}

// closeLifecycle detaches the lifecycle counters. Caller holds mu.
func (m *Meter) closeLifecycle() {
	for _, l := range m.links {
		l.Close()
	}
	m.links = nil
}

// NumCPU is the number of possible CPUs: the length of every per-CPU
// result.
func (m *Meter) NumCPU() int { return m.ncpu }

// Bin is the width of a bin.
func (m *Meter) Bin() time.Duration { return m.bin }

// NrSpan is how many bins a span of per-syscall-number counts covers: span
// s holds bins [s·NrSpan, (s+1)·NrSpan).
func (m *Meter) NrSpan() int { return m.nrSpan }

// Epoch is the bin of a KtimeNow reading.
func (m *Meter) Epoch(ktime uint64) uint64 { return ktime / uint64(m.bin) }

// ReadBins appends to dst, for each bin from first to last inclusive, every
// CPU's counts (dst[i][cpu] is bin first+i), and clears the bins' slots for
// their reuse MeterSlots bins later. Read a bin only once it is over: at
// least one bin after it, when no program counts in it any more (or once
// the meter is detached). It returns ErrMeterBehind when a slot already
// holds a later bin.
//
// It reads all slots in one syscall and clears the read ones in another,
// where a lookup and an update per bin made 200 syscalls a second at
// measure's read once a second (measure's own CPU, idle: 38 -> 31 ms per
// 20 s); it falls back to those where the kernel has no batch operations on
// arrays.
func (m *Meter) ReadBins(first, last uint64, dst [][]BinCounts) ([][]BinCounts, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return dst, errors.New("ringwise meter: closed")
	}
	if last < first {
		return dst, nil
	}
	if !m.noBatch {
		out, err := m.readBinsBatch(first, last, dst)
		if !errors.Is(err, errNoBatch) {
			return out, err
		}
		m.noBatch = true
	}
	return m.readBinsEach(first, last, dst)
}

// binRow turns one slot's per-CPU counts into bin e's row.
func binRow(e uint64, percpu []measureBinCounts) ([]BinCounts, error) {
	row := make([]BinCounts, len(percpu))
	for cpu := range percpu {
		b := &percpu[cpu]
		switch {
		case b.Epoch > e:
			return nil, fmt.Errorf("%w: bin %d on CPU %d holds bin %d", ErrMeterBehind, e, cpu, b.Epoch)
		case b.Epoch == e:
			row[cpu] = BinCounts{Syscalls: b.Kinds[0], Forks: b.Kinds[1], Execs: b.Kinds[2], Exits: b.Kinds[3]}
		}
		// An older stamp: nothing counted on this CPU during bin e (the
		// slot was cleared when its own bin was read).
	}
	return row, nil
}

// errNoBatch: the kernel has no batch lookup on this map (before 5.6).
var errNoBatch = errors.New("ringwise meter: no batch map operations")

func (m *Meter) readBinsBatch(first, last uint64, dst [][]BinCounts) ([][]BinCounts, error) {
	if last-first+1 > MeterSlots {
		return dst, fmt.Errorf("%w: bins %d..%d span more than the %d slots", ErrMeterBehind, first, last, MeterSlots)
	}
	var cursor ebpf.MapBatchCursor
	n, err := m.objs.BinsMap.BatchLookup(&cursor, m.binKeys, m.binAll, nil)
	if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EINVAL) {
		return dst, fmt.Errorf("%w: %w", errNoBatch, err)
	}
	if err != nil && !(errors.Is(err, ebpf.ErrKeyNotExist) && n == MeterSlots) {
		return dst, fmt.Errorf("ringwise meter: read bins %d..%d: %w", first, last, err)
	}
	if n != MeterSlots {
		return dst, fmt.Errorf("ringwise meter: read bins %d..%d: batch returned %d of %d slots", first, last, n, MeterSlots)
	}
	m.clearKeys = m.clearKeys[:0]
	out := dst
	for e := first; e <= last; e++ {
		slot := uint32(e % MeterSlots)
		// An array's batch returns the slots in key order.
		row, err := binRow(e, m.binAll[int(slot)*m.ncpu:int(slot+1)*m.ncpu])
		if err != nil {
			return dst, err
		}
		out = append(out, row)
		m.clearKeys = append(m.clearKeys, slot)
	}
	if need := len(m.clearKeys) * m.ncpu; len(m.clearZeros) < need {
		m.clearZeros = make([]measureBinCounts, need)
	}
	// No element flags: the kernel's batch update takes only BPF_F_LOCK
	// (EINVAL otherwise), and an array's slots always exist.
	if _, err := m.objs.BinsMap.BatchUpdate(m.clearKeys, m.clearZeros[:len(m.clearKeys)*m.ncpu], nil); err != nil {
		return dst, fmt.Errorf("ringwise meter: clear bins %d..%d: %w", first, last, err)
	}
	return out, nil
}

func (m *Meter) readBinsEach(first, last uint64, dst [][]BinCounts) ([][]BinCounts, error) {
	for e := first; e <= last; e++ {
		slot := uint32(e % MeterSlots)
		if err := m.objs.BinsMap.Lookup(slot, &m.binBuf); err != nil {
			return dst, fmt.Errorf("ringwise meter: read bin %d: %w", e, err)
		}
		row, err := binRow(e, m.binBuf)
		if err != nil {
			return dst, err
		}
		if err := m.objs.BinsMap.Update(slot, m.binZero, ebpf.UpdateExist); err != nil {
			return dst, fmt.Errorf("ringwise meter: clear bin %d: %w", e, err)
		}
		dst = append(dst, row)
	}
	return dst, nil
}

// ReadNrSpan fills dst (one per CPU) with span s's per-syscall-number
// counts and clears its slot; as ReadBins, read a span only once its last
// bin is over.
func (m *Meter) ReadNrSpan(s uint64, dst []NrCounts) ([]NrCounts, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return dst, errors.New("ringwise meter: closed")
	}
	slot := uint32(s % MeterNrSlots)
	if err := m.objs.NrMap.Lookup(slot, &m.nrBuf); err != nil {
		return dst, fmt.Errorf("ringwise meter: read span %d: %w", s, err)
	}
	if cap(dst) < m.ncpu {
		dst = make([]NrCounts, m.ncpu)
	}
	dst = dst[:m.ncpu]
	for cpu := range m.nrBuf {
		b := &m.nrBuf[cpu]
		switch {
		case b.Epoch > s:
			return dst, fmt.Errorf("%w: span %d on CPU %d holds span %d", ErrMeterBehind, s, cpu, b.Epoch)
		case b.Epoch == s:
			dst[cpu] = b.Nr
		default:
			dst[cpu] = NrCounts{}
		}
	}
	if err := m.objs.NrMap.Update(slot, m.nrZero, ebpf.UpdateExist); err != nil {
		return dst, fmt.Errorf("ringwise meter: clear span %d: %w", s, err)
	}
	return dst, nil
}

// ReadWatch returns every CPU's cumulative WatchCounts.
func (m *Meter) ReadWatch() ([]WatchCounts, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("ringwise meter: closed")
	}
	buf := make([]measureWatchCounts, m.ncpu)
	if err := m.objs.WatchMap.Lookup(uint32(0), &buf); err != nil {
		return nil, fmt.Errorf("ringwise meter: read watch counters: %w", err)
	}
	out := make([]WatchCounts, m.ncpu)
	for i, b := range buf {
		out[i] = WatchCounts{Forks: b.Kinds[0], Execs: b.Kinds[1], Exits: b.Kinds[2]}
	}
	return out, nil
}

// Detach stops counting; the Read methods still work until Close. A
// program already running when its link closes may still finish its
// increment: wait a moment before the last read.
func (m *Meter) Detach() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closeLifecycle()
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
