package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestHeaderCarrierKeepsLowercaseNames(t *testing.T) {
	tr, exp := newTestTracing(t)
	hdr := nats.Header{}
	_, span := tr.StartPublish(context.Background(), Batch{Subject: "ringwise.raw.n1", MsgID: "n1.b.1.1", Events: 7, Node: "n1"}, hdr)
	span.End()
	if _, ok := hdr["traceparent"]; !ok {
		t.Fatalf("header has no exact key %q: %v", "traceparent", hdr)
	}
	if _, ok := hdr["Traceparent"]; ok {
		t.Fatalf("header has the canonicalised key Traceparent: %v", hdr)
	}
	got := hdr.Get("traceparent") // nats.Header.Get is exact-match too
	sc := exp.GetSpans()[0].SpanContext
	want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
	if got != want {
		t.Fatalf("traceparent = %q, want %q", got, want)
	}

	// propagation.HeaderCarrier, the tempting cast, would not do: it
	// canonicalises. This is why HeaderCarrier exists.
	bad := propagation.HeaderCarrier(http.Header{})
	bad.Set("traceparent", want)
	if _, ok := bad["Traceparent"]; !ok {
		t.Fatalf("expected http.Header to canonicalise (test premise)")
	}

	// A header written by another library with exact names reads back.
	c := HeaderCarrier(nats.Header{"traceparent": {want}, "Other": {"x"}})
	if c.Get("traceparent") != want || c.Get("Traceparent") != "" {
		t.Fatalf("Get is not exact: %q %q", c.Get("traceparent"), c.Get("Traceparent"))
	}
	if len(c.Keys()) != 2 {
		t.Fatalf("Keys = %v", c.Keys())
	}
}

