package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ringwise/ringwise/analyzer/alert"
	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/internal/flood"
	"github.com/ringwise/ringwise/internal/pipeline"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/telemetry"
)

// observedRun runs a flood through the pipeline against its own embedded
// NATS, with metrics, and collects what arrives on ringwise.alerts.
type observedRun struct {
	res     pipeline.Result
	metrics *telemetry.Metrics
	alerts  []alert.Alert
}

func runObserved(t *testing.T, o pipeline.Options) observedRun {
	t.Helper()
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	var got []alert.Alert
	sub, err := nc.Subscribe(bus.SubjectAlerts, func(m *nats.Msg) {
		var a alert.Alert
		if err := json.Unmarshal(m.Data, &a); err != nil {
			t.Errorf("alert on %s is not JSON: %v: %q", m.Subject, err, m.Data)
			return
		}
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	m, err := telemetry.NewMetrics("ringwise-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	o.NATSURL, o.Meter, o.StopAfterFlood = srv.URL(), m.Meter(), true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // hang guard only
	defer cancel()
	res, err := pipeline.Run(ctx, o)
	if err != nil {
		t.Fatalf("pipeline.Run: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the subscription's goroutine catch up
	mu.Lock()
	defer mu.Unlock()
	s := res.Summary
	t.Logf("ring %d: attempted %d delivered %d dropped %d; missing %.3f%%; %d alerts in the result, %d on %s",
		s.Ring.SizeBytes, s.Sensor.Attempted, s.Sensor.Delivered, s.Sensor.Dropped, s.Analyzer.MissingPct, len(res.Alerts), len(got), bus.SubjectAlerts)
	return observedRun{res: res, metrics: m, alerts: append([]alert.Alert(nil), got...)}
}

// scrape GETs /metrics from the handler over HTTP and parses it.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the sample of family name whose labels include want; ok
// is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func countRule(as []alert.Alert, rule string) int {
	n := 0
	for _, a := range as {
		if a.Rule == rule {
			n++
		}
	}
	return n
}

// checkScrape asserts that every counter on /metrics equals the summary
// JSON of the same run.
func checkScrape(t *testing.T, run observedRun) {
	t.Helper()
	s := run.res.Summary
	// The summary as ringwise up --summary writes it, read back as JSON.
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Node   string `json:"node"`
		Sensor struct {
			Attempted, Delivered, Dropped, DroppedLifecycle, DroppedSyscall, Shed, Batches uint64
		} `json:"sensor"`
		Enricher struct{ Events uint64 } `json:"enricher"`
		Analyzer struct {
			Events, Missing  uint64
			MissingPct       float64           `json:"missing_pct"`
			ByField          map[string]uint64 `json:"by_field"`
			ByReason         map[string]uint64 `json:"by_reason"`
			DuplicateBatches uint64            `json:"duplicate_batches"`
		} `json:"analyzer"`
		Ring struct {
			SizeBytes int `json:"size_bytes"`
		} `json:"ring"`
	}
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatal(err)
	}
	// encoding/json matches dropped_lifecycle to DroppedLifecycle only with
	// a tag; read the two that have underscores by hand.
	sum.Sensor.DroppedLifecycle, sum.Sensor.DroppedSyscall = s.Sensor.DroppedLifecycle, s.Sensor.DroppedSyscall

	fams := scrape(t, run.metrics.Handler())
	node := map[string]string{"node": sum.Node}
	cat := func(c event.Category) map[string]string {
		return map[string]string{"node": sum.Node, "category": c.String()}
	}
	sumCats := func(name string) float64 {
		a, _ := value(fams, name, cat(event.CategoryLifecycle))
		b, _ := value(fams, name, cat(event.CategorySyscall))
		return a + b
	}
	checks := []struct {
		what string
		got  float64
		want uint64
	}{
		{"sensor attempted", sumCats("ringwise_sensor_events_attempted_total"), sum.Sensor.Attempted},
		{"sensor delivered", sumCats("ringwise_sensor_events_delivered_total"), sum.Sensor.Delivered},
		{"sensor dropped", sumCats("ringwise_sensor_events_dropped_total"), sum.Sensor.Dropped},
		{"sensor shed", sumCats("ringwise_sensor_events_shed_total"), sum.Sensor.Shed},
		{"sensor batches", must(t, fams, "ringwise_sensor_batches_total", node), sum.Sensor.Batches},
		{"enricher events", must(t, fams, "ringwise_enricher_events_total", nil), sum.Enricher.Events},
		{"analyzer events", must(t, fams, "ringwise_analyzer_events_total", node), sum.Analyzer.Events},
		{"analyzer missing", must(t, fams, "ringwise_analyzer_missing_events_total", node), sum.Analyzer.Missing},
		{"analyzer duplicates", must(t, fams, "ringwise_analyzer_duplicate_batches_total", node), sum.Analyzer.DuplicateBatches},
	}
	v, _ := value(fams, "ringwise_sensor_events_dropped_total", cat(event.CategoryLifecycle))
	checks = append(checks, struct {
		what string
		got  float64
		want uint64
	}{"sensor dropped lifecycle", v, sum.Sensor.DroppedLifecycle})
	for f, n := range sum.Analyzer.ByField {
		v, _ := value(fams, "ringwise_analyzer_missing_field_events_total", map[string]string{"node": sum.Node, "field": f})
		checks = append(checks, struct {
			what string
			got  float64
			want uint64
		}{"missing field " + f, v, n})
	}
	for r, n := range sum.Analyzer.ByReason {
		v, _ := value(fams, "ringwise_analyzer_missing_reason_events_total", map[string]string{"node": sum.Node, "reason": r})
		checks = append(checks, struct {
			what string
			got  float64
			want uint64
		}{"missing reason " + r, v, n})
	}
	for _, c := range checks {
		if c.got != float64(c.want) {
			t.Errorf("/metrics %s = %v, summary JSON says %d", c.what, c.got, c.want)
		}
	}
	if pct, _ := value(fams, "ringwise_analyzer_missing_percent", node); fmt.Sprintf("%.6f", pct) != fmt.Sprintf("%.6f", sum.Analyzer.MissingPct) {
		t.Errorf("/metrics missing %% = %v, summary %v", pct, sum.Analyzer.MissingPct)
	}
	if size := must(t, fams, "ringwise_sensor_ring_size_bytes", map[string]string{"node": sum.Node, "ring": "main"}); size != float64(sum.Ring.SizeBytes) {
		t.Errorf("/metrics ring size %v, summary %d", size, sum.Ring.SizeBytes)
	}
	if hw := must(t, fams, "ringwise_sensor_ring_fill_high_water_bytes", node); hw <= 0 || hw > float64(sum.Ring.SizeBytes) {
		t.Errorf("ring fill high-water mark %v outside (0, %d]", hw, sum.Ring.SizeBytes)
	}
	t.Logf("/metrics matched the summary on %d counters", len(checks))
}

func must(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := value(fams, name, labels)
	if !ok {
		t.Errorf("/metrics has no %s%v", name, labels)
	}
	return v
}

// A 64 KiB ring with a slow consumer drops most records: the drop alert
// fires once (in the result and on ringwise.alerts, token bucket: one per
// 30 s), and /metrics equals the summary.
func TestE2EDropAlertTinyRing(t *testing.T) {
	needRoot(t)
	run := runObserved(t, pipeline.Options{
		Sensor: sensor.Config{Node: "obs-tiny", Probe: bpf.Config{RingSize: 64 << 10}, ExcludeSelf: true, ConsumerCost: 20 * time.Microsecond},
		Flood:  &flood.Config{Procs: 1500, Parallel: 4},
	})
	s := run.res.Summary
	if s.Sensor.Dropped == 0 {
		t.Fatal("a 64 KiB ring with a 20µs consumer dropped nothing: the test premise failed")
	}
	if n := countRule(run.alerts, alert.RuleDrop); n != 1 {
		t.Errorf("%d drop alerts on %s (dropped %d of %d), want 1 (max burst 1, one per 30 s); raised %+v",
			n, bus.SubjectAlerts, s.Sensor.Dropped, s.Sensor.Attempted, run.res.Alerts)
	}
	for _, a := range run.alerts {
		if a.Rule == alert.RuleDrop {
			t.Logf("drop alert: %s", a.Output)
			if a.Hostname != "obs-tiny" || a.Priority != "Critical" || a.OutputFields["n_drops"] == nil || a.OutputFields["n_evts"] == nil {
				t.Errorf("drop alert %+v", a)
			}
		}
	}
	if len(run.alerts) != len(run.res.Alerts) {
		t.Errorf("%d alerts on %s, %d raised", len(run.alerts), bus.SubjectAlerts, len(run.res.Alerts))
	}
	checkScrape(t, run)
}

// A 64 KiB ring under a bursty flood (the lab's regime: each burst outruns
// the reader, which keeps up on average, here by a wide margin so that a
// busy machine does not turn it into "consumer too slow") loses lifecycle
// records: the metadata-loss alert fires and carries the current
// recommendation, with a size.
func TestE2EMetadataAlertCarriesRecommendation(t *testing.T) {
	needRoot(t)
	run := runObserved(t, pipeline.Options{
		Sensor: sensor.Config{Node: "obs-meta", Probe: bpf.Config{RingSize: 64 << 10}, ExcludeSelf: true},
		Flood:  &flood.Config{Procs: 1200, Burst: 300, Pause: 3 * time.Second, Parallel: 4},
	})
	s := run.res.Summary
	if s.Analyzer.MissingPct <= 0.1 {
		t.Fatalf("a 64 KiB ring left only %.3f%% missing: the test premise failed", s.Analyzer.MissingPct)
	}
	var meta *alert.Alert
	for i := range run.alerts {
		if run.alerts[i].Rule == alert.RuleMetadata {
			meta = &run.alerts[i]
		}
	}
	if meta == nil {
		t.Fatalf("missing %.2f%% > 0.1%% target but no metadata-loss alert on %s", s.Analyzer.MissingPct, bus.SubjectAlerts)
	}
	t.Logf("metadata alert: %s", meta.Output)
	if meta.Recommendation == nil || meta.Recommendation.SizeBytes <= 0 || meta.Recommendation.BufSizePreset <= 0 {
		t.Errorf("metadata-loss alert without a recommended size: %+v", meta)
	}
	if meta.OutputFields["recommended_size_bytes"] == nil || meta.Hostname != "obs-meta" {
		t.Errorf("metadata alert fields %+v", meta.OutputFields)
	}
	checkScrape(t, run)
	checkDashboard(t, scrape(t, run.metrics.Handler()))
}

// checkDashboard asserts that every ringwise series the Grafana dashboard
// queries exists on /metrics (a renamed metric would leave a panel empty).
func checkDashboard(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deployments", "grafana", "ringwise.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	// Present only when something was refused: nothing is, in this run.
	// The lag is read from the run's durable consumer, which the pipeline
	// deletes when the run ends.
	absentOK := map[string]bool{"ringwise_enricher_bad_input_total": true, "ringwise_enricher_lag": true}
	names := map[string]bool{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, n := range regexp.MustCompile(`ringwise_[a-z_]+`).FindAllString(tg.Expr, -1) {
				names[n] = true
			}
		}
	}
	if len(names) < 10 {
		t.Fatalf("dashboard queries only %d ringwise series", len(names))
	}
	for n := range names {
		if fams[n] == nil && !absentOK[n] {
			t.Errorf("dashboard queries %s, which /metrics does not serve", n)
		}
	}
}

// A 16 MiB ring on the plain flood drops nothing: the drop alert stays
// silent, and /metrics equals the summary.
func TestE2EAlertsSilentLargeRing(t *testing.T) {
	needRoot(t)
	run := runObserved(t, pipeline.Options{
		Sensor: sensor.Config{Node: "obs-large", Probe: bpf.Config{RingSize: 16 << 20}, ExcludeSelf: true},
		Flood:  &flood.Config{Procs: 1500, Parallel: 4},
	})
	if n := countRule(run.alerts, alert.RuleDrop); n != 0 {
		t.Errorf("%d drop alerts with a 16 MiB ring (dropped %d of %d): %+v", n,
			run.res.Summary.Sensor.Dropped, run.res.Summary.Sensor.Attempted, run.alerts)
	}
	if run.res.Summary.Sensor.Delivered == 0 {
		t.Fatal("nothing delivered")
	}
	checkScrape(t, run)
}
