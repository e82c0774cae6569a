package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ringwise/ringwise/analyzer/report"
	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringmodel"
	"github.com/ringwise/ringwise/services/ringspec"
)

// DefaultMeasureDuration is how long 'ringwise measure' counts. The
// what-if's defaults are ringmodel.DefaultWhatIfTop and DefaultWhatIfKeep,
// shared with the lab's and the analyzer's recommendation.
const DefaultMeasureDuration = 30 * time.Second

// measureOutput is 'ringwise measure --json'.
type measureOutput struct {
	Measurement    *sensor.Measurement           `json:"measurement"`
	TopSyscalls    []namedShare                  `json:"top_syscalls"`
	DrainSource    string                        `json:"drain_source"`
	RecordBytes    [event.NumCategories]float64  `json:"falco_record_bytes"`
	RecordsPerSys  float64                       `json:"falco_records_per_syscall"`
	Recommendation ringmodel.FalcoRecommendation `json:"recommendation"`
	WhatIf         []whatIf                      `json:"what_if"`
	FalcoMetrics   *report.FalcoMetricsReport    `json:"falco_metrics,omitempty"`
}

type namedShare struct {
	Name string `json:"name"`
	sensor.SyscallShare
}

// whatIf is the recommendation without the top N syscalls.
type whatIf struct {
	ringmodel.Fewer
	Recommendation ringmodel.FalcoRecommendation `json:"recommendation"`
}

