package sensor_test

import (
	"context"
	"testing"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/event"
)

// TestSamplerBacksOffWhileIdle: while nothing arrives the sampler's period
// doubles up to SampleIdleMax (an idle sensor wakes seldom), and once
// records come it samples at SampleInterval again; no reading is lost
// either way (every sample's counters are cumulative and the series stays
// in time order).
func TestSamplerBacksOffWhileIdle(t *testing.T) {
	pub := &recPub{}
	cfg := baseConfig(t, pub)
	cfg.SampleInterval = time.Millisecond
	cfg.SampleIdleMax = 10 * time.Second
	cfg.BatchMaxEvents = 64
	p := &endlessProbe{gated: true}
	cfg.LoadProbe = func(bpf.Config) (sensor.Probe, error) { return p, nil }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan sensor.Result, 1)
	errc := make(chan error, 1)
	go func() {
		res, err := sensor.Run(ctx, cfg)
		done <- res
		errc <- err
	}()
	// Idle for 1.1 s: at a fixed 1 ms the sampler would take some 1100
	// readings; backing off (1, 2, 4 … ms) it takes about 11, the last
	// near 1.02 s, and the next one it schedules falls near 2.05 s. Only a
	// sampler that does not back off reaches 100 (a slow machine takes
	// fewer readings, never more).
	const idle = 1100 * time.Millisecond
	time.Sleep(idle)
	opened := uint64(sensor.MonotonicNs())
	p.open.Store(true)
	// Active for 300 ms: at 1 ms that is some 300 readings (20 leaves room
	// for a loaded machine). A sampler that waited out its backed-off
	// period instead of being woken by the reader would take none until
	// near 2.05 s, after the run ended (the drain's final reading aside).
	time.Sleep(300 * time.Millisecond)
	cancel()
	var res sensor.Result
	select {
	case res = <-done:
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sensor.Run did not return")
	}
	var before, after int
	for i, s := range res.Series {
		if i > 0 && s.TsNs < res.Series[i-1].TsNs {
			t.Fatalf("series out of order at %d", i)
		}
		if i > 0 && event.Sum(s.Attempted) < event.Sum(res.Series[i-1].Attempted) {
			t.Fatalf("cumulative counters went back at %d", i)
		}
		if s.TsNs < opened {
			before++
		} else {
			after++
		}
	}
	t.Logf("%d readings in %v idle, %d in 300 ms active, %d records", before, idle, after, p.delivered.Load())
	if before >= 100 {
		t.Errorf("%d readings while idle for %v with SampleInterval 1 ms: the sampler did not back off", before, idle)
	}
	if after < 20 {
		t.Errorf("%d readings in 300 ms once records came: the reader did not bring the sampler back to SampleInterval (1 ms)", after)
	}
	if last := res.Series[len(res.Series)-1]; event.Sum(last.Attempted) != p.delivered.Load() {
		t.Errorf("last reading %d attempted, probe delivered %d", event.Sum(last.Attempted), p.delivered.Load())
	}
}
