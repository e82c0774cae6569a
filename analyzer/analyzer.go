// Package analyzer flags enriched events with missing metadata, counts them
// per node by field and by reason, ties them to the sensor's ring drops,
// checks flood processes against ground truth, and recommends a ring size
// from the node's own measured load. It serves the summary over HTTP.
package analyzer

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/ringwise/ringwise/analyzer/alert"
	"github.com/ringwise/ringwise/analyzer/report"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringmodel"
	"github.com/ringwise/ringwise/services/telemetry"
)

// DefaultDurable is the analyzer's durable consumer name.
const DefaultDurable = "ringwise-analyzer"

// DefaultHTTPAddr is where the analyzer serves HTTP: loopback only.
const DefaultHTTPAddr = "127.0.0.1:8080"

// EnvHTTPToken is the environment variable that may carry the HTTP bearer
// token (instead of a token file).
const EnvHTTPToken = "RINGWISE_HTTP_TOKEN"

// ErrHTTPExposed is returned by Run when HTTP would listen beyond loopback
// without a bearer token.
var ErrHTTPExposed = errors.New("refusing to serve HTTP beyond loopback without a bearer token")

// maxStatsPerNode bounds the stats messages kept for the ring model (about
// an hour at one per second).
const maxStatsPerNode = 3600

// Config configures an analyzer.
type Config struct {
	JS      jetstream.JetStream
	Durable string // default DefaultDurable
	// FromSeq, when set, gives per stream (RINGWISE_ENRICHED,
	// RINGWISE_STATS) the first sequence to read; absent streams are read
	// from the start.
	FromSeq map[string]uint64
	// HTTPAddr serves /api/summary and /api/recommendation ("" = no HTTP).
	// Beyond loopback it needs HTTPToken.
	HTTPAddr string
	// HTTPToken, when set, is the bearer token every HTTP request must
	// carry (Authorization: Bearer TOKEN).
	HTTPToken string
	// Truth, when set, checks these processes against their ground truth.
	Truth []report.TruthProc
	// Recommend configures the live recommendation.
	Recommend ringmodel.Options
	// OnBatch, when set, sees every enriched batch (e.g. to print events).
	// It runs on the consumer goroutine; the batch is reused afterwards.
	OnBatch func(*event.EnrichedBatch)
	Logger  *slog.Logger
	// Tracing traces each enriched batch's processing, in the consume loop
	// (nil: no tracing).
	Tracing *telemetry.Tracing
	// Metrics, when set, is served as GET /metrics beside the API.
	Metrics http.Handler
	// NC publishes alerts on ringwise.alerts (nil: alerts are only logged
	// and kept, see Alerts), and receives the services' own counters on
	// ringwise.svc.> for /api/summary.
	NC *nats.Conn
	// DropAlert configures the drop alert (Falco's syscall_event_drops);
	// a zero Rate means alert.DefaultDropConfig().
	DropAlert alert.Config
	// MetadataAlert configures the metadata-loss alert (its threshold is
	// Recommend.TargetPct); a zero Rate means alert.DefaultMetadataConfig().
	MetadataAlert alert.Config
}

// Analyzer aggregates enriched batches and stats.
type Analyzer struct {
	cfg   Config
	log   *slog.Logger
	codec *event.Codec
	batch event.EnrichedBatch

	mu       sync.Mutex
	agg      *report.Aggregator
	truth    *report.TruthChecker
	stats    map[string][]event.Stats // per node, current sensor run
	badInput map[string]uint64
	httpAddr string

	consumers []*bus.Consumer // set by Run

	dropAlerts  map[string]*alert.Drop
	metaAlerts  map[string]*alert.Metadata
	alerts      []alert.Alert
	alertCounts map[alertKey]uint64
	recommended map[string]ringmodel.Recommendation
	recAt       time.Time
	metricsOn   bool // RegisterMetrics was called: keep the recommendation gauge fresh
}

