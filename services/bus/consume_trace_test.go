package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/telemetry"
)

// TestConsumerTracing: the loop starts one consumer span per delivery, the
// child of the publish span whose context the message carries in its
// headers (through JetStream), linked to it, with the durable as consumer
// group; the handler's ctx carries it.
func TestConsumerTracing(t *testing.T) {
	ctx := testCtx(t)
	_, js := startJS(t)
	ensure(t, ctx, js)
	pexp, cexp := tracetest.NewInMemoryExporter(), tracetest.NewInMemoryExporter()
	prod, err := telemetry.NewTracing(ctx, "producer", telemetry.WithSpanExporter(pexp))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := telemetry.NewTracing(ctx, "consumer", telemetry.WithSpanExporter(cexp))
	if err != nil {
		t.Fatal(err)
	}

	subject := bus.RawSubject("n1")
	hdr := nats.Header{}
	msg := bus.Msg{Subject: subject, ID: "n1.boot.1.1", Header: hdr, Data: []byte("batch"), Schema: 1}
	_, ps := prod.StartPublish(ctx, telemetry.Batch{Subject: subject, MsgID: msg.ID, Events: 5, Node: "n1"}, hdr)
	if err := (bus.JetStreamPublisher{JS: js}).Publish(ctx, msg); err != nil {
		t.Fatal(err)
	}
	ps.End()

	got := make(chan trace.SpanContext, 1)
	h := func(ctx context.Context, d bus.Delivery) error {
		span := trace.SpanFromContext(ctx)
		telemetry.SetEvents(span, 5)
		got <- span.SpanContext()
		return nil
	}
	c, err := bus.NewConsumer(js, bus.ConsumerSpec{Stream: bus.StreamRaw, Durable: "trace-test", FilterSubjects: []string{bus.PrefixRaw + ">"}},
		h, bus.WithTracing(cons))
	if err != nil {
		t.Fatal(err)
	}
	stop := runConsumer(t, ctx, c)
	var inHandler trace.SpanContext
	select {
	case inHandler = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	pub, spans := pexp.GetSpans()[0], cexp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d consumer spans, want 1", len(spans))
	}
	proc := spans[0]
	if proc.SpanContext.SpanID() != inHandler.SpanID() {
		t.Fatal("the handler's ctx does not carry the consumer span")
	}
	if proc.Parent.SpanID() != pub.SpanContext.SpanID() || proc.SpanContext.TraceID() != pub.SpanContext.TraceID() {
		t.Fatalf("consumer span's parent %v, want the publish span %v", proc.Parent, pub.SpanContext)
	}
	if len(proc.Links) != 1 || proc.Links[0].SpanContext.SpanID() != pub.SpanContext.SpanID() {
		t.Fatalf("links %v", proc.Links)
	}
	want := map[string]string{"messaging.system": "nats", "messaging.destination.name": subject, "messaging.operation.type": "process",
		"messaging.consumer.group.name": "trace-test", "messaging.message.id": "n1.boot.1.1", "ringwise.batch.events": "5", "ringwise.node": "n1"}
	for _, kv := range proc.Attributes {
		if w, ok := want[string(kv.Key)]; ok {
			if kv.Value.Emit() != w {
				t.Errorf("%s = %q, want %q", kv.Key, kv.Value.Emit(), w)
			}
			delete(want, string(kv.Key))
		}
	}
	if len(want) > 0 {
		t.Errorf("attributes missing: %v", want)
	}
}