func cmdMeasure(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("measure", "measure [--duration 30s] [--falco-metrics FILE|URL | --drain EPS] [--cpus-for-each-buffer 2] [--json]\n\n"+
		"Counts syscall and lifecycle (fork, exec, exit) arrivals per CPU in the kernel in bins of --interval\n"+
		"(read about once a second), with no records and no ring, then replays them through Falco's modern eBPF layout (one ring of the preset's\n"+
		"size per cpus_for_each_buffer CPUs, one consumer) for every bufSizePreset, and recommends one.\n"+
		"Also answers what ring would do without the dominant syscalls (base_syscalls.custom_set). Needs root.", stderr)
	duration := fs.Duration("duration", DefaultMeasureDuration, "how long to count (Ctrl-C stops early)")
	interval := fs.Duration("interval", sensor.DefaultMeasureInterval, "the arrival curve's bin width (binned in the kernel, read about once a second)")
	sampleFlag := fs.String("syscall-sample", sensor.DefaultSyscallSample.String(), "count syscalls only in a WINDOW of every PERIOD (e.g. 20ms/2s), lifecycle always, and ESTIMATE the rest from lifecycle activity; 'all' counts every syscall. Any sys_exit hook slows every syscall of the node (a syscall-bound workload by tens of %), so the default counts 0.5 % of the time")
	metrics := fs.String("falco-metrics", "", "Falco's Prometheus metrics (file or http URL): Falco's drain is read from them")
	scrapes := fs.Int("scrapes", 2, "with a --falco-metrics URL: scrapes to take (over the measurement)")
	drain := fs.Float64("drain", 0, "Falco's consumer rate in events/s (overrides --falco-metrics)")
	cpusPer := fs.Int("cpus-for-each-buffer", ringspec.DefaultCPUsPerRing, "Falco's engine.modern_ebpf.cpus_for_each_buffer")
	target := fs.Float64("target", ringspec.DefaultTargetPct, "highest acceptable predicted % of events missing metadata")
	perSys := fs.Float64("records-per-syscall", ringmodel.FalcoRecordsPerSyscall, "ring records Falco writes per captured syscall (enter and exit events)")
	def := ringmodel.DefaultFalcoRecordBytes()
	recBytes := fs.String("record-bytes", fmt.Sprintf("%g,%g", def[0], def[1]), "ASSUMED mean ring bytes of a Falco record: lifecycle,syscall")
	captured := fs.String("falco-syscalls", "", "syscall names Falco captures (its rules ∪ base_syscalls); empty models every syscall counted — an upper bound, since Falco skips I/O syscalls unless -A")
	top := fs.Int("what-if-top", ringmodel.DefaultWhatIfTop, "what-if: leave out the top 1..N syscalls")
	keep := fs.String("what-if-keep", strings.Join(ringmodel.DefaultWhatIfKeep(), ","), "syscall names the what-if never leaves out (Falco's state engine needs them)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	save := fs.String("save", "", "write the measurement (the per-CPU arrival curve) to FILE as JSON")
	load := fs.String("load", "", "model a measurement saved with --save instead of counting (no BPF, no root)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if *cpusPer < 1 {
		return fmt.Errorf("--cpus-for-each-buffer %d: want >= 1", *cpusPer)
	}
	sample, err := sensor.ParseSyscallSample(*sampleFlag)
	if err != nil {
		return fmt.Errorf("--syscall-sample: %w", err)
	}
	if *perSys <= 0 {
		return fmt.Errorf("--records-per-syscall %v: want > 0", *perSys)
	}
	var rb [event.NumCategories]float64
	parts := strings.Split(*recBytes, ",")
	if len(parts) != 2 {
		return fmt.Errorf("--record-bytes %q: want LIFECYCLE,SYSCALL", *recBytes)
	}
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v <= 0 {
			return fmt.Errorf("--record-bytes %q: %q is not a positive number", *recBytes, p)
		}
		rb[i] = v
	}
	var only map[uint32]bool
	if *captured != "" {
		nrs, absent, err := parseSyscallNames("falco-syscalls", *captured)
		if err != nil {
			return err
		}
		if len(absent) > 0 {
			fmt.Fprintf(stderr, "ringwise measure: --falco-syscalls: %s not on this architecture, skipped\n", strings.Join(absent, ", "))
		}
		only = map[uint32]bool{}
		for _, nr := range nrs {
			only[nr] = true
		}
	}
	keepNrs, _, err := parseSyscallNames("what-if-keep", *keep)
	if err != nil {
		return err
	}
	keepSet := map[uint32]bool{}
	for _, nr := range keepNrs {
		keepSet[nr] = true
	}
	out := measureOutput{RecordBytes: rb, RecordsPerSys: *perSys}

	var mreport *report.FalcoMetricsReport
	var first []report.FalcoCounters
	isURL := strings.HasPrefix(*metrics, "http://") || strings.HasPrefix(*metrics, "https://")
	if *metrics != "" && !isURL {
		rs, err := readFalcoMetrics(ctx, *metrics, 1, time.Second, stderr)
		if err != nil {
			return err
		}
		first = rs
	}
	var meas *sensor.Measurement
	if *load != "" {
		data, err := os.ReadFile(*load)
		if err != nil {
			return err
		}
		meas = &sensor.Measurement{}
		if err := json.Unmarshal(data, meas); err != nil {
			return fmt.Errorf("--load %s: %w", *load, err)
		}
		if err := meas.Validate(); err != nil {
			return fmt.Errorf("--load %s: %w", *load, err)
		}
	} else {
		fmt.Fprintf(stderr, "ringwise measure: counting for %v (bins of %v)…\n", *duration, *interval)
		var err error
		meas, err = sensor.Measure(ctx, sensor.MeasureConfig{Duration: *duration, Interval: *interval, Sample: sample, Started: func() {
			if isURL { // one scrape at the start, the rest after
				if rs, err := readFalcoMetrics(ctx, *metrics, 1, time.Second, stderr); err == nil {
					first = rs
				} else {
					fmt.Fprintf(stderr, "ringwise measure: %v\n", err)
				}
			}
		}})
		if err != nil {
			return err
		}
	}
	if *save != "" {
		data, err := json.Marshal(meas)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*save, data, 0o644); err != nil {
			return err
		}
	}
	if isURL {
		n := max(*scrapes-1, 1) // the first was taken when counting began
		if *load != "" {
			n = max(*scrapes, 1)
		}
		rs, err := readFalcoMetrics(context.WithoutCancel(ctx), *metrics, n, time.Second, stderr)
		if err != nil {
			return err
		}
		first = append(first, rs...)
	}
	if len(first) > 0 {
		m := report.AnalyzeFalcoCounters(first)
		mreport = &m
		out.FalcoMetrics = mreport
	}
	out.Measurement = meas
	if mreport != nil && mreport.NumCPUs > 0 && mreport.NumCPUs != meas.NumCPU {
		fmt.Fprintf(stderr, "ringwise measure: warning: Falco's metrics report %d CPUs, this measurement counted %d: are they from the same node?\n", mreport.NumCPUs, meas.NumCPU)
	}

	d := *drain
	switch {
	case d > 0:
		out.DrainSource = "--drain"
	case mreport != nil && mreport.DrainRate > 0:
		d, out.DrainSource = mreport.DrainRate, "Falco's metrics: delivered rate while its ring overflowed"
	case mreport != nil && mreport.DrainLowerBound > 0:
		d, out.DrainSource = mreport.DrainLowerBound, "Falco's metrics: highest delivered rate, a lower bound (no drops seen)"
	default:
		return fmt.Errorf("Falco's drain is unknown: give --drain EVENTS_PER_S or --falco-metrics with Falco's Prometheus text")
	}

	// Leave out what Falco does not capture.
	var notCaptured map[uint32]bool
	if only != nil {
		notCaptured = map[uint32]bool{}
		for nr := range meas.BySyscall {
			if !only[nr] {
				notCaptured[nr] = true
			}
		}
	}
	// Shares of the captured load.
	var capturedTotal uint64
	for _, s := range meas.TopSyscalls() {
		if notCaptured[s.Nr] {
			continue
		}
		capturedTotal += s.Count
		out.TopSyscalls = append(out.TopSyscalls, namedShare{syscallLabel(s.Nr), s})
	}
	for i := range out.TopSyscalls {
		if capturedTotal > 0 {
			out.TopSyscalls[i].Pct = 100 * float64(out.TopSyscalls[i].Count) / float64(capturedTotal)
		}
	}
	out.Recommendation = ringmodel.RecommendFalco(meas.Series(*perSys, notCaptured), rb, d, *cpusPer, ringmodel.Calibration{}, *target)
	without := map[uint32]bool{}
	for k, v := range notCaptured {
		without[k] = v
	}
	// The what-if steps are the lab's and the analyzer's (ringmodel); only
	// the replay differs: measure has the per-syscall arrivals per bin.
	ranked := make([]ringmodel.SyscallCount, len(out.TopSyscalls))
	nrOf := make(map[string]uint32, len(out.TopSyscalls))
	for i, s := range out.TopSyscalls {
		ranked[i] = ringmodel.SyscallCount{Name: s.Name, Count: s.Count, Pct: s.Pct}
		nrOf[s.Name] = s.Nr
	}
	skip := func(name string) bool { nr := nrOf[name]; return keepSet[nr] || nr >= bpf.MeasureMaxNr }
	for _, f := range ringmodel.FewerSyscalls(ranked, *top, skip) {
		without[nrOf[f.Without[len(f.Without)-1]]] = true
		out.WhatIf = append(out.WhatIf, whatIf{Fewer: f,
			Recommendation: ringmodel.RecommendFalco(meas.Series(*perSys, without), rb, d, *cpusPer, ringmodel.Calibration{}, *target)})
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	writeMeasure(stdout, &out, *captured)
	return nil
}