// New returns an analyzer.
func New(cfg Config) *Analyzer {
	if cfg.Durable == "" {
		cfg.Durable = DefaultDurable
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Tracing == nil {
		cfg.Tracing = telemetry.Disabled()
	}
	if cfg.DropAlert.Rate == 0 {
		cfg.DropAlert = alert.DefaultDropConfig()
	}
	if cfg.MetadataAlert.Rate == 0 {
		cfg.MetadataAlert = alert.DefaultMetadataConfig()
	}
	a := &Analyzer{cfg: cfg, log: cfg.Logger, codec: event.NewCodec(), agg: report.NewAggregator(),
		stats: map[string][]event.Stats{}, badInput: map[string]uint64{},
		dropAlerts: map[string]*alert.Drop{}, metaAlerts: map[string]*alert.Metadata{},
		alertCounts: map[alertKey]uint64{}, recommended: map[string]ringmodel.Recommendation{}}
	if len(cfg.Truth) > 0 {
		a.truth = report.NewTruthChecker(cfg.Truth)
	}
	return a
}

// Run consumes RINGWISE_ENRICHED and RINGWISE_STATS until ctx is done, and
// serves HTTP if configured.
func (a *Analyzer) Run(ctx context.Context) error {
	if a.cfg.JS == nil {
		return errors.New("analyzer: no JetStream context")
	}
	if a.cfg.HTTPAddr != "" {
		host, _, err := net.SplitHostPort(a.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("analyzer: HTTP address %q: %w", a.cfg.HTTPAddr, err)
		}
		if !bus.IsLoopback(host) && a.cfg.HTTPToken == "" {
			return fmt.Errorf("analyzer: HTTP on %s: %w (set a token file or $%s)", a.cfg.HTTPAddr, ErrHTTPExposed, EnvHTTPToken)
		}
		ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("analyzer: listen on %s: %w", a.cfg.HTTPAddr, err)
		}
		a.mu.Lock()
		a.httpAddr = ln.Addr().String()
		a.mu.Unlock()
		srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		a.log.Info("analyzer HTTP", "addr", ln.Addr().String())
	}
	var consumers []*bus.Consumer
	for _, c := range []struct {
		spec bus.ConsumerSpec
		h    bus.Handler
		opts []bus.ConsumerOption
	}{
		// Enriched batches carry the enricher's trace context; stats
		// carry none and are not traced.
		{a.Specs()[0], a.handleEnriched, []bus.ConsumerOption{bus.WithTracing(a.cfg.Tracing)}},
		{a.Specs()[1], a.handleStats, nil},
	} {
		cons, err := bus.NewConsumer(a.cfg.JS, c.spec, c.h, append(c.opts, bus.WithLogger(a.log))...)
		if err != nil {
			return fmt.Errorf("analyzer: %w", err)
		}
		consumers = append(consumers, cons)
	}
	a.mu.Lock()
	a.consumers = consumers
	a.mu.Unlock()
	// Both loops run until ctx is done; if one fails, the other stops too.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go a.checkPeriodically(runCtx)
	errs := make(chan error, len(consumers))
	for _, c := range consumers {
		go func() {
			err := c.Run(runCtx)
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	var all []error
	for range consumers {
		if err := <-errs; err != nil {
			all = append(all, fmt.Errorf("analyzer: %w", err))
		}
	}
	return errors.Join(all...)
}

// checkPeriodically runs the metadata-loss check and refreshes the
// recommendation gauge until ctx is done.
func (a *Analyzer) checkPeriodically(ctx context.Context) {
	alertTick := time.NewTicker(MetadataCheckInterval)
	defer alertTick.Stop()
	recTick := time.NewTicker(recommendEvery)
	defer recTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-alertTick.C:
			a.CheckAlerts()
		case now := <-recTick.C:
			a.refreshRecommendations(now)
		}
	}
}

// statsDurableSuffix names the stats consumer after the enriched one.
const statsDurableSuffix = "-stats"

// Specs are the consumers the analyzer runs: enriched batches, then stats.
func (a *Analyzer) Specs() []bus.ConsumerSpec {
	return []bus.ConsumerSpec{
		// An enriched batch carries each event's names and command line,
		// so it may exceed NATS's default 1 MiB; the decoder's limit rules.
		{Stream: bus.StreamEnriched, Durable: a.cfg.Durable, StartSeq: a.cfg.FromSeq[bus.StreamEnriched], Schema: event.SchemaVersion,
			MaxBytes: event.MaxBatchBytes},
		{Stream: bus.StreamStats, Durable: a.cfg.Durable + statsDurableSuffix, StartSeq: a.cfg.FromSeq[bus.StreamStats]},
	}
}

