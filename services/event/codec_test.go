package event

import (
	"fmt"
	"github.com/ringwise/ringwise/services/syscalls"

	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func sampleBatch() *Batch {
	b := &Batch{Node: "node-a", BootID: "boot-1", Seq: 7, SensorStartNs: 100, WallOffsetNs: 1_700_000_000_000_000_000, FirstTsNs: 200, LastTsNs: 900}
	b.Counters.Attempted = [2]uint64{10, 1000}
	b.Counters.Dropped = [2]uint64{1, 20}
	b.Counters.Shed = [2]uint64{0, 5}
	b.Counters.Delivered = [2]uint64{9, 980}
	fork := Event{Header: Header{TsNs: 200, StartNs: 199, Tid: 11, Pid: 11, ExecID: 3, CPU: 1, Type: TypeFork}, PPid: 10, UID: 1000, GID: 1000}
	fork.SetComm("bash")
	exec := Event{Header: Header{TsNs: 300, StartNs: 199, Tid: 11, Pid: 11, ExecID: 4, Type: TypeExec, Flags: FlagTruncated}, PPid: 10, Exe: []byte("/usr/bin/ls"), Args: []byte("ls\x00-l\x00")}
	exec.SetComm("ls")
	sys := Event{Header: Header{TsNs: 400, StartNs: 199, Tid: 12, Pid: 11, ExecID: 4, Type: TypeSyscall}, Syscall: 257, Ret: -2, SysArgs: [3]uint64{1, ^uint64(0), 3}}
	hint := sys
	hint.Flags = FlagHints
	hint.PPid, hint.UID = 10, 0
	hint.SetComm("ls")
	exit := Event{Header: Header{TsNs: 900, StartNs: 199, Tid: 11, Pid: 11, ExecID: 4, Type: TypeExit, Flags: FlagGroupDead}, ExitCode: -9, PPid: 10}
	// The container and ABI fields: a process seen as pid 7 in its own
	// namespace, in a cgroup; an ia32 syscall; a non-leader exec.
	fork.VPid, fork.VTid, fork.CgroupID = 7, 7, 0x1234_5678_9abc
	exec.VPid, exec.VTid, exec.CgroupID, exec.OldPid = 7, 7, 0x1234_5678_9abc, 12
	sys.VPid, sys.ABI = 7, syscalls.IA32
	hint.VPid, hint.VTid, hint.CgroupID, hint.ABI = 7, 8, 99, syscalls.X86_64
	exit.VPid, exit.VTid, exit.CgroupID = 7, 7, 1
	moved := exit
	moved.Type, moved.Flags, moved.ExitCode, moved.CgroupID = TypeCgroup, 0, 0, 0x77
	b.Events = []Event{fork, exec, sys, hint, exit, moved}
	return b
}

// normalize makes nil and empty byte slices compare equal.
func normalize(b *Batch) {
	b.Schema = SchemaVersion
	for i := range b.Events {
		if len(b.Events[i].Exe) == 0 {
			b.Events[i].Exe = nil
		}
		if len(b.Events[i].Args) == 0 {
			b.Events[i].Args = nil
		}
	}
}

func TestBatchRoundTrip(t *testing.T) {
	c := NewCodec()
	in := sampleBatch()
	data, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Batch
	if err := NewCodec().Decode(data, &out); err != nil {
		t.Fatal(err)
	}
	normalize(in)
	normalize(&out)
	if !reflect.DeepEqual(in, &out) {
		t.Fatalf("round trip differs:\n in %+v\nout %+v", in, &out)
	}
	if in.MsgID() != "node-a.boot-1.100.7" {
		t.Fatalf("msg id %q", in.MsgID())
	}
	// Decoding into a reused batch must not leak the previous contents.
	small := &Batch{Node: "node-a", BootID: "boot-1", Seq: 8, Events: []Event{{Header: Header{Type: TypeSyscall, Pid: 5}}}}
	data, _ = c.Encode(small)
	if err := NewCodec().Decode(data, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Events) != 1 || out.Events[0].Pid != 5 || len(out.Events[0].Exe) != 0 || out.Events[0].Comm != [16]byte{} {
		t.Fatalf("reuse leaked state: %+v", out.Events)
	}
}

// DecodeEnrichable must decode what Decode does, into Enriched values whose
// enrichment fields are zero even when the reused slice held others.
func TestDecodeEnrichable(t *testing.T) {
	c := NewCodec()
	in := sampleBatch()
	data, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	var want Batch
	if err := NewCodec().Decode(data, &want); err != nil {
		t.Fatal(err)
	}
	var env Batch
	env.Events = []Event{{}} // must come back empty: the events go to out
	stale := make([]Enriched, 1, 1)
	stale[0] = Enriched{ProcName: "stale", ProcCmdline: "x", ContainerID: "c", ProcPPid: 9, Missing: AllFields, Reason: ReasonEvicted, Source: SourceSnapshot}
	out, err := NewCodec().DecodeEnrichable(data, &env, stale)
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Events) != 0 {
		t.Fatalf("envelope holds %d events", len(env.Events))
	}
	if len(out) != len(want.Events) {
		t.Fatalf("%d events, want %d", len(out), len(want.Events))
	}
	for i := range out {
		if !reflect.DeepEqual(out[i], Enriched{Event: want.Events[i]}) {
			t.Fatalf("event %d:\n got %+v\nwant %+v", i, out[i], Enriched{Event: want.Events[i]})
		}
	}
	env.Events, want.Events = nil, nil
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("envelope %+v, want %+v", env, want)
	}
	if _, err := NewCodec().DecodeEnrichable(data[:len(data)-1], &env, out); err == nil {
		t.Fatal("truncated batch decoded")
	}
	// The sensor compresses its batches by default: the enricher's decoder
	// must read that form into the same events.
	z := append([]byte(nil), NewCodec().Compress(data)...)
	if z[0] != CompressedMark {
		t.Fatal("sample batch did not compress")
	}
	outZ, err := NewCodec().DecodeEnrichable(z, &env, nil)
	if err != nil {
		t.Fatalf("compressed batch: %v", err)
	}
	var envPlain Batch
	out, err = NewCodec().DecodeEnrichable(data, &envPlain, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(env, envPlain) {
		t.Fatalf("compressed envelope %+v, plain %+v", env, envPlain)
	}
	if len(outZ) != len(out) {
		t.Fatalf("compressed: %d events, want %d", len(outZ), len(out))
	}
	for i := range outZ {
		if !reflect.DeepEqual(outZ[i], out[i]) {
			t.Fatalf("compressed event %d:\n got %+v\nwant %+v", i, outZ[i], out[i])
		}
	}
}

