package event_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/klauspost/compress/s2"

	"github.com/ringwise/ringwise/services/event"
)

// A compressed batch decodes to the same batch as the plain one, raw and
// enriched, and the plain encoding still decodes.
func TestCompressedBatchRoundTrip(t *testing.T) {
	c := event.NewCodec()
	in := &event.Batch{Schema: event.SchemaVersion, Node: "n", BootID: "b", Seq: 7, SensorStartNs: 1}
	for i := 0; i < 500; i++ {
		e := event.Event{Header: event.Header{TsNs: uint64(1e9 + i), StartNs: 5, Tid: 42, Pid: 42, Type: event.TypeSyscall}, Syscall: 257, Ret: 3}
		in.Events = append(in.Events, e)
	}
	in.FirstTsNs, in.LastTsNs = in.Events[0].TsNs, in.Events[len(in.Events)-1].TsNs
	plain, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	plain = append([]byte(nil), plain...)
	z := c.Compress(plain)
	if z[0] != event.CompressedMark || len(z) >= len(plain) {
		t.Fatalf("compressed %d bytes to %d (mark %#x): want smaller, marked", len(plain), len(z), z[0])
	}
	var fromZ, fromPlain event.Batch
	if err := event.NewCodec().Decode(z, &fromZ); err != nil {
		t.Fatal(err)
	}
	if err := event.NewCodec().Decode(plain, &fromPlain); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromZ, fromPlain) || len(fromZ.Events) != 500 {
		t.Fatalf("compressed batch decoded to %d events, plain to %d, or they differ", len(fromZ.Events), len(fromPlain.Events))
	}

	eb := &event.EnrichedBatch{Schema: event.SchemaVersion, Node: "n", BootID: "b", RawSeq: 7}
	for i := 0; i < 500; i++ {
		eb.Events = append(eb.Events, event.Enriched{Event: in.Events[i], ProcName: "bench", ProcExePath: "/usr/bin/bench", ProcCmdline: "bench -x"})
	}
	ep, err := c.EncodeEnriched(eb)
	if err != nil {
		t.Fatal(err)
	}
	ep = append([]byte(nil), ep...)
	var eZ, ePlain event.EnrichedBatch
	if err := event.NewCodec().DecodeEnriched(c.Compress(ep), &eZ); err != nil {
		t.Fatal(err)
	}
	if err := event.NewCodec().DecodeEnriched(ep, &ePlain); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(eZ, ePlain) || len(eZ.Events) != 500 {
		t.Fatalf("compressed enriched batch decoded to %d events, plain to %d, or they differ", len(eZ.Events), len(ePlain.Events))
	}
}

// Data that does not shrink is returned as it is (a message never grows).
func TestCompressKeepsIncompressible(t *testing.T) {
	data := []byte{0x93, 1, 2, 3}
	if got := event.NewCodec().Compress(data); &got[0] != &data[0] {
		t.Errorf("4 incompressible bytes came back as %d other bytes", len(got))
	}
}

// A compressed message that claims more than MaxBatchBytes is refused
// before anything is allocated; a corrupt one is malformed.
func TestCompressedBatchBounds(t *testing.T) {
	huge := append([]byte{event.CompressedMark}, s2.Encode(nil, make([]byte, event.MaxBatchBytes+1))...)
	var b event.Batch
	if err := event.NewCodec().Decode(huge, &b); !errors.Is(err, event.ErrOversized) {
		t.Errorf("decompressing to %d bytes: %v, want ErrOversized", event.MaxBatchBytes+1, err)
	}
	var eb event.EnrichedBatch
	if err := event.NewCodec().DecodeEnriched(huge, &eb); !errors.Is(err, event.ErrOversized) {
		t.Errorf("enriched, decompressing to %d bytes: %v, want ErrOversized", event.MaxBatchBytes+1, err)
	}
	for _, bad := range [][]byte{{event.CompressedMark}, {event.CompressedMark, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {event.CompressedMark, 10, 0, 1}} {
		if err := event.NewCodec().Decode(bad, &b); !errors.Is(err, event.ErrMalformed) {
			t.Errorf("decode % x: %v, want ErrMalformed", bad, err)
		}
	}
}
