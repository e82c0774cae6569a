package analyzer_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ringwise/ringwise/analyzer"
	"github.com/ringwise/ringwise/analyzer/alert"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/telemetry"
)

// statsAt is node's cumulative stats at second sec: att attempted and drop
// dropped syscall records so far.
func statsAt(sec int, att, drop uint64) *event.Stats {
	st := stats(false)
	st.TimeUnixNs = time.Unix(1_800_000_000+int64(sec), 0).UnixNano()
	st.Counters.Attempted[event.CategorySyscall] = att
	st.Counters.Dropped[event.CategorySyscall] = drop
	st.Counters.Delivered[event.CategorySyscall] = att - drop
	return st
}

// The analyzer runs the drop alert at every stats message and the
// metadata-loss alert on CheckAlerts; both land in Alerts() and in the
// ringwise_analyzer_alerts_total counter on /metrics.
func TestAlertsFromStatsAndBatches(t *testing.T) {
	m, err := telemetry.NewMetrics("test")
	if err != nil {
		t.Fatal(err)
	}
	a := analyzer.New(analyzer.Config{Metrics: m.Handler()})
	if _, err := a.RegisterMetrics(m.Meter()); err != nil {
		t.Fatal(err)
	}
	// 1 s: 1000 attempted, none dropped; 2 s: +1000, +50 (5 % ≤ 10 %);
	// 3 s: +1000, +400 (40 %): fires; 4 s: still 40 %, but rate-limited.
	for i, c := range []struct{ att, drop uint64 }{{1000, 0}, {2000, 50}, {3000, 450}, {4000, 850}} {
		if err := a.HandleStats(statsJSON(t, statsAt(i+1, c.att, c.drop))); err != nil {
			t.Fatal(err)
		}
	}
	var drops []alert.Alert
	for _, al := range a.Alerts() {
		if al.Rule == alert.RuleDrop {
			drops = append(drops, al)
		}
	}
	if len(drops) != 1 {
		t.Fatalf("%d drop alerts, want 1: %+v", len(drops), a.Alerts())
	}
	if d := drops[0]; d.Hostname != node || d.OutputFields["n_drops"] != uint64(400) || d.OutputFields["n_evts"] != uint64(1000) {
		t.Errorf("drop alert %+v", d)
	}

	// 10 % of events missing metadata, target 0.1 %: the metadata alert
	// fires on the next check and carries the recommendation.
	if err := a.HandleEnriched(bus.EnrichedSubject(node), encode(t, enrichedBatch(1, 90, 10, 1))); err != nil {
		t.Fatal(err)
	}
	a.CheckAlerts()
	var meta *alert.Alert
	for _, al := range a.Alerts() {
		if al.Rule == alert.RuleMetadata {
			meta = &al
		}
	}
	if meta == nil {
		t.Fatalf("no metadata-loss alert: %+v", a.Alerts())
	}
	if meta.Recommendation == nil || meta.Recommendation.Verdict == "" || meta.OutputFields["missing"] != uint64(10) {
		t.Errorf("metadata alert %+v", meta)
	}
	// Nothing new since: no second alert.
	a.CheckAlerts()
	if n := len(a.Alerts()); n != 2 {
		t.Errorf("%d alerts after a quiet check, want 2", n)
	}

	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`ringwise_analyzer_alerts_total{node="node-1",rule="ringwise internal: syscall event drop"} 1`,
		`ringwise_analyzer_alerts_total{node="node-1",rule="ringwise internal: missing metadata above target"} 1`,
		`ringwise_analyzer_events_total{node="node-1"} 100`,
		`ringwise_analyzer_missing_events_total{node="node-1"} 10`,
		`ringwise_analyzer_missing_percent{node="node-1"} 10`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}
