package bpf

import (
	"github.com/ringwise/ringwise/services/syscalls"

	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"

	"github.com/ringwise/ringwise/services/event"
)

// encodeRecord is the inverse of DecodeRecord: it lays ev out exactly as the
// BPF program does (see ringwise.bpf.c), to test the decoder without a kernel.
func encodeRecord(ev *event.Event) []byte {
	n := payloadSize(ev.Type)
	var args []byte
	if ev.Type == event.TypeExec {
		args = append(append([]byte{}, ev.Args...), 0) // kernel argv is NUL-terminated
		n += len(ev.Exe) + len(args)
	}
	b := make([]byte, n)
	le := binary.LittleEndian
	le.PutUint64(b[0:], ev.TsNs)
	le.PutUint64(b[8:], ev.StartNs)
	le.PutUint32(b[16:], ev.Tid)
	le.PutUint32(b[20:], ev.Pid)
	le.PutUint32(b[24:], ev.ExecID)
	le.PutUint16(b[28:], ev.CPU)
	b[30] = uint8(ev.Type)
	b[31] = ev.Flags
	le.PutUint32(b[32:], ev.VPid)
	b[36] = uint8(ev.ABI)
	meta := func(m []byte) {
		le.PutUint64(m[0:], ev.CgroupID)
		le.PutUint32(m[8:], ev.PPid)
		le.PutUint32(m[12:], ev.UID)
		le.PutUint32(m[16:], ev.GID)
		le.PutUint32(m[20:], ev.VTid)
		copy(m[24:40], ev.Comm[:])
	}
	switch ev.Type {
	case event.TypeFork:
		meta(b[40:])
		le.PutUint32(b[80:], ev.ForkerPid)
		le.PutUint64(b[88:], ev.ForkerStartNs)
	case event.TypeExit:
		meta(b[40:])
		le.PutUint32(b[80:], uint32(ev.ExitCode))
	case event.TypeCgroup:
		meta(b[40:])
	case event.TypeExec:
		meta(b[40:])
		le.PutUint32(b[80:], ev.OldPid)
		le.PutUint16(b[84:], uint16(len(ev.Exe)))
		le.PutUint16(b[86:], uint16(len(args)))
		copy(b[88:], ev.Exe)
		copy(b[88+len(ev.Exe):], args)
	case event.TypeSyscall:
		le.PutUint32(b[40:], ev.Syscall)
		le.PutUint64(b[48:], uint64(ev.Ret))
		for i, a := range ev.SysArgs {
			le.PutUint64(b[56+8*i:], a)
		}
	}
	return b
}

func sampleEvents() []event.Event {
	hdr := event.Header{TsNs: 123456789012, StartNs: 98765, Tid: 4242, Pid: 4240, ExecID: 7, CPU: 3, VPid: 17, ABI: syscalls.X86_64}
	mk := func(t event.Type, flags uint8) event.Event {
		e := event.Event{Header: hdr}
		e.Type, e.Flags = t, flags
		return e
	}
	fork := mk(event.TypeFork, event.FlagThread)
	fork.PPid, fork.UID, fork.GID = 1, 1000, 1001
	fork.ForkerPid, fork.ForkerStartNs = 4240, 55555
	fork.SetComm("bash")
	fork.VTid, fork.CgroupID = 19, 4242
	exec := mk(event.TypeExec, 0)
	exec.PPid, exec.UID, exec.GID = 4200, 0, 0
	exec.SetComm("a-very-long-command-name")
	exec.Exe = []byte("/usr/bin/env")
	exec.Args = []byte("env\x00-i\x00FOO=bar")
	exec.OldPid, exec.VTid, exec.CgroupID = 4243, 18, 0xabcdef0123
	exit := mk(event.TypeExit, event.FlagGroupDead)
	exit.PPid, exit.ExitCode = 1, -9
	exit.SetComm("true")
	sc := mk(event.TypeSyscall, 0)
	sc.Syscall, sc.Ret, sc.SysArgs = 39, -14, [3]uint64{1, 1 << 63, 0xdeadbeef}
	sc.ABI = syscalls.IA32
	// A replayed exec (bpf Config.Hints) decodes as any exec.
	replay := exec
	replay.Flags = event.FlagHints
	moved := mk(event.TypeCgroup, 0)
	moved.PPid, moved.UID, moved.VTid, moved.CgroupID = 1, 33, 5, 0x77aa
	moved.SetComm("nginx")
	return []event.Event{fork, exec, exit, sc, replay, moved}
}

