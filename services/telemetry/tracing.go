// Package telemetry is ringwise's OpenTelemetry kit: a tracer provider set
// by the standard OTEL_* variables, W3C trace context in NATS headers, the
// messaging spans of one batch per hop, Prometheus /metrics through the
// OpenTelemetry Prometheus exporter, and slog setup.
//
// Tracing costs nothing when no OTLP endpoint is set: NewTracing then
// returns a disabled Tracing whose Start* methods return the context as is
// and a no-op span, without touching the headers (see BenchmarkEnrich* in
// the enricher and BENCHMARKS.md).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Service names, the service.name of each hop's spans.
const (
	ServiceSensor   = "ringwise-sensor"
	ServiceEnricher = "ringwise-enricher"
	ServiceAnalyzer = "ringwise-analyzer"
)

// InstrumentationName is the tracer and meter name.
const InstrumentationName = "github.com/ringwise/ringwise/services/telemetry"

// Attribute keys of our own.
const (
	// AttrBatchEvents is the number of events in the batch a span covers.
	AttrBatchEvents = attribute.Key("ringwise.batch.events")
	// AttrNode is the node whose events the batch carries.
	AttrNode = attribute.Key("ringwise.node")
)

// MessagingSystem is the messaging.system of every span.
var MessagingSystem = semconv.MessagingSystemKey.String("nats")

// Environment variables read (besides those the OTLP exporters and the SDK
// read themselves: OTEL_EXPORTER_OTLP_*, OTEL_TRACES_SAMPLER(_ARG),
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*).
const (
	EnvSDKDisabled    = "OTEL_SDK_DISABLED"
	EnvTracesExporter = "OTEL_TRACES_EXPORTER"
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvSampler        = "OTEL_TRACES_SAMPLER"
)

// Tracing is one service's tracer and propagator. The zero value and
// Disabled() trace nothing.
type Tracing struct {
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	provider *sdktrace.TracerProvider
	enabled  bool
	exporter string
}

// Disabled returns a Tracing that records and propagates nothing.
func Disabled() *Tracing { return &Tracing{} }

// TracingOption configures NewTracing.
type TracingOption func(*tracingOptions)

type tracingOptions struct {
	exporter sdktrace.SpanExporter
	sync     bool
	sampler  sdktrace.Sampler
}

// WithSpanExporter exports to exp instead of OTLP, whatever the
// environment says (tests, benchmarks). Spans are exported synchronously.
func WithSpanExporter(exp sdktrace.SpanExporter) TracingOption {
	return func(o *tracingOptions) { o.exporter, o.sync = exp, true }
}

// WithSampler overrides OTEL_TRACES_SAMPLER.
func WithSampler(s sdktrace.Sampler) TracingOption {
	return func(o *tracingOptions) { o.sampler = s }
}

// NewTracing returns service's tracing as the OTEL_* environment sets it:
// OTLP export (OTEL_EXPORTER_OTLP_PROTOCOL http/protobuf, the default, or
// grpc) when OTEL_EXPORTER_OTLP_ENDPOINT or ..._TRACES_ENDPOINT is set,
// sampling by OTEL_TRACES_SAMPLER; disabled when no endpoint is set,
// OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true.
func NewTracing(ctx context.Context, service string, opts ...TracingOption) (*Tracing, error) {
	var o tracingOptions
	for _, opt := range opts {
		opt(&o)
	}
	exp := o.exporter
	name := "test"
	if exp == nil {
		if b, _ := strconv.ParseBool(os.Getenv(EnvSDKDisabled)); b {
			return Disabled(), nil
		}
		switch e := strings.TrimSpace(os.Getenv(EnvTracesExporter)); e {
		case "none":
			return Disabled(), nil
		case "", "otlp":
		default:
			return nil, fmt.Errorf("telemetry: %s=%q: only otlp and none are supported", EnvTracesExporter, e)
		}
		if os.Getenv(EnvEndpoint) == "" && os.Getenv(EnvTracesEndpoint) == "" {
			return Disabled(), nil
		}
		proto := os.Getenv(EnvTracesProtocol)
		if proto == "" {
			proto = os.Getenv(EnvProtocol)
		}
		var err error
		switch proto {
		case "", "http/protobuf":
			exp, err = otlptracehttp.New(ctx)
			name = "otlp http/protobuf"
		case "grpc":
			exp, err = otlptracegrpc.New(ctx)
			name = "otlp grpc"
		default:
			return nil, fmt.Errorf("telemetry: %s=%q: want http/protobuf or grpc", EnvProtocol, proto)
		}
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP trace exporter: %w", err)
		}
	}
	if o.sampler == nil {
		if err := checkSampler(os.Getenv(EnvSampler)); err != nil {
			return nil, err
		}
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override.
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	popts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if o.sync {
		popts = append(popts, sdktrace.WithSyncer(exp))
	} else {
		popts = append(popts, sdktrace.WithBatcher(exp))
	}
	if o.sampler != nil {
		popts = append(popts, sdktrace.WithSampler(o.sampler))
	}
	// Without WithSampler the SDK reads OTEL_TRACES_SAMPLER(_ARG) itself.
	tp := sdktrace.NewTracerProvider(popts...)
	return &Tracing{
		tracer:   tp.Tracer(InstrumentationName),
		prop:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		provider: tp,
		enabled:  true,
		exporter: name,
	}, nil
}