func TestEnrichedRoundTrip(t *testing.T) {
	c := NewCodec()
	raw := sampleBatch()
	in := &EnrichedBatch{Node: "n", BootID: "b", RawSeq: 3, SensorStartNs: 9, WallOffsetNs: -5, Counters: raw.Counters}
	for i, ev := range raw.Events {
		e := Enriched{Event: ev, ProcPPid: 10, ProcUID: 1000, ProcName: "ls", ProcExePath: "/usr/bin/ls", ProcCmdline: "ls -l", Source: SourceState}
		if i == 2 {
			e.Missing, e.Reason, e.ProcName = FieldName|FieldExePath, ReasonExecDropped, ""
			e.ProcExePath = ""
		}
		in.Events = append(in.Events, e)
	}
	data, err := c.EncodeEnriched(in)
	if err != nil {
		t.Fatal(err)
	}
	var out EnrichedBatch
	if err := c.DecodeEnriched(data, &out); err != nil {
		t.Fatal(err)
	}
	in.Schema = SchemaVersion
	for i := range in.Events {
		for _, p := range []*[]byte{&in.Events[i].Exe, &in.Events[i].Args, &out.Events[i].Exe, &out.Events[i].Args} {
			if len(*p) == 0 {
				*p = nil
			}
		}
	}
	if !reflect.DeepEqual(in, &out) {
		t.Fatalf("round trip differs:\n in %+v\nout %+v", in, &out)
	}
	if got := out.Events[2].Missing.FieldNames(); !reflect.DeepEqual(got, []string{"proc.name", "proc.exepath"}) {
		t.Fatalf("fields %v", got)
	}
}

