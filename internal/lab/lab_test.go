package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/ringmodel"
	"github.com/ringwise/ringwise/services/ringspec"
	"github.com/ringwise/ringwise/services/syscalls"
)

func TestLabSimulated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Source, cfg.Node = "sim", "test"
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Params.Source != "sim" || len(res.Rows) != len(DefaultSizes())*len(DefaultLayouts()) {
		t.Fatalf("params %+v, %d rows", res.Params, len(res.Rows))
	}
	byKey := map[string]Row{}
	for _, r := range res.Rows {
		byKey[string(r.Layout)+"/"+strconv.Itoa(r.SizeBytes)] = r
	}
	// The recommendation always names a ring, and it agrees with the
	// table: its own row (if printed) meets the target and no smaller row
	// of its layout does.
	rec := res.Recommendation
	if rec.SizeBytes <= 0 || rec.BufSizePreset <= 0 || rec.Layout == "" {
		t.Fatalf("recommendation without a ring: %+v", rec)
	}
	for _, r := range res.Rows {
		if r.Layout != rec.Layout {
			continue
		}
		if r.SizeBytes == rec.SizeBytes && r.MissingPct > rec.TargetPct {
			t.Errorf("recommended %s %d, but its row shows %.2f%% > target %.2f%%", rec.Layout, rec.SizeBytes, r.MissingPct, rec.TargetPct)
		}
		if r.SizeBytes < rec.SizeBytes && r.MissingPct <= rec.TargetPct {
			t.Errorf("recommended %s %d, but the smaller %d row already meets the target (%.2f%%)", rec.Layout, rec.SizeBytes, r.SizeBytes, r.MissingPct)
		}
	}
	small, big := byKey["shared/1048576"], byKey["shared/16777216"]
	if !(small.MissingPct > big.MissingPct) || small.MissingPct < 1 || big.MissingPct > 0.1 {
		t.Errorf("simulated shared layout lacks the seed's shape: 1MiB %.2f%%, 16MiB %.2f%%", small.MissingPct, big.MissingPct)
	}
	for _, r := range res.Rows {
		if r.Layout == ringspec.LayoutSplit && (r.LifecycleDroppedPct != 0 || r.MissingPct != 0) {
			t.Errorf("simulated split %d: lifecycle dropped %.2f%%, missing %.2f%%", r.SizeBytes, r.LifecycleDroppedPct, r.MissingPct)
		}
	}
	var table bytes.Buffer
	WriteTable(&table, res)
	if strings.Count(table.String(), "SIMULATED") < len(res.Rows) {
		t.Errorf("simulated table is not marked SIMULATED on every row:\n%s", table.String())
	}
	if res.Recommendation.Line == "" || res.Recommendation.TargetPct != ringspec.DefaultTargetPct {
		t.Errorf("recommendation %+v", res.Recommendation)
	}
	dir := t.TempDir()
	if err := WriteOutputs(dir, res); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(dir + "/results.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	params := raw["params"].(map[string]any)
	for _, k := range []string{"consumer_cost_ns", "procs", "burst", "pause_ms", "repeat", "source"} {
		if _, ok := params[k]; !ok {
			t.Errorf("results.json params lacks %q", k)
		}
	}
	row := raw["rows"].([]any)[0].(map[string]any)
	for _, k := range []string{"size_bytes", "layout", "attempted", "dropped_pct", "lifecycle_dropped_pct", "missing_pct", "missing_pct_spread", "wrong_pct", "predicted_missing_pct", "in_sample_missing_pct", "out_of_sample_calibrated"} {
		if _, ok := row[k]; !ok {
			t.Errorf("results.json row lacks %q", k)
		}
	}
	jrec := raw["recommendation"].(map[string]any)
	for _, k := range []string{"size_bytes", "buf_size_preset", "layout", "target_pct", "evidence"} {
		if _, ok := jrec[k]; !ok {
			t.Errorf("results.json recommendation lacks %q", k)
		}
	}
}

func TestLabConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"bad size":      {Sizes: []int{3000}},
		"bad layout":    {Layouts: []ringspec.Layout{"triple"}},
		"bad source":    {Source: "cloud"},
		"bad repeat":    {Repeat: -1},
		"bad target":    {TargetPct: 150},
		"negative cost": {ConsumerCost: -time.Microsecond},
		"args too big":  {ArgsMax: []int{5000}},
		"args zero":     {ArgsMax: []int{0}},
		"args sim":      {ArgsMax: []int{256}, Source: SourceSim},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	if got, err := ParseArgsMax("256, 1024,4096"); err != nil || len(got) != 3 || got[1] != 1024 {
		t.Errorf("ParseArgsMax: %v %v", got, err)
	}
	for _, bad := range []string{"x", "-5", "99999"} {
		if _, err := ParseArgsMax(bad); err == nil {
			t.Errorf("ParseArgsMax(%q): want an error", bad)
		}
	}
}

// outOfSampleBoundPP is the stated bound on |out-of-sample predicted −
// measured| missing %, in percentage points, for the short lab below (the
// default lab's own agreement is in the README). The short lab runs 900
// processes per row, so which processes lose their exec varies more from
// run to run than in the default lab: rows strayed 0.9 pp on a quiet
// machine and 3.3 pp with other builds on the node. 5 pp keeps the test
// honest (a model off by a regime — 27 pp seen on an overloaded node —
// fails) without failing on that noise.
const outOfSampleBoundPP = 5

// TestLabRealBPF runs a short lab on the real pipeline: the split layout
// must keep every lifecycle record, small shared rings must lose metadata
// while a 16 MiB shared ring loses none under the plain flood, adaptive
// shedding must shed, nothing may ever be wrong, every out-of-sample
// prediction must be within outOfSampleBoundPP of its measurement, and the
// recommendation must name a ring that agrees with the measured rows.
func TestLabRealBPF(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF) to load BPF")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	shed, _, err := syscalls.ParseList(syscalls.Native(), sensor.DefaultShedSyscalls)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Sizes: []int{512 << 10, 1 << 20, 16 << 20}, Layouts: []ringspec.Layout{ringspec.LayoutShared, ringspec.LayoutSplit, ringspec.LayoutSharedShed},
		Procs: 900, Burst: 300, Pause: time.Second, Parallel: 4,
		ConsumerCost: 25 * time.Microsecond, Node: "labtest",
		ShedSyscalls: shed,
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 9 {
		t.Fatalf("%d rows", len(res.Rows))
	}
	calibratedRows := 0
	for _, r := range res.Rows {
		t.Logf("%8d %-12s attempted %8.0f dropped %6.2f%% lifecycle %6.2f%% shed %6.2f%% missing %6.2f%% predicted %6.2f%% (calibrated %v) in-sample %6.2f%% wrong %.2f%%",
			r.SizeBytes, r.Layout, r.Attempted, r.DroppedPct, r.LifecycleDroppedPct, r.ShedPct, r.MissingPct, r.PredictedMissingPct, r.OutOfSampleCalibrated, r.InSampleMissingPct, r.WrongPct)
		if r.WrongPct != 0 || r.TruthWrong != 0 {
			t.Errorf("%d %s: %.2f%% wrong metadata", r.SizeBytes, r.Layout, r.WrongPct)
		}
		for _, run := range r.Runs {
			if !run.Consistent {
				t.Errorf("%d %s: attempted != delivered + dropped", r.SizeBytes, r.Layout)
			}
		}
		if (r.Layout == ringspec.LayoutShared || r.Layout == ringspec.LayoutSplit) && r.OutOfSampleCalibrated {
			calibratedRows++
			if d := math.Abs(r.PredictedMissingPct - r.MissingPct); d > outOfSampleBoundPP {
				t.Errorf("%d %s: out-of-sample prediction %.2f%% vs measured %.2f%%: %.2f pp apart, bound %d pp",
					r.SizeBytes, r.Layout, r.PredictedMissingPct, r.MissingPct, d, outOfSampleBoundPP)
			}
		}
		switch {
		case r.Layout == ringspec.LayoutSplit:
			if r.LifecycleDroppedPct != 0 || r.MissingPct > 0.1 {
				t.Errorf("split %d: lifecycle dropped %.2f%%, missing %.2f%% (by reason %v)", r.SizeBytes, r.LifecycleDroppedPct, r.MissingPct, r.ByReason)
			}
		case r.Layout == ringspec.LayoutShared && r.SizeBytes == 16<<20:
			if r.MissingPct != 0 || r.LifecycleDroppedPct != 0 {
				t.Errorf("16 MiB shared under the plain flood: lifecycle dropped %.2f%%, missing %.2f%%; want 0", r.LifecycleDroppedPct, r.MissingPct)
			}
		case r.Layout == ringspec.LayoutShared:
			if r.DroppedPct == 0 || r.MissingPct == 0 {
				t.Errorf("%d shared under a flood: dropped %.2f%%, missing %.2f%%; want both > 0", r.SizeBytes, r.DroppedPct, r.MissingPct)
			}
		case r.Layout == ringspec.LayoutSharedShed && r.SizeBytes == 512<<10:
			if r.ShedPct == 0 {
				t.Errorf("512KiB shared+shed: nothing shed")
			}
		}
	}
	// Both small shared rows drop lifecycle records, so each calibrates the
	// other: the bound above was really checked.
	if calibratedRows < 2 {
		t.Errorf("only %d rows had an out-of-sample calibration", calibratedRows)
	}
	rec := res.Recommendation
	if rec.Line == "" || rec.SizeBytes <= 0 || rec.Layout == "" || rec.Evidence.Evidence.ConsumerTooSlow {
		t.Errorf("recommendation %+v", rec)
	}
	// The 16 MiB shared row met the target, so the shared alternative can
	// be no bigger, and the recommendation cannot say that no size helps.
	if c, ok := rec.Evidence.Best(ringspec.LayoutShared); !ok || c.SizeBytes > 16<<20 {
		t.Errorf("shared alternative %+v (%v): the 16 MiB shared row met the target", c, ok)
	}
	t.Log(rec.Line)
	for _, w := range rec.WhatIf {
		t.Log("what-if: " + w)
	}
	// Falco's layout, from the runs' per-CPU arrivals: on this node of at
	// most cpus_for_each_buffer CPUs one ring, the shared ring exactly.
	f := rec.Evidence.Falco
	if runtime.NumCPU() <= ringspec.DefaultCPUsPerRing {
		if !f.PerCPU || f.Rings != 1 || !strings.Contains(rec.Line, "on this "+strconv.Itoa(f.CPUs)+"-CPU node one ring, the same as shared") {
			t.Errorf("falco answer %+v: %s", f, rec.Line)
		}
		shared := map[int]ringmodel.Prediction{}
		for _, c := range rec.Evidence.Candidates {
			if c.Layout == ringspec.LayoutShared {
				shared[c.Preset] = c.Prediction
			}
		}
		for _, c := range rec.Evidence.Candidates {
			if c.Layout == ringspec.LayoutFalco && c.Prediction != shared[c.Preset] {
				t.Errorf("preset %d: falco %+v, shared %+v", c.Preset, c.Prediction, shared[c.Preset])
			}
		}
	}
	// The fewer-syscalls what-if, from the syscall events the runs saw.
	if len(rec.WhatIf) == 0 || !strings.Contains(rec.WhatIf[0], "base_syscalls.custom_set: [!") {
		t.Errorf("what-if %q", rec.WhatIf)
	}
}

