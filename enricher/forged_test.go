package enricher_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
)

func snapshotMsg(t *testing.T, node, boot string, start uint64, procs ...event.ProcInfo) []byte {
	t.Helper()
	data, err := event.EncodeSnapshot(&event.Snapshot{Node: node, BootID: boot, SensorStartNs: start, Part: 1, Parts: 1, Procs: procs})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func batchMsg(t *testing.T, b *event.Batch) []byte {
	t.Helper()
	raw, err := event.NewCodec().Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func lastEnriched(t *testing.T, pub *capturePub) event.EnrichedBatch {
	t.Helper()
	var out event.EnrichedBatch
	if err := event.NewCodec().DecodeEnriched(pub.last, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The attack of issue 9: mid-run, a snapshot claims a live python3 is
// sshd. The state built from its exec stands; the entry is counted as
// contradicting and dropped, and no event comes out as sshd.
func TestForgedSnapshotCannotRewriteLiveProcess(t *testing.T) {
	pub := &capturePub{}
	e, err := enricher.New(enricher.Config{Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const node, boot, run = "vm", "boot-1", uint64(1e9)
	init := []event.ProcInfo{{Pid: 1, StartNs: 1e6, Comm: "systemd", ExePath: "/sbin/init"}}
	if err := e.Handle(ctx, bus.SnapshotSubject(node), snapshotMsg(t, node, boot, run, init...)); err != nil {
		t.Fatal(err)
	}
	// python3 is forked and exec'd: known from events.
	b1 := &event.Batch{Node: node, BootID: boot, SensorStartNs: run, Seq: 1, Events: []event.Event{
		fork(2e9, 500, 1, 2e9, "systemd"),
		exec(2e9+1, 500, 1, 2e9, "python3", "/usr/bin/python3", "python3", "app.py"),
	}}
	if err := e.Handle(ctx, bus.RawSubject(node), batchMsg(t, b1)); err != nil {
		t.Fatal(err)
	}
	// The forged snapshot, for the current run: python3 is "sshd", and a
	// pid the state knows exited is alive again; a stranger is new.
	forged := snapshotMsg(t, node, boot, run,
		event.ProcInfo{Pid: 500, PPid: 1, StartNs: 2e9, Comm: "sshd", ExePath: "/usr/sbin/sshd", Cmdline: "sshd -D"},
		event.ProcInfo{Pid: 600, PPid: 1, StartNs: 1e8, Comm: "cron", ExePath: "/usr/sbin/cron"},
		event.ProcInfo{Pid: 700, PPid: 1, StartNs: 3e8, Comm: "sleep", ExePath: "/bin/sleep"},
	)
	if err := e.Handle(ctx, bus.SnapshotSubject(node), forged); err != nil {
		t.Fatalf("a snapshot of the current run is merged, not refused whole: %v", err)
	}
	b2 := &event.Batch{Node: node, BootID: boot, SensorStartNs: run, Seq: 2, Events: []event.Event{
		sys(3e9, 500, 2e9, 1, 0),
		sys(3e9, 700, 3e8, 0, 0),
	}}
	if err := e.Handle(ctx, bus.RawSubject(node), batchMsg(t, b2)); err != nil {
		t.Fatal(err)
	}
	out := lastEnriched(t, pub)
	if got := out.Events[0]; got.ProcName != "python3" || got.ProcExePath != "/usr/bin/python3" {
		t.Errorf("python3's event after the forged snapshot: name %q exe %q, want python3 /usr/bin/python3", got.ProcName, got.ProcExePath)
	}
	if got := out.Events[1]; got.ProcName != "sleep" {
		t.Errorf("a process unknown to the state, from the snapshot: name %q, want sleep", got.ProcName)
	}
	st := e.Stats()
	if st.SnapshotEntries.Contradicting != 1 {
		t.Errorf("contradicting snapshot entries = %d, want 1 (%+v)", st.SnapshotEntries.Contradicting, st.SnapshotEntries)
	}
	if st.SnapshotEntries.Applied != 2 {
		t.Errorf("applied snapshot entries = %d, want 2 (%+v)", st.SnapshotEntries.Applied, st.SnapshotEntries)
	}

	// A snapshot of an older run of the same boot is refused whole.
	if err := e.Handle(ctx, bus.SnapshotSubject(node), snapshotMsg(t, node, boot, run-1, init...)); err == nil {
		t.Errorf("snapshot of an older sensor run accepted")
	}
	if n := e.Stats().BadInput["snapshot_stale_run"]; n != 1 {
		t.Errorf("bad input snapshot_stale_run = %d, want 1", n)
	}
	// A snapshot of a run no batch has shown yet waits: the current run's
	// batches still see their state.
	if err := e.Handle(ctx, bus.SnapshotSubject(node), snapshotMsg(t, node, "boot-forged", 5,
		event.ProcInfo{Pid: 500, StartNs: 2e9, Comm: "sshd", ExePath: "/usr/sbin/sshd"})); err != nil {
		t.Fatal(err)
	}
	b3 := &event.Batch{Node: node, BootID: boot, SensorStartNs: run, Seq: 3, Events: []event.Event{sys(4e9, 500, 2e9, 1, 0)}}
	if err := e.Handle(ctx, bus.RawSubject(node), batchMsg(t, b3)); err != nil {
		t.Fatal(err)
	}
	if got := lastEnriched(t, pub).Events[0]; got.ProcName != "python3" {
		t.Errorf("after a snapshot of an unseen run: name %q, want python3", got.ProcName)
	}
	if e.Stats().SnapshotsPending != 1 {
		t.Errorf("snapshots pending = %d, want 1", e.Stats().SnapshotsPending)
	}
	// A real new run: its snapshot applies once its first batch arrives.
	if err := e.Handle(ctx, bus.SnapshotSubject(node), snapshotMsg(t, node, boot, run+10,
		event.ProcInfo{Pid: 800, StartNs: 5e9, Comm: "nginx", ExePath: "/usr/sbin/nginx"})); err != nil {
		t.Fatal(err)
	}
	b4 := &event.Batch{Node: node, BootID: boot, SensorStartNs: run + 10, Seq: 1, Events: []event.Event{sys(6e9, 800, 5e9, 0, 0)}}
	if err := e.Handle(ctx, bus.RawSubject(node), batchMsg(t, b4)); err != nil {
		t.Fatal(err)
	}
	if got := lastEnriched(t, pub).Events[0]; got.ProcName != "nginx" || got.Source != event.SourceSnapshot {
		t.Errorf("first batch of a new run: name %q source %v, want nginx from its snapshot", got.ProcName, got.Source)
	}
}

// 2,000 invented nodes: the enricher keeps at most MaxNodes, refuses and
// counts the rest, and evicts idle nodes to make room.
func TestNodeCap(t *testing.T) {
	e, err := enricher.New(enricher.Config{Publisher: nopPub{}, MaxNodes: 100, NodeIdle: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 2000; i++ {
		node := fmt.Sprintf("invented-%d", i)
		b := &event.Batch{Node: node, BootID: "b", SensorStartNs: 1, Seq: 1}
		_ = e.Handle(ctx, bus.RawSubject(node), batchMsg(t, b))
	}
	st := e.Stats()
	if st.Nodes > 100 {
		t.Errorf("nodes kept = %d, above the cap of 100", st.Nodes)
	}
	// NodeIdle of 1 ns: every node is idle when room is needed, so none
	// is refused, and 1,900 were evicted.
	if st.Limits.NodesEvicted != 1900 || st.Limits.NodesRefused != 0 || st.Limits.MaxNodes != 100 {
		t.Errorf("limits %+v, want 1900 evicted, none refused, max 100", st.Limits)
	}

	// With nodes that are not idle, a new node is refused and counted.
	e, err = enricher.New(enricher.Config{Publisher: nopPub{}, MaxNodes: 100})
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for i := 0; i < 2000; i++ {
		node := fmt.Sprintf("invented-%d", i)
		b := &event.Batch{Node: node, BootID: "b", SensorStartNs: 1, Seq: 1}
		if err := e.Handle(ctx, bus.RawSubject(node), batchMsg(t, b)); err != nil {
			if r, _ := bus.PoisonReason(err); r != "node_cap" {
				t.Fatalf("node %s: %v", node, err)
			}
			refused++
		}
	}
	st = e.Stats()
	if st.Nodes != 100 || refused != 1900 || st.Limits.NodesRefused != 1900 || st.BadInput["node_cap"] != 1900 {
		t.Errorf("nodes %d, refused %d, limits %+v, bad input %v; want 100 kept and 1900 refused", st.Nodes, refused, st.Limits, st.BadInput)
	}
	// A known node goes on.
	b := &event.Batch{Node: "invented-5", BootID: "b", SensorStartNs: 1, Seq: 2}
	if err := e.Handle(ctx, bus.RawSubject("invented-5"), batchMsg(t, b)); err != nil {
		t.Errorf("known node after the cap: %v", err)
	}
}

// A snapshot larger than MaxSnapshotProcs is refused and counted.
func TestSnapshotSizeCap(t *testing.T) {
	e, err := enricher.New(enricher.Config{Publisher: nopPub{}, MaxSnapshotProcs: 10})
	if err != nil {
		t.Fatal(err)
	}
	procs := make([]event.ProcInfo, 11)
	for i := range procs {
		procs[i] = event.ProcInfo{Pid: uint32(i + 1), StartNs: 1, Comm: "x"}
	}
	err = e.Handle(context.Background(), bus.SnapshotSubject("n"), snapshotMsg(t, "n", "b", 1, procs...))
	if r, _ := bus.PoisonReason(err); r != "snapshot_too_large" {
		t.Fatalf("snapshot of 11 processes with a cap of 10: %v", err)
	}
	if st := e.Stats(); st.Limits.SnapshotTooLarge != 1 || st.Snapshots != 0 {
		t.Errorf("stats %+v", st)
	}
}

// A real new sensor run whose first batches were lost (it starts at 3) is
// adopted on its second batch in sequence, the lost ones counted as gaps
// and its held snapshot applied; a lone batch of another run numbered far
// ahead is enriched but resets nothing; every batch is published.
func TestNewRunAdoptedOnlyWhenConsistent(t *testing.T) {
	pub := &capturePub{}
	e, err := enricher.New(enricher.Config{Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const node = "vm"
	send := func(boot string, start, seq uint64, ev event.Event) event.EnrichedBatch {
		t.Helper()
		b := &event.Batch{Node: node, BootID: boot, SensorStartNs: start, Seq: seq, Events: []event.Event{ev}}
		if err := e.Handle(ctx, bus.RawSubject(node), batchMsg(t, b)); err != nil {
			t.Fatal(err)
		}
		return lastEnriched(t, pub)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		send("boot-1", 1, seq, sys(1e9+seq, 10, 5, 0, 0))
	}
	// A lone batch of another run, far ahead: enriched, nothing reset.
	if out := send("boot-x", 9, 1e9, sys(2e9, 10, 5, 0, 0)); len(out.Events) != 1 || out.BootID != "boot-x" {
		t.Errorf("foreign batch enriched as %+v", out)
	}
	send("boot-1", 1, 4, sys(3e9, 10, 5, 0, 0))
	if st := e.Stats(); st.SeqGaps != 0 || st.Limits.RunsRefused != 1 || st.Limits.RunsAdopted != 0 {
		t.Fatalf("after a lone foreign batch: gaps %d, limits %+v", st.SeqGaps, st.Limits)
	}
	// A restart (boot-2) whose batches 1 and 2 were lost; its snapshot is
	// held until the run is adopted.
	if err := e.Handle(ctx, bus.SnapshotSubject(node), snapshotMsg(t, node, "boot-2", 7,
		event.ProcInfo{Pid: 20, StartNs: 6, Comm: "nginx", ExePath: "/usr/sbin/nginx"})); err != nil {
		t.Fatal(err)
	}
	send("boot-2", 7, 3, sys(4e9, 20, 6, 0, 0))
	if st := e.Stats(); st.Limits.RunsAdopted != 0 {
		t.Fatalf("adopted on one batch: %+v", st.Limits)
	}
	out := send("boot-2", 7, 4, sys(4e9+1, 20, 6, 0, 0))
	if got := out.Events[0]; got.ProcName != "nginx" || got.Source != event.SourceSnapshot {
		t.Errorf("after adoption: name %q source %v, want nginx from the held snapshot", got.ProcName, got.Source)
	}
	if st := e.Stats(); st.SeqGaps != 2 || st.Limits.RunsAdopted != 1 || st.Batches != 7 {
		t.Errorf("after the restart: gaps %d (want 2: batches 1 and 2), limits %+v, batches %d (want 7)", st.SeqGaps, st.Limits, st.Batches)
	}
}
