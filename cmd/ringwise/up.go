package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/ringwise/ringwise/analyzer/report"
	"github.com/ringwise/ringwise/internal/flood"
	"github.com/ringwise/ringwise/internal/pipeline"
	"github.com/ringwise/ringwise/services/ringmodel"
	"github.com/ringwise/ringwise/services/ringspec"
	"github.com/ringwise/ringwise/services/telemetry"
)

func cmdUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("up", "up [--duration 20s] [--flood N] [--ring-size SIZE | --buf-size-preset N] [--output json] [--summary FILE]", stderr)
	var sf sensorFlags
	sf.register(fs)
	natsURL := fs.String("nats", "", "NATS URL; empty starts an embedded NATS server with JetStream")
	duration := fs.Duration("duration", 0, "stop after this long (0 = until Ctrl-C); the pipeline drains before exiting")
	procs := fs.Int("flood", 0, "run a process flood of N children inside, once capture is attached")
	parallel := fs.Int("flood-parallel", flood.DefaultParallel, "flood: concurrent spawners")
	burst := fs.Int("flood-burst", 0, "flood: children per burst (0 = one burst)")
	pause := fs.Duration("flood-pause", 0, "flood: pause between bursts")
	output := fs.String("output", "text", "text: a report at the end; json: every enriched event as a Falco-like JSON line on stdout, report on stderr")
	summary := fs.String("summary", "", "write the summary JSON to FILE at the end")
	httpAddr := fs.String("http", "", "serve /api/summary and /api/recommendation on this address (e.g. 127.0.0.1:8080)")
	verbose := fs.Bool("v", false, "log everything to stderr (default: warnings and alerts only)")
	target := fs.Float64("target", ringspec.DefaultTargetPct, "highest acceptable % of events missing metadata: the recommendation's target and the metadata-loss alert's threshold")
	var tf telemetryFlags
	tf.register(fs, true, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if *output != "text" && *output != "json" {
		return fmt.Errorf("--output %q: want text or json", *output)
	}
	if *duration < 0 {
		return fmt.Errorf("--duration %v: must be >= 0", *duration)
	}
	scfg, err := sf.config()
	if err != nil {
		return err
	}
	opts := pipeline.Options{NATSURL: *natsURL, Sensor: scfg, Duration: *duration, HTTPAddr: *httpAddr,
		Recommend: ringmodel.Options{TargetPct: *target, CPUsPerRing: sf.cpusPerRing}}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	if opts.Logger, err = tf.logger(stderr, level); err != nil {
		return err
	}
	if opts.DropAlert, opts.MetadataAlert, err = tf.alertConfigs(); err != nil {
		return err
	}
	for _, t := range []struct {
		dst     **telemetry.Tracing
		service string
	}{{&opts.SensorTracing, telemetry.ServiceSensor}, {&opts.EnricherTracing, telemetry.ServiceEnricher}, {&opts.AnalyzerTracing, telemetry.ServiceAnalyzer}} {
		tr, flush, err := newTracing(ctx, t.service, stderr)
		if err != nil {
			return err
		}
		defer flush()
		*t.dst = tr
	}
	metrics, err := telemetry.NewMetrics("ringwise-up")
	if err != nil {
		return err
	}
	defer metrics.Shutdown(context.WithoutCancel(ctx))
	opts.Meter, opts.Metrics = metrics.Meter(), metrics.Handler()
	if err := tf.serveMetrics(ctx, metrics, stderr); err != nil {
		return err
	}
	if *procs < 0 {
		return fmt.Errorf("--flood %d: must be >= 0", *procs)
	}
	if *procs > 0 {
		opts.Flood = &flood.Config{Procs: *procs, Parallel: *parallel, Burst: *burst, Pause: *pause}
		if err := opts.Flood.Validate(); err != nil {
			return err
		}
	}
	report := stdout
	if *output == "json" {
		// One write per event would cost a syscall each; buffer them.
		bw := bufio.NewWriterSize(stdout, 1<<20)
		defer bw.Flush()
		opts.Events = bw
		report = stderr
	}
	fmt.Fprintf(stderr, "ringwise up: node %s, ring %s (%s), consumer-cost %v%s, duration %v\n",
		scfg.Node, ringspec.ProseSize(scfg.Probe.RingSize), scfg.Probe.Layout, scfg.ConsumerCost, labKnobNote(scfg.ConsumerCost), durationText(*duration))
	res, runErr := pipeline.Run(ctx, opts)
	if runErr != nil && res.Sensor.Ring.SizeBytes == 0 {
		return runErr
	}
	writeSummary(report, res)
	if *summary != "" {
		if err := writeJSONFile(*summary, res.Summary); err != nil {
			return err
		}
	}
	return runErr
}

func hintsNote(on bool) string {
	if on {
		return " (with kernel hints: lost fork/exec records replayed, flagged hints)"
	}
	return ""
}

func labKnobNote(d time.Duration) string {
	if d > 0 {
		return " (lab knob: emulated per-event monitor cost)"
	}
	return ""
}

func durationText(d time.Duration) string {
	if d == 0 {
		return "until Ctrl-C"
	}
	return d.String()
}

func writeSummary(w io.Writer, res pipeline.Result) {
	report.WriteText(w, res.Summary)
	if s := res.Summary; s.Analyzer.Events != s.Sensor.Delivered {
		fmt.Fprintf(w, "WARNING: the sensor delivered %d events but %d were analysed: enricher bad input %v, %d raw batches missing, %d publish errors\n",
			s.Sensor.Delivered, s.Analyzer.Events, res.Enricher.BadInput, res.Enricher.SeqGaps, s.Sensor.PublishErrors)
	}
	if rb := res.Sensor.RecordBytes; res.Sensor.Counters.Delivered != [2]uint64{} {
		fmt.Fprintf(w, "ring footprint: %.1f bytes/record lifecycle, %.1f bytes/record syscall%s\n", rb[0], rb[1], hintsNote(res.Sensor.Ring.Hints))
	}
	if res.Flood.Spawned > 0 {
		fmt.Fprintf(w, "flood: %d children in %v (%d failed)\n", res.Flood.Spawned, res.Flood.Duration.Round(time.Millisecond), res.Flood.Failed)
	}
	if res.Recommendation != nil {
		fmt.Fprintf(w, "recommendation (from this run's measured load): %s\n", res.Recommendation.Verdict)
		for _, wi := range res.Recommendation.WhatIf {
			fmt.Fprintf(w, "what-if: %s\n", wi.Sentence)
		}
	}
	if n := len(res.Alerts); n > 0 {
		fmt.Fprintf(w, "alerts: %d raised (log and %s); the last: %s\n", n, "ringwise.alerts", res.Alerts[n-1].Output)
	}
}

func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