// checkSampler refuses a sampler name the SDK would silently replace by
// its default.
func checkSampler(name string) error {
	switch strings.TrimSpace(name) {
	case "", "always_on", "always_off", "traceidratio", "parentbased_always_on",
		"parentbased_always_off", "parentbased_traceidratio":
		return nil
	}
	return fmt.Errorf("telemetry: %s=%q: want always_on, always_off, traceidratio or parentbased_{always_on,always_off,traceidratio}", EnvSampler, name)
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t != nil && t.enabled }

// Exporter names the exporter ("" when disabled).
func (t *Tracing) Exporter() string {
	if !t.Enabled() {
		return ""
	}
	return t.exporter
}

// TracerProvider returns the provider (a no-op one when disabled).
func (t *Tracing) TracerProvider() trace.TracerProvider {
	if !t.Enabled() {
		return noop.NewTracerProvider()
	}
	return t.provider
}

// Shutdown flushes and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("telemetry: flush spans: %w", err)
	}
	return nil
}

// Batch describes the batch message one span covers.
type Batch struct {
	Subject string
	// MsgID is the Nats-Msg-Id.
	MsgID string
	// Events is the number of events in the batch.
	Events int
	// Node is the node whose events these are.
	Node string
	// Group is the consumer group (durable consumer); process spans only.
	Group string
}

var noopSpan trace.Span = noop.Span{}

// StartPublish starts the producer span of publishing b and injects its
// context into hdr (which must not be nil). End the span once the publish
// returned, with RecordError on failure.
func (t *Tracing) StartPublish(ctx context.Context, b Batch, hdr nats.Header) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, noopSpan
	}
	ctx, span := t.tracer.Start(ctx, "send "+b.Subject, trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(
			MessagingSystem,
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"),
			semconv.MessagingDestinationName(b.Subject),
			semconv.MessagingMessageID(b.MsgID),
			AttrBatchEvents.Int(b.Events),
			AttrNode.String(b.Node),
		)
	}
	t.prop.Inject(ctx, HeaderCarrier(hdr))
	return ctx, span
}

// StartProcess starts the consumer span of processing b: the child of the
// context extracted from hdr, and linked to it as well (so tools that
// show links see the hop even where the parent is cut off by sampling).
// Set b.Events once known with SetEvents.
func (t *Tracing) StartProcess(ctx context.Context, b Batch, hdr nats.Header) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, noopSpan
	}
	parent := t.prop.Extract(ctx, HeaderCarrier(hdr))
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	if sc := trace.SpanContextFromContext(parent); sc.IsValid() && sc.IsRemote() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	ctx, span := t.tracer.Start(parent, "process "+b.Subject, opts...)
	if span.IsRecording() {
		span.SetAttributes(
			MessagingSystem,
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(b.Subject),
			semconv.MessagingConsumerGroupName(b.Group),
			semconv.MessagingMessageID(b.MsgID),
			AttrNode.String(b.Node),
		)
		if b.Events > 0 {
			span.SetAttributes(AttrBatchEvents.Int(b.Events))
		}
	}
	return ctx, span
}

// SetEvents records the event count of the batch a span covers, once it is
// known (a process span starts before the batch is decoded).
func SetEvents(span trace.Span, n int) {
	if span.IsRecording() {
		span.SetAttributes(AttrBatchEvents.Int(n))
	}
}

// SetMsgID records the message id of the batch a process span covers once
// it is known (decoded from the payload when the header lacks it).
func SetMsgID(span trace.Span, id string) {
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingMessageID(id))
	}
}

// EndSpan ends span, recording err (if any) as its error status.
func EndSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
