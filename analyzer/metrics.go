package analyzer

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// RegisterMetrics registers the analyzer's instruments on meter; values
// are read from the analyzer's aggregates when scraped, so a scrape after a
// drain equals the summary JSON of the same run (see docs/metrics.md).
func (a *Analyzer) RegisterMetrics(meter metric.Meter) (metric.Registration, error) {
	var (
		events, missing, byField, byReason, batches, dups, gaps, badInput, alerts metric.Int64ObservableCounter
		missingPct, fieldPct                                                      metric.Float64ObservableGauge
		recSize, recPreset, limits                                                metric.Int64ObservableGauge
		err                                                                       error
	)
	counter := func(dst *metric.Int64ObservableCounter, name, desc string) {
		if err == nil {
			*dst, err = meter.Int64ObservableCounter(name, metric.WithDescription(desc))
		}
	}
	fgauge := func(dst *metric.Float64ObservableGauge, name, desc string) {
		if err == nil {
			*dst, err = meter.Float64ObservableGauge(name, metric.WithDescription(desc), metric.WithUnit("%"))
		}
	}
	counter(&events, "ringwise.analyzer.events", "Enriched events analysed.")
	counter(&missing, "ringwise.analyzer.missing.events", "Events with at least one metadata field missing.")
	counter(&byField, "ringwise.analyzer.missing.field.events", "Events missing each Falco field (an event missing three fields counts in each).")
	counter(&byReason, "ringwise.analyzer.missing.reason.events", "Events missing metadata, by reason (fork_dropped, exec_dropped, pid_reused, …).")
	counter(&batches, "ringwise.analyzer.batches", "Enriched batches analysed (duplicates excluded).")
	counter(&dups, "ringwise.analyzer.duplicate.batches", "Redelivered enriched batches, not counted again.")
	counter(&gaps, "ringwise.analyzer.batch.gaps", "Enriched batches never received.")
	counter(&badInput, "ringwise.analyzer.bad_input", "Messages refused as bad input, by kind.")
	counter(&alerts, "ringwise.analyzer.alerts", "Alerts raised (actions run), by rule.")
	fgauge(&missingPct, "ringwise.analyzer.missing", "Share of events missing metadata, in percent.")
	fgauge(&fieldPct, "ringwise.analyzer.missing.field", "Share of events missing each field, in percent.")
	if err == nil {
		recSize, err = meter.Int64ObservableGauge("ringwise.analyzer.recommended.ring.size", metric.WithUnit("By"),
			metric.WithDescription("Ring size the analyzer recommends for the node from its measured load (recomputed every few seconds)."))
	}
	if err == nil {
		recPreset, err = meter.Int64ObservableGauge("ringwise.analyzer.recommended.buf_size_preset",
			metric.WithDescription("The recommendation as Falco's bufSizePreset."))
	}
	if err == nil {
		limits, err = meter.Int64ObservableGauge("ringwise.analyzer.limits",
			metric.WithDescription("The analyzer's limits and what they refused or evicted, by limit (max_nodes, nodes, nodes_refused, nodes_evicted_idle, stats_held, …): the same values as /api/summary's services.analyzer.limits."))
	}
	if err != nil {
		return nil, fmt.Errorf("analyzer: metrics: %w", err)
	}
	a.mu.Lock()
	a.metricsOn = true
	a.mu.Unlock()
	return meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		h := a.Health() // takes a.mu itself
		for k, v := range h.Limits {
			o.ObserveInt64(limits, int64(v), metric.WithAttributes(attribute.String("limit", k)))
		}
		// Health's bad input: the handlers' and the consume loops' (oversized,
		// schema_version, max_deliver, …), as /api/summary shows them.
		for k, n := range h.BadInput {
			o.ObserveInt64(badInput, int64(n), metric.WithAttributes(attribute.String("kind", k)))
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, name := range a.agg.Nodes() {
			node := attribute.String("node", name)
			s := a.agg.Summary(name).Analyzer
			o.ObserveInt64(events, int64(s.Events), metric.WithAttributes(node))
			o.ObserveInt64(missing, int64(s.Missing), metric.WithAttributes(node))
			o.ObserveFloat64(missingPct, s.MissingPct, metric.WithAttributes(node))
			for f, n := range s.ByField {
				fa := metric.WithAttributes(node, attribute.String("field", f))
				o.ObserveInt64(byField, int64(n), fa)
				if s.Events > 0 {
					o.ObserveFloat64(fieldPct, 100*float64(n)/float64(s.Events), fa)
				}
			}
			for r, n := range s.ByReason {
				o.ObserveInt64(byReason, int64(n), metric.WithAttributes(node, attribute.String("reason", r)))
			}
			o.ObserveInt64(batches, int64(s.Batches), metric.WithAttributes(node))
			o.ObserveInt64(dups, int64(s.DuplicateBatches), metric.WithAttributes(node))
			o.ObserveInt64(gaps, int64(s.BatchGaps), metric.WithAttributes(node))
			if rec, ok := a.recommended[name]; ok {
				o.ObserveInt64(recSize, int64(rec.SizeBytes), metric.WithAttributes(node, attribute.String("layout", string(rec.Layout))))
				o.ObserveInt64(recPreset, int64(rec.BufSizePreset), metric.WithAttributes(node))
			}
		}
		for k, n := range a.alertCounts {
			o.ObserveInt64(alerts, int64(n), metric.WithAttributes(attribute.String("rule", k.rule), attribute.String("node", k.node)))
		}
		return nil
	}, events, missing, byField, byReason, batches, dups, gaps, badInput, alerts, missingPct, fieldPct, recSize, recPreset, limits)
}
