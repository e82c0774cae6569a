package pipeline_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/internal/flood"
	"github.com/ringwise/ringwise/internal/pipeline"
	"github.com/ringwise/ringwise/sensor"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF) to load BPF")
	}
}

func runFlood(t *testing.T, scfg sensor.Config, fc flood.Config) pipeline.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // hang guard only
	defer cancel()
	res, err := pipeline.Run(ctx, pipeline.Options{Sensor: scfg, Flood: &fc, StopAfterFlood: true})
	if err != nil {
		t.Fatalf("pipeline.Run: %v", err)
	}
	s := res.Summary
	t.Logf("sensor: attempted %d delivered %d dropped %d (lifecycle %d); analyzer events %d missing %d (%.3f%%) by reason %v; truth %+v",
		s.Sensor.Attempted, s.Sensor.Delivered, s.Sensor.Dropped, s.Sensor.DroppedLifecycle,
		s.Analyzer.Events, s.Analyzer.Missing, s.Analyzer.MissingPct, s.Analyzer.ByReason, s.Truth)
	if s.Sensor.Attempted != s.Sensor.Delivered+s.Sensor.Dropped {
		t.Errorf("attempted %d != delivered %d + dropped %d", s.Sensor.Attempted, s.Sensor.Delivered, s.Sensor.Dropped)
	}
	if !res.Sensor.Consistent {
		t.Error("sensor result not consistent")
	}
	if s.Analyzer.Events != s.Sensor.Delivered || s.Enricher.Events != s.Sensor.Delivered {
		t.Errorf("events: analyzer %d, enricher %d, sensor delivered %d; want all equal", s.Analyzer.Events, s.Enricher.Events, s.Sensor.Delivered)
	}
	if s.Sensor.Delivered == 0 {
		t.Error("nothing delivered")
	}
	if s.Truth.Wrong != 0 || s.Truth.WrongEvents != 0 {
		t.Errorf("truth: %d processes (%d events) with WRONG metadata", s.Truth.Wrong, s.Truth.WrongEvents)
	}
	return res
}

// A comfortable ring: every flood process is seen with correct metadata.
func TestE2ERealSensor(t *testing.T) {
	needRoot(t)
	res := runFlood(t,
		sensor.Config{Node: "e2e", Probe: bpf.Config{RingSize: 8 << 20}, ExcludeSelf: true},
		flood.Config{Procs: 300, Parallel: 4})
	s := res.Summary
	if s.Truth.Processes != 300 || s.Truth.Matched != 300 {
		t.Errorf("truth: %d processes, %d matched; want 300 and 300", s.Truth.Processes, s.Truth.Matched)
	}
	if s.Analyzer.MissingPct > 0.1 {
		t.Errorf("missing %.3f%% of events with an 8 MiB ring, want <= 0.1%%", s.Analyzer.MissingPct)
	}
}

// A tiny ring and a slow consumer: records are dropped, metadata goes
// missing, and it is blamed on the dropped lifecycle records, never wrong.
func TestE2ETinyRingDrops(t *testing.T) {
	needRoot(t)
	res := runFlood(t,
		sensor.Config{Node: "e2e-tiny", Probe: bpf.Config{RingSize: 64 << 10}, ExcludeSelf: true, ConsumerCost: 20 * time.Microsecond},
		flood.Config{Procs: 1500, Parallel: 4})
	s := res.Summary
	if s.Sensor.Dropped == 0 {
		t.Fatal("a 64 KiB ring with a 20µs consumer dropped nothing")
	}
	if s.Analyzer.Missing == 0 {
		t.Fatal("drops but no event with missing metadata")
	}
	if got, min := float64(s.Analyzer.LifecycleAttributed), 0.9*float64(s.Analyzer.Missing); got <= min {
		t.Errorf("lifecycle-attributed missing %d of %d (%.1f%%), want > 90%% (by reason %v)",
			s.Analyzer.LifecycleAttributed, s.Analyzer.Missing, 100*got/float64(s.Analyzer.Missing), s.Analyzer.ByReason)
	}
}
