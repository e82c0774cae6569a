package sensor_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/event"
)

// gatedProbe has an empty ring until open is set, then records at a
// modest rate until it is detached.
type gatedProbe struct {
	open      atomic.Bool
	delivered atomic.Uint64
	detached  atomic.Bool
	flushed   atomic.Bool
}

func (p *gatedProbe) Rings() (lifecycle, syscalls sensor.Ring) { return nil, gatedRing{p} }
func (p *gatedProbe) Counters() (event.Counters, error) {
	var c event.Counters
	c.Attempted[event.CategorySyscall] = p.delivered.Load()
	return c, nil
}
func (p *gatedProbe) SetShedding(bool) error { return nil }
func (p *gatedProbe) Detach() error          { p.detached.Store(true); return nil }
func (p *gatedProbe) Close() error           { return nil }

type gatedRing struct{ p *gatedProbe }

func (r gatedRing) Name() string { return "shared" }
func (r gatedRing) Size() int    { return 1 << 20 }
func (r gatedRing) Pending() int { return 0 }
func (r gatedRing) Flush() error { r.p.flushed.Store(true); return nil }
func (r gatedRing) Read(ev *event.Event, deadline time.Time) error {
	if r.p.detached.Load() {
		if r.p.flushed.Swap(false) {
			return bpf.ErrFlushed
		}
		return os.ErrDeadlineExceeded
	}
	if !r.p.open.Load() {
		// An empty ring waits until the deadline, as a real one does.
		if d := time.Until(deadline); d > 0 {
			time.Sleep(d)
		}
		return os.ErrDeadlineExceeded
	}
	n := r.p.delivered.Add(1)
	ev.Reset()
	ev.Header = event.Header{TsNs: n, StartNs: 1, Pid: 7, Tid: 7, Type: event.TypeSyscall}
	time.Sleep(100 * time.Microsecond)
	return nil
}

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
	p := &gatedProbe{}
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
