package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/syscalls"
)

// Record layout constants. They mirror the fixed-size C structs in
// ringwise.bpf.c (see README.md); TestRecordSizesMatchGenerated checks them
// against the Go types bpf2go generates from the object's BTF, so a change on
// one side without the other fails the build's tests instead of corrupting
// decoded events.
const (
	// HeaderSize is struct rec_hdr: common to every record.
	HeaderSize = 40
	// metaSize is struct proc_meta: cgroup id, ppid, uid, gid, vtid, comm.
	metaSize = 40

	ForkRecordSize = 96 // struct fork_rec
	// ExecRecordSize is the fixed part of struct exec_rec; the exe path and
	// argv follow it with their actual lengths (at most ExeMax + ArgsMax).
	ExecRecordSize    = 88
	ExitRecordSize    = 88 // struct exit_rec
	CgroupRecordSize  = 80 // struct cgroup_rec
	SyscallRecordSize = 80 // struct syscall_rec

	// ExeMax and ArgsMax bound the exec record's exe path and argv (EXE_MAX
	// and ARGS_MAX). argv's bound is Falco's (4 KiB); records are
	// variable-size, so a record costs its actual lengths and the bounds
	// only cap outliers (see the lab's exec record sizes).
	ExeMax  = 1024
	ArgsMax = 4096

	// ringbufHeaderSize is the kernel's struct bpf_ringbuf_hdr, which
	// precedes every record in the ring; records are padded to 8 bytes.
	ringbufHeaderSize = 8
)

// Field offsets within a record.
const (
	offTsNs    = 0
	offStartNs = 8
	offTid     = 16
	offPid     = 20
	offExecID  = 24
	offCPU     = 28
	offType    = 30
	offFlags   = 31
	offVPid    = 32
	offABI     = 36

	offMeta = HeaderSize // proc_meta in fork/exec/exit
	// within proc_meta
	offCgroup = 0
	offPPid   = 8
	offUID    = 12
	offGID    = 16
	offVTid   = 20
	offComm   = 24

	offForkerTgid  = 80
	offForkerStart = 88

	offExitCode = 80
	offOldPid   = 80
	offExeLen   = 84
	offArgsLen  = 86
	offExeData  = 88

	offNr      = 40
	offRet     = 48
	offSysArgs = 56
)

// ErrShortRecord and ErrUnknownType are wrapped by DecodeRecord errors.
var (
	ErrShortRecord = errors.New("short record")
	ErrUnknownType = errors.New("unknown record type")
	ErrBadRecord   = errors.New("malformed record")
)

// RecordSize returns the bytes a record of type t occupies in the ring,
// including the kernel's 8-byte ringbuf header and padding to 8 bytes. The
// analyzer's ring model replays arrival curves with it, so it must be exact.
// For TypeExec it is the record without exe and args (they add their
// lengths: EventFootprint). It returns 0 for an invalid type.
func RecordSize(t event.Type) int {
	n := payloadSize(t)
	if n == 0 {
		return 0
	}
	return ringbufHeaderSize + (n+7)&^7
}

// Footprint is the bytes a record of n payload bytes occupies in a ring:
// the 8-byte ringbuf header plus n rounded up to 8.
func Footprint(n int) int { return ringbufHeaderSize + (n+7)&^7 }

func payloadSize(t event.Type) int {
	switch t {
	case event.TypeFork:
		return ForkRecordSize
	case event.TypeExec:
		return ExecRecordSize
	case event.TypeExit:
		return ExitRecordSize
	case event.TypeCgroup:
		return CgroupRecordSize
	case event.TypeSyscall:
		return SyscallRecordSize
	}
	return 0
}

var le = binary.LittleEndian

