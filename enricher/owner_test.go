package enricher_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
)

func TestOwnerRendezvousBalancesAndMovesLittle(t *testing.T) {
	members := []string{"e1", "e2", "e3"}
	count := map[string]int{}
	before := map[string]string{}
	for i := 0; i < 300; i++ {
		node := fmt.Sprintf("node-%d", i)
		o := enricher.Owner(node, members)
		count[o]++
		before[node] = o
	}
	for _, m := range members {
		if count[m] < 60 {
			t.Errorf("member %s owns %d of 300 nodes: unbalanced %v", m, count[m], count)
		}
	}
	// A 4th member takes only nodes it wins; nothing moves between the others.
	moved := 0
	for node, o := range before {
		n := enricher.Owner(node, append(members, "e4"))
		if n != o {
			moved++
			if n != "e4" {
				t.Fatalf("node %s moved from %s to %s, not to the new member", node, o, n)
			}
		}
	}
	if moved == 0 || moved > 150 {
		t.Errorf("%d of 300 nodes moved to the new member", moved)
	}
	if enricher.Owner("x", nil) != "" {
		t.Error("owner without members")
	}
}

// scaledEnv runs n scaled enrichers on one embedded server.
func scaledEnricher(t *testing.T, e *env, id string) (*enricher.Enricher, func()) {
	t.Helper()
	b, err := bus.EnsureBuckets(e.ctx, e.js, bus.BucketOptions{Memory: true, MemberTTL: time.Second, LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return e.runEnricher(t, enricher.Config{Scale: &enricher.ScaleConfig{ID: id, Buckets: b, MemberTTL: time.Second, LeaseTTL: time.Second,
		CheckpointBatches: 5, CheckpointInterval: 200 * time.Millisecond}})
}

// positions reads node's enriched subject and returns the raw positions in
// stream order.
func positions(t *testing.T, e *env, node string) []uint64 {
	t.Helper()
	c, err := e.js.OrderedConsumer(e.ctx, bus.StreamEnriched, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.EnrichedSubject(node)}})
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for {
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			p, _ := strconv.ParseUint(m.Headers().Get(bus.HeaderRawStreamSeq), 10, 64)
			out = append(out, p)
		}
		if n == 0 {
			return out
		}
	}
}

func rawPositions(t *testing.T, e *env, node string) []uint64 {
	t.Helper()
	c, err := e.js.OrderedConsumer(e.ctx, bus.StreamRaw, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.RawSubject(node)}})
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for {
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, _ := m.Metadata()
			out = append(out, md.Sequence.Stream)
		}
		if n == 0 {
			return out
		}
	}
}