func writeMeasure(w io.Writer, o *measureOutput, captured string) {
	var b strings.Builder
	m := o.Measurement
	secs := m.Duration.Seconds()
	rate := func(n uint64) string {
		if secs <= 0 {
			return "-"
		}
		return strconv.FormatFloat(float64(n)/secs, 'f', 0, 64)
	}
	fmt.Fprintf(&b, "measured: %.1f s on %d CPUs, every %v (%d bins), counting only (no records, no ring)\n", secs, m.NumCPU, m.Interval, m.Bins)
	if sp := m.Sampling; sp != nil {
		fmt.Fprintf(&b, "  syscalls SAMPLED: counted %v in every %v (%.1f s of %.1f s, %d syscalls), the rest ESTIMATED per CPU as base + k × lifecycle rate (--syscall-sample all counts every one)\n",
			sp.Window, sp.Period, float64(sp.ExposedNs)/1e9, secs, sp.Counted)
	}
	fmt.Fprintf(&b, "  %d syscalls (%s/s), %d forks (%s/s), %d execs, %d exits\n", m.Syscalls, rate(m.Syscalls), m.Forks, rate(m.Forks), m.Execs, m.Exits)
	var cpus []string
	for i, n := range m.PerCPUSyscalls {
		cpus = append(cpus, fmt.Sprintf("cpu%d %d", i, n))
	}
	fmt.Fprintf(&b, "  syscalls per CPU: %s\n", strings.Join(cpus, ", "))
	if len(o.TopSyscalls) > 0 {
		var tops []string
		for i, s := range o.TopSyscalls {
			if i == 8 {
				break
			}
			tops = append(tops, fmt.Sprintf("%s %.1f%%", s.Name, s.Pct))
		}
		what := "all counted syscalls"
		if captured != "" {
			what = "the syscalls Falco captures (--falco-syscalls)"
		}
		fmt.Fprintf(&b, "  dominant syscalls (share of %s): %s\n", what, strings.Join(tops, ", "))
	}
	if o.FalcoMetrics != nil {
		var mb strings.Builder
		report.WriteFalcoMetricsText(&mb, *o.FalcoMetrics)
		b.WriteString(mb.String())
	}
	r := o.Recommendation
	fmt.Fprintf(&b, "model: Falco's drain %.0f events/s (%s); %g records per syscall; ASSUMED record bytes lifecycle %g, syscall %g",
		r.DrainRate, o.DrainSource, o.RecordsPerSys, o.RecordBytes[0], o.RecordBytes[1])
	if captured == "" {
		b.WriteString("; every counted syscall modeled as captured (an upper bound: Falco skips I/O syscalls unless -A; see --falco-syscalls)")
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "SIMULATED, Falco's layout (%d ring(s), one per cpus_for_each_buffer=%d CPUs, one consumer):\n", r.Rings, r.CPUsPerRing)
	fmt.Fprintf(&b, "  %-7s %-8s %-9s %12s %12s\n", "preset", "ring", "memory", "drop %", "missing %")
	for _, c := range r.Candidates {
		mark := ""
		if c.Preset == r.BufSizePreset {
			mark = "  ←"
		}
		fmt.Fprintf(&b, "  %-7d %-8s %-9s %11.3f%% %11.3f%%%s\n", c.Preset, ringspec.ProseSize(c.Rings.SizeBytes), ringspec.ProseSize(c.MemoryBytes), c.PredictedDropPct, c.PredictedMissingPct, mark)
	}
	if r.TooSlow {
		b.WriteString("  (sizes that drop nothing here only outlast this measurement: with the mean load above the drain every ring fills in the end)\n")
	}
	fmt.Fprintf(&b, "recommendation: %s\n", r.Verdict)
	for _, wi := range o.WhatIf {
		rr := wi.Recommendation
		what := "no preset meets the target"
		if rr.MeetsTarget {
			what = fmt.Sprintf("bufSizePreset %d would do (predicted %.3f%% missing)", rr.BufSizePreset, rr.PredictedMissingPct)
		}
		fmt.Fprintf(&b, "what-if: without %s (%.0f%% of the load), %s — in Falco: base_syscalls.custom_set: %s (check that your rules do not need them)\n",
			strings.Join(wi.Without, "/"), wi.SharePct, what, wi.CustomSet)
	}
	io.WriteString(w, b.String())
}