func mp(t *testing.T, v ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	for _, x := range v {
		if err := enc.Encode(x); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestDecodeBadInput(t *testing.T) {
	good, _ := NewCodec().Encode(sampleBatch())
	good = append([]byte(nil), good...)
	counters := make([]uint64, 8)
	ev := func(fields ...any) []any { return fields }
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"garbage", []byte{0xc1, 0xff, 0x00}, ErrMalformed},
		{"not an array", mp(t, map[string]int{"a": 1}), ErrMalformed},
		{"truncated", good[:len(good)/2], ErrMalformed},
		{"trailing bytes", append(append([]byte(nil), good...), 0x01), ErrMalformed},
		{"wrong field count", mp(t, []any{1, "n"}), ErrMalformed},
		{"schema 1 (before ABI, vpid, cgroup)", mp(t, []any{1, "n", "b", 1, 0, 0, 0, 0, counters, []any{}}), ErrSchemaVersion},
		{"schema as string", mp(t, []any{fmt.Sprint(SchemaVersion), "n", "b", 1, 0, 0, 0, 0, counters, []any{}}), ErrMalformed},
		{"negative seq", mp(t, []any{SchemaVersion, "n", "b", -1, 0, 0, 0, 0, counters, []any{}}), ErrMalformed},
		{"counters short", mp(t, []any{SchemaVersion, "n", "b", 1, 0, 0, 0, 0, []uint64{1}, []any{}}), ErrMalformed},
		{"nil events", mp(t, []any{SchemaVersion, "n", "b", 1, 0, 0, 0, 0, counters, nil}), ErrMalformed},
		{"unknown event type", mp(t, []any{SchemaVersion, "n", "b", 1, 0, 0, 0, 0, counters, []any{ev(9, 0, 1, 1, 1, 1, 1, 1, 1, 1)}}), ErrInvalidEvent},
		{"event too few fields", mp(t, []any{SchemaVersion, "n", "b", 1, 0, 0, 0, 0, counters, []any{ev(4, 0, 1)}}), ErrMalformed},
		{"syscall missing payload", mp(t, []any{SchemaVersion, "n", "b", 1, 0, 0, 0, 0, counters, []any{ev(4, 0, 1, 1, 1, 1, 1, 1, 1, 1)}}), ErrMalformed},
		{"tid overflow", mp(t, []any{SchemaVersion, "n", "b", 1, 0, 0, 0, 0, counters, []any{ev(4, 0, 1, 1, uint64(1)<<40, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0)}}), ErrMalformed},
		{"comm too long", mp(t, []any{SchemaVersion, "n", "b", 1, 0, 0, 0, 0, counters, []any{ev(1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, "01234567890123456789", 1, 1, 1, 1)}}), ErrOversized},
		{"exe too long", mp(t, []any{SchemaVersion, "n", "b", 1, 0, 0, 0, 0, counters, []any{ev(2, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, "x", 1, 1, string(make([]byte, MaxExeLen+1)), "", 0)}}), ErrOversized},
		{"node name too long", mp(t, []any{SchemaVersion, string(make([]byte, 300)), "b", 1, 0, 0, 0, 0, counters, []any{}}), ErrOversized},
		{"envelope without events", mp(t, []any{SchemaVersion, "n", "b", 1, 0, 0, 0, 0, counters}), ErrMalformed},
		{"oversized payload", make([]byte, MaxBatchBytes+1), ErrOversized},
	}
	// A declared event count above the limit, without the events themselves.
	var hdr bytes.Buffer
	enc := msgpack.NewEncoder(&hdr)
	enc.EncodeArrayLen(10)
	for _, v := range []any{SchemaVersion, "n", "b", 1, 0, 0, 0, 0, counters} {
		enc.Encode(v)
	}
	enc.EncodeArrayLen(MaxBatchEvents + 1)
	cases = append(cases, struct {
		name string
		data []byte
		want error
	}{"declared event count over limit", hdr.Bytes(), ErrOversized})

	c := NewCodec()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := Batch{Events: make([]Event, 3)}
			err := c.Decode(tc.data, &b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if len(b.Events) != 0 {
				t.Fatalf("events left after error: %d", len(b.Events))
			}
			var eb EnrichedBatch
			if err := c.DecodeEnriched(tc.data, &eb); err == nil {
				t.Fatalf("enriched decoder accepted %s", tc.name)
			}
		})
	}
	// The codec keeps working after bad input.
	var b Batch
	if err := c.Decode(good, &b); err != nil || len(b.Events) != 6 {
		t.Fatalf("good batch after bad ones: %v, %d events", err, len(b.Events))
	}
}

func TestEncodeRejectsInvalid(t *testing.T) {
	c := NewCodec()
	if _, err := c.Encode(&Batch{Events: []Event{{}}}); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("invalid type: %v", err)
	}
	if _, err := c.Encode(&Batch{Events: make([]Event, MaxBatchEvents+1)}); !errors.Is(err, ErrOversized) {
		t.Fatalf("too many events: %v", err)
	}
}

