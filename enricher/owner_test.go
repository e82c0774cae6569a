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
