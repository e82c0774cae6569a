package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ringwise/ringwise/analyzer/report"
)

const metricsFile = "../../analyzer/report/testdata/falco_metrics.prom"

func TestAnalyzeFalcoMetricsFile(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"analyze", "--falco-metrics", metricsFile}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"3 readings (clock: uptime)", "0.0–30.0", "3.00%", "0.05%", "29100 events/s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "events:") {
		t.Errorf("read stdin as Falco output although only --falco-metrics was given:\n%s", out.String())
	}
}

func TestAnalyzeFalcoMetricsLiveURL(t *testing.T) {
	// A test server plays Falco's /metrics: each scrape is the next one of
	// the committed series.
	data, err := os.ReadFile(metricsFile)
	if err != nil {
		t.Fatal(err)
	}
	// Each scrape of the file starts with the engine name.
	const first = "# HELP falcosecurity_scap_engine_name_info"
	var bodies []string
	for _, b := range strings.Split(string(data), first)[1:] {
		bodies = append(bodies, first+b)
	}
	if len(bodies) != 3 {
		t.Fatalf("%d bodies", len(bodies))
	}
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		i := int(n.Add(1)) - 1
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte(bodies[min(i, len(bodies)-1)]))
	}))
	defer srv.Close()

	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"analyze", "--json", "--falco-metrics", srv.URL + "/metrics", "--scrapes", "3", "--scrape-every", "20ms"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got analyzeOutput
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err, out.String())
	}
	m := got.FalcoMetrics
	if m == nil || m.Readings != 3 || m.Clock != "timestamp" || len(m.Intervals) != 2 || n.Load() != 3 {
		t.Fatalf("%+v (%d requests)", m, n.Load())
	}
	if iv := m.Intervals[0]; iv.Events != 900_000 || iv.Drops != 27000 || iv.DropPct != 3 || iv.BufferPct["clone_fork_exit"] == 0 {
		t.Errorf("%+v", iv)
	}
	if m.DrainRate <= 0 || m.LifecycleBufferDrops != 3040 {
		t.Errorf("drain %v lifecycle %d", m.DrainRate, m.LifecycleBufferDrops)
	}

	// A wrong path is a clear error naming the URL.
	errb.Reset()
	if code := run(context.Background(), []string{"analyze", "--falco-metrics", srv.URL + "/nope"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "/nope: scrape 1 of 1: HTTP 404") {
		t.Errorf("exit %d: %s", code, errb.String())
	}
}

func TestAnalyzeFalcoOutputCLI(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"analyze", "--json", "--drop-window", "2s", "../../analyzer/report/testdata/falco_output.jsonl"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var s report.Summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	// With a 2 s window the alert at 10:00:10 covers 10:00:10.4–12, not 13.
	if s.Falco == nil || s.Falco.Drops.Alerts != 1 || s.Falco.Correlation.NearEvents != 3 || s.Falco.Correlation.WindowSec != 2 {
		t.Errorf("%+v", s.Falco)
	}
	if !strings.Contains(errb.String(), "2 of 12 lines malformed") {
		t.Errorf("stderr %q", errb.String())
	}
}
