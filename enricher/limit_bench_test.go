package enricher_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"

	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/enricher/state"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
)

// tableProcs is the "realistic" process table of BenchmarkEnrichVsLimit: a
// busy node's ten thousand live processes.
const tableProcs = 10_000

// limitBatches returns the raw batches that put tableProcs processes in the
// table (one exec each, run 0) and, for two further sensor runs (so the
// sequence can start over, as in benchBatches), perRun batches of 1024
// syscall events spread over all of them in a scattered order.
func limitBatches(b *testing.B, perRun int) (seed [][]byte, runs [2][][]byte) {
	b.Helper()
	codec := event.NewCodec()
	enc := func(bt *event.Batch) []byte {
		data, err := codec.Encode(bt)
		if err != nil {
			b.Fatal(err)
		}
		return append([]byte(nil), data...)
	}
	pid := func(p uint32) uint32 { return 100_000 + p }
	seq := uint64(0)
	for first := 0; first < tableProcs; first += 1000 {
		seq++
		bt := &event.Batch{Schema: event.SchemaVersion, Node: "bench", BootID: "boot", SensorStartNs: 1000, Seq: seq}
		for p := uint32(first); p < uint32(first+1000); p++ {
			ev := event.Event{Header: event.Header{TsNs: uint64(1e9) + uint64(p), StartNs: uint64(1e6) + uint64(p), Tid: pid(p), Pid: pid(p), ExecID: 2, Type: event.TypeExec}}
			ev.PPid, ev.UID, ev.GID = 1, 1000, 1000
			ev.SetComm(fmt.Sprint("worker-", p%97))
			ev.Exe = fmt.Appendf(nil, "/usr/lib/service-%d/bin/worker", p%97)
			ev.Args = fmt.Appendf(nil, "worker\x00--config\x00/etc/service-%d/worker.conf\x00--id\x00%d", p%97, p)
			bt.Events = append(bt.Events, ev)
		}
		bt.FirstTsNs, bt.LastTsNs = bt.Events[0].TsNs, bt.Events[len(bt.Events)-1].TsNs
		seed = append(seed, enc(bt))
	}
	x := uint32(12345)
	for run := range runs {
		for s := 1; s <= perRun; s++ {
			bt := &event.Batch{Schema: event.SchemaVersion, Node: "bench", BootID: "boot", SensorStartNs: uint64(2000 + run), Seq: uint64(s)}
			for i := 0; i < 1024; i++ {
				x = x*1664525 + 1013904223
				p := (x >> 8) % tableProcs
				ev := event.Event{Header: event.Header{TsNs: uint64(2e9 + i), StartNs: uint64(1e6) + uint64(p), Tid: pid(p), Pid: pid(p), ExecID: 2, Type: event.TypeSyscall}}
				ev.Syscall, ev.Ret = uint32(i%300), int64(i)
				bt.Events = append(bt.Events, ev)
			}
			bt.FirstTsNs, bt.LastTsNs = bt.Events[0].TsNs, bt.Events[len(bt.Events)-1].TsNs
			runs[run] = append(runs[run], enc(bt))
		}
	}
	return seed, runs
}

// lastPub keeps the last published payload.
type lastPub struct{ last []byte }

func (c *lastPub) Publish(_ context.Context, m bus.Msg) error {
	c.last = append(c.last[:0], m.Data...)
	return nil
}

// BenchmarkEnrichVsLimit measures the enricher against its limit in the
// same run. The limit is the codec work it cannot avoid: decode each raw
// batch, encode the enriched batch it becomes and S2-compress that, as the
// enricher publishes it by default (the enriched batches are made once
// beforehand, by the enricher itself). The measure is the full
// per-batch path (enricher.Handle: decode, sequence check, enrichment
// against a table of 10k processes, encode, publish to a discarding
// publisher). The two take turns in slots of 16 batches, each slot timed by
// this process's CPU time, so a busy spell on a shared machine hits both.
//
// Metrics: events/s is the full path's events per CPU second (per core at
// GOMAXPROCS=1); limit-events/s the codec-only rate; %-of-limit their ratio
// (median over the rounds; target ≥ 60); table-B/proc the heap the 10k
// processes take in the enricher's table (HeapAlloc after GC, before and
// after seeding).
func BenchmarkEnrichVsLimit(b *testing.B) {
	const perRun, slot = 64, 16
	seed, runs := limitBatches(b, perRun)
	pub := &lastPub{}
	ctx := context.Background()
	subject := bus.RawSubject("bench")

	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	en, err := enricher.New(enricher.Config{Publisher: pub})
	if err != nil {
		b.Fatal(err)
	}
	for _, data := range seed {
		if err := en.Handle(ctx, subject, data); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	perProc := float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc)) / tableProcs
	if st, _ := en.TableStats("bench"); st.Procs < tableProcs {
		b.Fatalf("table holds %d processes, want %d", st.Procs, tableProcs)
	}

	// The enriched batches the limit encodes: the enricher's own output.
	codec := event.NewCodec()
	var enriched [2][]*event.EnrichedBatch
	for r := range runs {
		for _, data := range runs[r] {
			if err := en.Handle(ctx, subject, data); err != nil {
				b.Fatal(err)
			}
			eb := &event.EnrichedBatch{}
			if err := codec.DecodeEnriched(pub.last, eb); err != nil {
				b.Fatal(err)
			}
			enriched[r] = append(enriched[r], eb)
		}
	}

	var raw event.Batch
	limit := func(i int) {
		r, k := (i/perRun)%2, i%perRun
		if err := codec.Decode(runs[r][k], &raw); err != nil {
			b.Fatal(err)
		}
		out, err := codec.EncodeEnriched(enriched[r][k])
		if err != nil {
			b.Fatal(err)
		}
		// The enricher compresses what it publishes by default
		// (Config.PlainBatches false, as here): that is codec work too.
		codec.Compress(out)
	}
	full := func(i int) {
		if err := en.Handle(ctx, subject, runs[(i/perRun)%2][i%perRun]); err != nil {
			b.Fatal(err)
		}
	}
	var limitNs, fullNs []float64
	next := 2 * perRun // both runs were handled once above: start at run 0 again
	b.ReportAllocs()
	for b.Loop() {
		c0 := cpuTime(b)
		for j := 0; j < slot; j++ {
			limit(next + j)
		}
		c1 := cpuTime(b)
		for j := 0; j < slot; j++ {
			full(next + j)
		}
		c2 := cpuTime(b)
		next += slot
		limitNs = append(limitNs, float64(c1-c0))
		fullNs = append(fullNs, float64(c2-c1))
	}
	if st := en.Stats(); st.SeqGaps != 0 {
		b.Fatalf("enricher stats %+v", st)
	}
	if st, _ := en.TableStats("bench"); st.Missing != 0 {
		b.Fatalf("table stats %+v: the table should know every process", st)
	}
	sum := func(v []float64) (s float64) {
		for _, x := range v {
			s += x
		}
		return s
	}
	events := float64(len(fullNs) * slot * 1024)
	ratios := make([]float64, len(fullNs))
	for i := range fullNs {
		ratios[i] = 100 * limitNs[i] / max(fullNs[i], 1)
	}
	slices.Sort(ratios)
	b.ReportMetric(events/(sum(fullNs)/1e9), "events/s")
	b.ReportMetric(events/(sum(limitNs)/1e9), "limit-events/s")
	b.ReportMetric(ratios[len(ratios)/2], "%-of-limit")
	b.ReportMetric(perProc, "table-B/proc")
	b.ReportMetric(float64(state.DefaultMaxProcs)*perProc/(1<<20), "table-MiB-at-max-procs")
}
