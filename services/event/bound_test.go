package event_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/syscalls"
)

// EventWireBound and MaxBatchEnvelopeBytes are upper bounds: a batch of
// events of every type with every number at its largest and the longest
// strings encodes within them (the sensor cuts batches by them).
func TestEventWireBoundIsAnUpperBound(t *testing.T) {
	max64 := uint64(math.MaxUint64)
	max32 := uint32(math.MaxUint32)
	b := &event.Batch{Node: strings.Repeat("n", 128), BootID: strings.Repeat("b", 256), SensorStartNs: max64, Seq: max64, WallOffsetNs: math.MinInt64}
	for c := range b.Counters.Attempted {
		b.Counters.Attempted[c], b.Counters.Delivered[c], b.Counters.Dropped[c], b.Counters.Shed[c] = max64, max64, max64, max64
	}
	for _, typ := range []event.Type{event.TypeFork, event.TypeExec, event.TypeExit, event.TypeSyscall, event.TypeCgroup} {
		for _, flags := range []uint8{0, event.FlagHints, 0xff} {
			ev := event.Event{Header: event.Header{TsNs: max64, StartNs: max64, Tid: max32, Pid: max32, ExecID: max32, Type: typ, Flags: flags,
				CPU: math.MaxUint16, VPid: max32, ABI: 0xff},
				PPid: max32, UID: max32, GID: max32, VTid: max32, CgroupID: max64, ForkerPid: max32, ForkerStartNs: max64,
				OldPid: max32, ExitCode: math.MinInt32, Syscall: math.MaxUint16, Ret: math.MinInt64, SysArgs: [3]uint64{max64, max64, max64}}
			ev.SetComm(strings.Repeat("c", 64))
			if typ == event.TypeExec {
				ev.Exe, ev.Args = bytes.Repeat([]byte{'/'}, event.MaxExeLen), bytes.Repeat([]byte{'a'}, event.MaxArgsLen)
			}
			b.Events = append(b.Events, ev)
		}
	}
	data, err := event.NewCodec().Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	bound := event.MaxBatchEnvelopeBytes
	for i := range b.Events {
		bound += event.EventWireBound(&b.Events[i])
	}
	if len(data) > bound {
		t.Errorf("batch of %d worst-case events: %d bytes, above the bound %d", len(b.Events), len(data), bound)
	}
	// Each event on its own: a batch of it less the empty batch.
	empty := *b
	empty.Events = nil
	emptyData, err := event.NewCodec().Encode(&empty)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.Events {
		one := empty
		one.Events = b.Events[i : i+1]
		d, err := event.NewCodec().Encode(&one)
		if err != nil {
			t.Fatal(err)
		}
		ev := &b.Events[i]
		if got, max := len(d)-len(emptyData), event.EventWireBound(ev); got > max {
			t.Errorf("type %d flags %#x: %d bytes, above its bound %d", ev.Type, ev.Flags, got, max)
		}
		if event.EventWireBound(ev) > event.MaxEventFixedBytes+len(ev.Exe)+len(ev.Args) {
			t.Errorf("type %d flags %#x: bound %d above MaxEventFixedBytes + exe + args", ev.Type, ev.Flags, event.EventWireBound(ev))
		}
	}
	t.Logf("%d bytes within the bound %d", len(data), bound)
}

// The bound follows each value's real encoding: over random events (every
// integer at a random bit length, negative returns and exit codes too) it
// is never below the encoded size, and for syscall records, which fill the
// batches, at most the array header's 2 bytes above it, so that batches cut
// by it are as full as the message size allows.
func TestEventWireBoundIsTight(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	val := func() uint64 { return rng.Uint64() >> rng.UintN(65) } // every magnitude
	sval := func() int64 {
		v := int64(val() >> 1)
		if rng.IntN(2) == 0 {
			return -v - 1
		}
		return v
	}
	empty := event.Batch{Node: "n", BootID: "b"}
	emptyData, err := event.NewCodec().Encode(&empty)
	if err != nil {
		t.Fatal(err)
	}
	codec := event.NewCodec()
	for i := 0; i < 20000; i++ {
		typ := []event.Type{event.TypeFork, event.TypeExec, event.TypeExit, event.TypeSyscall, event.TypeCgroup}[rng.IntN(5)]
		ev := event.Event{Header: event.Header{TsNs: val(), StartNs: val(), Tid: uint32(val()), Pid: uint32(val()), ExecID: uint32(val()),
			Type: typ, Flags: uint8(val()) &^ 0x80, CPU: uint16(val()), VPid: uint32(val()), ABI: syscalls.ABI(val() & 0xff)},
			PPid: uint32(val()), UID: uint32(val()), GID: uint32(val()), VTid: uint32(val()), CgroupID: val(), ForkerPid: uint32(val()),
			ForkerStartNs: val(), OldPid: uint32(val()), ExitCode: int32(sval()), Syscall: uint32(val()), Ret: sval(),
			SysArgs: [3]uint64{val(), val(), val()}}
		ev.SetComm(strings.Repeat("c", rng.IntN(20)))
		if typ == event.TypeExec {
			ev.Exe, ev.Args = bytes.Repeat([]byte{'/'}, rng.IntN(300)), bytes.Repeat([]byte{'a'}, rng.IntN(70000)%event.MaxArgsLen)
		}
		one := empty
		one.Events = []event.Event{ev}
		d, err := codec.Encode(&one)
		if err != nil {
			t.Fatalf("event %d (type %d): %v", i, typ, err)
		}
		got, bound := len(d)-len(emptyData), event.EventWireBound(&ev)
		if got > bound {
			t.Fatalf("event %d (type %d flags %#x): %d bytes, above its bound %d: %+v", i, typ, ev.Flags, got, bound, ev)
		}
		if typ == event.TypeSyscall && ev.Flags&event.FlagHints == 0 && bound-got > 2 {
			t.Fatalf("syscall event %d: bound %d, %d bytes encoded: more than the array header's slack", i, bound, got)
		}
	}
}