// TestLabArgsTradeOff runs the args-bound trade-off on a short flood: a
// tight bound cuts more command lines and makes exec records cheaper.
func TestLabArgsTradeOff(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF) to load BPF")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	cfg := Config{Sizes: []int{16 << 20}, Layouts: []ringspec.Layout{ringspec.LayoutShared}, Procs: 300, Burst: 300, Pause: 100 * time.Millisecond,
		Parallel: 4, Node: "labtest", ArgsMax: []int{64, 4096}}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := res.Args
	if a == nil || len(a.Rows) != 2 || a.Argv.Procs == 0 {
		t.Fatalf("args table %+v", a)
	}
	tight, wide := a.Rows[0], a.Rows[1]
	t.Logf("argv from %d processes (median %d, max %d): %+v / %+v", a.Argv.Procs, a.Argv.Median, a.Argv.Max, tight, wide)
	if tight.ExecRecords < 300 || wide.ExecRecords < 300 {
		t.Errorf("exec records %v / %v for 300 children", tight.ExecRecords, wide.ExecRecords)
	}
	if !(tight.BytesPerExec < wide.BytesPerExec) || !(tight.TruncatedPct > wide.TruncatedPct) || tight.BytesPerExec > float64(96+64+len("/tmp/ringwise-flood-xxxxxxxxxx/rwflood")+8) {
		t.Errorf("64 vs 4096: %+v vs %+v", tight, wide)
	}
	var b strings.Builder
	WriteTable(&b, res)
	if !strings.Contains(b.String(), "args bound trade-off") {
		t.Errorf("table lacks the trade-off:\n%s", b.String())
	}
}
