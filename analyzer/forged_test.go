package analyzer_test

import (
	"fmt"
	"testing"

	"github.com/ringwise/ringwise/analyzer"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
)

// statsAt is node's stats of run (boot, start) with cumulative counters at
// n attempted and delivered events per category, and drops dropped.
func runStats(boot string, start, n, dropped uint64) *event.Stats {
	st := &event.Stats{Node: node, BootID: boot, SensorStartNs: start, Batches: n / 10, LastBatchSeq: n / 10}
	for c := range st.Counters.Attempted {
		st.Counters.Attempted[c] = n + dropped
		st.Counters.Delivered[c] = n
		st.Counters.Dropped[c] = dropped
	}
	return st
}

// The attack of issue 9: forged stats move a node's drop rate. Stats whose
// counters go backwards within a run are refused and counted; a forged
// jump ahead is taken back once the next real stats are in line with the
// ones before it; stats of an older run are refused; stats of a run no
// batch has shown are held, not counted.
func TestForgedStatsRefused(t *testing.T) {
	a := analyzer.New(analyzer.Config{})
	mustStats := func(st *event.Stats) {
		t.Helper()
		if err := a.HandleStats(statsJSON(t, st)); err != nil {
			t.Fatalf("stats %+v: %v", st.Counters, err)
		}
	}
	if err := a.HandleEnriched(bus.EnrichedSubject(node), encode(t, enrichedBatch(1, 10, 0, 0))); err != nil {
		t.Fatal(err)
	}
	mustStats(runStats("boot", 1000, 100, 0))
	mustStats(runStats("boot", 1000, 200, 0))
	// A forged jump: 90 % dropped.
	mustStats(runStats("boot", 1000, 300, 2700))
	if pct := a.Summary(node).Sensor.DropPct; pct < 80 {
		t.Fatalf("drop %% after the jump = %.1f; the test expects the jump to show at first", pct)
	}
	// The real next stats: in line with 200, behind the jump.
	mustStats(runStats("boot", 1000, 400, 0))
	s := a.Summary(node)
	if s.Sensor.DropPct != 0 || s.Sensor.Attempted != 2*400 {
		t.Errorf("after the real stats: drop %.1f %%, attempted %d; want 0 %% and 800", s.Sensor.DropPct, s.Sensor.Attempted)
	}
	h := a.Health()
	if h.Limits["stats_outliers_removed"] != 1 {
		t.Errorf("outliers removed = %d, want 1 (%v)", h.Limits["stats_outliers_removed"], h.Limits)
	}
	// Backwards within the run, not in line with anything: refused.
	if err := a.HandleStats(statsJSON(t, runStats("boot", 1000, 50, 0))); err == nil {
		t.Errorf("stats going backwards accepted")
	}
	// An older run of the same boot: refused.
	if err := a.HandleStats(statsJSON(t, runStats("boot", 999, 5000, 4000))); err == nil {
		t.Errorf("stats of an older run accepted")
	}
	// A run no batch has shown: held, not counted.
	mustStats(runStats("forged-boot", 5, 100, 900))
	if pct := a.Summary(node).Sensor.DropPct; pct != 0 {
		t.Errorf("drop %% after stats of an unseen run = %.1f, want 0", pct)
	}
	bad := a.Health().BadInput
	if bad["stats_backwards"] != 1 || bad["stats_stale_run"] != 1 {
		t.Errorf("bad input %v, want stats_backwards 1 and stats_stale_run 1", bad)
	}
	if sum := a.Summary(""); sum.Services["analyzer"].BadInput["stats_backwards"] != 1 {
		t.Errorf("/api/summary services.analyzer = %+v, want the bad input there", sum.Services["analyzer"])
	}
}

// 2,000 invented nodes stay within the analyzer's cap.
func TestAnalyzerNodeCap(t *testing.T) {
	a := analyzer.New(analyzer.Config{MaxNodes: 50})
	refused := 0
	for i := 0; i < 2000; i++ {
		b := enrichedBatch(1, 1, 0, 0)
		b.Node = fmt.Sprintf("invented-%d", i)
		if err := a.HandleEnriched(bus.EnrichedSubject(b.Node), encode(t, b)); err != nil {
			if r, _ := bus.PoisonReason(err); r != "node_cap" {
				t.Fatal(err)
			}
			refused++
		}
	}
	h := a.Health()
	if len(a.Summary("").Nodes) > 50 || h.Limits["nodes"] != 50 || refused != 1950 || h.Limits["nodes_refused"] != 1950 || h.BadInput["node_cap"] != 1950 {
		t.Errorf("nodes %d, refused %d, health %+v; want 50 kept, 1950 refused", len(a.Summary("").Nodes), refused, h)
	}
	// Idle nodes make room.
	a = analyzer.New(analyzer.Config{MaxNodes: 50, NodeIdle: 1})
	for i := 0; i < 2000; i++ {
		b := enrichedBatch(1, 1, 0, 0)
		b.Node = fmt.Sprintf("invented-%d", i)
		if err := a.HandleEnriched(bus.EnrichedSubject(b.Node), encode(t, b)); err != nil {
			t.Fatal(err)
		}
	}
	if h := a.Health(); h.Limits["nodes"] > 50 || h.Limits["nodes_evicted_idle"] != 1950 {
		t.Errorf("health %+v, want at most 50 nodes and 1950 evicted", h)
	}
}
