package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/ringwise/ringwise/analyzer"
	"github.com/ringwise/ringwise/analyzer/report"
	"github.com/ringwise/ringwise/enricher"
	"github.com/ringwise/ringwise/enricher/state"
	"github.com/ringwise/ringwise/internal/flood"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringmodel"
	"github.com/ringwise/ringwise/services/ringspec"
	"github.com/ringwise/ringwise/services/telemetry"
)

func logger(stderr io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(stderr, nil)) }

func cmdSensor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sensor", "sensor --nats URL [--ring-size SIZE | --buf-size-preset N] [--layout shared|split]", stderr)
	var sf sensorFlags
	sf.register(fs)
	var nf natsClientFlags
	nf.register(fs)
	var tf telemetryFlags
	tf.register(fs, true, false)
	spoolSize := fs.Int64("spool-size", bus.DefaultSpoolBytes, "bytes of raw batches (and stats) kept IN MEMORY while NATS does not acknowledge them (an outage), sent in order once it does; "+
		"beyond it new batches are dropped and counted as spool_overflow (attempted == delivered + dropped + spool_overflow)")
	spoolDrain := fs.Duration("spool-drain", 30*time.Second, "at exit, how long the spool may take to reach NATS before what it still holds is abandoned (counted)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	cfg, err := sf.config()
	if err != nil {
		return err
	}
	if *spoolSize <= 0 {
		return fmt.Errorf("--spool-size %d: want > 0", *spoolSize)
	}
	log, err := tf.logger(stderr, slog.LevelInfo)
	if err != nil {
		return err
	}
	if err := tf.checkMetrics(); err != nil {
		return err
	}
	tr, flush, err := newTracing(ctx, telemetry.ServiceSensor, stderr)
	if err != nil {
		return err
	}
	defer flush()
	metrics, err := telemetry.NewMetrics(telemetry.ServiceSensor)
	if err != nil {
		return err
	}
	if err := tf.serveMetrics(ctx, metrics, stderr); err != nil {
		return err
	}
	cfg.Tracing, cfg.Meter = tr, metrics.Meter()
	nc, js, err := connectJS(ctx, &nf, bus.RoleSensor, cfg.Node, "ringwise-sensor-"+cfg.Node)
	if err != nil {
		return err
	}
	defer nc.Close()
	pub := bus.NewSpool(js, int64(*spoolSize), log)
	cfg.Spool = func() event.SpoolState { return event.SpoolState(pub.Stats()) }
	cfg.Publisher, cfg.NC, cfg.Logger = pub, nc, log
	cfg.Ready = func() { fmt.Fprintf(stderr, "ringwise sensor: capture attached\n") }
	fmt.Fprintf(stderr, "ringwise sensor: node %s, ring %s (%s), consumer-cost %v%s, publishing to %s\n",
		cfg.Node, ringspec.ProseSize(cfg.Probe.RingSize), cfg.Probe.Layout, cfg.ConsumerCost, labKnobNote(cfg.ConsumerCost), bus.RawSubject(cfg.Node))
	res, err := sensor.Run(ctx, cfg)
	// Whatever the spool still holds gets a bounded time to reach NATS.
	cctx, cancel := context.WithTimeout(context.Background(), *spoolDrain)
	abandoned := pub.Close(cctx)
	cancel()
	sp := pub.Stats()
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "ringwise sensor: drained; attempted %v delivered %v dropped %v shed %v (lifecycle, syscall); %d batches\n",
		res.Counters.Attempted, res.Counters.Delivered, res.Counters.Dropped, res.Counters.Shed, res.Batches)
	fmt.Fprintf(stderr, "ringwise sensor: spool: %d stored, %d publish errors (retried), %d batches overflowed (events %v; %d messages in all with stats), %d abandoned at exit\n",
		sp.Sent, sp.PublishErrors, res.SpoolOverflowBatches, res.SpoolOverflow, sp.Overflow, abandoned)
	fmt.Fprintf(stderr, "ringwise sensor: %d snapshots taken on request, %d requests refused as too soon\n", res.SnapshotsRequested, res.SnapshotsRefused)
	if res.BadLookupRequests > 0 {
		fmt.Fprintf(stderr, "ringwise sensor: %d malformed /proc lookup requests answered with an error\n", res.BadLookupRequests)
	}
	return nil
}

