package analyzer_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/analyzer"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/telemetry"
)

// A message the analyzer never settles (it crashed, or stopped, while
// handling it: here its durable consumer takes the message and lets it go
// MaxDeliver times, as a crash would) goes to the DLQ as max_deliver on its
// next delivery, without the handler, and the stream goes on: later
// messages are handled, and the dead letter is counted in Health.
func TestAnalyzerMaxDeliverDeadLetters(t *testing.T) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := bus.Connect(srv.URL(), "analyzer-maxdeliver-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second) // hang guard only
	defer cancel()
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{Memory: true}); err != nil {
		t.Fatal(err)
	}
	const maxDeliver = 3
	m, err := telemetry.NewMetrics("test")
	if err != nil {
		t.Fatal(err)
	}
	a := analyzer.New(analyzer.Config{JS: js, Durable: "ana-md", MaxDeliver: maxDeliver, Metrics: m.Handler()})
	if _, err := a.RegisterMetrics(m.Meter()); err != nil {
		t.Fatal(err)
	}
	pub := bus.JetStreamPublisher{JS: js}
	first := enrichedBatch(1, 5, 0, 0)
	if err := pub.Publish(ctx, bus.Msg{Subject: bus.EnrichedSubject(node), ID: first.MsgID(), Data: encode(t, first), Schema: event.SchemaVersion}); err != nil {
		t.Fatal(err)
	}
	// The analyzer's own durable, as Run creates it, delivering the batch
	// maxDeliver times without a settled outcome.
	spec := a.Specs()[0]
	cons, err := js.CreateOrUpdateConsumer(ctx, spec.Stream, spec.ConsumerConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= maxDeliver; i++ {
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range b.Messages() {
			md, _ := m.Metadata()
			if md.NumDelivered != uint64(i) {
				t.Fatalf("delivery %d counted as %d", i, md.NumDelivered)
			}
			_ = m.Nak()
			got++
		}
		if got != 1 {
			t.Fatalf("fetch %d: %d messages (%v)", i, got, b.Error())
		}
	}
	second := enrichedBatch(2, 7, 0, 0)
	if err := pub.Publish(ctx, bus.Msg{Subject: bus.EnrichedSubject(node), ID: second.MsgID(), Data: encode(t, second), Schema: event.SchemaVersion}); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	for a.Summary(node).Analyzer.Events != 7 {
		select {
		case <-ctx.Done():
			t.Fatalf("the batch after the dead-lettered one never arrived: summary %+v", a.Summary(node).Analyzer)
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h := a.Health()
	if h.Limits["max_delivered_dead_lettered"] != 1 || h.Limits["dead_lettered"] != 1 || h.Limits["max_deliver"] != maxDeliver {
		t.Errorf("health limits %v: want 1 max_deliver dead letter of at most %d deliveries", h.Limits, maxDeliver)
	}
	dls, err := bus.ListDeadLetters(ctx, js, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Reason != bus.ReasonMaxDeliver || dls[0].OriginalStream != bus.StreamEnriched || dls[0].OriginalSeq != 1 {
		t.Fatalf("dead letters %+v: want the first batch (seq 1 of %s) as %s", dls, bus.StreamEnriched, bus.ReasonMaxDeliver)
	}
	t.Logf("dead letter: %s", dls[0].Error)

	// The consume loop's refusal is bad input by kind, the same in
	// /api/summary (services.analyzer) and on /metrics.
	if got := a.Summary("").Services["analyzer"].BadInput[bus.ReasonMaxDeliver]; got != 1 {
		t.Errorf("/api/summary services.analyzer.bad_input[%s] = %d, want 1", bus.ReasonMaxDeliver, got)
	}
	fams, err := m.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var onMetrics float64
	for _, f := range fams {
		if f.GetName() != "ringwise_analyzer_bad_input_total" {
			continue
		}
		for _, mm := range f.GetMetric() {
			for _, l := range mm.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == bus.ReasonMaxDeliver {
					onMetrics = mm.GetCounter().GetValue()
				}
			}
		}
	}
	if onMetrics != 1 {
		t.Errorf("/metrics ringwise_analyzer_bad_input_total{kind=%q} = %v, want 1", bus.ReasonMaxDeliver, onMetrics)
	}
}
