package enricher

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/ringwise/ringwise/enricher/state"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
)

// lagTimeout bounds the consumer-info request a scrape makes for the lag.
const lagTimeout = time.Second

// RegisterMetrics registers the enricher's instruments on meter; their
// values are read from the enricher's counters when scraped (see
// docs/metrics.md for the Falco counterparts).
func (e *Enricher) RegisterMetrics(meter metric.Meter) (metric.Registration, error) {
	var (
		batches, events, badInput, gaps, pubErrs         metric.Int64ObservableCounter
		lookups, missing, evictions, pidReuse, snapshots metric.Int64ObservableCounter
		deadLetters, retried                             metric.Int64ObservableCounter
		tableSize, lag, limits                           metric.Int64ObservableGauge
		err                                              error
	)
	counter := func(dst *metric.Int64ObservableCounter, name, desc string) {
		if err == nil {
			*dst, err = meter.Int64ObservableCounter(name, metric.WithDescription(desc))
		}
	}
	gauge := func(dst *metric.Int64ObservableGauge, name, desc string) {
		if err == nil {
			*dst, err = meter.Int64ObservableGauge(name, metric.WithDescription(desc))
		}
	}
	counter(&batches, "ringwise.enricher.batches", "Raw batches enriched and stored.")
	counter(&events, "ringwise.enricher.events", "Events enriched and stored.")
	counter(&badInput, "ringwise.enricher.bad_input", "Raw messages refused as bad input, by kind (never retried; dead-lettered to RINGWISE_DLQ).")
	counter(&deadLetters, "ringwise.enricher.dlq", "Refused raw messages copied to RINGWISE_DLQ (result=stored), or lost because the copy failed (result=failed).")
	counter(&retried, "ringwise.enricher.retries", "Raw messages handed back for redelivery after a failure (nak with back-off).")
	counter(&gaps, "ringwise.enricher.seq_gaps", "Raw batches never received (sequence gaps).")
	counter(&pubErrs, "ringwise.enricher.publish.errors", "Enriched batches whose publish failed (handed back to JetStream).")
	counter(&snapshots, "ringwise.enricher.snapshots", "/proc snapshots applied.")
	counter(&lookups, "ringwise.enricher.lookups", "/proc lookups of unknown processes by outcome (hit, miss, error, skipped, negative_cache); Falco: n_failed_thread_lookups is the miss+error share.")
	counter(&missing, "ringwise.enricher.missing.events", "Events enriched with at least one field missing, by reason.")
	counter(&evictions, "ringwise.enricher.table.evictions", "Process-table entries evicted because the table was full (live: not yet exited); Falco: n_drops_full_threadtable.")
	counter(&pidReuse, "ringwise.enricher.pid_reuse", "Stale entries refused because their pid now names another process.")
	gauge(&tableSize, "ringwise.enricher.table.size", "Process-table entries (state=all|live).")
	gauge(&lag, "ringwise.enricher.lag", "Raw-stream messages not yet enriched: pending plus unacknowledged on the shared durable consumer; in scaled mode per owned node, what its consumer still held at its last delivery.")
	if err == nil {
		limits, err = meter.Int64ObservableGauge("ringwise.enricher.limits",
			metric.WithDescription("The enricher's limits and what they refused or evicted, by limit (max_nodes, nodes, nodes_refused, nodes_evicted_idle, snapshot_too_large, max_deliver, …): the same values as /api/summary's services.enricher/<id>.limits."))
	}
	if err != nil {
		return nil, fmt.Errorf("enricher: metrics: %w", err)
	}
	return meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		st := e.Stats()
		o.ObserveInt64(batches, int64(st.Batches))
		o.ObserveInt64(events, int64(st.Events))
		o.ObserveInt64(gaps, int64(st.SeqGaps))
		o.ObserveInt64(pubErrs, int64(st.PubErrors))
		o.ObserveInt64(snapshots, int64(st.Snapshots))
		for k, v := range st.BadInput {
			o.ObserveInt64(badInput, int64(v), metric.WithAttributes(attribute.String("kind", k)))
		}
		o.ObserveInt64(deadLetters, int64(st.Consumer.DeadLettered), metric.WithAttributes(attribute.String("result", "stored")))
		o.ObserveInt64(deadLetters, int64(st.Consumer.DeadLetterErrors), metric.WithAttributes(attribute.String("result", "failed")))
		o.ObserveInt64(retried, int64(st.Consumer.Retried))
		for k, v := range e.Health().Limits {
			o.ObserveInt64(limits, int64(v), metric.WithAttributes(attribute.String("limit", k)))
		}
		e.mu.Lock()
		nodes := make(map[string]state.Stats, len(e.nodes))
		for name, ns := range e.nodes {
			nodes[name] = ns.table.Stats()
		}
		e.mu.Unlock()
		for name, ts := range nodes {
			node := attribute.String("node", name)
			for _, l := range []struct {
				outcome string
				n       uint64
			}{{"hit", ts.LookupHits}, {"miss", ts.LookupMisses}, {"error", ts.LookupErrors},
				{"skipped", ts.LookupsSkipped}, {"negative_cache", ts.NegativeHits}} {
				o.ObserveInt64(lookups, int64(l.n), metric.WithAttributes(node, attribute.String("outcome", l.outcome)))
			}
			for r, n := range ts.MissingByReason {
				if n > 0 {
					o.ObserveInt64(missing, int64(n), metric.WithAttributes(node, attribute.String("reason", event.Reason(r).String())))
				}
			}
			o.ObserveInt64(evictions, int64(ts.Evictions-ts.EvictionsLive), metric.WithAttributes(node, attribute.String("state", "exited")))
			o.ObserveInt64(evictions, int64(ts.EvictionsLive), metric.WithAttributes(node, attribute.String("state", "live")))
			o.ObserveInt64(pidReuse, int64(ts.PidReuseDetected), metric.WithAttributes(node))
			o.ObserveInt64(tableSize, int64(ts.Procs), metric.WithAttributes(node, attribute.String("state", "all")))
			o.ObserveInt64(tableSize, int64(ts.Live), metric.WithAttributes(node, attribute.String("state", "live")))
		}
		e.mu.Lock()
		sc := e.scale
		e.mu.Unlock()
		if sc != nil {
			// Scaled mode: one ordered consumer per owned node; each
			// delivery says how much its consumer still holds.
			for n, p := range sc.lags() {
				o.ObserveInt64(lag, int64(p), metric.WithAttributes(attribute.String("stream", bus.StreamRaw), attribute.String("node", n)))
			}
		} else if e.cfg.JS != nil {
			lctx, cancel := context.WithTimeout(ctx, lagTimeout)
			defer cancel()
			if c, err := e.cfg.JS.Consumer(lctx, bus.StreamRaw, e.cfg.Durable); err == nil {
				if info, err := c.Info(lctx); err == nil {
					o.ObserveInt64(lag, int64(info.NumPending)+int64(info.NumAckPending),
						metric.WithAttributes(attribute.String("stream", bus.StreamRaw)))
				}
			}
		}
		return nil
	}, batches, events, badInput, gaps, pubErrs, snapshots, lookups, missing, evictions, pidReuse, tableSize, lag, deadLetters, retried, limits)
}