// ConsumerStats returns the consume loops' counters by stream, once Run
// has started.
func (a *Analyzer) ConsumerStats() map[string]bus.ConsumerStats {
	a.mu.Lock()
	cs := a.consumers
	a.mu.Unlock()
	out := map[string]bus.ConsumerStats{}
	for _, c := range cs {
		out[c.Spec().Stream] = c.Stats()
	}
	return out
}

// HTTPAddr returns the address the HTTP server listens on, once running.
func (a *Analyzer) HTTPAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.httpAddr
}

// HandleEnriched processes one enriched batch message.
func (a *Analyzer) HandleEnriched(subject string, data []byte) error {
	k, node, err := bus.ParseSubject(subject)
	if err != nil || k != bus.KindEnriched {
		err = fmt.Errorf("enriched batch on %s: %w: %v", subject, event.ErrMalformed, err)
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.bad(bus.ReasonBadSubject, err, subject)
	}
	return a.handleEnriched(context.Background(), bus.Delivery{Subject: subject, Kind: k, Node: node, Data: data})
}

func (a *Analyzer) handleEnriched(ctx context.Context, d bus.Delivery) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.codec.DecodeEnriched(d.Data, &a.batch); err != nil {
		return a.bad(event.ErrorKind(err), err, d.Subject)
	}
	if d.Node != a.batch.Node {
		err := fmt.Errorf("enriched batch on %s claims node %q: %w", d.Subject, a.batch.Node, event.ErrMalformed)
		return a.bad("node_mismatch", err, d.Subject)
	}
	telemetry.SetEvents(trace.SpanFromContext(ctx), len(a.batch.Events))
	if v := d.Header.Get(bus.HeaderRawStreamSeq); v != "" {
		if pos, err := strconv.ParseUint(v, 10, 64); err == nil && !a.agg.ObservePosition(a.batch.Node, d.Header.Get(bus.HeaderRawStream), pos) {
			return nil // the same raw batch enriched twice: counted once
		}
	}
	a.agg.AddBatch(&a.batch)
	if v := d.Header.Get(bus.HeaderEnricherEvents); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			a.agg.AddEnricherEvents(a.batch.Node, a.batch.BootID, a.batch.SensorStartNs, n)
		}
	}
	if a.truth != nil {
		a.truth.AddBatch(&a.batch)
	}
	if a.cfg.OnBatch != nil {
		a.cfg.OnBatch(&a.batch)
	}
	return nil
}

// HandleStats processes one stats message.
func (a *Analyzer) HandleStats(data []byte) error {
	return a.handleStats(context.Background(), bus.Delivery{Data: data})
}

// handleStats processes stats; with d.Node set, the stats must be that node's.
func (a *Analyzer) handleStats(_ context.Context, d bus.Delivery) error {
	var st event.Stats
	if err := json.Unmarshal(d.Data, &st); err != nil {
		err = fmt.Errorf("stats: %w: %v", event.ErrMalformed, err)
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.bad("malformed", err, "stats")
	}
	if err := bus.ValidNode(st.Node); err != nil {
		err = fmt.Errorf("stats: %w: %v", event.ErrMalformed, err)
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.bad("malformed", err, "stats")
	}
	if d.Node != "" && d.Node != st.Node {
		err := fmt.Errorf("stats on %s claim node %q: %w", d.Subject, st.Node, event.ErrMalformed)
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.bad("node_mismatch", err, d.Subject)
	}
	a.mu.Lock()
	a.agg.AddStats(&st)
	list := a.stats[st.Node]
	if len(list) > 0 && (list[0].SensorStartNs != st.SensorStartNs || list[0].BootID != st.BootID) {
		list = nil // a new sensor run: its load replaces the old one
	}
	if len(list) >= maxStatsPerNode {
		list = list[1:]
	}
	a.stats[st.Node] = append(list, st)
	al, fire := a.observeDrops(&st)
	a.mu.Unlock()
	if fire {
		a.emit(al, a.cfg.DropAlert)
	}
	return nil
}