func eventsEqual(a, b *event.Event) bool {
	return a.Header == b.Header && a.VTid == b.VTid && a.CgroupID == b.CgroupID && a.OldPid == b.OldPid && a.PPid == b.PPid && a.UID == b.UID && a.GID == b.GID &&
		a.Comm == b.Comm && bytes.Equal(a.Exe, b.Exe) && bytes.Equal(a.Args, b.Args) &&
		a.ExitCode == b.ExitCode && a.Syscall == b.Syscall && a.Ret == b.Ret && a.SysArgs == b.SysArgs
}

func TestDecodeRecordRoundTrip(t *testing.T) {
	var got event.Event
	for _, want := range sampleEvents() {
		raw := encodeRecord(&want)
		if want.Type != event.TypeExec && len(raw)+ringbufHeaderSize > RecordSize(want.Type) {
			t.Fatalf("%s: encoded %d bytes exceeds RecordSize", want.Type, len(raw))
		}
		// Dirty the target: decoding must overwrite every field.
		got = sampleEvents()[1]
		got.Ret = 99
		if err := DecodeRecord(raw, &got); err != nil {
			t.Fatalf("%s: %v", want.Type, err)
		}
		if !eventsEqual(&got, &want) {
			t.Errorf("%s: round trip\n got  %+v\n want %+v", want.Type, got, want)
		}
		// Longer records (a future layout) still decode.
		if err := DecodeRecord(append(raw, 1, 2, 3, 4, 5, 6, 7, 8), &got); err != nil || !eventsEqual(&got, &want) {
			t.Errorf("%s: extended record: %v", want.Type, err)
		}
	}
}

