package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/internal/flood"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
)

// BenchmarkScaleOut measures docs/scaling.md's figures with real
// processes: a quiet node's and a flooding node's event rate (real BPF
// sensor), then the flooding node's recorded raw stream published as 50
// virtual nodes (`ringwise replay`) and enriched by 1, 2, 3 and 4 scaled
// enrichers: events/s in all and per enricher CPU-second, nodes and
// events per enricher, hand-over when a member joins and take-over after
// a kill -9; and 50 quiet virtual nodes at the quiet node's own rate on
// one enricher: its CPU per node. It runs once (scripts/scale-bench.sh:
// RINGWISE_SCALE_BENCH=1, -benchtime 1x) and writes a Markdown report to
// $RINGWISE_SCALE_BENCH_OUT (default stdout only). Every figure is
// measured in the run; nothing is derived except where labelled.
func BenchmarkScaleOut(b *testing.B) {
	if os.Getenv("RINGWISE_SCALE_BENCH") != "1" {
		b.Skip("RINGWISE_SCALE_BENCH=1 runs it (scripts/scale-bench.sh): minutes of multi-process measurement")
	}
	if os.Geteuid() != 0 {
		b.Skip("root needed to load BPF")
	}
	nodes := envInt("RINGWISE_SCALE_NODES", 50)
	limit := envInt("RINGWISE_SCALE_RECORDS", 120) // raw records of the recording per virtual node
	maxEnrichers := envInt("RINGWISE_SCALE_MAX_ENRICHERS", 4)
	var rep strings.Builder
	say := func(format string, a ...any) {
		line := fmt.Sprintf(format, a...)
		rep.WriteString(line + "\n")
		b.Log(line)
	}
	dir := b.TempDir()
	host, _ := os.Hostname()
	say("Measured by `scripts/scale-bench.sh` (BenchmarkScaleOut) on %s: %d CPUs, %s, started %s; load average before: %s.",
		host, runtime.NumCPU(), kernelRelease(), time.Now().UTC().Format("2006-01-02 15:04 MST"), loadAvg())
	say("")

	// 1. A quiet node and a flooding node, both real sensors on this VM.
	natsPort := freePort(b)
	url := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	ns := startService(b, "nats", "nats", "--listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "--store", b.TempDir())
	ns.waitOutput(b, "NATS with JetStream on", 20*time.Second)
	quiet := startService(b, "sensor quiet", "sensor", "--nats", url, "--node", "quiet")
	quiet.waitOutput(b, "published /proc snapshot", 60*time.Second)
	qStart := time.Now()
	time.Sleep(30 * time.Second)
	quiet.stop(b, 60*time.Second)
	qDur := time.Since(qStart)
	qEvents := sensorDelivered(b, quiet)
	qBatches := sensorBatches(b, quiet)
	qRate := float64(qEvents) / qDur.Seconds()
	qFile := filepath.Join(dir, "quiet.replay")
	record(b, url, "quiet", qFile)
	qBreakdown := byProcess(b, qFile, ns.cmd.Process.Pid)

	src := startService(b, "sensor src", "sensor", "--nats", url, "--node", "src")
	src.waitOutput(b, "published /proc snapshot", 60*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	fStart := time.Now()
	fr, err := flood.Run(ctx, flood.Config{Procs: 1800, Parallel: 4, Burst: 900, Pause: 3 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	src.stop(b, 60*time.Second)
	fDur := time.Since(fStart)
	fEvents := sensorDelivered(b, src)
	fRate := float64(fEvents) / fDur.Seconds()
	srcFile := filepath.Join(dir, "src.replay")
	record(b, url, "src", srcFile)
	ns.stop(b, 30*time.Second)
	recs, err := readReplay(srcFile)
	if err != nil {
		b.Fatal(err)
	}
	limit = min(limit, len(recs))
	var perNodeEvents, perNodeBatches uint64
	codec := event.NewCodec()
	var batch event.Batch
	for _, r := range recs[:limit] {
		if r.kind == replayRaw {
			if err := codec.Decode(r.data, &batch); err != nil {
				b.Fatal(err)
			}
			perNodeEvents += uint64(len(batch.Events))
			perNodeBatches++
		}
	}
	say("| node | events | over | events/s | batches/s |")
	say("|---|---:|---:|---:|---:|")
	say("| quiet (this VM without a flood of ours; shared: see the load average) | %d | %v | %.0f | %.1f |", qEvents, qDur.Round(100*time.Millisecond), qRate, float64(qBatches)/qDur.Seconds())
	say("| ↳ of which, by process (comm from the node's snapshot and exec records): %s | | | | |", qBreakdown)
	say("| lab flood (%d processes, bursts of 900, 4 spawners, 3 s pause) | %d | %v | %.0f | %.1f |", fr.Spawned, fEvents, fDur.Round(100*time.Millisecond), fRate, float64(sensorBatches(b, src))/fDur.Seconds())
	say("")
	say("**%d virtual nodes** replay the flooding node's first %d raw batches each (%d events, %d batches per node; %d events in all), published before the enrichers start; the enrichers then drain them (member and lease TTL 3 s, checkpoints every 2 s / 200 batches: the defaults).", nodes, perNodeBatches, perNodeEvents, perNodeBatches, perNodeEvents*uint64(nodes))
	say("")
	say("| enrichers | drain time | events/s in all | events per enricher CPU-second (each; its CPU over the drain) | nodes per enricher | events per enricher (millions) | rebalance when one more joins | take-over after kill -9 of the newcomer | checkpoint mean / last size (each) |")
	say("|---:|---:|---:|---|---|---|---:|---:|---|")
	var note string
	for n := 1; n <= maxEnrichers; n++ {
		say("%s", scaleRound(b, ctx, n, nodes, limit, srcFile, perNodeEvents*uint64(nodes), perNodeBatches*uint64(nodes), &note))
	}
	say("")
	say("%s", note)
	say("")
	// 3. Quiet virtual nodes at the quiet node's own rate, on one enricher.
	say("%s", quietRound(b, ctx, nodes, qFile, float64(qBatches)/qDur.Seconds()))
	say("")
	say("Load average after: %s.", loadAvg())
	if p := os.Getenv("RINGWISE_SCALE_BENCH_OUT"); p != "" {
		if err := os.WriteFile(p, []byte(rep.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	fmt.Print(rep.String())
}

// scaleRound drains the preloaded virtual nodes with n enrichers, then
// times a join and a kill -9; it returns the table row.
func scaleRound(b *testing.B, ctx context.Context, n, nodes, limit int, file string, events, batches uint64, note *string) string {
	natsPort := freePort(b)
	url := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	ns := startService(b, fmt.Sprintf("nats (%d enrichers)", n), "nats", "--listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "--store", b.TempDir())
	ns.waitOutput(b, "NATS with JetStream on", 20*time.Second)
	play := startService(b, "replay play", "replay", "play", "--nats", url, "--in", file, "--nodes", strconv.Itoa(nodes), "--rate", "0", "--limit", strconv.Itoa(limit))
	<-play.done
	if play.err != nil {
		b.Fatalf("replay play: %v\n%s", play.err, play.out.String())
	}
	nc, err := bus.Connect(url, "scale-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var es []*service
	var ids []string
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("e%d", i)
		ids = append(ids, id)
		es = append(es, startService(b, "enricher "+id, "enricher", "--nats", url, "--id", id))
	}
	// LastSeq, not Msgs: the enriched stream's byte limit (1 GiB) keeps
	// only its newest ~4,000 batches of ~250 KB.
	waitUntil(b, 20*time.Minute, "every raw batch enriched", func() bool {
		info, err := streamInfo(ctx, js, bus.StreamEnriched)
		return err == nil && info.State.LastSeq >= batches
	})
	drain := time.Since(start)
	if n == 1 {
		raw, err1 := streamInfo(ctx, js, bus.StreamRaw)
		enr, err2 := streamInfo(ctx, js, bus.StreamEnriched)
		if err1 == nil && err2 == nil && enr.State.Msgs > 0 {
			*note = fmt.Sprintf("Stored bytes per event: raw %.0f, enriched %.0f; RINGWISE_ENRICHED kept %d of the %d enriched batches under its %d MiB limit (DiscardOld).",
				float64(raw.State.Bytes)/float64(events), float64(enr.State.Bytes)/float64(enr.State.Msgs)*float64(batches)/float64(events),
				enr.State.Msgs, enr.State.LastSeq, enr.Config.MaxBytes>>20)
		}
	}
	drainCPU := make([]time.Duration, n)
	for i, e := range es {
		drainCPU[i] = procCPU(b, e.cmd.Process.Pid)
	}
	leases, err := waitKV(ctx, js, bus.BucketLeases)
	if err != nil {
		b.Fatal(err)
	}
	vnodes := make([]string, nodes)
	for i := range vnodes {
		vnodes[i] = fmt.Sprintf("vnode-%d", i)
	}
	owners := func() map[string]string {
		out := map[string]string{}
		for _, v := range vnodes {
			if ent, err := kvGet(ctx, leases, bus.NodeKey(v)); err == nil {
				out[v] = string(ent.Value())
			}
		}
		return out
	}
	settled := func(members []string) bool {
		o := owners()
		for _, v := range vnodes {
			if o[v] != enricher.Owner(v, members) {
				return false
			}
		}
		return true
	}
	waitUntil(b, 60*time.Second, "leases with their rendezvous owners", func() bool { return settled(ids) })
	perOwner := map[string]int{}
	for _, o := range owners() {
		perOwner[o]++
	}
	var nodeCounts []string
	for _, id := range ids {
		nodeCounts = append(nodeCounts, strconv.Itoa(perOwner[id]))
	}
	// One more joins: graceful hand-over of the nodes it wins.
	joinID := fmt.Sprintf("e%d", n+1)
	joined := time.Now()
	je := startService(b, "enricher "+joinID, "enricher", "--nats", url, "--id", joinID)
	je.waitOutput(b, "scaled mode", 20*time.Second)
	all := append(slices.Clone(ids), joinID)
	waitUntil(b, 60*time.Second, "rebalanced to "+joinID, func() bool { return settled(all) })
	rebalance := time.Since(joined)
	joinedNodes := countOwner(owners(), joinID)
	// kill -9 of the newcomer: its nodes go back after the TTLs.
	killed := time.Now()
	je.kill()
	waitUntil(b, 60*time.Second, joinID+"'s nodes taken over", func() bool { return settled(ids) })
	takeover := time.Since(killed)
	var perCPU, perEvents, ckpt []string
	lineRE := regexp.MustCompile(`for (\d+) events: \d+ events per CPU-second`)
	ckptRE := regexp.MustCompile(`(\d+) checkpoints \(\d+ errors, mean (\S+), last (\d+) bytes`)
	for i, e := range es {
		e.stop(b, 60*time.Second)
		out := e.out.String()
		m := lineRE.FindStringSubmatch(out)
		if m == nil {
			b.Fatalf("%s printed no CPU line:\n%s", e.name, tail(out, 2048))
		}
		ev := mustFloat(m[1])
		perEvents = append(perEvents, fmt.Sprintf("%.2f", ev/1e6))
		perCPU = append(perCPU, fmt.Sprintf("%.0fk (%v CPU)", ev/drainCPU[i].Seconds()/1e3, drainCPU[i].Round(10*time.Millisecond)))
		if m := ckptRE.FindStringSubmatch(out); m != nil && m[1] != "0" {
			ckpt = append(ckpt, m[2]+" / "+m[3]+" B")
		}
	}
	ns.stop(b, 30*time.Second)
	return fmt.Sprintf("| %d | %v | %.0f | %s | %s | %s | %v (%d nodes to %s) | %v (%s's %d nodes) | %s |", n, drain.Round(10*time.Millisecond),
		float64(events)/drain.Seconds(), strings.Join(perCPU, ", "), strings.Join(nodeCounts, ", "), strings.Join(perEvents, ", "),
		rebalance.Round(10*time.Millisecond), joinedNodes, joinID, takeover.Round(10*time.Millisecond), joinID, joinedNodes, strings.Join(ckpt, "; "))
}

func countOwner(o map[string]string, id string) int {
	k := 0
	for _, v := range o {
		if v == id {
			k++
		}
	}
	return k
}

// quietRound replays the quiet node's recording as nodes virtual nodes at
// its own batch rate on one enricher, and measures that enricher's and the
// server's CPU over the replay.
func quietRound(b *testing.B, ctx context.Context, nodes int, file string, batchRate float64) string {
	natsPort := freePort(b)
	url := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	ns := startService(b, "nats (quiet)", "nats", "--listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "--store", b.TempDir())
	ns.waitOutput(b, "NATS with JetStream on", 20*time.Second)
	e := startService(b, "enricher q1", "enricher", "--nats", url, "--id", "q1")
	e.waitOutput(b, "scaled mode", 20*time.Second)
	time.Sleep(2 * time.Second)
	e0, n0 := procCPU(b, e.cmd.Process.Pid), procCPU(b, ns.cmd.Process.Pid)
	t0 := time.Now()
	play := startService(b, "replay play (quiet)", "replay", "play", "--nats", url, "--in", file, "--nodes", strconv.Itoa(nodes), "--rate", fmt.Sprintf("%.2f", batchRate))
	<-play.done
	if play.err != nil {
		b.Fatalf("replay play: %v\n%s", play.err, play.out.String())
	}
	dur := time.Since(t0)
	eCPU, nCPU := procCPU(b, e.cmd.Process.Pid)-e0, procCPU(b, ns.cmd.Process.Pid)-n0
	e.stop(b, 60*time.Second)
	ns.stop(b, 30*time.Second)
	perNode := eCPU.Seconds() / dur.Seconds() / float64(nodes)
	return fmt.Sprintf("**%d quiet virtual nodes** (the quiet node's recording at its own %.1f batches/s each) on one enricher for %v: enricher CPU %v (%.2f %% of a core, %.3f %% per node), NATS server CPU %v (%.2f %% of a core); so one enricher core holds ~%.0f quiet nodes by this measure.",
		nodes, batchRate, dur.Round(100*time.Millisecond), eCPU.Round(time.Millisecond), 100*eCPU.Seconds()/dur.Seconds(), 100*perNode,
		nCPU.Round(time.Millisecond), 100*nCPU.Seconds()/dur.Seconds(), 1/perNode)
}

// byProcess gives the share of a recording's events per process name, the
// local NATS server (natsPid) named apart: on a shared VM a "quiet"
// node's rate is mostly other people's work.
func byProcess(t testing.TB, file string, natsPid int) string {
	t.Helper()
	recs, err := readReplay(file)
	if err != nil {
		t.Fatal(err)
	}
	comm := map[uint32]string{uint32(natsPid): "the bench's own NATS server"}
	count := map[string]uint64{}
	var total uint64
	codec := event.NewCodec()
	var bt event.Batch
	for _, r := range recs {
		if r.kind == replaySnapshot {
			if sn, err := event.DecodeSnapshot(r.data); err == nil {
				for _, p := range sn.Procs {
					if _, ok := comm[p.Pid]; !ok {
						comm[p.Pid] = p.Comm
					}
				}
			}
			continue
		}
		if err := codec.Decode(r.data, &bt); err != nil {
			t.Fatal(err)
		}
		for i := range bt.Events {
			ev := &bt.Events[i]
			if ev.Type == event.TypeExec && uint32(natsPid) != ev.Pid {
				comm[ev.Pid] = strings.TrimRight(string(ev.Comm[:]), "\x00")
			}
			name, ok := comm[ev.Pid]
			if !ok {
				name = "(not in the snapshot, no exec seen)"
			}
			count[name]++
			total++
		}
	}
	names := make([]string, 0, len(count))
	for n := range count {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return int(count[b]) - int(count[a]) })
	var parts []string
	for i, n := range names {
		if i == 6 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.1f %%", n, 100*float64(count[n])/float64(max(total, 1))))
	}
	return strings.Join(parts, ", ")
}

// procCPU is a process's user+system CPU time from /proc (clock ticks of
// 10 ms).
func procCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func record(t testing.TB, url, node, file string) {
	t.Helper()
	rec := startService(t, "replay record "+node, "replay", "record", "--nats", url, "--node", node, "--out", file)
	<-rec.done
	if rec.err != nil {
		t.Fatalf("replay record: %v\n%s", rec.err, rec.out.String())
	}
}

var batchesRE = regexp.MustCompile(`\(lifecycle, syscall\); (\d+) batches`)

func sensorBatches(t testing.TB, s *service) uint64 {
	t.Helper()
	m := batchesRE.FindStringSubmatch(s.out.String())
	if m == nil {
		t.Fatalf("%s printed no batch count", s.name)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func mustFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}

func kernelRelease() string {
	data, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "kernel ?"
	}
	return "kernel " + strings.TrimSpace(string(data))
}

// BenchmarkFleetControl measures the per-node control costs of the scaled
// mode on one real (embedded, file store) server, for docs/scaling.md's
// 1,000 and 10,000 nodes: node discovery (RINGWISE_RAW's info with the
// subject filter, which every enricher asks every tick), a lease renewal
// (KV update at a revision) and a checkpoint write of 40 KB (KV update),
// and what one filtered consumer per node costs (create, and every append).
// scripts/scale-bench.sh runs it with -benchtime 2000x.
func BenchmarkFleetControl(b *testing.B) {
	if os.Getenv("RINGWISE_SCALE_BENCH") != "1" {
		b.Skip("RINGWISE_SCALE_BENCH=1 runs it (scripts/scale-bench.sh): 10,000 consumers take minutes to create")
	}
	for _, nodes := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("discovery/nodes=%d", nodes), func(b *testing.B) {
			js := benchServer(b)
			ctx := context.Background()
			for i := 0; i < nodes; i++ {
				js.PublishAsync(bus.RawSubject(fmt.Sprintf("n%d", i)), []byte("x"))
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(60 * time.Second):
				b.Fatal("publishes not acknowledged")
			}
			st, err := js.Stream(ctx, bus.StreamRaw)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				info, err := st.Info(ctx, jetstream.WithSubjectFilter(bus.PrefixRaw+">"))
				if err != nil || len(info.State.Subjects) != nodes {
					b.Fatalf("info: %v (%d subjects)", err, len(info.State.Subjects))
				}
			}
		})
	}
	// One filtered consumer per node, as the scaled mode keeps: what they
	// cost every append to the stream.
	for _, consumers := range []int{0, 1000, 10000} {
		b.Run(fmt.Sprintf("append/consumers=%d", consumers), func(b *testing.B) {
			js := benchServer(b)
			ctx := context.Background()
			st, err := js.Stream(ctx, bus.StreamRaw)
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			for i := 0; i < consumers; i++ {
				if _, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{FilterSubject: bus.RawSubject(fmt.Sprintf("n%d", i)),
					AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Hour}); err != nil {
					b.Fatal(err)
				}
			}
			create := time.Since(t0)
			data := make([]byte, 1024)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := js.Publish(ctx, bus.RawSubject(fmt.Sprintf("n%d", i%max(consumers, 1))), data); err != nil {
					b.Fatal(err)
				}
			}
			if consumers > 0 {
				// After the loop: ResetTimer drops metrics reported before it.
				b.ReportMetric(float64(create.Microseconds())/float64(consumers), "µs/consumer-create")
			}
		})
	}
	for _, size := range []int{16, 40 << 10} {
		b.Run(fmt.Sprintf("kv-update/bytes=%d", size), func(b *testing.B) {
			js := benchServer(b)
			ctx := context.Background()
			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "BENCH", History: 1, MaxValueSize: 1 << 20})
			if err != nil {
				b.Fatal(err)
			}
			val := make([]byte, size)
			rev, err := kv.Create(ctx, "k", val)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if rev, err = kv.Update(ctx, "k", val, rev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchServer(b *testing.B) jetstream.JetStream {
	b.Helper()
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	nc, err := bus.Connect(srv.URL(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if err := bus.EnsureStreams(context.Background(), js, bus.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	return js
}