// bad counts bad input of kind and returns err marked as poison with that
// reason. The caller holds mu.
func (a *Analyzer) bad(kind string, err error, where string) error {
	a.badInput[kind]++
	a.log.Warn("bad input", "kind", kind, "where", where, "err", err)
	return bus.PoisonAs(kind, err)
}

// BadInput returns the bad-input counters by kind.
func (a *Analyzer) BadInput() map[string]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]uint64, len(a.badInput))
	for k, v := range a.badInput {
		out[k] = v
	}
	return out
}

// Summary returns the report for node ("" = merged over all nodes).
func (a *Analyzer) Summary(node string) report.Summary {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.agg.Summary(node)
	if a.truth != nil {
		s.Truth = a.truth.Result()
	}
	return s
}

// Load returns the measured load of node's current sensor run.
func (a *Analyzer) Load(node string) ringmodel.Load {
	a.mu.Lock()
	defer a.mu.Unlock()
	return ringmodel.LoadFromStats(a.stats[node])
}

// Recommendation recommends a ring for node from its measured load,
// calibrated by the enricher's attribution of missing metadata to drops.
func (a *Analyzer) Recommendation(node string) (ringmodel.Recommendation, error) {
	a.mu.Lock()
	if node == "" {
		if nodes := a.agg.Nodes(); len(nodes) > 0 {
			node = nodes[0]
		}
	}
	stats := a.stats[node]
	sum := a.agg.Summary(node)
	a.mu.Unlock()
	if len(stats) == 0 {
		return ringmodel.Recommendation{}, fmt.Errorf("no stats from node %q yet", node)
	}
	// The model's calibration sequence, as in the lab, over the node's one
	// run: its current ring is a measured ring, which outranks the model.
	last := stats[len(stats)-1].Ring
	as := ringmodel.Assess([]ringmodel.Run{{
		Ring:                       ringmodel.Ring{SizeBytes: last.SizeBytes, LifecycleSizeBytes: last.LifecycleSizeBytes, Layout: last.Layout},
		Load:                       ringmodel.LoadFromStats(stats),
		LifecycleDropped:           float64(sum.Sensor.DroppedLifecycle),
		MissingLifecycleAttributed: float64(sum.Analyzer.LifecycleAttributed),
		Delivered:                  float64(sum.Sensor.Delivered),
		MissingPct:                 sum.Analyzer.MissingPct,
		// Shedding changes the load: its measurement is not of a plain ring.
		Modified: last.Shedding,
	}}, a.cfg.Recommend)
	return as.Recommendation, nil
}

// Handler serves /api/summary[?node=N], /api/recommendation[?node=N] and
// /api/nodes; with Config.HTTPToken, only to requests that carry it.
func (a *Analyzer) Handler() http.Handler {
	mux := a.mux()
	if a.cfg.HTTPToken == "" {
		return mux
	}
	want := []byte("Bearer " + a.cfg.HTTPToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ringwise"`)
			httpError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (a *Analyzer) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/summary", func(w http.ResponseWriter, r *http.Request) {
		node := r.URL.Query().Get("node")
		if node != "" && !a.knows(node) {
			httpError(w, http.StatusNotFound, fmt.Sprintf("unknown node %q", node))
			return
		}
		writeJSON(w, a.Summary(node))
	})
	mux.HandleFunc("GET /api/recommendation", func(w http.ResponseWriter, r *http.Request) {
		node := r.URL.Query().Get("node")
		if node != "" && !a.knows(node) {
			httpError(w, http.StatusNotFound, fmt.Sprintf("unknown node %q", node))
			return
		}
		rec, err := a.Recommendation(node)
		if err != nil {
			httpError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		writeJSON(w, rec)
	})
	if a.cfg.Metrics != nil {
		mux.Handle("GET /metrics", a.cfg.Metrics)
	}
	mux.HandleFunc("GET /api/nodes", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		nodes := a.agg.Nodes()
		a.mu.Unlock()
		writeJSON(w, nodes)
	})
	return mux
}

func (a *Analyzer) knows(node string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range a.agg.Nodes() {
		if n == node {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// SetRecommendTarget sets the recommendation target in percent.
func (a *Analyzer) SetRecommendTarget(pct float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cfg.Recommend.TargetPct = pct
}
