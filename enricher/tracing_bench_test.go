package enricher_test

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/telemetry"
)

// benchBatches encodes raw batches of 1024 events from 100 known processes
// (one exec each, then syscalls), in two sensor runs so that sequence
// numbers can start over (the enricher resets its sequence on a new run).
func benchBatches(b *testing.B, n int) [2][][]byte {
	b.Helper()
	codec := event.NewCodec()
	var out [2][][]byte
	for run := range out {
		for seq := 1; seq <= n; seq++ {
			bt := &event.Batch{Schema: event.SchemaVersion, Node: "bench", BootID: "boot", SensorStartNs: uint64(1000 + run), Seq: uint64(seq)}
			for i := 0; i < 1024; i++ {
				p := uint32(i*37) % 100
				ev := event.Event{Header: event.Header{TsNs: uint64(1e9 + i), StartNs: uint64(1e6 + p), Tid: 1000 + p, Pid: 1000 + p, ExecID: 2}}
				if seq == 1 && i < 100 {
					p = uint32(i)
					ev.Header = event.Header{TsNs: uint64(1e9 + i), StartNs: uint64(1e6 + p), Tid: 1000 + p, Pid: 1000 + p, ExecID: 2, Type: event.TypeExec}
					ev.PPid, ev.UID = 1, 1000
					ev.SetComm(fmt.Sprint("proc", p))
					ev.Exe, ev.Args = []byte("/usr/bin/proc"), []byte("proc\x00--id\x00")
				} else {
					ev.Type, ev.Syscall, ev.Ret = event.TypeSyscall, uint32(i%300), int64(i)
				}
				bt.FirstTsNs, bt.LastTsNs = uint64(1e9), uint64(1e9+i)
				bt.Events = append(bt.Events, ev)
			}
			data, err := codec.Encode(bt)
			if err != nil {
				b.Fatal(err)
			}
			out[run] = append(out[run], append([]byte(nil), data...))
		}
	}
	return out
}

// cpuTime is this process's user+system CPU time in ns.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

type discardPub struct{}

func (discardPub) Publish(context.Context, bus.Msg) error { return nil }

// BenchmarkEnrichTracing is the enricher's per-batch path as the consume
// loop runs it — extract the context from the headers, start the process
// span, decode, enrich, encode, start the publish span and inject, publish
// (to a publisher that discards) — in three setups:
//   - tracing=absent: no span calls at all, the baseline;
//   - provider=none: tracing as configured without OTEL_EXPORTER_OTLP_ENDPOINT
//     (the default): it must cost nothing measurable against the baseline;
//   - provider=sdk-sampled: the SDK's provider sampling every batch into an
//     exporter that drops the spans (the spans' own cost, not the network's).
func BenchmarkEnrichTracing(b *testing.B) {
	const perRun = 64
	batches := benchBatches(b, perRun)
	hdr := nats.Header{}
	hdr.Set(jetstream.MsgIDHeader, "bench.boot.1000.1")
	// A sensor's publish span context, as it arrives.
	hdr.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	for _, c := range []struct {
		name    string
		tracing func(b *testing.B) *telemetry.Tracing
	}{
		{"tracing=absent", func(b *testing.B) *telemetry.Tracing { return nil }},
		{"provider=none", func(b *testing.B) *telemetry.Tracing {
			b.Setenv(telemetry.EnvEndpoint, "")
			b.Setenv(telemetry.EnvTracesEndpoint, "")
			tr, err := telemetry.NewTracing(context.Background(), telemetry.ServiceEnricher)
			if err != nil || tr.Enabled() {
				b.Fatalf("want disabled tracing without an endpoint: %v", err)
			}
			return tr
		}},
		{"provider=sdk-sampled", func(b *testing.B) *telemetry.Tracing {
			tr, err := telemetry.NewTracing(context.Background(), telemetry.ServiceEnricher,
				telemetry.WithSpanExporter(tracetest.NewNoopExporter()), telemetry.WithSampler(sdktrace.AlwaysSample()))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
			return tr
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			tr := c.tracing(b)
			en, err := enricher.New(enricher.Config{Publisher: discardPub{}, Tracing: tr})
			if err != nil {
				b.Fatal(err)
			}
			subject := bus.RawSubject("bench")
			ctx := context.Background()
			b.ReportAllocs()
			n := 0
			cpu0 := cpuTime(b)
			for i := 0; b.Loop(); i++ {
				data := batches[(i/perRun)%2][i%perRun]
				var err error
				if tr == nil {
					err = en.Handle(ctx, subject, data)
				} else {
					pctx, span := tr.StartProcess(ctx, telemetry.Batch{Subject: subject, MsgID: hdr.Get(jetstream.MsgIDHeader),
						Node: "bench", Group: enricher.DefaultDurable}, hdr)
					err = en.Handle(pctx, subject, data)
					telemetry.EndSpan(span, err)
				}
				if err != nil {
					b.Fatal(err)
				}
				n += 1024
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			// CPU time, unlike wall time, does not grow when other work on
			// a busy machine preempts the benchmark (GOMAXPROCS=1: this
			// process's CPU time is the benchmark's and its GC's).
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(n/1024), "cpu-ns/batch")
			if st := en.Stats(); st.Events == 0 || st.SeqGaps != 0 {
				b.Fatalf("stats %+v", st)
			}
		})
	}
}

