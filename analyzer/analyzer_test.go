package analyzer_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/analyzer"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
)

const node = "node-1"

// enrichedBatch returns seq's batch: ok events with full metadata and
// lost events missing everything because their fork was dropped.
func enrichedBatch(seq uint64, ok, lost int, lifecycleDrops uint64) *event.EnrichedBatch {
	b := &event.EnrichedBatch{Node: node, BootID: "boot", RawSeq: seq, SensorStartNs: 1000}
	b.Counters.Dropped[event.CategoryLifecycle] = lifecycleDrops
	b.Counters.Attempted[event.CategoryLifecycle] = lifecycleDrops
	for i := 0; i < ok; i++ {
		b.Events = append(b.Events, event.Enriched{
			Event:    event.Event{Header: event.Header{TsNs: 2000 + seq*100 + uint64(i), Pid: 10, Tid: 10, Type: event.TypeSyscall}},
			ProcName: "cat", ProcExePath: "/bin/cat", ProcCmdline: "cat x", ProcPPid: 1, Source: event.SourceState,
		})
	}
	for i := 0; i < lost; i++ {
		b.Events = append(b.Events, event.Enriched{
			Event:   event.Event{Header: event.Header{TsNs: 2050 + seq*100 + uint64(i), Pid: 20, Tid: 20, Type: event.TypeSyscall}},
			Missing: event.AllFields, Reason: event.ReasonForkDropped,
		})
	}
	return b
}

func encode(t *testing.T, b *event.EnrichedBatch) []byte {
	t.Helper()
	data, err := event.NewCodec().EncodeEnriched(b)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), data...)
}

// stats returns sensor stats with a short arrival series.
func stats(final bool) *event.Stats {
	st := &event.Stats{Node: node, BootID: "boot", SensorStartNs: 1000, LastBatchSeq: 2, Batches: 2, Final: final,
		Ring:        event.RingConfig{SizeBytes: 1 << 20, Layout: "shared"},
		RecordBytes: [event.NumCategories]float64{96, 48}, DrainRate: 2e6}
	for i := 0; i < 100; i++ {
		s := event.Sample{TsNs: 1_000_000 + uint64(i)*10_000_000, FillBytes: i * 100}
		s.Attempted = [event.NumCategories]uint64{uint64(i * 10), uint64(i * 1000)}
		s.Delivered = s.Attempted
		st.Series = append(st.Series, s)
	}
	last := st.Series[len(st.Series)-1]
	st.Counters = event.Counters{Attempted: last.Attempted, Delivered: last.Delivered}
	return st
}

func statsJSON(t *testing.T, st *event.Stats) []byte {
	t.Helper()
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// summaryJSON is the subset of /api/summary the tests read, by JSON name.
type summaryJSON struct {
	Node     string `json:"node"`
	Analyzer struct {
		Events              uint64            `json:"events"`
		Missing             uint64            `json:"missing"`
		ByReason            map[string]uint64 `json:"by_reason"`
		ByField             map[string]uint64 `json:"by_field"`
		LifecycleAttributed uint64            `json:"lifecycle_attributed"`
		Batches             uint64            `json:"batches"`
		DuplicateBatches    uint64            `json:"duplicate_batches"`
	} `json:"analyzer"`
	Sensor struct {
		Final            bool   `json:"final"`
		DroppedLifecycle uint64 `json:"dropped_lifecycle"`
	} `json:"sensor"`
	Enricher struct {
		Events uint64 `json:"events"`
	} `json:"enricher"`
}

func get(t *testing.T, h http.Handler, url string) (int, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", url, ct)
	}
	return rec.Code, rec.Body.Bytes()
}

func decodeSummary(t *testing.T, body []byte) summaryJSON {
	t.Helper()
	var s summaryJSON
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, body)
	}
	// The names are the interface: make sure they are there, not just zero.
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err == nil {
		for _, k := range []string{"events", "missing", "by_reason"} {
			if _, ok := raw["analyzer"][k]; !ok {
				t.Errorf("summary JSON lacks analyzer.%s", k)
			}
		}
	}
	return s
}

