package sensor

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/ringwise/ringwise/services/event"
)

// registerMetrics registers the sensor's instruments on meter. Every value
// is read from the sensor's own counters when scraped, so /metrics and the
// run's Result (and the summary JSON built from it) agree exactly once the
// run has drained. See docs/metrics.md for the Falco counterparts.
func (s *sensor) registerMetrics(meter metric.Meter) (metric.Registration, error) {
	node := attribute.String("node", s.cfg.Node)
	cat := func(c int) attribute.KeyValue { return attribute.String("category", event.Category(c).String()) }
	var (
		attempted, delivered, dropped, shed, batches, pubErrs metric.Int64ObservableCounter
		spoolOverflow, badLookups                             metric.Int64ObservableCounter
		ringSize, fill, fillHigh                              metric.Int64ObservableGauge
		spoolQueued, spoolMax                                 metric.Int64ObservableGauge
		err                                                   error
	)
	counter := func(dst *metric.Int64ObservableCounter, name, desc string) {
		if err == nil {
			*dst, err = meter.Int64ObservableCounter(name, metric.WithDescription(desc))
		}
	}
	gauge := func(dst *metric.Int64ObservableGauge, name, desc string) {
		if err == nil {
			*dst, err = meter.Int64ObservableGauge(name, metric.WithDescription(desc), metric.WithUnit("By"))
		}
	}
	counter(&attempted, "ringwise.sensor.events.attempted", "Records the kernel tried to put in the ring (delivered + dropped), per category; Falco: falcosecurity_scap_n_evts_total.")
	counter(&delivered, "ringwise.sensor.events.delivered", "Records read from the ring by the sensor, per category.")
	counter(&dropped, "ringwise.sensor.events.dropped", "Records dropped because the ring was full, per category; Falco: falcosecurity_scap_n_drops_buffer_total{dir,drop}.")
	counter(&shed, "ringwise.sensor.events.shed", "Syscall records shed by policy above the high-water mark (counted, not lost silently).")
	counter(&batches, "ringwise.sensor.batches", "Raw batches published.")
	counter(&pubErrs, "ringwise.sensor.publish.errors", "Raw batches (or stats) that could not be published; each is a sequence gap downstream.")
	gauge(&ringSize, "ringwise.sensor.ring.size", "Size of each ring in bytes (ring=main|lifecycle).")
	gauge(&fill, "ringwise.sensor.ring.fill", "Bytes waiting in the ring(s) at the latest counter sample.")
	gauge(&fillHigh, "ringwise.sensor.ring.fill.high_water", "Highest ring fill seen in any counter sample of this run.")
	counter(&spoolOverflow, "ringwise.sensor.events.spool_overflow", "Delivered events whose raw batch the publish spool dropped because it was full during a NATS outage, per category (attempted == delivered + dropped + spool_overflow downstream).")
	counter(&badLookups, "ringwise.sensor.lookup.bad_requests", "Malformed requests on the sensor's /proc lookup subject (neither {\"pid\":N} nor a decimal pid), each answered with an error.")
	gauge(&spoolQueued, "ringwise.sensor.spool.queued", "Bytes of raw batches waiting in the publish spool (NATS slow or away).")
	gauge(&spoolMax, "ringwise.sensor.spool.max", "The publish spool's bound in bytes (--spool-size).")
	if err != nil {
		return nil, fmt.Errorf("sensor: metrics: %w", err)
	}
	return meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		c := s.counters()
		s.mu.Lock()
		cur, high := s.fillNow, s.fillHigh
		s.mu.Unlock()
		over := s.spoolOverflow()
		for i := 0; i < event.NumCategories; i++ {
			set := metric.WithAttributes(node, cat(i))
			o.ObserveInt64(spoolOverflow, int64(over[i]), set)
			o.ObserveInt64(attempted, int64(c.Attempted[i]), set)
			o.ObserveInt64(delivered, int64(c.Delivered[i]), set)
			o.ObserveInt64(dropped, int64(c.Dropped[i]), set)
			o.ObserveInt64(shed, int64(c.Shed[i]), set)
		}
		o.ObserveInt64(batches, int64(s.batches.Load()), metric.WithAttributes(node))
		o.ObserveInt64(pubErrs, int64(s.pubErrors.Load()), metric.WithAttributes(node))
		o.ObserveInt64(badLookups, int64(s.badLookups.Load()), metric.WithAttributes(node))
		o.ObserveInt64(ringSize, int64(s.ringCfg.SizeBytes), metric.WithAttributes(node, attribute.String("ring", "main")))
		if s.lifecycle != nil {
			o.ObserveInt64(ringSize, int64(s.ringCfg.LifecycleSizeBytes), metric.WithAttributes(node, attribute.String("ring", s.lifecycle.Name())))
		}
		o.ObserveInt64(fill, int64(cur), metric.WithAttributes(node))
		o.ObserveInt64(fillHigh, int64(high), metric.WithAttributes(node))
		if s.cfg.Spool != nil {
			sp := s.cfg.Spool()
			o.ObserveInt64(spoolQueued, sp.QueuedBytes, metric.WithAttributes(node))
			o.ObserveInt64(spoolMax, sp.MaxBytes, metric.WithAttributes(node))
		}
		return nil
	}, attempted, delivered, dropped, shed, batches, pubErrs, spoolOverflow, badLookups, ringSize, fill, fillHigh, spoolQueued, spoolMax)
}