func cmdEnricher(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("enricher", "enricher --nats URL [--mode scaled|shared] [flags]", stderr)
	var nf natsClientFlags
	nf.register(fs)
	mode := fs.String("mode", "scaled", "scaled: nodes are shared among all running enrichers under KV leases, each read in order from its checkpoint, "+
		"taken over when its owner dies or hands it over (docs/scaling.md); shared: one durable consumer shared by all (no per-node order across enrichers)")
	id := fs.String("id", "", "scaled mode: this enricher's member name (default host-pid-random)")
	memberTTL := fs.Duration("member-ttl", bus.DefaultMemberTTL, "scaled mode: an enricher that stops heartbeating leaves the members after this")
	leaseTTL := fs.Duration("lease-ttl", bus.DefaultLeaseTTL, "scaled mode: a node lease outlives its owner's last renewal by this (bounds the take-over time)")
	ckptEvery := fs.Duration("checkpoint-interval", enricher.DefaultCheckpointInterval, "scaled mode: longest time between checkpoints of a node with new input")
	ckptBatches := fs.Int("checkpoint-batches", enricher.DefaultCheckpointBatches, "scaled mode: checkpoint a node after this many raw batches")
	node := fs.String("node", "", "shared mode: enrich only this node's events (default: all nodes)")
	durable := fs.String("durable", enricher.DefaultDurable, "shared mode: durable consumer name")
	maxProcs := fs.Int("max-procs", state.DefaultMaxProcs, "bound of each node's process table (live and exited entries; the least recently used exited, then live, are evicted and counted). "+
		"About 350 bytes of heap per process with typical command lines (BENCHMARKS.md): the default holds about 22 MiB per node")
	var tf telemetryFlags
	tf.register(fs, true, false)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	log, err := tf.logger(stderr, slog.LevelInfo)
	if err != nil {
		return err
	}
	if err := tf.checkMetrics(); err != nil {
		return err
	}
	tr, flush, err := newTracing(ctx, telemetry.ServiceEnricher, stderr)
	if err != nil {
		return err
	}
	defer flush()
	if *mode != "scaled" && *mode != "shared" {
		return fmt.Errorf("--mode %q: want scaled or shared", *mode)
	}
	if *maxProcs < 1 {
		return fmt.Errorf("--max-procs %d: want at least 1 (default %d)", *maxProcs, state.DefaultMaxProcs)
	}
	nc, js, err := connectJS(ctx, &nf, bus.RoleEnricher, "", "ringwise-enricher")
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg := enricher.Config{JS: js, NC: nc, Durable: *durable, Node: *node, Logger: log, Tracing: tr,
		State: state.Config{MaxProcs: *maxProcs}}
	if *mode == "scaled" {
		// A fresh cluster may take a while to place R3 buckets: retry.
		var b bus.Buckets
		for attempt := 1; ; attempt++ {
			bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			b, err = bus.EnsureBuckets(bctx, js, bus.BucketOptions{Memory: nf.memory, Replicas: bus.AutoReplicas(nc), MemberTTL: *memberTTL, LeaseTTL: *leaseTTL})
			cancel()
			if err == nil {
				break
			}
			if attempt == 6 || ctx.Err() != nil {
				return err
			}
			log.Warn("KV buckets not ready; retrying", "attempt", attempt, "err", err)
		}
		cfg.Scale = &enricher.ScaleConfig{ID: *id, Buckets: b, MemberTTL: *memberTTL, LeaseTTL: *leaseTTL,
			CheckpointInterval: *ckptEvery, CheckpointBatches: *ckptBatches}
	}
	e, err := enricher.New(cfg)
	if err != nil {
		return err
	}
	metrics, err := telemetry.NewMetrics(telemetry.ServiceEnricher)
	if err != nil {
		return err
	}
	if _, err := e.RegisterMetrics(metrics.Meter()); err != nil {
		return err
	}
	if err := tf.serveMetrics(ctx, metrics, stderr); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "ringwise enricher: consuming %s (%s mode)\n", bus.StreamRaw, *mode)
	err = e.Run(ctx)
	st := e.Stats()
	fmt.Fprintf(stderr, "ringwise enricher: %d batches, %d events, %d replayed, bad input %v, %d sequence gaps (%d batches, %d events of them removed by the raw stream's limits), %d publish errors\n",
		st.Batches, st.Events, st.Replayed, st.BadInput, st.SeqGaps, st.RetentionLostBatches, st.RetentionLostEvents, st.PubErrors)
	if o := st.Ownership; o != nil {
		var mean time.Duration
		if o.Checkpoints > 0 {
			mean = time.Duration(o.CheckpointNanos / int64(o.Checkpoints))
		}
		fmt.Fprintf(stderr, "ringwise enricher: id %s: acquired %d, released %d, fenced %d, publish conflicts %d; %d checkpoints (%d errors, mean %v, last %d bytes, %d processes), retention lost %d; without a checkpoint: %d fresh snapshots asked of sensors, %d replays where none answered\n",
			o.ID, o.Acquired, o.Released, o.Fenced, o.PublishConflicts, o.Checkpoints, o.CheckpointErrors, mean.Round(time.Microsecond), o.CheckpointBytes, o.CheckpointProcesses, o.RetentionLost,
			o.SnapshotRequests, o.SnapshotFallbacks)
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		if cpu > 0 {
			fmt.Fprintf(stderr, "ringwise enricher: CPU %v (user+system) for %d events: %.0f events per CPU-second\n",
				cpu.Round(time.Millisecond), st.Events, float64(st.Events)/cpu.Seconds())
		}
	}
	return err
}

