package sensor_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
)

// drainRingSize holds the fill workload's records with room to spare, so
// nothing is dropped while the ring fills with no reader.
const drainRingSize = 64 << 20

// drainFillCount is the fill workload's dd count: two syscalls per block
// (read, write), about 600k records of the 64 MiB ring.
const drainFillCount = 300_000

// loadedProbe hands an already loaded (and filled, detached) probe to
// sensor.Run.
type loadedProbe struct{ *bpf.Probe }

func (p loadedProbe) Rings() (lifecycle, syscalls sensor.Ring) {
	return nil, p.Probe.SyscallRing() // the shared layout: one ring
}

// filledProbe loads the real BPF programs with a 64 MiB shared ring, runs
// `dd if=/dev/zero of=/dev/null bs=500 count=drainFillCount` with nothing
// reading the ring, and detaches: the ring holds dd's syscalls (and whatever
// else the machine did meanwhile), and nothing more arrives.
func filledProbe(b *testing.B) *bpf.Probe {
	b.Helper()
	p, err := bpf.Load(bpf.Config{RingSize: drainRingSize, ExcludeSelf: true, WakeupBytes: drainRingSize - 4096})
	if err != nil {
		b.Fatalf("bpf.Load: %v", err)
	}
	cmd := exec.Command("dd", "if=/dev/zero", "of=/dev/null", "bs=500", fmt.Sprint("count=", drainFillCount))
	if out, err := cmd.CombinedOutput(); err != nil {
		p.Close()
		b.Fatalf("dd: %v: %s", err, out)
	}
	if err := p.Detach(); err != nil {
		p.Close()
		b.Fatalf("Detach: %v", err)
	}
	c, err := p.Counters()
	if err != nil {
		p.Close()
		b.Fatal(err)
	}
	if d := c.Dropped[event.CategoryLifecycle] + c.Dropped[event.CategorySyscall]; d != 0 {
		p.Close()
		b.Fatalf("the fill dropped %d records: the ring is too small for it", d)
	}
	return p
}

func cpuNs(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkSensorDrain measures the sensor's full path against its limit on
// a real BPF ring, in the same run. Each iteration fills a 64 MiB ring with
// a dd workload's syscalls (untimed) and drains it with a no-op reader
// (bpf.Ring.Discard: ringbuf ReadInto, nothing else) — the limit; then fills
// a fresh ring the same way and lets sensor.Run drain it: read, decode,
// merge, batch, encode and publish to JetStream (an embedded NATS server in
// this process, memory streams, through bus.Spool as `ringwise sensor`
// publishes), timed from capture start to the last publish acknowledged.
//
// Metrics: events/s is the sensor's delivered events per wall second of the
// drain (per core at GOMAXPROCS=1, NATS included); noop-events/s the no-op
// reader's; %-of-noop their ratio (target ≥ 50); cpu-ns/event the
// process's CPU time per event of the sensor's drain (NATS's share
// included).
func BenchmarkSensorDrain(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (CAP_BPF): loads BPF programs")
	}
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(srv.URL(), "bench-sensor")
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{Memory: true}); err != nil {
		b.Fatal(err)
	}
	procRoot := b.TempDir() // an empty /proc: the snapshot is not measured

	var noopN, noopNs, fullN, fullNs, fullCPU float64
	for b.Loop() {
		// The limit: drain with a no-op reader.
		p := filledProbe(b)
		past := time.Unix(0, 1)
		t0 := time.Now()
		n := 0
		for _, r := range p.Rings() {
			for {
				_, err := r.Discard(past)
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
		}
		noopNs += float64(time.Since(t0).Nanoseconds())
		noopN += float64(n)
		p.Close()

		// The measure: sensor.Run drains a ring filled the same way.
		p = filledProbe(b)
		pub := bus.NewSpool(js, 0, nil) // as `ringwise sensor` publishes
		var start time.Time
		var cpu0 int64
		rctx, cancel := context.WithCancel(ctx)
		ready := make(chan struct{})
		go func() {
			select {
			case <-ready:
			case <-rctx.Done():
				return
			}
			for rctx.Err() == nil {
				time.Sleep(time.Millisecond)
				pending := 0
				for _, r := range p.Rings() {
					pending += r.Pending()
				}
				if pending == 0 {
					cancel()
				}
			}
		}()
		res, err := sensor.Run(rctx, sensor.Config{
			Node: "bench", BootID: "boot-bench", Procfs: procfs.FS{Root: procRoot},
			Publisher: pub,
			LoadProbe: func(bpf.Config) (sensor.Probe, error) { return loadedProbe{p}, nil },
			Ready: func() {
				cpu0 = cpuNs(b)
				start = time.Now()
				close(ready)
			},
		})
		cancel()
		if err != nil {
			b.Fatalf("sensor.Run: %v", err)
		}
		if n := pub.Close(ctx); n > 0 {
			b.Fatalf("%d batches abandoned", n)
		}
		if st := pub.Stats(); st.PublishErrors > 0 || st.Overflow > 0 {
			b.Fatalf("spool %+v", st)
		}
		<-ready
		fullNs += float64(time.Since(start).Nanoseconds())
		fullCPU += float64(cpuNs(b) - cpu0)
		d := res.Counters.Delivered[event.CategoryLifecycle] + res.Counters.Delivered[event.CategorySyscall]
		if d == 0 {
			b.Fatal("the sensor delivered nothing")
		}
		fullN += float64(d)
		p.Close()
	}
	full, noop := fullN/(fullNs/1e9), noopN/(noopNs/1e9)
	b.ReportMetric(full, "events/s")
	b.ReportMetric(noop, "noop-events/s")
	b.ReportMetric(100*full/noop, "%-of-noop")
	b.ReportMetric(fullCPU/fullN, "cpu-ns/event")
	b.ReportMetric(fullN/float64(b.N), "events/drain")
}
