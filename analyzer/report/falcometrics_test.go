package report

import (
	"bytes"
	"maps"
	"os"
	"strings"
	"testing"
)

func TestFalcoMetricsScrapeFile(t *testing.T) {
	f, err := os.Open("testdata/falco_metrics.prom")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rs, st, skipped, err := FalcoCountersFromText(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || skipped != 0 || st.Bad != 0 {
		t.Fatalf("%d readings, %d skipped, %+v", len(rs), skipped, st)
	}
	r := rs[1]
	if r.NEvts != 1_500_000 || r.NDrops != 27000 || r.NDropsBuffer != 27000 || r.Buffer["clone_fork_exit"] != 1500 ||
		r.UptimeSec != 60 || r.NumCPUs != 4 || r.Engine != "modern_bpf" || r.Host != "worker-7" {
		t.Errorf("%+v", r)
	}
	rep := AnalyzeFalcoCounters(rs)
	if rep.Clock != "uptime" || len(rep.Intervals) != 2 {
		t.Fatalf("%+v", rep)
	}
	a, b := rep.Intervals[0], rep.Intervals[1]
	if a.StartSec != 0 || a.EndSec != 30 || a.Events != 900_000 || a.Drops != 27000 || a.DropPct != 3 || a.BufferPct["open_exit"] != 1 {
		t.Errorf("first interval %+v", a)
	}
	if b.Events != 600_000 || b.Drops != 300 || b.DropPct != 0.05 {
		t.Errorf("second interval %+v", b)
	}
	if rep.DrainRate != 29100 || rep.DrainLowerBound != 29100 {
		t.Errorf("drain %v lower bound %v", rep.DrainRate, rep.DrainLowerBound)
	}
	if want := map[string]uint64{"clone_fork_exit": 1520, "execve_exit": 910, "proc_exit": 610, "open_exit": 9100, "close_exit": 6060, "other_interest_exit": 9100}; !equalNonZero(rep.BufferDrops, want) || rep.LifecycleBufferDrops != 3040 {
		t.Errorf("buffer drops %v lifecycle %d", rep.BufferDrops, rep.LifecycleBufferDrops)
	}
	var out bytes.Buffer
	WriteFalcoMetricsText(&out, rep)
	for _, want := range []string{"3 readings (clock: uptime), engine modern_bpf, 4 CPUs", "0.0–30.0", "3.00%", "30.0–60.0", "0.05%",
		"drain (delivered rate while the ring overflowed): 29100 events/s", "lifecycle categories (clone/fork, execve, proc exit): 3040"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("lacks %q:\n%s", want, out.String())
		}
	}
}

func equalNonZero(got, want map[string]uint64) bool {
	g := maps.Clone(got)
	maps.DeleteFunc(g, func(_ string, v uint64) bool { return v == 0 })
	return maps.Equal(g, want)
}

func TestFalcoMetricsRestartAndSingle(t *testing.T) {
	rs := []FalcoCounters{
		{TsNs: 1e9, NEvts: 1000, NDrops: 10, Fields: 2},
		{TsNs: 2e9, NEvts: 1500, NDrops: 10, Fields: 2},
		{TsNs: 3e9, NEvts: 200, NDrops: 0, Fields: 2}, // Falco restarted
	}
	rep := AnalyzeFalcoCounters(rs)
	if len(rep.Intervals) != 2 || !rep.Intervals[1].Restart || rep.Intervals[1].Events != 200 || rep.Total.Events != 700 {
		t.Fatalf("%+v", rep)
	}
	one := AnalyzeFalcoCounters(rs[:1])
	if one.Total.Events != 1000 || one.Total.DropPct != 1 || len(one.Intervals) != 0 {
		t.Errorf("%+v", one)
	}
	var out bytes.Buffer
	WriteFalcoMetricsText(&out, rep)
	if !strings.Contains(out.String(), "1.0–2.0*") || !strings.Contains(out.String(), "Falco restarted") {
		t.Errorf("%s", out.String())
	}
	if _, _, _, err := FalcoCountersFromText(strings.NewReader("process_cpu_seconds_total 3\n")); err == nil {
		t.Error("no Falco counters: no error")
	}
}
