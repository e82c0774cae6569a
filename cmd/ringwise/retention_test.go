package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/analyzer"
	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
)

// TestRetentionLossCounted: a real server with tiny raw-stream limits
// removes raw batches before a (scaled) enricher reads them. The loss is
// told apart from what the sensor never stored (its spool overflow, said
// in each batch's Ringwise-Sensor-Unsent header) and reported exactly, in
// batches and events, by the enricher and per node in the analyzer's
// summary (retention_lost_*), besides the batch gaps. Two limits: the
// per-node message limit, which leaves the stream's first sequence where
// it was, and the stream's byte limit, which moves it.
func TestRetentionLossCounted(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts bus.StreamOptions
	}{
		{"messages per node", bus.StreamOptions{Memory: true, RawMaxMsgsPerNode: 5}},
		// 18 batches of ~1 KiB and the snapshot: 6 KiB keeps the newest few.
		{"stream bytes", bus.StreamOptions{Memory: true, MaxBytes: 6 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) { retentionCase(t, tc.opts) })
	}
}

func retentionCase(t *testing.T, opts bus.StreamOptions) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // hang guard only
	defer cancel()
	nc, err := bus.Connect(srv.URL(), "test-sensor")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, js, opts); err != nil {
		t.Fatal(err)
	}
	const node, boot, start = "ret", "boot-1", uint64(1_000_000_000)
	pub := bus.JetStreamPublisher{JS: js}
	snap, err := event.EncodeSnapshot(&event.Snapshot{Node: node, BootID: boot, SensorStartNs: start, Part: 1, Parts: 1,
		Procs: []event.ProcInfo{{Pid: 100, Comm: "app", ExePath: "/bin/app", StartNs: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, bus.Msg{Subject: bus.SnapshotSubject(node), Data: snap, Schema: event.SchemaVersion}); err != nil {
		t.Fatal(err)
	}
	// The scripted sensor: 20 batches of 7 events; batches 8 and 9 "overflow
	// its spool" (never published, counted in the header of later batches).
	const batches, perBatch = 20, 7
	codec := event.NewCodec()
	var delivered, unsentB, unsentE uint64
	var published []uint64
	for seq := uint64(1); seq <= batches; seq++ {
		b := event.Batch{Schema: event.SchemaVersion, Node: node, BootID: boot, SensorStartNs: start, Seq: seq}
		for i := 0; i < perBatch; i++ {
			ts := start + seq*1000 + uint64(i)
			b.Events = append(b.Events, event.Event{Header: event.Header{Type: event.TypeSyscall, Pid: 100, Tid: 100, StartNs: 10, TsNs: ts}, Syscall: 1})
		}
		delivered += perBatch
		b.Counters.Delivered[event.TypeSyscall.Category()] = delivered
		b.Counters.Attempted[event.TypeSyscall.Category()] = delivered
		b.FirstTsNs, b.LastTsNs = b.Events[0].TsNs, b.Events[perBatch-1].TsNs
		if seq == 8 || seq == 9 {
			unsentB++
			unsentE += perBatch
			continue
		}
		data, err := codec.Encode(&b)
		if err != nil {
			t.Fatal(err)
		}
		h := nats.Header{}
		h.Set(bus.HeaderSensorUnsent, bus.FormatCount2(unsentB, unsentE))
		// Padding makes the byte limit bite at a batch boundary.
		h.Set("Padding", fmt.Sprintf("%0900d", 0))
		if err := pub.Publish(ctx, bus.Msg{Subject: bus.RawSubject(node), ID: b.MsgID(), Header: h, Data: data, Schema: event.SchemaVersion}); err != nil {
			t.Fatal(err)
		}
		published = append(published, seq)
	}
	// What the stream still holds: the first of it is where loss ends.
	firstKept := uint64(0)
	oc, err := js.OrderedConsumer(ctx, bus.StreamRaw, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.RawSubject(node)}})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := oc.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for m := range mb.Messages() {
		var b event.Batch
		if err := codec.Decode(m.Data(), &b); err != nil {
			t.Fatal(err)
		}
		firstKept = b.Seq
		kept++
	}
	if kept == 0 || firstKept <= 10 {
		t.Fatalf("the limits kept the stream from batch %d: the test's limits do not bite past the overflowed batches 8-9", firstKept)
	}
	// Lost to retention: batches 1..firstKept-1 that were published.
	var wantB uint64
	for _, s := range published {
		if s < firstKept {
			wantB++
		}
	}
	wantE := wantB * perBatch
	t.Logf("the stream kept batches %d..%d; the sensor never stored 8 and 9; %d batches (%d events) removed before anyone read them", firstKept, batches, wantB, wantE)

	enc, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.EnsureBuckets(ctx, enc, bus.BucketOptions{Memory: true, MemberTTL: time.Second, LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	en, err := enricher.New(enricher.Config{JS: enc, Scale: &enricher.ScaleConfig{ID: "e1", Buckets: b, MemberTTL: time.Second, LeaseTTL: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	an := analyzer.New(analyzer.Config{JS: js, Durable: "ana-ret", HTTPAddr: "127.0.0.1:0"})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- en.Run(runCtx) }()
	go func() { done <- an.Run(runCtx) }()
	defer func() {
		stop()
		for i := 0; i < 2; i++ {
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	}()
	want := uint64(batches - int(firstKept) + 1)
	deadline := time.Now().Add(30 * time.Second)
	for an.Summary(node).Analyzer.Batches < want {
		if time.Now().After(deadline) {
			t.Fatalf("analyzer saw %d of %d batches", an.Summary(node).Analyzer.Batches, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := en.Stats()
	if st.SeqGaps != firstKept-1 || st.RetentionLostBatches != wantB || st.RetentionLostEvents != wantE {
		t.Errorf("enricher: seq gaps %d (want %d), retention lost %d batches %d events (want %d, %d)",
			st.SeqGaps, firstKept-1, st.RetentionLostBatches, st.RetentionLostEvents, wantB, wantE)
	}
	s := an.Summary(node)
	if s.Analyzer.RetentionLostBatches != wantB || s.Analyzer.RetentionLostEvents != wantE {
		t.Errorf("/api/summary: retention_lost_batches %d, retention_lost_events %d; want %d, %d",
			s.Analyzer.RetentionLostBatches, s.Analyzer.RetentionLostEvents, wantB, wantE)
	}
	if h := en.Health(); h.Limits["retention_lost_batches"] != wantB {
		t.Errorf("enricher health: retention_lost_batches %d, want %d", h.Limits["retention_lost_batches"], wantB)
	}
	t.Logf("enricher: %d sequence gaps, %d batches / %d events of them retention; analyzer: batch gaps %d, retention_lost %d batches / %d events",
		st.SeqGaps, st.RetentionLostBatches, st.RetentionLostEvents, s.Analyzer.BatchGaps, s.Analyzer.RetentionLostBatches, s.Analyzer.RetentionLostEvents)
}