// DecodeRecord decodes one raw ring record into ev, overwriting every field.
// It never allocates once ev.Exe and ev.Args have enough capacity (ExeMax and
// ArgsMax): they are refilled in place, so copy them if ev is kept. It checks
// the length against the record type (and FlagHints for syscalls) and the
// exec length fields against their bounds, returning an error wrapping
// ErrShortRecord, ErrUnknownType or ErrBadRecord instead of panicking on
// garbage. Longer records than expected are accepted (forward compatibility).
func DecodeRecord(raw []byte, ev *event.Event) error {
	ev.Reset()
	if len(raw) < HeaderSize {
		return fmt.Errorf("%w: %d bytes, header needs %d", ErrShortRecord, len(raw), HeaderSize)
	}
	t := event.Type(raw[offType])
	flags := raw[offFlags]
	if !t.Valid() {
		return fmt.Errorf("%w: %d", ErrUnknownType, uint8(t))
	}
	want := payloadSize(t)
	if len(raw) < want {
		return fmt.Errorf("%w: %s record of %d bytes, want %d", ErrShortRecord, t, len(raw), want)
	}

	ev.TsNs = le.Uint64(raw[offTsNs:])
	ev.StartNs = le.Uint64(raw[offStartNs:])
	ev.Tid = le.Uint32(raw[offTid:])
	ev.Pid = le.Uint32(raw[offPid:])
	ev.ExecID = le.Uint32(raw[offExecID:])
	ev.CPU = le.Uint16(raw[offCPU:])
	ev.Type = t
	ev.Flags = flags
	ev.VPid = le.Uint32(raw[offVPid:])
	ev.ABI = syscalls.ABI(raw[offABI])

	switch t {
	case event.TypeFork:
		decodeMeta(raw[offMeta:], ev)
		ev.ForkerPid = le.Uint32(raw[offForkerTgid:])
		ev.ForkerStartNs = le.Uint64(raw[offForkerStart:])
	case event.TypeExit:
		decodeMeta(raw[offMeta:], ev)
		ev.ExitCode = int32(le.Uint32(raw[offExitCode:]))
	case event.TypeCgroup:
		decodeMeta(raw[offMeta:], ev)
	case event.TypeExec:
		decodeMeta(raw[offMeta:], ev)
		ev.OldPid = le.Uint32(raw[offOldPid:])
		exeLen := int(le.Uint16(raw[offExeLen:]))
		argsLen := int(le.Uint16(raw[offArgsLen:]))
		if exeLen > ExeMax || argsLen > ArgsMax {
			return fmt.Errorf("%w: exec exe_len %d (max %d) args_len %d (max %d)",
				ErrBadRecord, exeLen, ExeMax, argsLen, ArgsMax)
		}
		if len(raw) < offExeData+exeLen+argsLen {
			return fmt.Errorf("%w: exec record of %d bytes, exe_len %d and args_len %d need %d",
				ErrShortRecord, len(raw), exeLen, argsLen, offExeData+exeLen+argsLen)
		}
		if cap(ev.Exe) < ExeMax {
			ev.Exe = make([]byte, 0, ExeMax)
		}
		if cap(ev.Args) < ArgsMax {
			ev.Args = make([]byte, 0, ArgsMax)
		}
		ev.Exe = append(ev.Exe, raw[offExeData:offExeData+exeLen]...)
		args := raw[offExeData+exeLen : offExeData+exeLen+argsLen]
		// argv ends in a NUL; drop it so Args is NUL-separated, not
		// NUL-terminated (a cut argv keeps whatever it has).
		if n := len(args); n > 0 && args[n-1] == 0 {
			args = args[:n-1]
		}
		ev.Args = append(ev.Args, args...)
	case event.TypeSyscall:
		ev.Syscall = le.Uint32(raw[offNr:])
		ev.Ret = int64(le.Uint64(raw[offRet:]))
		for i := range ev.SysArgs {
			ev.SysArgs[i] = le.Uint64(raw[offSysArgs+8*i:])
		}
	}
	return nil
}

func decodeMeta(m []byte, ev *event.Event) {
	ev.CgroupID = le.Uint64(m[offCgroup:])
	ev.VTid = le.Uint32(m[offVTid:])
	ev.PPid = le.Uint32(m[offPPid:])
	ev.UID = le.Uint32(m[offUID:])
	ev.GID = le.Uint32(m[offGID:])
	copy(ev.Comm[:], m[offComm:offComm+event.CommLen])
	// NUL-pad after the first NUL, and always terminate, so Comm never
	// carries stale bytes of an older, longer name.
	ev.Comm[event.CommLen-1] = 0
	for i, c := range ev.Comm {
		if c == 0 {
			clear(ev.Comm[i:])
			break
		}
	}
}