func TestHandleDirect(t *testing.T) {
	a := analyzer.New(analyzer.Config{})
	h := a.Handler()

	// Before anything: recommendation has no stats.
	if code, body := get(t, h, "/api/recommendation"); code != http.StatusServiceUnavailable {
		t.Errorf("recommendation before stats: %d %s, want 503", code, body)
	}

	if err := a.HandleEnriched(bus.EnrichedSubject(node), encode(t, enrichedBatch(1, 5, 2, 1))); err != nil {
		t.Fatal(err)
	}
	if err := a.HandleEnriched(bus.EnrichedSubject(node), encode(t, enrichedBatch(2, 3, 1, 1))); err != nil {
		t.Fatal(err)
	}
	// Redelivery of batch 2: not counted again.
	if err := a.HandleEnriched(bus.EnrichedSubject(node), encode(t, enrichedBatch(2, 3, 1, 1))); err != nil {
		t.Fatal(err)
	}

	code, body := get(t, h, "/api/summary")
	if code != http.StatusOK {
		t.Fatalf("summary: %d %s", code, body)
	}
	s := decodeSummary(t, body)
	if s.Node != node || s.Analyzer.Events != 11 || s.Analyzer.Missing != 3 || s.Analyzer.ByReason["fork_dropped"] != 3 ||
		s.Analyzer.LifecycleAttributed != 3 || s.Analyzer.Batches != 2 || s.Analyzer.DuplicateBatches != 1 {
		t.Errorf("summary = %+v; want 11 events, 3 missing (fork_dropped), 2 batches, 1 duplicate", s)
	}
	if s.Analyzer.ByField["proc.name"] != 3 || s.Analyzer.ByField["user.uid"] != 3 {
		t.Errorf("by_field = %v", s.Analyzer.ByField)
	}
	if code, body := get(t, h, "/api/summary?node="+node); code != http.StatusOK || decodeSummary(t, body).Analyzer.Events != 11 {
		t.Errorf("summary?node=%s: %d %s", node, code, body)
	}
	if code, body := get(t, h, "/api/summary?node=unknown"); code != http.StatusNotFound || !strings.Contains(string(body), "unknown") {
		t.Errorf("summary?node=unknown: %d %s, want 404", code, body)
	}
	if code, _ := get(t, h, "/api/recommendation?node=unknown"); code != http.StatusNotFound {
		t.Errorf("recommendation?node=unknown: %d, want 404", code)
	}
	// Batches but still no stats: no load to model.
	if code, body := get(t, h, "/api/recommendation"); code != http.StatusServiceUnavailable {
		t.Errorf("recommendation before stats: %d %s, want 503", code, body)
	}

	if err := a.HandleStats(statsJSON(t, stats(true))); err != nil {
		t.Fatal(err)
	}
	code, body = get(t, h, "/api/recommendation?node="+node)
	if code != http.StatusOK {
		t.Fatalf("recommendation after stats: %d %s", code, body)
	}
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(body, &rec); err != nil {
		t.Fatalf("recommendation is not JSON: %v", err)
	}
	var preset int
	if err := json.Unmarshal(rec["buf_size_preset"], &preset); err != nil {
		t.Fatalf("recommendation lacks a numeric buf_size_preset: %s", body)
	}
	if preset < 1 || preset > 10 {
		t.Errorf("buf_size_preset = %d, want a Falco preset 1..10", preset)
	}
	// Always an answer: a size and a layout, whatever the verdict.
	var size int
	var layout string
	if json.Unmarshal(rec["size_bytes"], &size) != nil || json.Unmarshal(rec["layout"], &layout) != nil || size <= 0 || layout == "" {
		t.Errorf("recommendation without a size and a layout: %s", body)
	}
	if code, body := get(t, h, "/api/nodes"); code != http.StatusOK || strings.TrimSpace(string(body)) != `[
  "`+node+`"
]` {
		t.Errorf("nodes: %d %s", code, body)
	}
	if s := a.Summary(node); !s.Sensor.Final || s.Ring.SizeBytes != 1<<20 {
		t.Errorf("after final stats: sensor final %v ring %+v", s.Sensor.Final, s.Ring)
	}
	if len(a.BadInput()) != 0 {
		t.Errorf("BadInput = %v after good input only", a.BadInput())
	}
}

