package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringwise/ringwise/sensor"
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
		if r.MissingPct != r.PredictedMissingPct {
			t.Errorf("sim row %s %d: measured %v != predicted %v (sim has nothing but the model)", r.Layout, r.SizeBytes, r.MissingPct, r.PredictedMissingPct)
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
	for _, k := range []string{"size_bytes", "layout", "attempted", "dropped_pct", "lifecycle_dropped_pct", "missing_pct", "missing_pct_spread", "wrong_pct", "predicted_missing_pct"} {
		if _, ok := row[k]; !ok {
			t.Errorf("results.json row lacks %q", k)
		}
	}
	rec := raw["recommendation"].(map[string]any)
	for _, k := range []string{"size_bytes", "buf_size_preset", "layout", "target_pct", "evidence"} {
		if _, ok := rec[k]; !ok {
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
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

// TestLabRealBPF runs a small lab on the real pipeline: the split layout
// must keep every lifecycle record, a tiny shared ring must lose metadata,
// adaptive shedding must shed, and nothing may ever be wrong.
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
		Sizes: []int{64 << 10, 16 << 20}, Layouts: []ringspec.Layout{ringspec.LayoutShared, ringspec.LayoutSplit, ringspec.LayoutSharedShed},
		Procs: 600, Burst: 300, Pause: 300 * time.Millisecond, Parallel: 4,
		ConsumerCost: 25 * time.Microsecond, Node: "labtest",
		ShedSyscalls: shed,
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 6 {
		t.Fatalf("%d rows", len(res.Rows))
	}
	for _, r := range res.Rows {
		t.Logf("%8d %-12s attempted %8.0f dropped %6.2f%% lifecycle %6.2f%% shed %6.2f%% missing %6.2f%% predicted %6.2f%% wrong %.2f%%",
			r.SizeBytes, r.Layout, r.Attempted, r.DroppedPct, r.LifecycleDroppedPct, r.ShedPct, r.MissingPct, r.PredictedMissingPct, r.WrongPct)
		if r.WrongPct != 0 || r.TruthWrong != 0 {
			t.Errorf("%d %s: %.2f%% wrong metadata", r.SizeBytes, r.Layout, r.WrongPct)
		}
		for _, run := range r.Runs {
			if !run.Consistent {
				t.Errorf("%d %s: attempted != delivered + dropped", r.SizeBytes, r.Layout)
			}
		}
		switch {
		case r.Layout == ringspec.LayoutSplit:
			if r.LifecycleDroppedPct != 0 || r.MissingPct > 0.1 {
				t.Errorf("split %d: lifecycle dropped %.2f%%, missing %.2f%% (by reason %v)", r.SizeBytes, r.LifecycleDroppedPct, r.MissingPct, r.ByReason)
			}
		case r.Layout == ringspec.LayoutShared && r.SizeBytes == 64<<10:
			if r.DroppedPct == 0 || r.MissingPct == 0 {
				t.Errorf("64KiB shared under a flood: dropped %.2f%%, missing %.2f%%; want both > 0", r.DroppedPct, r.MissingPct)
			}
		case r.Layout == ringspec.LayoutSharedShed && r.SizeBytes == 64<<10:
			if r.ShedPct == 0 {
				t.Errorf("64KiB shared+shed: nothing shed")
			}
		}
	}
	if res.Recommendation.Line == "" {
		t.Error("no recommendation")
	}
}