func newTestTracing(t *testing.T, opts ...TracingOption) (*Tracing, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr, err := NewTracing(context.Background(), "test-svc", append([]TracingOption{WithSpanExporter(exp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr, exp
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestProcessSpanIsChildAndLinkOfPublish(t *testing.T) {
	prod, pexp := newTestTracing(t)
	cons, cexp := newTestTracing(t)
	hdr := nats.Header{}
	_, ps := prod.StartPublish(context.Background(), Batch{Subject: "ringwise.raw.n1", MsgID: "id-1", Events: 3, Node: "n1"}, hdr)
	ps.End()
	_, cs := cons.StartProcess(context.Background(), Batch{Subject: "ringwise.raw.n1", MsgID: "id-1", Node: "n1", Group: "ringwise-enricher"}, hdr)
	SetEvents(cs, 3)
	cs.End()

	pub, proc := pexp.GetSpans()[0], cexp.GetSpans()[0]
	if proc.Parent.SpanID() != pub.SpanContext.SpanID() || proc.SpanContext.TraceID() != pub.SpanContext.TraceID() {
		t.Fatalf("process span's parent %v, want the publish span %v", proc.Parent, pub.SpanContext)
	}
	if len(proc.Links) != 1 || proc.Links[0].SpanContext.SpanID() != pub.SpanContext.SpanID() {
		t.Fatalf("process span links %v, want one to the publish span", proc.Links)
	}
	if pub.SpanKind != trace.SpanKindProducer || proc.SpanKind != trace.SpanKindConsumer {
		t.Fatalf("kinds %v %v", pub.SpanKind, proc.SpanKind)
	}
	for _, c := range []struct {
		span tracetest.SpanStub
		want map[string]string
	}{
		{pub, map[string]string{"messaging.system": "nats", "messaging.destination.name": "ringwise.raw.n1",
			"messaging.operation.type": "send", "messaging.message.id": "id-1", "ringwise.batch.events": "3"}},
		{proc, map[string]string{"messaging.system": "nats", "messaging.destination.name": "ringwise.raw.n1",
			"messaging.operation.type": "process", "messaging.consumer.group.name": "ringwise-enricher",
			"messaging.message.id": "id-1", "ringwise.batch.events": "3"}},
	} {
		got := attrs(c.span)
		for k, v := range c.want {
			if got[attribute.Key(k)].Emit() != v {
				t.Errorf("span %q: %s = %q, want %q", c.span.Name, k, got[attribute.Key(k)].Emit(), v)
			}
		}
	}
	if pub.Name != "send ringwise.raw.n1" || proc.Name != "process ringwise.raw.n1" {
		t.Errorf("names %q %q", pub.Name, proc.Name)
	}
}

func TestNoEndpointIsDisabled(t *testing.T) {
	t.Setenv(EnvEndpoint, "")
	t.Setenv(EnvTracesEndpoint, "")
	tr, err := NewTracing(context.Background(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() {
		t.Fatal("tracing enabled without an endpoint")
	}
	hdr := nats.Header{}
	ctx := context.Background()
	ctx2, span := tr.StartPublish(ctx, Batch{Subject: "s"}, hdr)
	span.End()
	if ctx2 != ctx || len(hdr) != 0 || span.IsRecording() {
		t.Fatalf("disabled tracing changed something: hdr %v recording %v", hdr, span.IsRecording())
	}
	allocs := testing.AllocsPerRun(100, func() {
		_, s := tr.StartProcess(ctx, Batch{Subject: "s", MsgID: "m"}, hdr)
		SetEvents(s, 3)
		s.End()
	})
	if allocs != 0 {
		t.Fatalf("disabled tracing allocates %v per batch", allocs)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv(EnvEndpoint, "http://127.0.0.1:1")
	for _, c := range []struct {
		env     map[string]string
		enabled bool
		err     string
	}{
		{map[string]string{}, true, ""},
		{map[string]string{EnvTracesExporter: "none"}, false, ""},
		{map[string]string{EnvSDKDisabled: "true"}, false, ""},
		{map[string]string{EnvTracesExporter: "zipkin"}, false, "only otlp"},
		{map[string]string{EnvProtocol: "http/json"}, false, "want http/protobuf or grpc"},
		{map[string]string{EnvProtocol: "grpc"}, true, ""},
		{map[string]string{EnvSampler: "sometimes"}, false, "OTEL_TRACES_SAMPLER"},
	} {
		for _, k := range []string{EnvTracesExporter, EnvSDKDisabled, EnvProtocol, EnvSampler} {
			t.Setenv(k, c.env[k])
		}
		tr, err := NewTracing(context.Background(), "svc")
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: err %v, want %q", c.env, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", c.env, err)
			continue
		}
		if tr.Enabled() != c.enabled {
			t.Errorf("%v: enabled %v, want %v", c.env, tr.Enabled(), c.enabled)
		}
		_ = tr.Shutdown(context.Background())
	}
}

func TestSamplerFromEnvironment(t *testing.T) {
	t.Setenv(EnvSampler, "always_off")
	tr, exp := newTestTracing(t)
	hdr := nats.Header{}
	_, s := tr.StartPublish(context.Background(), Batch{Subject: "s"}, hdr)
	s.End()
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("always_off recorded %d spans", n)
	}
	// The unsampled context still travels (sampled flag 00).
	if tp := hdr.Get("traceparent"); !strings.HasSuffix(tp, "-00") {
		t.Fatalf("traceparent %q, want an unsampled context", tp)
	}
	// A parent-based sampler downstream follows it.
	t.Setenv(EnvSampler, "parentbased_always_on")
	tr2, exp2 := newTestTracing(t)
	_, s2 := tr2.StartProcess(context.Background(), Batch{Subject: "s"}, hdr)
	s2.End()
	if n := len(exp2.GetSpans()); n != 0 {
		t.Fatalf("parentbased sampler recorded %d spans of an unsampled trace", n)
	}
	tr3, exp3 := newTestTracing(t, WithSampler(sdktrace.AlwaysSample()))
	_, s3 := tr3.StartProcess(context.Background(), Batch{Subject: "s"}, nats.Header{})
	s3.End()
	if n := len(exp3.GetSpans()); n != 1 {
		t.Fatalf("always-on recorded %d spans", n)
	}
}

func TestMetricsHandler(t *testing.T) {
	m, err := NewMetrics("svc")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown(context.Background())
	c, err := m.Meter().Int64Counter("ringwise.test.events")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 42)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "ringwise_test_events_total 42") {
		t.Fatalf("scrape lacks the counter:\n%s", body)
	}
	// A nil Metrics hands out a no-op meter.
	var none *Metrics
	if _, err := none.Meter().Int64Counter("x"); err != nil {
		t.Fatal(err)
	}
}

func TestNewLogger(t *testing.T) {
	var b strings.Builder
	l, err := NewLogger(&b, LogJSON, 0)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hello", "k", 1)
	if !strings.HasPrefix(b.String(), "{") || !strings.Contains(b.String(), `"k":1`) {
		t.Fatalf("json log %q", b.String())
	}
	b.Reset()
	l, _ = NewLogger(&b, LogText, 0)
	l.Info("hello", "k", 1)
	if !strings.Contains(b.String(), "msg=hello k=1") {
		t.Fatalf("text log %q", b.String())
	}
	if _, err := NewLogger(&b, "xml", 0); err == nil {
		t.Fatal("xml accepted")
	}
}
