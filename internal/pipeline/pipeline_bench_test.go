package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/internal/pipeline"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
)

// benchStream is a flood-like stream: 500 processes, each fork, exec, 200
// syscalls, exit, interleaved round robin as on a busy node.
func benchStream(base uint64) []event.Event {
	const procs, syscalls = 500, 200
	var evs []event.Event
	ts := base
	mk := func(t event.Type, pid uint32) event.Event {
		ts += 100
		e := event.Event{Header: event.Header{TsNs: ts, StartNs: base + uint64(pid), Tid: pid, Pid: pid, ExecID: 1, Type: t}, PPid: 1}
		e.SetComm("bench")
		return e
	}
	for p := uint32(0); p < procs; p++ {
		evs = append(evs, mk(event.TypeFork, 10000+p))
		x := mk(event.TypeExec, 10000+p)
		x.ExecID = 2
		x.Exe, x.Args = []byte("/usr/bin/bench"), []byte("bench\x00-x")
		evs = append(evs, x)
	}
	for i := 0; i < syscalls; i++ {
		for p := uint32(0); p < procs; p++ {
			e := mk(event.TypeSyscall, 10000+p)
			e.ExecID, e.Syscall, e.Ret = 2, 257, 3
			evs = append(evs, e)
		}
	}
	for p := uint32(0); p < procs; p++ {
		e := mk(event.TypeExit, 10000+p)
		e.ExecID, e.Flags = 2, event.FlagGroupDead
		evs = append(evs, e)
	}
	return evs
}

// BenchmarkPipelineThroughput measures events per second through the whole
// pipeline — sensor reader, msgpack, embedded JetStream, enricher, JetStream,
// analyzer — fed by a fake ring that is never empty until the stream ends,
// including the final drain. The kernel side is not part of it.
func BenchmarkPipelineThroughput(b *testing.B) {
	var total int
	// Timestamps are relative: the stream is built once, outside the timer,
	// and shifted to start after the sensor attaches in each run.
	stream := benchStream(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var probe *fakeProbe
		cfg := sensor.Config{
			Node: "bench", BootID: "boot-bench", Procfs: procfs.FS{Root: b.TempDir()},
			LoadProbe: func(bpf.Config) (sensor.Probe, error) {
				base := sensor.MonotonicNs() + uint64(time.Second)
				evs := make([]event.Event, len(stream))
				copy(evs, stream)
				for j := range evs {
					evs[j].TsNs += base
					evs[j].StartNs += base
				}
				probe = &fakeProbe{recs: evs}
				for j := range evs {
					probe.total[evs[j].Type.Category()]++
				}
				return probe, nil
			},
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			// Stop once the fake ring is exhausted; the pipeline drains.
			for {
				time.Sleep(2 * time.Millisecond)
				if probe == nil {
					continue
				}
				probe.mu.Lock()
				done := probe.pos == len(probe.recs)
				probe.mu.Unlock()
				if done {
					cancel()
					return
				}
			}
		}()
		res, err := pipeline.Run(ctx, pipeline.Options{Sensor: cfg})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		// The forks' parent (pid 1) is not in the empty fake /proc, so each
		// fork event lacks exepath and cmdline; everything else is known.
		if res.Summary.Analyzer.Events != uint64(len(probe.recs)) || res.Summary.Analyzer.Missing != 500 {
			b.Fatalf("analyzed %d of %d events, %d missing", res.Summary.Analyzer.Events, len(probe.recs), res.Summary.Analyzer.Missing)
		}
		total += len(probe.recs)
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
}
