// Package event defines ringwise's raw event schema: what the sensor reads out
// of the kernel ring and ships, batched, to the enrichers.
//
// The layout mirrors the BPF records in bpf/ringwise.bpf.c. Lifecycle events
// (fork, exec, exit) carry process metadata; syscall events carry only ids, as
// in Falco, so their metadata must come from the enricher's process table.
// Every header carries the process start time (pid-reuse detection) and the
// task's exec counter (a dropped exec is detected, never papered over with the
// pre-exec name).
package event

import (
	"fmt"

	"github.com/ringwise/ringwise/services/syscalls"
)

// SchemaVersion is the version of the batch envelope and event encoding.
// Decoders reject any other version with ErrSchemaVersion. 3 added
// TypeCgroup (a reader of 2 would refuse such events as invalid).
const SchemaVersion = 3

// Type is the kind of a raw event.
type Type uint8

const (
	TypeInvalid Type = iota
	// TypeFork is sched_process_fork: a new process or a new thread
	// (FlagThread). The header describes the child.
	TypeFork
	// TypeExec is sched_process_exec: the header describes the task after
	// the exec (new comm, incremented ExecID).
	TypeExec
	// TypeExit is sched_process_exit for one thread; FlagGroupDead marks the
	// exit of the last thread, i.e. of the process.
	TypeExit
	// TypeSyscall is a raw_syscalls sys_exit record.
	TypeSyscall
	// TypeCgroup is cgroup_attach_task: a running process (with
	// FlagThread: only thread Tid) was moved to another cgroup, e.g. by a
	// container runtime or systemd. Its CgroupID is the new one; the other
	// fields are as in an exit record, without the exit code. With it the
	// cgroup id (and container.id) of every later event is exact, while
	// syscall records carry no cgroup id of their own (8 bytes each).
	TypeCgroup
	typeCount
)