// checkDecodeErr fails unless err wraps exactly one of the error kinds the
// README promises for bad input (malformed, schema version, oversized,
// invalid event), so that a service can count it by kind.
func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, k := range []error{ErrMalformed, ErrSchemaVersion, ErrOversized, ErrInvalidEvent} {
		if errors.Is(err, k) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("decode error wraps %d of the error kinds, want exactly 1: %v", n, err)
	}
}

// normBytes makes empty and nil byte slices compare equal: the wire format
// does not tell them apart.
func normBytes(b *Batch) {
	for i := range b.Events {
		if len(b.Events[i].Exe) == 0 {
			b.Events[i].Exe = nil
		}
		if len(b.Events[i].Args) == 0 {
			b.Events[i].Args = nil
		}
	}
}

// referenceEncodeEvent is encodeEvent as it was written before its
// fixed-room fast path: every value through writer.uint and writer.int.
// FuzzDecodeBatch holds the two to the same bytes.
func referenceEncodeEvent(w *writer, ev *Event) {
	n := fieldsFor(ev.Type, ev.Flags)
	if n == 0 {
		w.err = fmt.Errorf("encode event: type %d: %w", ev.Type, ErrInvalidEvent)
		return
	}
	w.arrayLen(n)
	for _, v := range []uint64{uint64(ev.Type), uint64(ev.Flags), ev.TsNs, ev.StartNs, uint64(ev.Tid), uint64(ev.Pid),
		uint64(ev.ExecID), uint64(ev.CPU), uint64(ev.VPid), uint64(ev.ABI)} {
		w.uint(v)
	}
	switch ev.Type {
	case TypeFork:
		w.meta(ev)
		w.uint(uint64(ev.ForkerPid))
		w.uint(ev.ForkerStartNs)
	case TypeExec:
		w.meta(ev)
		w.bytes(ev.Exe)
		w.bytes(ev.Args)
		w.uint(uint64(ev.OldPid))
	case TypeExit:
		w.meta(ev)
		w.int(int64(ev.ExitCode))
	case TypeCgroup:
		w.meta(ev)
	case TypeSyscall:
		w.uint(uint64(ev.Syscall))
		w.int(ev.Ret)
		w.uint(ev.SysArgs[0])
		w.uint(ev.SysArgs[1])
		w.uint(ev.SysArgs[2])
		if ev.Flags&FlagHints != 0 {
			w.meta(ev)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	good, _ := NewCodec().Encode(sampleBatch())
	f.Add(append([]byte(nil), good...))
	// The compressed form too, so the fuzzer explores the S2 path.
	f.Add(append([]byte(nil), NewCodec().Compress(good)...))
	f.Add([]byte{CompressedMark, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{0x9a, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewCodec()
		var b Batch
		if err := c.Decode(data, &b); err != nil {
			checkDecodeErr(t, err)
			if len(b.Events) != 0 {
				t.Fatal("events left after error")
			}
			return
		}
		// encodeEvent's fixed-room writes must produce the bytes the
		// plain writer does, event for event.
		for i := range b.Events {
			var fast, ref writer
			encodeEvent(&fast, &b.Events[i])
			referenceEncodeEvent(&ref, &b.Events[i])
			if !bytes.Equal(fast.b, ref.b) || (fast.err == nil) != (ref.err == nil) {
				t.Fatalf("event %d: encodeEvent wrote % x (err %v), the plain writer % x (err %v)", i, fast.b, fast.err, ref.b, ref.err)
			}
		}
		// Whatever decodes must re-encode and decode to the same batch,
		// field for field.
		again, err := NewCodec().Encode(&b)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var b2 Batch
		if err := NewCodec().Decode(again, &b2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		normBytes(&b)
		normBytes(&b2)
		if !reflect.DeepEqual(b, b2) {
			t.Fatalf("round trip changed the batch:\n%+v\n%+v", b, b2)
		}
	})
}

func FuzzDecodeEnriched(f *testing.F) {
	raw := sampleBatch()
	eb := &EnrichedBatch{Node: "n", Events: []Enriched{{Event: raw.Events[0], ProcName: "x"}, {Event: raw.Events[2], Missing: FieldName, Reason: ReasonForkDropped}}}
	good, _ := NewCodec().EncodeEnriched(eb)
	f.Add(append([]byte(nil), good...))
	f.Add(append([]byte(nil), NewCodec().Compress(good)...))
	f.Add([]byte{0x98})
	f.Fuzz(func(t *testing.T, data []byte) {
		var b EnrichedBatch
		if err := NewCodec().DecodeEnriched(data, &b); err != nil {
			checkDecodeErr(t, err)
			if len(b.Events) != 0 {
				t.Fatal("events left after error")
			}
		}
	})
}

func benchBatch(n int) *Batch {
	b := &Batch{Node: "node-a", BootID: "boot", Seq: 1}
	for i := 0; i < n; i++ {
		b.Events = append(b.Events, Event{Header: Header{TsNs: uint64(1e12 + i*1000), StartNs: 1e9, Tid: uint32(1000 + i%50), Pid: uint32(1000 + i%50), ExecID: 2, CPU: uint16(i % 2), Type: TypeSyscall}, Syscall: 257, Ret: 3, SysArgs: [3]uint64{0xffffff9c, 0x7ffd12345678, 0x80000}})
	}
	return b
}

func BenchmarkEncodePerEvent(b *testing.B) {
	c := NewCodec()
	batch := benchBatch(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Encode(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch.Events))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch.Events)), "ns/event")
}

func BenchmarkDecodePerEvent(b *testing.B) {
	c := NewCodec()
	data, _ := c.Encode(benchBatch(1024))
	data = append([]byte(nil), data...)
	var out Batch
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Decode(data, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1024)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1024), "ns/event")
}

