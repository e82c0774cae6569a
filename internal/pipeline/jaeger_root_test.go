package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/internal/flood"
	"github.com/ringwise/ringwise/internal/pipeline"
	"github.com/ringwise/ringwise/sensor"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/telemetry"
)

// Jaeger's all-in-one defaults (no config): OTLP/HTTP and the query API.
const (
	jaegerOTLPHTTP = "127.0.0.1:4318"
	jaegerQuery    = "127.0.0.1:16686"
)

// tool returns the path of an external program built and cached by
// scripts/tools.sh (building it first if this machine has not yet).
func tool(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for !fileExists(filepath.Join(dir, "go.work")) {
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root (go.work) not found above the test's directory")
		}
		dir = parent
	}
	var stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(dir, "scripts", "tools.sh"), name)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/tools.sh %s: %v\n%s", name, err, stderr.String())
	}
	path := strings.TrimSpace(string(out))
	if !fileExists(path) {
		t.Fatalf("scripts/tools.sh %s printed %q, which does not exist", name, path)
	}
	return path
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// startJaeger runs the cached Jaeger binary (all-in-one, memory storage)
// until the test ends.
func startJaeger(t *testing.T) {
	t.Helper()
	bin := tool(t, "jaeger")
	for _, addr := range []string{jaegerOTLPHTTP, jaegerQuery, "127.0.0.1:4317"} {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			t.Fatalf("%s is already in use: another Jaeger (or collector) is running; stop it first", addr)
		}
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "jaeger.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Jaeger must not inherit descriptors this process inherited (a
	// flock(1) around `go test` would otherwise stay locked for as long as
	// a stray Jaeger lives).
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, e := range fds {
			if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
				syscall.CloseOnExec(fd)
			}
		}
	}
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("jaeger log (last 3000 bytes):\n%s", tail(b, 3000))
			}
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + jaegerQuery + "/api/services")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				if c, err := net.DialTimeout("tcp", jaegerOTLPHTTP, time.Second); err == nil {
					c.Close()
					return
				}
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("jaeger not ready on %s and %s after 90s (last error %v); log:\n%s", jaegerQuery, jaegerOTLPHTTP, err, tail(b, 3000))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// The part of Jaeger's /api/traces answer the test reads.
type jaegerTrace struct {
	TraceID string       `json:"traceID"`
	Spans   []jaegerSpan `json:"spans"`
	// Processes maps processID to the service that sent the spans.
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

type jaegerSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

func (s jaegerSpan) tag(key string) string {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

// refers reports whether s has a reference of refType to span id.
func (s jaegerSpan) refers(refType, id string) bool {
	for _, r := range s.References {
		if r.RefType == refType && r.SpanID == id {
			return true
		}
	}
	return false
}

// hopChain finds in tr the four spans of one batch's way through the
// pipeline, each referring to the one before across NATS; it returns why
// not.
//
// A process span is the child of the publish span it came from and also
// links to it. Jaeger's OTLP translation turns a link to the parent span
// into the parent reference's type, FOLLOWS_FROM (one reference, not two).
// That both spans are in one trace shows the parent relation (a link alone
// would start a new trace); FOLLOWS_FROM shows the link. The in-process
// test of services/telemetry checks parent and link apart.
func hopChain(tr jaegerTrace, node string) ([]jaegerSpan, string) {
	service := func(s jaegerSpan) string { return tr.Processes[s.ProcessID].ServiceName }
	find := func(svc, op string) []jaegerSpan {
		var out []jaegerSpan
		for _, s := range tr.Spans {
			if service(s) == svc && s.OperationName == op {
				out = append(out, s)
			}
		}
		return out
	}
	raw, enriched := bus.RawSubject(node), bus.EnrichedSubject(node)
	why := fmt.Sprintf("no sensor send → enricher process → enricher send → analyzer process chain among %d spans", len(tr.Spans))
	for _, send := range find(telemetry.ServiceSensor, "send "+raw) {
		for _, proc := range find(telemetry.ServiceEnricher, "process "+raw) {
			if !proc.refers("FOLLOWS_FROM", send.SpanID) {
				if proc.refers("CHILD_OF", send.SpanID) {
					why = "the enricher's process span is a child of the sensor's send span without a link to it"
				}
				continue
			}
			for _, esend := range find(telemetry.ServiceEnricher, "send "+enriched) {
				if !esend.refers("CHILD_OF", proc.SpanID) {
					continue
				}
				for _, aproc := range find(telemetry.ServiceAnalyzer, "process "+enriched) {
					if aproc.refers("FOLLOWS_FROM", esend.SpanID) {
						return []jaegerSpan{send, proc, esend, aproc}, ""
					}
					if aproc.refers("CHILD_OF", esend.SpanID) {
						why = "the analyzer's process span is a child of the enricher's send span without a link to it"
					}
				}
			}
		}
	}
	return nil, why
}

// A real Jaeger, the real pipeline with a flood, OTLP over HTTP: one trace
// holds a batch's spans from the sensor, the enricher and the analyzer,
// linked across NATS, with the messaging attributes.
func TestE2EJaegerTrace(t *testing.T) {
	needRoot(t)
	startJaeger(t)
	t.Setenv(telemetry.EnvEndpoint, "http://"+jaegerOTLPHTTP)
	t.Setenv(telemetry.EnvProtocol, "http/protobuf")
	t.Setenv(telemetry.EnvSampler, "always_on")
	t.Setenv("OTEL_SERVICE_NAME", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // hang guard only
	defer cancel()

	const node = "e2e-trace"
	o := pipeline.Options{
		Sensor:         sensor.Config{Node: node, Probe: bpf.Config{RingSize: 8 << 20}, ExcludeSelf: true},
		Flood:          &flood.Config{Procs: 200, Parallel: 4},
		StopAfterFlood: true,
	}
	var tracings []*telemetry.Tracing
	for _, t2 := range []struct {
		dst     **telemetry.Tracing
		service string
	}{{&o.SensorTracing, telemetry.ServiceSensor}, {&o.EnricherTracing, telemetry.ServiceEnricher}, {&o.AnalyzerTracing, telemetry.ServiceAnalyzer}} {
		tr, err := telemetry.NewTracing(ctx, t2.service)
		if err != nil {
			t.Fatal(err)
		}
		if !tr.Enabled() {
			t.Fatalf("%s: tracing disabled with %s set", t2.service, telemetry.EnvEndpoint)
		}
		*t2.dst = tr
		tracings = append(tracings, tr)
	}
	res, err := pipeline.Run(ctx, o)
	if err != nil {
		t.Fatalf("pipeline.Run: %v", err)
	}
	for _, tr := range tracings {
		if err := tr.Shutdown(ctx); err != nil {
			t.Fatalf("flush spans to Jaeger: %v", err)
		}
	}
	t.Logf("run: %d batches, %d events analysed", res.Summary.Sensor.Batches, res.Summary.Analyzer.Events)

	// Jaeger stores what it received asynchronously: poll briefly.
	var chain []jaegerSpan
	var why string
	var traces int
	var sample []byte
	deadline := time.Now().Add(30 * time.Second)
	for chain == nil && time.Now().Before(deadline) {
		url := "http://" + jaegerQuery + "/api/traces?service=" + telemetry.ServiceAnalyzer + "&limit=1000&lookback=1h"
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		var body struct {
			Data []jaegerTrace `json:"data"`
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			err = json.Unmarshal(raw, &body)
		}
		if err != nil {
			t.Fatalf("GET %s: decode: %v", url, err)
		}
		sample = tail(raw, 4000)
		traces = len(body.Data)
		why = "no trace yet"
		for _, tr := range body.Data {
			if c, w := hopChain(tr, node); c != nil {
				chain = c
				t.Logf("trace %s: %d spans", tr.TraceID, len(tr.Spans))
				break
			} else {
				why = w
			}
		}
		if chain == nil {
			time.Sleep(500 * time.Millisecond)
		}
	}
	if chain == nil {
		t.Fatalf("Jaeger has %d traces of %s, none with the whole chain: %s\nthe answer's end: %s", traces, telemetry.ServiceAnalyzer, why, sample)
	}
	group := map[string]bool{}
	for i, s := range chain {
		op := "send"
		if i%2 == 1 {
			op = "process"
		}
		subject := strings.TrimPrefix(s.OperationName, op+" ")
		for key, want := range map[string]string{
			"messaging.system":           "nats",
			"messaging.destination.name": subject,
			"messaging.operation.type":   op,
			"ringwise.node":              node,
		} {
			if got := s.tag(key); got != want {
				t.Errorf("span %q: %s = %q, want %q", s.OperationName, key, got, want)
			}
		}
		if s.tag("messaging.message.id") == "" {
			t.Errorf("span %q has no messaging.message.id", s.OperationName)
		}
		if n, err := strconv.Atoi(s.tag("ringwise.batch.events")); err != nil || n <= 0 {
			t.Errorf("span %q: ringwise.batch.events = %q, want > 0", s.OperationName, s.tag("ringwise.batch.events"))
		}
		if op == "process" {
			g := s.tag("messaging.consumer.group.name")
			if g == "" {
				t.Errorf("span %q has no messaging.consumer.group.name", s.OperationName)
			}
			group[g] = true
		}
		t.Logf("%-45s message %s, %s events", s.OperationName, s.tag("messaging.message.id"), s.tag("ringwise.batch.events"))
	}
	// The message id travels: the enricher processed the batch the sensor sent.
	if chain[0].tag("messaging.message.id") != chain[1].tag("messaging.message.id") {
		t.Errorf("sensor sent %q, enricher processed %q", chain[0].tag("messaging.message.id"), chain[1].tag("messaging.message.id"))
	}
	if chain[2].tag("messaging.message.id") != chain[3].tag("messaging.message.id") {
		t.Errorf("enricher sent %q, analyzer processed %q", chain[2].tag("messaging.message.id"), chain[3].tag("messaging.message.id"))
	}
}