func TestBadInputCountedAndSurvived(t *testing.T) {
	a := analyzer.New(analyzer.Config{})
	if err := a.HandleEnriched(bus.EnrichedSubject(node), []byte("garbage, not msgpack")); err == nil {
		t.Error("HandleEnriched accepted garbage")
	}
	if err := a.HandleStats([]byte(`{"node": "n1", "counters": `)); err == nil {
		t.Error("HandleStats accepted truncated JSON")
	}
	if err := a.HandleStats([]byte(`{"node": "a.b"}`)); err == nil {
		t.Error("HandleStats accepted an invalid node name")
	}
	// A batch claiming another node than its subject.
	if err := a.HandleEnriched(bus.EnrichedSubject("other"), encode(t, enrichedBatch(1, 1, 0, 0))); err == nil {
		t.Error("HandleEnriched accepted a node mismatch")
	}
	bad := a.BadInput()
	if bad["malformed"] != 3 || bad["node_mismatch"] != 1 || len(bad) != 2 {
		t.Errorf("BadInput = %v, want malformed 3, node_mismatch 1", bad)
	}
	// Nothing of the bad input was counted as events.
	if s := a.Summary(""); s.Analyzer.Events != 0 {
		t.Errorf("bad input counted %d events", s.Analyzer.Events)
	}

	// Good input afterwards is counted as usual.
	if err := a.HandleEnriched(bus.EnrichedSubject(node), encode(t, enrichedBatch(1, 4, 1, 1))); err != nil {
		t.Fatal(err)
	}
	if err := a.HandleStats(statsJSON(t, stats(false))); err != nil {
		t.Fatal(err)
	}
	s := a.Summary(node)
	if s.Analyzer.Events != 5 || s.Analyzer.Missing != 1 || s.Analyzer.ByReason["fork_dropped"] != 1 {
		t.Errorf("after bad input, a good batch counts %+v", s.Analyzer)
	}
	if _, err := a.Recommendation(node); err != nil {
		t.Errorf("Recommendation after good stats: %v", err)
	}
	if got := a.BadInput()["malformed"]; got != 3 {
		t.Errorf("good input changed BadInput: %d", got)
	}
}

