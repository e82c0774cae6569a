package enricher_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ringwise/ringwise/services/event"
)

// In scaled mode the lag gauge is per owned node (the shared durable the
// gauge read before does not exist there): it appears for the node, and it
// is 0 once every raw batch is enriched.
func TestScaledLagMetricPerOwnedNode(t *testing.T) {
	e := startEnv(t)
	e.publishSnapshot(t, "na")
	enr, _ := scaledEnricher(t, e, "e1")
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	if _, err := enr.RegisterMetrics(mp.Meter("test")); err != nil {
		t.Fatal(err)
	}
	const n = 40
	for seq := uint64(1); seq <= n; seq++ {
		e.publishBatch(t, "na", &event.Batch{Seq: seq, Events: []event.Event{sys(sensorStart+seq, 100, 10, 0, uint32(seq))}})
	}
	lag := func() (int64, bool) {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				g, ok := m.Data.(metricdata.Gauge[int64])
				if m.Name != "ringwise.enricher.lag" || !ok {
					continue
				}
				for _, dp := range g.DataPoints {
					if v, ok := dp.Attributes.Value("node"); ok && v.AsString() == "na" {
						return dp.Value, true
					}
				}
			}
		}
		return 0, false
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if len(positions(t, e, "na")) >= n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := len(positions(t, e, "na")); got < n {
		t.Fatalf("enriched %d of %d batches", got, n)
	}
	v, ok := lag()
	if !ok {
		t.Fatal("no ringwise.enricher.lag data point for owned node na in scaled mode")
	}
	if v != 0 {
		t.Fatalf("lag %d after every batch was enriched, want 0", v)
	}
	// The limits are on /metrics too, with the values /api/summary shows.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	want := enr.Health().Limits
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == "ringwise.enricher.limits" {
				for _, dp := range g.DataPoints {
					k, _ := dp.Attributes.Value("limit")
					got[k.AsString()] = dp.Value
				}
			}
		}
	}
	if len(got) == 0 || got["max_nodes"] != int64(want["max_nodes"]) || got["max_nodes"] == 0 {
		t.Fatalf("ringwise.enricher.limits %v, want the Health limits %v", got, want)
	}
}