// Three scaled enrichers share two nodes; one stops mid-stream (graceful
// hand-over) and a fourth joins: every raw batch is enriched exactly once,
// in raw order, per node.
func TestScaledHandOverKeepsOrderAndLosesNothing(t *testing.T) {
	e := startEnv(t)
	nodes := []string{"na", "nb"}
	for _, n := range nodes {
		e.publishSnapshot(t, n)
	}
	_, stop1 := scaledEnricher(t, e, "e1")
	scaledEnricher(t, e, "e2")
	scaledEnricher(t, e, "e3")
	seq := uint64(0)
	send := func(k int) {
		for i := 0; i < k; i++ {
			seq++
			for _, n := range nodes {
				e.publishBatch(t, n, &event.Batch{Seq: seq, Events: []event.Event{sys(sensorStart+seq, 100, 10, 0, uint32(seq))}})
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	send(100)
	stop1()
	send(100)
	scaledEnricher(t, e, "e4")
	send(100)
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range nodes {
		want := rawPositions(t, e, n)
		var got []uint64
		for time.Now().Before(deadline) {
			if got = positions(t, e, n); len(got) >= len(want) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("node %s: enriched positions\n%v\nwant the raw positions\n%v", n, got, want)
		}
	}
}

// An owner whose lease is taken over while it stalls is fenced: its lease
// renewal and checkpoint are refused, it stops, and the new owner's output
// continues the node's subject without duplicates or reordering.
func TestScaledStalledOwnerIsFenced(t *testing.T) {
	e := startEnv(t)
	e.publishSnapshot(t, "nf")
	b, err := bus.EnsureBuckets(e.ctx, e.js, bus.BucketOptions{Memory: true, MemberTTL: time.Second, LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	en, _ := scaledEnricher(t, e, "e1")
	for i := uint64(1); i <= 20; i++ {
		e.publishBatch(t, "nf", &event.Batch{Seq: i, Events: []event.Event{sys(sensorStart+i, 100, 10, 0, uint32(i))}})
	}
	waitFor(t, func() bool { return len(positions(t, e, "nf")) == 20 })
	// Another party takes the lease and claims the checkpoint, as a new
	// owner would after e1 stalled past its lease.
	key := bus.NodeKey("nf")
	if err := b.Leases.Purge(e.ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Leases.Create(e.ctx, key, []byte("intruder")); err != nil {
		t.Fatal(err)
	}
	ck, err := b.Checkpoints.Get(e.ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Checkpoints.Update(e.ctx, key, ck.Value(), ck.Revision()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { o := en.Stats().Ownership; return o != nil && o.Fenced == 1 })
	// The intruder holds the lease for 2 s (renewing it); meanwhile e1
	// must not publish the new batches.
	rev, _ := b.Leases.Get(e.ctx, key)
	lr := rev.Revision()
	for i := uint64(21); i <= 30; i++ {
		e.publishBatch(t, "nf", &event.Batch{Seq: i, Events: []event.Event{sys(sensorStart+i, 100, 10, 0, uint32(i))}})
	}
	for k := 0; k < 8; k++ {
		time.Sleep(250 * time.Millisecond)
		if lr, err = b.Leases.Update(e.ctx, key, []byte("intruder"), lr); err != nil {
			t.Fatal(err)
		}
	}
	if got := positions(t, e, "nf"); len(got) != 20 {
		t.Fatalf("a fenced owner went on publishing: %d enriched batches, want 20", len(got))
	}
	// The intruder stops renewing: e1 takes the node back from the
	// intruder's checkpoint and goes on in order.
	waitFor(t, func() bool { return len(positions(t, e, "nf")) >= 30 })
	if got, want := positions(t, e, "nf"), rawPositions(t, e, "nf"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("positions %v, want %v", got, want)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var _ = context.Background

// Bad input on a scaled enricher's node: garbage, truncated msgpack, a
// 5 MB message, a wrong schema version and a node mismatch each land in
// RINGWISE_DLQ with their reason, and the valid batches around them are
// all enriched, in order.
func TestScaledBadInputToDLQ(t *testing.T) {
	e := startEnv(t)
	const node = "nbad"
	e.publishSnapshot(t, node)
	en, _ := scaledEnricher(t, e, "e1")
	codec := event.NewCodec()
	valid := func(seq uint64) []byte {
		data, err := codec.Encode(&event.Batch{Node: node, BootID: "boot", SensorStartNs: sensorStart, Seq: seq,
			Events: []event.Event{sys(sensorStart+seq, 100, 10, 0, uint32(seq))}})
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), data...)
	}
	pub := bus.JetStreamPublisher{JS: e.js}
	send := func(m bus.Msg) {
		t.Helper()
		m.Subject = bus.RawSubject(node)
		if err := pub.Publish(e.ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	other, err := codec.Encode(&event.Batch{Node: "someone-else", BootID: "boot", SensorStartNs: sensorStart, Seq: 99})
	if err != nil {
		t.Fatal(err)
	}
	other = append([]byte(nil), other...)
	bad := []bus.Msg{
		{Data: []byte("garbage, not msgpack")},
		{Data: valid(98)[:20]},
		{Data: make([]byte, 5<<20)},
		{Data: valid(97), Schema: event.SchemaVersion + 7},
		{Data: other},
	}
	for i := uint64(1); i <= 12; i++ {
		send(bus.Msg{Data: valid(i), Schema: event.SchemaVersion})
		if i <= uint64(len(bad)) {
			send(bad[i-1])
		}
	}
	waitFor(t, func() bool { return len(positions(t, e, node)) == 12 })
	var want []uint64
	raw := rawPositions(t, e, node)
	for i, p := range raw {
		if i%2 == 0 || i >= 2*len(bad) {
			want = append(want, p)
		}
	}
	if got := positions(t, e, node); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("enriched positions %v, want the valid batches %v", got, want)
	}
	var dls []bus.DeadLetter
	waitFor(t, func() bool {
		dls, err = bus.ListDeadLetters(e.ctx, e.js, 0)
		return err == nil && len(dls) == len(bad)
	})
	reasons := map[string]bool{}
	for _, d := range dls {
		reasons[d.Reason] = true
		if d.OriginalSubject != bus.RawSubject(node) || d.OriginalSeq == 0 || d.OriginalStream != bus.StreamRaw {
			t.Errorf("dead letter %+v: original subject, stream or seq missing", d)
		}
		t.Logf("dead letter: reason %s, original seq %d, size %d: %s", d.Reason, d.OriginalSeq, d.Size, d.Error)
	}
	for _, r := range []string{"malformed", bus.ReasonOversized, bus.ReasonSchemaVersion, "node_mismatch"} {
		if !reasons[r] {
			t.Errorf("no dead letter with reason %s: %v", r, reasons)
		}
	}
	if st := en.Stats(); st.Consumer.DeadLettered != uint64(len(bad)) || st.Batches != 12 {
		t.Errorf("stats: %d dead-lettered, %d batches; want %d and 12", st.Consumer.DeadLettered, st.Batches, len(bad))
	}
}

// A new owner without a checkpoint, for a node whose enriched output
// exists, asks the node's sensor for a fresh snapshot; when no sensor
// answers it falls back to replaying the node's stream (counted, and
// nothing published twice).
func TestScaledNoCheckpointNoSensorReplays(t *testing.T) {
	e := startEnv(t)
	const node = "nsnap"
	e.publishSnapshot(t, node)
	b, err := bus.EnsureBuckets(e.ctx, e.js, bus.BucketOptions{Memory: true, MemberTTL: time.Second, LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, stop1 := scaledEnricher(t, e, "e1")
	for i := uint64(1); i <= 20; i++ {
		e.publishBatch(t, node, &event.Batch{Seq: i, Events: []event.Event{sys(sensorStart+i, 100, 10, 0, uint32(i))}})
	}
	waitFor(t, func() bool { return len(positions(t, e, node)) == 20 })
	stop1()
	// The checkpoint is gone (a lost bucket, say); the output is not.
	if err := b.Checkpoints.Purge(e.ctx, bus.NodeKey(node)); err != nil {
		t.Fatal(err)
	}
	for i := uint64(21); i <= 25; i++ {
		e.publishBatch(t, node, &event.Batch{Seq: i, Events: []event.Event{sys(sensorStart+i, 100, 10, 0, uint32(i))}})
	}
	en2, _ := e.runEnricher(t, enricher.Config{NC: e.nc, Scale: &enricher.ScaleConfig{ID: "e2", Buckets: b, MemberTTL: time.Second, LeaseTTL: time.Second,
		CheckpointBatches: 5, CheckpointInterval: 200 * time.Millisecond}})
	waitFor(t, func() bool { return len(positions(t, e, node)) == 25 })
	if got, want := positions(t, e, node), rawPositions(t, e, node); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("positions %v, want %v", got, want)
	}
	st := en2.Stats()
	if o := st.Ownership; o == nil || o.SnapshotFallbacks != 1 || o.SnapshotRequests != 0 {
		t.Errorf("ownership %+v: want 1 fallback, 0 snapshot requests answered", st.Ownership)
	}
	if st.Replayed != 20 || st.Batches != 5 {
		t.Errorf("replayed %d, enriched %d: want the 20 published batches replayed and 5 new ones enriched", st.Replayed, st.Batches)
	}
}