func TestRunOverJetStream(t *testing.T) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := bus.Connect(srv.URL(), "analyzer-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second) // hang guard only
	defer cancel()
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{Memory: true}); err != nil {
		t.Fatal(err)
	}
	pub := bus.JetStreamPublisher{JS: js}
	var enriched uint64
	for seq := uint64(1); seq <= 3; seq++ {
		b := enrichedBatch(seq, 10, int(seq), 2)
		// As the enricher does: its running count for the sensor run.
		enriched += uint64(len(b.Events))
		h := nats.Header{}
		h.Set(bus.HeaderEnricherEvents, strconv.FormatUint(enriched, 10))
		if err := pub.Publish(ctx, bus.Msg{Subject: bus.EnrichedSubject(node), ID: b.MsgID(), Header: h, Data: encode(t, b), Schema: event.SchemaVersion}); err != nil {
			t.Fatal(err)
		}
	}
	// Poison in both streams: terminated and counted, never blocking.
	if err := pub.Publish(ctx, bus.Msg{Subject: bus.EnrichedSubject(node), Data: []byte{0xc1}}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, bus.Msg{Subject: bus.StatsSubject(node), Data: []byte("{not json")}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, bus.Msg{Subject: bus.StatsSubject(node), Data: statsJSON(t, stats(true))}); err != nil {
		t.Fatal(err)
	}

	a := analyzer.New(analyzer.Config{JS: js, Durable: "ana-test", HTTPAddr: "127.0.0.1:0"})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	defer func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()

	for _, c := range a.Specs() {
		if err := bus.WaitConsumed(ctx, js, c.Stream, c.Durable); err != nil {
			t.Fatalf("analyzer did not consume: %v", err)
		}
	}
	addr := a.HTTPAddr()
	if addr == "" || strings.HasSuffix(addr, ":0") {
		t.Fatalf("HTTPAddr = %q after Run started consuming, want the bound address", addr)
	}

	resp, err := http.Get("http://" + addr + "/api/summary")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/summary: %d %s", resp.StatusCode, body)
	}
	s := decodeSummary(t, body)
	if s.Analyzer.Events != 36 || s.Analyzer.Missing != 6 || s.Analyzer.ByReason["fork_dropped"] != 6 || s.Analyzer.Batches != 3 {
		t.Errorf("summary over JetStream = %+v; want 36 events, 6 missing fork_dropped, 3 batches", s.Analyzer)
	}
	if !s.Sensor.Final || s.Sensor.DroppedLifecycle != 2 {
		t.Errorf("sensor part: final %v dropped_lifecycle %d", s.Sensor.Final, s.Sensor.DroppedLifecycle)
	}

	resp, err = http.Get("http://" + addr + "/api/summary?node=unknown")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /api/summary?node=unknown: %d, want 404", resp.StatusCode)
	}
	resp, err = http.Get("http://" + addr + "/api/recommendation?node=" + node)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"buf_size_preset"`) {
		t.Errorf("GET /api/recommendation: %d %s", resp.StatusCode, body)
	}

	if s.Enricher.Events != 36 {
		t.Errorf("enricher.events = %d, want 36 from the batches' %s header", s.Enricher.Events, bus.HeaderEnricherEvents)
	}
	if bad := a.BadInput(); bad["malformed"] != 2 {
		t.Errorf("BadInput = %v, want the 2 poison messages as malformed", bad)
	}
	cs := a.ConsumerStats()
	for _, st := range []string{bus.StreamEnriched, bus.StreamStats} {
		if cs[st].Poisoned["malformed"] != 1 || cs[st].DeadLettered != 1 {
			t.Errorf("consumer of %s: %+v, want 1 malformed dead letter", st, cs[st])
		}
	}
	dls, err := bus.ListDeadLetters(ctx, js, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 2 || dls[0].Reason != "malformed" || dls[1].Reason != "malformed" {
		t.Errorf("DLQ = %+v, want the two poison messages as malformed", dls)
	}
}

func TestRunNeedsJetStream(t *testing.T) {
	if err := analyzer.New(analyzer.Config{}).Run(context.Background()); err == nil {
		t.Error("Run without JetStream returned nil")
	}
}

func TestHTTPBearerToken(t *testing.T) {
	a := analyzer.New(analyzer.Config{HTTPToken: "t0ken"})
	h := a.Handler()
	if code, _ := get(t, h, "/api/summary"); code != http.StatusUnauthorized {
		t.Errorf("no token: status %d, want 401", code)
	}
	for _, auth := range []string{"Bearer wrong", "t0ken", "Bearer t0ken2", "Basic dDBrZW4="} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/api/summary", nil)
		req.Header.Set("Authorization", auth)
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: status %d, want 401", auth, rec.Code)
		}
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api/summary", nil)
	req.Header.Set("Authorization", "Bearer t0ken")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("right token: status %d, want 200", rec.Code)
	}
}

func TestHTTPBeyondLoopbackNeedsToken(t *testing.T) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := bus.Connect(srv.URL(), "analyzer-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	err = analyzer.New(analyzer.Config{JS: js, HTTPAddr: "0.0.0.0:0"}).Run(context.Background())
	if !errors.Is(err, analyzer.ErrHTTPExposed) {
		t.Errorf("HTTP on 0.0.0.0 without a token: err = %v, want ErrHTTPExposed", err)
	}
	if analyzer.DefaultHTTPAddr[:10] != "127.0.0.1:" {
		t.Errorf("DefaultHTTPAddr = %q, want loopback", analyzer.DefaultHTTPAddr)
	}
}
