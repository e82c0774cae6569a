package state

import (
	"context"
	"fmt"
	"testing"

	"github.com/ringwise/ringwise/services/event"
)

// BenchmarkEnrichHotPath enriches batches of 1024 syscall events of ~100
// known processes (threads included): the steady state of a busy node.
func BenchmarkEnrichHotPath(b *testing.B) {
	const nproc = 100
	e := NewEngine(Config{})
	var setup []event.Event
	for p := uint32(0); p < nproc; p++ {
		setup = append(setup, execEv(1000+p, 1, t1+uint64(p), 2, fmt.Sprint("proc", p), "/usr/bin/proc", "proc", "--id", fmt.Sprint(p)))
	}
	e.Enrich(context.Background(), batch(0, setup...), nil)

	bt := batch(0)
	for i := 0; i < 1024; i++ {
		p := uint32(i*37) % nproc
		ev := sysTid(1000+p+uint32(i%3)*10000, 1000+p, t1+uint64(p), 2)
		ev.Syscall, ev.Ret = uint32(i%300), int64(i)
		bt.Events = append(bt.Events, ev)
	}
	out := make([]event.Enriched, 0, len(bt.Events))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		out = e.Enrich(ctx, bt, out[:0])
		n += len(out)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	if s := e.Stats(); s.Missing != 0 {
		b.Fatalf("missing: %+v", s)
	}
}

// BenchmarkEnrichFlood enriches a process flood: a shell forks short-lived
// children that exec, make a few syscalls and exit, with pids recycled. Some
// batches lose lifecycle records, so the miss paths run too.
func BenchmarkEnrichFlood(b *testing.B) {
	for _, lossy := range []bool{false, true} {
		b.Run(fmt.Sprintf("lossy=%v", lossy), func(b *testing.B) {
			e := NewEngine(Config{MaxProcs: 4096})
			ctx := context.Background()
			e.Enrich(ctx, batch(0, bashExec), nil)
			const perBatch = 1024
			batches := make([]*event.Batch, 64)
			pid, start := uint32(2000), uint64(t1)
			for bi := range batches {
				bt := batch(0)
				if lossy {
					bt.Counters.Dropped[event.CategoryLifecycle] = 1
				}
				for len(bt.Events) < perBatch {
					pid++
					if pid > 30000 {
						pid = 2000
					}
					start += 1000
					evs := []event.Event{
						forkEv(pid, 100, start, 1, "bash"),
						execEv(pid, 100, start, 2, "true", "/bin/true", "true", "--flag"),
						sysEv(pid, start, 2), sysEv(pid, start, 2), sysEv(pid, start, 2),
						exitEv(pid, pid, start, 2, true),
					}
					if lossy && pid%10 == 0 { // fork and exec lost
						evs = evs[2:]
					} else if lossy && pid%10 == 1 { // exec lost
						evs = append(evs[:1], evs[2:]...)
					}
					bt.Events = append(bt.Events, evs...)
				}
				batches[bi] = bt
			}
			out := make([]event.Enriched, 0, 2*perBatch)
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for i := 0; b.Loop(); i++ {
				out = e.Enrich(ctx, batches[i%len(batches)], out[:0])
				n += len(out)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			s := e.Stats()
			b.ReportMetric(float64(s.Missing)/float64(s.Events)*100, "%missing")
		})
	}
}
