package sensor

import (
	"testing"

	"github.com/ringwise/ringwise/services/event"
)

// TestTrimSeries: a full series drops its oldest published samples (never
// unpublished ones) and keeps its order, so a long-running sensor keeps
// sampling.
func TestTrimSeries(t *testing.T) {
	mk := func(n int) []event.Sample {
		s := make([]event.Sample, n)
		for i := range s {
			s[i].TsNs = uint64(i)
		}
		return s
	}
	s, u := trimSeries(mk(7), 5, 8) // not full
	if len(s) != 7 || u != 5 {
		t.Fatalf("not full: %d samples, unpublished %d", len(s), u)
	}
	s, u = trimSeries(mk(8), 6, 8) // full: drop max/4 = 2 published
	if len(s) != 6 || u != 4 || s[0].TsNs != 2 || s[5].TsNs != 7 {
		t.Fatalf("full: %d samples from %d, unpublished %d", len(s), s[0].TsNs, u)
	}
	s, u = trimSeries(mk(8), 1, 8) // only one published: drop it alone
	if len(s) != 7 || u != 0 || s[0].TsNs != 1 {
		t.Fatalf("one published: %d samples from %d, unpublished %d", len(s), s[0].TsNs, u)
	}
	s, u = trimSeries(mk(8), 0, 8) // none published (NATS down): keep all
	if len(s) != 8 || u != 0 {
		t.Fatalf("none published: %d samples, unpublished %d", len(s), u)
	}
}

// TestFullRateBatchesCutByCount: at full rate (syscall records without
// hints) the sensor's batches are cut by DefaultBatchMaxEvents, not by
// DefaultBatchMaxBytes, although commit counts each record at the
// type-level bound event.MaxSyscallWireBytes rather than its real size; and
// that bound holds for a syscall record with every field at its widest.
func TestFullRateBatchesCutByCount(t *testing.T) {
	full := event.MaxBatchEnvelopeBytes + DefaultBatchMaxEvents*event.MaxSyscallWireBytes + maxEventWireBytes
	if full > DefaultBatchMaxBytes {
		t.Fatalf("%d syscall records of %d bytes (+ envelope and one largest event) = %d bytes > DefaultBatchMaxBytes %d: full-rate batches would be cut by bytes",
			DefaultBatchMaxEvents, event.MaxSyscallWireBytes, full, DefaultBatchMaxBytes)
	}
	ev := event.Event{Header: event.Header{Type: event.TypeSyscall, Flags: 0xff &^ event.FlagHints, TsNs: ^uint64(0), StartNs: ^uint64(0),
		Tid: ^uint32(0), Pid: ^uint32(0), ExecID: ^uint32(0), CPU: ^uint16(0), VPid: ^uint32(0), ABI: 0xff},
		Syscall: ^uint32(0), Ret: -1 << 63, SysArgs: [3]uint64{^uint64(0), ^uint64(0), ^uint64(0)}}
	b := &event.Batch{Node: "n", BootID: "b", Events: []event.Event{ev}}
	empty := &event.Batch{Node: "n", BootID: "b", Events: []event.Event{}}
	c := event.NewCodec()
	one, err := c.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	n1 := len(one)
	zero, err := c.Encode(empty)
	if err != nil {
		t.Fatal(err)
	}
	if got := n1 - len(zero); got > event.MaxSyscallWireBytes || event.SyscallWireBound(&ev) != event.MaxSyscallWireBytes {
		t.Fatalf("widest syscall record encodes to %d bytes; MaxSyscallWireBytes %d, SyscallWireBound %d", got, event.MaxSyscallWireBytes, event.SyscallWireBound(&ev))
	}
}