// BenchmarkEnrichTracingAB measures the same three setups as
// BenchmarkEnrichTracing interleaved at a fine grain: each iteration is a
// round of 16 batches per setup, in turn, each slot timed by this process's
// CPU time. A busy spell on a shared machine then hits all three alike, and
// the per-setup medians over the rounds compare like with like. It reports
// the median CPU µs per batch of each setup and the overheads against the
// setup without span calls.
func BenchmarkEnrichTracingAB(b *testing.B) {
	const perRun, slot = 64, 16
	batches := benchBatches(b, perRun)
	hdr := nats.Header{}
	hdr.Set(jetstream.MsgIDHeader, "bench.boot.1000.1")
	hdr.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	b.Setenv(telemetry.EnvEndpoint, "")
	b.Setenv(telemetry.EnvTracesEndpoint, "")
	none, err := telemetry.NewTracing(context.Background(), telemetry.ServiceEnricher)
	if err != nil || none.Enabled() {
		b.Fatalf("want disabled tracing without an endpoint: %v", err)
	}
	sdk, err := telemetry.NewTracing(context.Background(), telemetry.ServiceEnricher,
		telemetry.WithSpanExporter(tracetest.NewNoopExporter()), telemetry.WithSampler(sdktrace.AlwaysSample()))
	if err != nil {
		b.Fatal(err)
	}
	defer sdk.Shutdown(context.Background())
	type setup struct {
		name string
		tr   *telemetry.Tracing
		en   *enricher.Enricher
		i    int
		cpu  []float64 // ns per batch, per round
	}
	setups := []*setup{{name: "absent"}, {name: "none", tr: none}, {name: "sdk", tr: sdk}}
	for _, s := range setups {
		if s.en, err = enricher.New(enricher.Config{Publisher: discardPub{}, Tracing: s.tr}); err != nil {
			b.Fatal(err)
		}
	}
	subject := bus.RawSubject("bench")
	ctx := context.Background()
	for b.Loop() {
		for _, s := range setups {
			c0 := cpuTime(b)
			for k := 0; k < slot; k++ {
				data := batches[(s.i/perRun)%2][s.i%perRun]
				s.i++
				var err error
				if s.tr == nil {
					err = s.en.Handle(ctx, subject, data)
				} else {
					pctx, span := s.tr.StartProcess(ctx, telemetry.Batch{Subject: subject, MsgID: hdr.Get(jetstream.MsgIDHeader),
						Node: "bench", Group: enricher.DefaultDurable}, hdr)
					err = s.en.Handle(pctx, subject, data)
					telemetry.EndSpan(span, err)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			s.cpu = append(s.cpu, float64(cpuTime(b)-c0)/slot)
		}
	}
	med := func(v []float64) float64 {
		w := append([]float64(nil), v...)
		slices.Sort(w)
		return w[len(w)/2]
	}
	base := med(setups[0].cpu)
	for _, s := range setups {
		b.ReportMetric(med(s.cpu)/1000, s.name+"-cpu-µs/batch")
	}
	b.ReportMetric(100*(med(setups[1].cpu)-base)/base, "none-overhead-%")
	b.ReportMetric(100*(med(setups[2].cpu)-base)/base, "sdk-overhead-%")
	b.ReportMetric(float64(len(setups[0].cpu)), "rounds")
}
