package enricher_test

import (
	"context"
	"testing"

	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
)

// capturePub keeps the last enriched batch published.
type capturePub struct{ last []byte }

func (c *capturePub) Publish(_ context.Context, m bus.Msg) error {
	c.last = append(c.last[:0], m.Data...)
	return nil
}

// A snapshot in parts seeds the table from all parts, and only once the
// last has arrived; a part out of sequence is bad input.
func TestSnapshotInParts(t *testing.T) {
	pub := &capturePub{}
	e, err := enricher.New(enricher.Config{Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	part := func(i, n uint32, procs ...event.ProcInfo) []byte {
		data, err := event.EncodeSnapshot(&event.Snapshot{Node: "n1", BootID: "b", SensorStartNs: 1e9, Part: i, Parts: n, Procs: procs})
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for i, p := range [][]byte{
		part(1, 2, event.ProcInfo{Pid: 10, PPid: 1, StartNs: 5e8, Comm: "a", ExePath: "/a"}),
		part(2, 2, event.ProcInfo{Pid: 20, PPid: 1, StartNs: 5e8, Comm: "b", ExePath: "/b"}),
	} {
		if err := e.Handle(ctx, bus.SnapshotSubject("n1"), p); err != nil {
			t.Fatalf("part %d: %v", i+1, err)
		}
	}
	if e.Stats().Snapshots != 1 {
		t.Fatalf("snapshots seeded: %d", e.Stats().Snapshots)
	}
	b := &event.Batch{Node: "n1", BootID: "b", SensorStartNs: 1e9, Seq: 1, Events: []event.Event{
		{Header: event.Header{TsNs: 2e9, StartNs: 5e8, Tid: 10, Pid: 10, ExecID: 1, Type: event.TypeSyscall}},
		{Header: event.Header{TsNs: 2e9, StartNs: 5e8, Tid: 20, Pid: 20, ExecID: 1, Type: event.TypeSyscall}},
	}}
	raw, _ := event.NewCodec().Encode(b)
	if err := e.Handle(ctx, bus.RawSubject("n1"), raw); err != nil {
		t.Fatal(err)
	}
	var out event.EnrichedBatch
	if err := event.NewCodec().DecodeEnriched(pub.last, &out); err != nil {
		t.Fatal(err)
	}
	if out.Events[0].ProcName != "a" || out.Events[1].ProcName != "b" || out.Events[0].Source != event.SourceSnapshot {
		t.Fatalf("enriched %+v", out.Events)
	}
	// Part 2 without part 1: refused and counted.
	if err := e.Handle(ctx, bus.SnapshotSubject("n1"), part(2, 2)); err == nil {
		t.Fatal("part out of sequence accepted")
	}
	// A snapshot claiming another node: refused and counted.
	wrong, _ := event.EncodeSnapshot(&event.Snapshot{Node: "other", Part: 1, Parts: 1})
	if err := e.Handle(ctx, bus.SnapshotSubject("n1"), wrong); err == nil {
		t.Fatal("node mismatch accepted")
	}
	bad := e.Stats().BadInput
	if bad["snapshot_sequence"] != 1 || bad["node_mismatch"] != 1 {
		t.Fatalf("bad input %v", bad)
	}
}