func TestDecodeRecordComm(t *testing.T) {
	ev := sampleEvents()[0]
	raw := encodeRecord(&ev)
	// Stale bytes after the NUL and no terminator at all.
	copy(raw[offMeta+offComm:], "ab\x00stalestalestal")
	var got event.Event
	if err := DecodeRecord(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.Comm != [16]byte{'a', 'b'} {
		t.Errorf("comm not NUL padded: %q", got.Comm)
	}
	copy(raw[offMeta+offComm:], "0123456789abcdef")
	if err := DecodeRecord(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.CommString() != "0123456789abcde" {
		t.Errorf("unterminated comm: %q", got.CommString())
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	evs := sampleEvents()
	for _, ev := range evs {
		raw := encodeRecord(&ev)
		for _, n := range []int{0, 1, HeaderSize - 1, HeaderSize, len(raw) - 1} {
			if n >= len(raw) {
				continue
			}
			var got event.Event
			err := DecodeRecord(raw[:n], &got)
			if !errors.Is(err, ErrShortRecord) {
				t.Errorf("%s truncated to %d: err %v, want ErrShortRecord", ev.Type, n, err)
			}
		}
	}
	for _, typ := range []byte{0, 6, 200, 255} {
		raw := make([]byte, 512)
		raw[offType] = typ
		var got event.Event
		if err := DecodeRecord(raw, &got); !errors.Is(err, ErrUnknownType) {
			t.Errorf("type %d: err %v, want ErrUnknownType", typ, err)
		}
	}
	// A syscall record one byte short.
	sc := evs[3]
	raw := encodeRecord(&sc)
	var got event.Event
	if err := DecodeRecord(raw[:len(raw)-1], &got); !errors.Is(err, ErrShortRecord) {
		t.Errorf("short syscall record: %v", err)
	}
	// Exec lengths beyond their bounds.
	ex := evs[1]
	raw = encodeRecord(&ex)
	binary.LittleEndian.PutUint16(raw[offExeLen:], ExeMax+1)
	if err := DecodeRecord(raw, &got); !errors.Is(err, ErrBadRecord) {
		t.Errorf("exe_len too large: %v", err)
	}
	raw = encodeRecord(&ex)
	binary.LittleEndian.PutUint16(raw[offArgsLen:], 0xffff)
	if err := DecodeRecord(raw, &got); !errors.Is(err, ErrBadRecord) {
		t.Errorf("args_len too large: %v", err)
	}
	// Lengths within bounds but beyond the record.
	raw = encodeRecord(&ex)
	binary.LittleEndian.PutUint16(raw[offArgsLen:], ArgsMax)
	if err := DecodeRecord(raw, &got); !errors.Is(err, ErrShortRecord) {
		t.Errorf("args_len beyond the record: %v", err)
	}
}

func TestRecordSize(t *testing.T) {
	for _, tc := range []struct {
		t    event.Type
		want int
	}{
		{event.TypeFork, 104}, {event.TypeExec, 96}, {event.TypeExit, 96},
		{event.TypeSyscall, 88}, {event.TypeInvalid, 0}, {event.Type(9), 0},
	} {
		if got := RecordSize(tc.t); got != tc.want {
			t.Errorf("RecordSize(%s) = %d, want %d", tc.t, got, tc.want)
		}
	}
}

// TestRecordSizesMatchGenerated ties the decoder's constants to the C structs
// through the Go types bpf2go generated from the object's BTF.
func TestRecordSizesMatchGenerated(t *testing.T) {
	check := func(name string, got, want uintptr) {
		t.Helper()
		if got != want {
			t.Errorf("%s: generated %d, decoder constant %d", name, got, want)
		}
	}
	check("sizeof fork_rec", unsafe.Sizeof(ringwiseForkRec{}), ForkRecordSize)
	check("sizeof exec_rec", unsafe.Sizeof(ringwiseExecRec{}), ExecRecordSize+ExeMax+ArgsMax)
	check("sizeof exit_rec", unsafe.Sizeof(ringwiseExitRec{}), ExitRecordSize)
	check("sizeof cgroup_rec", unsafe.Sizeof(ringwiseCgroupRec{}), CgroupRecordSize)
	check("sizeof syscall_rec", unsafe.Sizeof(ringwiseSyscallRec{}), SyscallRecordSize)

	var f ringwiseForkRec
	check("sizeof rec_hdr", unsafe.Sizeof(f.H), HeaderSize)
	check("sizeof proc_meta", unsafe.Sizeof(f.M), metaSize)
	check("offsetof hdr.start_ns", unsafe.Offsetof(f.H.StartNs), offStartNs)
	check("offsetof hdr.tid", unsafe.Offsetof(f.H.Tid), offTid)
	check("offsetof hdr.pid", unsafe.Offsetof(f.H.Pid), offPid)
	check("offsetof hdr.exec_id", unsafe.Offsetof(f.H.ExecId), offExecID)
	check("offsetof hdr.cpu", unsafe.Offsetof(f.H.Cpu), offCPU)
	check("offsetof hdr.type", unsafe.Offsetof(f.H.Type), offType)
	check("offsetof hdr.flags", unsafe.Offsetof(f.H.Flags), offFlags)
	check("offsetof hdr.vpid", unsafe.Offsetof(f.H.Vpid), offVPid)
	check("offsetof hdr.abi", unsafe.Offsetof(f.H.Abi), offABI)
	check("offsetof meta.cgroup_id", unsafe.Offsetof(f.M.CgroupId), offCgroup)
	check("offsetof meta.ppid", unsafe.Offsetof(f.M.Ppid), offPPid)
	check("offsetof meta.vtid", unsafe.Offsetof(f.M.Vtid), offVTid)
	check("offsetof fork.forker_tgid", unsafe.Offsetof(f.ForkerTgid), offForkerTgid)
	check("offsetof fork.forker_start", unsafe.Offsetof(f.ForkerStart), offForkerStart)
	check("offsetof fork.m", unsafe.Offsetof(f.M), offMeta)
	check("offsetof meta.uid", unsafe.Offsetof(f.M.Uid), offUID)
	check("offsetof meta.gid", unsafe.Offsetof(f.M.Gid), offGID)
	check("offsetof meta.comm", unsafe.Offsetof(f.M.Comm), offComm)
	var x ringwiseExitRec
	check("offsetof exit.exit_code", unsafe.Offsetof(x.ExitCode), offExitCode)
	var e ringwiseExecRec
	check("offsetof exec.exe_len", unsafe.Offsetof(e.ExeLen), offExeLen)
	check("offsetof exec.args_len", unsafe.Offsetof(e.ArgsLen), offArgsLen)
	check("offsetof exec.old_pid", unsafe.Offsetof(e.OldPid), offOldPid)
	check("offsetof exec.data", unsafe.Offsetof(e.Data), offExeData)
	check("len exec.data", uintptr(len(e.Data)), ExeMax+ArgsMax)
	check("len comm", uintptr(len(e.M.Comm)), event.CommLen)
	var s ringwiseSyscallRec
	check("offsetof syscall.nr", unsafe.Offsetof(s.Nr), offNr)
	check("offsetof syscall.ret", unsafe.Offsetof(s.Ret), offRet)
	check("offsetof syscall.args", unsafe.Offsetof(s.Args), offSysArgs)

	for typ, size := range map[event.Type]uintptr{
		event.TypeFork: unsafe.Sizeof(f), event.TypeExec: unsafe.Offsetof(e.Data),
		event.TypeExit: unsafe.Sizeof(x), event.TypeSyscall: unsafe.Sizeof(s),
	} {
		check("RecordSize "+typ.String(), uintptr(RecordSize(typ)), 8+(size+7)&^7)
	}
}

func TestDecodeRecordNoAlloc(t *testing.T) {
	evs := sampleEvents()
	raws := make([][]byte, len(evs))
	for i := range evs {
		raws[i] = encodeRecord(&evs[i])
	}
	var ev event.Event
	_ = DecodeRecord(raws[1], &ev) // first exec sizes Exe/Args once
	allocs := testing.AllocsPerRun(100, func() {
		for _, raw := range raws {
			if err := DecodeRecord(raw, &ev); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("DecodeRecord allocates %.1f times per run, want 0", allocs)
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	evs := sampleEvents()
	for _, i := range []int{1, 3} {
		raw := encodeRecord(&evs[i])
		name := evs[i].Type.String()
		b.Run(name, func(b *testing.B) {
			var ev event.Event
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := DecodeRecord(raw, &ev); err != nil {
					b.Fatal(err)
				}
			}
			// One record is one event: per-event rates compare with benchstat.
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, ev := range sampleEvents() {
		f.Add(encodeRecord(&ev))
	}
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ev event.Event
		if err := DecodeRecord(raw, &ev); err != nil {
			return
		}
		if !ev.Type.Valid() {
			t.Fatalf("decoded invalid type %d without error", ev.Type)
		}
		if len(ev.Exe) > ExeMax || len(ev.Args) > ArgsMax || ev.Comm[event.CommLen-1] != 0 {
			t.Fatalf("bounds violated: exe %d args %d comm %q", len(ev.Exe), len(ev.Args), ev.Comm)
		}
		if Footprint(len(raw)) < RecordSize(ev.Type) {
			t.Fatalf("accepted %d-byte %s record", len(raw), ev.Type)
		}
	})
}