func TestSnapshotCodec(t *testing.T) {
	in := &Snapshot{Node: "n", BootID: "b", SensorStartNs: 5, Part: 1, Parts: 1, Procs: []ProcInfo{{Pid: 1, Comm: "init", ExePath: "/sbin/init", StartNs: 10}}}
	data, err := EncodeSnapshot(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeSnapshot(data)
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: %v %+v", err, out)
	}
	bad := *in
	bad.Schema = 9
	data, _ = EncodeSnapshot(&bad)
	if _, err := DecodeSnapshot(data); !errors.Is(err, ErrSchemaVersion) {
		t.Fatalf("schema: %v", err)
	}
	if _, err := DecodeSnapshot([]byte{0xc1}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: %v", err)
	}
	badPart := *in
	badPart.Part, badPart.Parts = 3, 2
	data, _ = EncodeSnapshot(&badPart)
	if _, err := DecodeSnapshot(data); !errors.Is(err, ErrMalformed) {
		t.Fatalf("part 3 of 2: %v", err)
	}
}

func TestSplitSnapshot(t *testing.T) {
	long := string(make([]byte, 4000))
	procs := make([]ProcInfo, 1000)
	for i := range procs {
		procs[i] = ProcInfo{Pid: uint32(i + 1), Cmdline: long}
	}
	parts := SplitSnapshot(procs)
	total := 0
	for i, p := range parts {
		total += len(p)
		data, err := EncodeSnapshot(&Snapshot{Node: "n", Part: uint32(i + 1), Parts: uint32(len(parts)), Procs: p})
		if err != nil || len(data) > 1<<20 {
			t.Fatalf("part %d: %d bytes (max 1 MiB for a stock NATS server), %v", i+1, len(data), err)
		}
	}
	if total != len(procs) || len(parts) < 7 {
		t.Fatalf("%d parts holding %d processes", len(parts), total)
	}
	if got := SplitSnapshot(nil); len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("empty snapshot: %v", got)
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	data, _ := EncodeSnapshot(&Snapshot{Node: "n", Procs: []ProcInfo{{Pid: 1}}})
	f.Add(data)
	f.Add([]byte{0xc1})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSnapshot(data)
		if err != nil {
			checkDecodeErr(t, err)
			if s != nil {
				t.Fatal("snapshot returned with an error")
			}
			return
		}
		// Whatever decodes must re-encode and decode to the same snapshot.
		again, err := EncodeSnapshot(s)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		s2, err := DecodeSnapshot(again)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if len(s.Procs) == 0 && len(s2.Procs) == 0 {
			s.Procs, s2.Procs = nil, nil // nil and empty are one on the wire
		}
		if !reflect.DeepEqual(s, s2) {
			t.Fatalf("round trip changed the snapshot:\n%+v\n%+v", s, s2)
		}
	})
}

// An exec whose argv could not be read has nil Args: our own encoding of it
// must decode (it once became msgpack nil, which the decoder refuses).
func TestNilBytesRoundTrip(t *testing.T) {
	c := NewCodec()
	b := &Batch{Node: "n", Seq: 1, Events: []Event{{Header: Header{Type: TypeExec, Pid: 1}}}}
	data, err := c.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	var out Batch
	if err := NewCodec().Decode(data, &out); err != nil || len(out.Events) != 1 {
		t.Fatalf("decode: %v", err)
	}
}
