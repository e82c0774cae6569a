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

	// RINGWISE_DRAIN_PROFILE=1 runs the sensor's drain alone, so that a
	// CPU profile (-cpuprofile) holds nothing else: scripts/bench.sh reads
	// where the drain's time goes from it. The ratios are not reported then.
	profileOnly := os.Getenv("RINGWISE_DRAIN_PROFILE") == "1"
	var noopN, noopNs, fullN, fullNs, fullCPU float64
	var floorN, floorNs, floorCPU [2]float64 // plain, S2
	floorRound := 0
	for b.Loop() {
		if !profileOnly {
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

			// The transport floor: the records published as they are, plain
			// and S2-compressed.
			for i, compress := range []bool{false, true} {
				p = filledProbe(b)
				n, ns, cpu := drainRaw(ctx, b, js, p, floorRound, compress)
				floorRound++
				floorN[i] += float64(n)
				floorNs[i] += float64(ns)
				floorCPU[i] += float64(cpu)
				p.Close()
			}
		}
		// The measure: sensor.Run drains a ring filled the same way.
		p := filledProbe(b)
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
	if profileOnly {
		b.ReportMetric(full, "events/s")
		b.ReportMetric(fullCPU/fullN, "cpu-ns/event")
		b.ReportMetric(fullN/float64(b.N), "events/drain")
		return
	}
	b.ReportMetric(full, "events/s")
	b.ReportMetric(noop, "noop-events/s")
	b.ReportMetric(100*full/noop, "%-of-noop")
	b.ReportMetric(fullCPU/fullN, "cpu-ns/event")
	b.ReportMetric(fullN/float64(b.N), "events/drain")
	// The floor is the faster of the two ways to ship the records as they
	// are.
	plain, s2 := floorN[0]/(floorNs[0]/1e9), floorN[1]/(floorNs[1]/1e9)
	b.ReportMetric(plain, "floor-plain-events/s")
	b.ReportMetric(s2, "floor-s2-events/s")
	b.ReportMetric(floorCPU[0]/floorN[0], "floor-plain-cpu-ns/event")
	b.ReportMetric(floorCPU[1]/floorN[1], "floor-s2-cpu-ns/event")
	floor := max(plain, s2)
	b.ReportMetric(100*floor/noop, "floor-%-of-noop")
	b.ReportMetric(100*full/floor, "%-of-floor")
}

// drainRaw is the transport floor of BenchmarkSensorDrain: it drains p's
// rings as the no-op reader does, but appends each record's bytes as the BPF
// program wrote them to a batch, cut where the sensor cuts its batches
// (sensor.DefaultBatchMaxEvents records, or sensor.DefaultBatchMaxBytes),
// and publishes the batches uncompressed through a bus.Spool to the raw
// stream, as the sensor publishes; with compress, each batch S2-compressed
// first (event.Codec.Compress, as the sensor compresses its batches by
// default). No decode, no merge, no encode: what shipping the records
// through NATS costs on this core whatever the wire format. It returns the
// records, the wall time until the last batch was acknowledged, and the
// process's CPU time meanwhile.
func drainRaw(ctx context.Context, b *testing.B, js jetstream.JetStream, p *bpf.Probe, round int, compress bool) (records int, wallNs, cpu int64) {
	b.Helper()
	pub := bus.NewSpool(js, 0, nil)
	subject := bus.RawSubject("bench-floor")
	buf := make([]byte, 0, sensor.DefaultBatchMaxBytes)
	codec := event.NewCodec()
	batches, inBatch := 0, 0
	flush := func() {
		if inBatch == 0 {
			return
		}
		id := fmt.Sprintf("floor-%d-%d", round, batches)
		data := buf
		if compress {
			data = codec.Compress(buf)
		}
		if err := pub.Publish(ctx, bus.Msg{Subject: subject, ID: id, Data: data, Schema: event.SchemaVersion}); err != nil {
			b.Fatalf("publish %s: %v", id, err)
		}
		batches++
		buf, inBatch = buf[:0], 0
	}
	past := time.Unix(0, 1)
	cpu0, t0 := cpuNs(b), time.Now()
	for _, r := range p.Rings() {
		for {
			var err error
			buf, err = r.AppendRaw(buf, past)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			records++
			inBatch++
			if inBatch == sensor.DefaultBatchMaxEvents || len(buf) > sensor.DefaultBatchMaxBytes-(bpf.ExecRecordSize+bpf.ExeMax+bpf.ArgsMax) {
				flush()
			}
		}
	}
	flush()
	if n := pub.Close(ctx); n > 0 {
		b.Fatalf("transport floor: %d batches abandoned", n)
	}
	if st := pub.Stats(); st.PublishErrors > 0 || st.Overflow > 0 || st.Refused > 0 || st.Sent != uint64(batches) {
		b.Fatalf("transport floor: %d batches, spool %+v", batches, st)
	}
	return records, time.Since(t0).Nanoseconds(), cpuNs(b) - cpu0
}