func cmdAnalyzer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("analyzer", "analyzer --nats URL [--http ADDR]", stderr)
	var nf natsClientFlags
	nf.register(fs)
	httpAddr := fs.String("http", analyzer.DefaultHTTPAddr, "serve /api/summary, /api/recommendation and Prometheus /metrics here; beyond loopback it needs a bearer token (--http-token-file or $"+analyzer.EnvHTTPToken+")")
	tokenFile := fs.String("http-token-file", "", "file whose first line is the bearer token HTTP clients must send (Authorization: Bearer TOKEN)")
	durable := fs.String("durable", analyzer.DefaultDurable, "durable consumer name")
	target := fs.Float64("target", ringspec.DefaultTargetPct, "highest acceptable % of events missing metadata: the recommendation's target and the metadata-loss alert's threshold")
	cpusPerRing := fs.Int("cpus-per-ring", ringspec.DefaultCPUsPerRing, "Falco's cpus_for_each_buffer for the recommendation's answer in Falco's layout (one ring of the preset's size per this many CPUs); a node running the falco layout uses its own")
	var tf telemetryFlags
	tf.register(fs, false, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if *cpusPerRing < 1 {
		return fmt.Errorf("--cpus-per-ring %d: want at least 1", *cpusPerRing)
	}
	log, err := tf.logger(stderr, slog.LevelInfo)
	if err != nil {
		return err
	}
	drop, meta, err := tf.alertConfigs()
	if err != nil {
		return err
	}
	tr, flush, err := newTracing(ctx, telemetry.ServiceAnalyzer, stderr)
	if err != nil {
		return err
	}
	defer flush()
	token := os.Getenv(analyzer.EnvHTTPToken)
	if *tokenFile != "" {
		t, err := bus.ReadPasswordFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("--http-token-file: %w", err)
		}
		token = t
	}
	nc, js, err := connectJS(ctx, &nf, bus.RoleAnalyzer, "", "ringwise-analyzer")
	if err != nil {
		return err
	}
	defer nc.Close()
	metrics, err := telemetry.NewMetrics(telemetry.ServiceAnalyzer)
	if err != nil {
		return err
	}
	a := analyzer.New(analyzer.Config{JS: js, Durable: *durable, HTTPAddr: *httpAddr, HTTPToken: token, Logger: log, Tracing: tr, NC: nc,
		Metrics: metrics.Handler(), DropAlert: drop, MetadataAlert: meta, Recommend: ringmodel.Options{TargetPct: *target, CPUsPerRing: *cpusPerRing}})
	if _, err := a.RegisterMetrics(metrics.Meter()); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "ringwise analyzer: consuming %s, HTTP on %s\n", bus.StreamEnriched, *httpAddr)
	err = a.Run(ctx)
	report.WriteText(stdout, a.Summary(""))
	return err
}

func cmdFlood(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("flood", "flood --procs N --parallel P [--burst N --pause D] [--truth FILE]", stderr)
	procs := fs.Int("procs", flood.DefaultProcs, "children in all")
	parallel := fs.Int("parallel", flood.DefaultParallel, "concurrent spawners")
	burst := fs.Int("burst", 0, "children per burst (0 = one burst)")
	pause := fs.Duration("pause", 0, "pause between bursts")
	truth := fs.String("truth", "", "write the ground truth (pid, ppid, comm, exe) as JSON lines to FILE ('-' = stdout)")
	helper := fs.String("helper", "", "program each child execs (default: a copy of /bin/true named rwflood)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	cfg := flood.Config{Procs: *procs, Parallel: *parallel, Burst: *burst, Pause: *pause, Helper: *helper}
	if *truth != "" {
		w := stdout
		if *truth != "-" {
			f, err := os.Create(*truth)
			if err != nil {
				return err
			}
			defer f.Close()
			bw := bufio.NewWriter(f)
			defer bw.Flush()
			w = bw
		}
		cfg.Truth = w
	}
	res, err := flood.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "ringwise flood: %d children in %v (%.0f/s), %d failed\n", res.Spawned, res.Duration.Round(time.Millisecond),
		float64(res.Spawned)/res.Duration.Seconds(), res.Failed)
	return nil
}
