package event_test

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/ringwise/ringwise/services/event"
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