// String returns the Falco-style event name family.
func (t Type) String() string {
	switch t {
	case TypeFork:
		return "clone"
	case TypeExec:
		return "execve"
	case TypeExit:
		return "procexit"
	case TypeSyscall:
		return "syscall"
	case TypeCgroup:
		return "cgroup_attach"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Valid reports whether t is a known type.
func (t Type) Valid() bool { return t > TypeInvalid && t < typeCount }

// Category is the drop-accounting category of an event type.
type Category uint8

const (
	// CategoryLifecycle holds fork, exec and exit: the events that build state.
	CategoryLifecycle Category = 0
	// CategorySyscall holds every other syscall record.
	CategorySyscall Category = 1
	// NumCategories is the number of categories.
	NumCategories = 2
)

func (c Category) String() string {
	if c == CategoryLifecycle {
		return "lifecycle"
	}
	return "syscall"
}

// Category returns the drop-accounting category of t.
func (t Type) Category() Category {
	if t == TypeSyscall {
		return CategorySyscall
	}
	return CategoryLifecycle
}

// Header flags.
const (
	// FlagThread on a fork: the child is a thread of an existing process.
	FlagThread uint8 = 1 << 0
	// FlagGroupDead on an exit: the last thread exited; the process is gone.
	FlagGroupDead uint8 = 1 << 1
	// FlagHints on a fork or exec: the record was dropped by the ring and
	// written again at the process's next syscall exit (bpf Config.Hints).
	// On a syscall (a format no probe writes any more): Comm, PPid and UID
	// were read in the kernel.
	FlagHints uint8 = 1 << 2
	// FlagTruncated: ExePath or Args hit the record's bound.
	FlagTruncated uint8 = 1 << 3
)

// CommLen is the kernel's TASK_COMM_LEN.
const CommLen = 16

// Header is common to every record.
type Header struct {
	TsNs    uint64 // CLOCK_BOOTTIME (bpf_ktime_get_boot_ns), ns since boot
	StartNs uint64 // process (thread-group leader) start_boottime, ns since boot
	Tid     uint32
	Pid     uint32 // thread-group id
	ExecID  uint32 // task->self_exec_id: bumps on every exec
	CPU     uint16
	Type    Type
	Flags   uint8
	// VPid is the thread-group id in the process's own pid namespace
	// (Falco's proc.vpid): Pid on the host, the container's pid inside one.
	VPid uint32
	// ABI is the syscall numbering of a syscall record's Syscall and the
	// registers its SysArgs came from: ia32 for a 32-bit call on x86_64
	// (int 0x80), ABIOther for one no table knows (AArch32 on arm64).
	// Zero (syscalls.Unknown) in events that predate the field means the
	// reader's native ABI; use SyscallABI.
	ABI syscalls.ABI
}

// ABIOther marks a syscall record of an ABI no syscall table covers (an
// AArch32 task on arm64): its number names nothing and is counted apart.
const ABIOther syscalls.ABI = 0xff

// Event is one raw record. Fields not meaningful for its Type are zero.
//
// Exe and Args are byte slices so that a reused Event can be refilled without
// allocating; copy them if you keep them beyond the batch.
type Event struct {
	Header

	// Lifecycle payload (fork, exec, exit), and hints on syscalls.
	PPid uint32
	UID  uint32
	GID  uint32
	Comm [CommLen]byte // NUL-padded
	// VTid is the thread id in the process's own pid namespace.
	VTid uint32
	// CgroupID is the task's cgroup v2 id (the kernfs id of its cgroup
	// directory, that directory's inode number): the container id comes
	// from that cgroup's path.
	CgroupID uint64

	// Exec payload.
	Exe  []byte // the new image's path (mm->exe_file, as d_path), bounded
	Args []byte // argv, NUL-separated, bounded
	// OldPid is the exec'ing thread's id before exec: it differs from Tid
	// when a non-leader thread exec'ed and took over the leader's id, so
	// thread OldPid ended without an exit record of its own.
	OldPid uint32

	// Fork payload: the process that forked (the child's image is its own
	// until exec) and its start time; the child's PPid differs from it only
	// under CLONE_PARENT.
	ForkerPid     uint32
	ForkerStartNs uint64

	// Exit payload.
	ExitCode int32

	// Syscall payload.
	Syscall uint32
	Ret     int64
	SysArgs [3]uint64
}

// SyscallABI is the syscall numbering of Syscall: the record's ABI, or
// this program's native one (syscalls.Native) for an event without one.
func (e *Event) SyscallABI() syscalls.ABI {
	if e.ABI == syscalls.Unknown {
		return syscalls.Native()
	}
	return e.ABI
}

// CommString returns Comm up to its first NUL.
func (e *Event) CommString() string { return CString(e.Comm[:]) }

// SetComm copies s into Comm, truncated to CommLen-1 bytes as the kernel does.
func (e *Event) SetComm(s string) {
	e.Comm = [CommLen]byte{}
	copy(e.Comm[:CommLen-1], s)
}

// Reset clears e but keeps the capacity of its byte slices.
func (e *Event) Reset() {
	exe, args := e.Exe[:0], e.Args[:0]
	*e = Event{}
	e.Exe, e.Args = exe, args
}

// CString returns b up to its first NUL byte as a string.
func CString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// Counters are the sensor's cumulative ring counters per category, as read
// from the kernel (Attempted, Dropped, Shed) and from the reader (Delivered).
// After a full drain Attempted == Delivered + Dropped holds exactly; shed
// events are never attempted.
type Counters struct {
	Attempted [NumCategories]uint64
	Dropped   [NumCategories]uint64
	Shed      [NumCategories]uint64
	Delivered [NumCategories]uint64
}

// Sum returns the total over categories of one counter row.
func Sum(row [NumCategories]uint64) uint64 {
	var s uint64
	for _, v := range row {
		s += v
	}
	return s
}

// Batch is the envelope the sensor publishes on ringwise.raw.<node>.
type Batch struct {
	Schema uint16
	Node   string
	BootID string
	// Seq numbers the batches of one sensor run from 1 without gaps; a gap
	// seen downstream is a lost batch. Node, BootID, SensorStartNs and Seq
	// make the Nats-Msg-Id (see MsgID).
	Seq uint64
	// SensorStartNs is the ktime at which the sensor attached its probes.
	// A process that started later must have had its fork captured.
	SensorStartNs uint64
	// WallOffsetNs converts event time to wall time: unix ns = TsNs + offset.
	WallOffsetNs int64
	FirstTsNs    uint64
	LastTsNs     uint64
	// Counters are cumulative at the time the batch was closed.
	Counters Counters
	Events   []Event
}

// MsgID is the JetStream de-duplication id of the batch.
func (b *Batch) MsgID() string {
	return fmt.Sprintf("%s.%s.%d.%d", b.Node, b.BootID, b.SensorStartNs, b.Seq)
}
