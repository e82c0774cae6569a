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
// Decoders reject any other version with ErrSchemaVersion.
const SchemaVersion = 1

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
	// FlagHints on a syscall: Comm, PPid and UID were read in the kernel.
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
}

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

	// Exec payload.
	Exe  []byte // path as passed to exec (bprm->filename), bounded
	Args []byte // argv, NUL-separated, bounded

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

// ABI is the syscall numbering of Syscall. Records carry no ABI yet (an
// ia32 flag in the BPF record is planned), so this is the one place that
// assumes the sensor ran on this program's architecture (syscalls.Native).
func (e *Event) ABI() syscalls.ABI { return syscalls.Native() }

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
