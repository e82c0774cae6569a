package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ringwise/ringwise/internal/lab"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/ringspec"
)

func cmdLab(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lab", "lab [--sizes 1MiB,2MiB,4MiB,16MiB] [--layouts shared,split] [--repeat R] [--args-max 256,1024,4096] [--out DIR] [--json] [--source bpf|sim]", stderr)
	sizes := fs.String("sizes", ringspec.FlagSizes(lab.DefaultSizes()), "ring sizes to compare (the seed table's sizes)")
	layouts := fs.String("layouts", ringspec.JoinLayouts(lab.DefaultLayouts(), ","), "layouts to compare: "+ringspec.JoinLayouts(ringspec.LabLayouts(), ", "))
	var lcSize int
	fs.Var(sizeFlag{&lcSize}, "lifecycle-ring-size", "lifecycle ring of the split layout (default "+ringspec.FlagSize(ringspec.DefaultLifecycleRingSize)+")")
	procs := fs.Int("procs", lab.DefaultProcs, "flood: children per run")
	burst := fs.Int("burst", lab.DefaultBurst, "flood: children per burst")
	pause := fs.Duration("pause", lab.DefaultPause, "flood: pause between bursts")
	parallel := fs.Int("parallel", lab.DefaultParallel, "flood: concurrent spawners")
	cost := fs.Duration("consumer-cost", lab.DefaultConsumerCost, "LAB KNOB: emulated per-event cost of a loaded monitor in the sensor's reader; the default puts a 2-core node in the bursty regime where ring size decides")
	repeat := fs.Int("repeat", lab.DefaultRepeat, "runs per combination; the table shows the mean and the spread (standard deviation)")
	target := fs.Float64("target", ringspec.DefaultTargetPct, "recommendation target: highest acceptable % of events missing metadata")
	source := fs.String("source", lab.SourceBPF, "bpf: measure on this node (root); sim: the ring model alone, SIMULATED, for machines without BPF")
	out := fs.String("out", "", "write results.json, loss.svg and report.html into DIR")
	asJSON := fs.Bool("json", false, "print results.json to stdout instead of the table")
	shedHigh := fs.Float64("shed-high", ringspec.DefaultShedHighWater, "shared+shed: ring fill fraction where shedding starts")
	shedLow := fs.Float64("shed-low", ringspec.DefaultShedLowWater, "shared+shed: ring fill fraction where shedding stops")
	shedSys := fs.String("shed-syscalls", sensor.DefaultShedSyscalls, "shared+shed: syscall names eligible for shedding")
	cpusPerRing := fs.Int("cpus-per-ring", ringspec.DefaultCPUsPerRing, "Falco's cpus_for_each_buffer: the falco layout's runs, and the recommendation's answer in Falco's layout (one ring of the preset's size per this many CPUs)")
	argsMax := fs.String("args-max", "", "also measure the args-bound trade-off: one run per bound on exec records' argv, in bytes (e.g. 256,1024,4096), on the first size and layout, the children's command lines of this node's real lengths")
	node := fs.String("node", hostname(), "node name")
	verbose := fs.Bool("v", false, "log to stderr")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	cfg := lab.Config{Procs: *procs, Burst: *burst, Pause: *pause, Parallel: *parallel, ConsumerCost: *cost,
		Repeat: *repeat, TargetPct: *target, Source: *source, Node: *node, LifecycleSize: lcSize,
		ShedHigh: *shedHigh, ShedLow: *shedLow, CPUsPerRing: *cpusPerRing}
	var err error
	if cfg.Sizes, err = ringspec.ParseSizes(*sizes); err != nil {
		return fmt.Errorf("--sizes: %w", err)
	}
	if cfg.Layouts, err = ringspec.ParseLayouts(*layouts, ringspec.LabLayouts()...); err != nil {
		return fmt.Errorf("--layouts: %w", err)
	}
	if cfg.ArgsMax, err = lab.ParseArgsMax(*argsMax); err != nil {
		return err
	}
	sf := sensorFlags{shedSyscalls: *shedSys, layout: string(ringspec.DefaultLayout), preset: ringspec.DefaultPreset,
		cpusPerRing: *cpusPerRing}
	sc, err := sf.config()
	if err != nil {
		return err
	}
	cfg.ShedSyscalls = sc.Probe.ShedSyscalls
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	isTerm := false
	if f, ok := stderr.(*os.File); ok {
		isTerm = lab.IsTerminal(f)
	}
	if cfg.Source == lab.SourceBPF {
		cfg.Progress = lab.NewProgress(stderr, cfg.Runs(), isTerm)
		fmt.Fprintf(stderr, "ringwise lab: %d runs; flood %d procs in bursts of %d, pause %v, %d parallel; consumer-cost %v (lab knob)\n",
			cfg.Runs(), cfg.Procs, cfg.Burst, cfg.Pause, cfg.Parallel, cfg.ConsumerCost)
	} else {
		fmt.Fprintln(stderr, "ringwise lab: SIMULATED — ring model only, no BPF, nothing measured")
	}
	res, err := lab.Run(ctx, cfg)
	if cfg.Progress != nil {
		cfg.Progress.Finish()
	}
	if err != nil {
		return err
	}
	if *out != "" {
		if err := lab.WriteOutputs(*out, res); err != nil {
			return err
		}
		var md bytes.Buffer
		lab.WriteMarkdownTable(&md, res)
		if err := os.WriteFile(filepath.Join(*out, "table.md"), md.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s/results.json, loss.svg, report.html, table.md\n", *out)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	lab.WriteTable(stdout, res)
	return nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
