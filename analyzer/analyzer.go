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
	"strings"
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
	"github.com/ringwise/ringwise/services/ringspec"
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

// maxHeldStats bounds the stats of a not yet confirmed sensor run held per
// node; maxRunsPerNode the runs remembered per node.
const (
	maxHeldStats   = 64
	maxRunsPerNode = 64
)

// Node limits of an analyzer (see Config).
const (
	// DefaultMaxNodes caps the nodes the analyzer keeps (each costs its
	// counters, up to maxStatsPerNode stats messages and its alerts).
	DefaultMaxNodes = 1024
	// DefaultNodeIdle is how long a silent node is kept when room is needed.
	DefaultNodeIdle = 30 * time.Minute
	// DefaultMaxDeliver bounds the deliveries of one enriched batch or
	// stats message, as the enricher bounds raw ones: a message delivered
	// that often without being settled (it failed, or the analyzer stopped
	// or crashed while handling it) goes to the DLQ as "max_deliver" and
	// the stream goes on, instead of the server giving up on it silently.
	DefaultMaxDeliver = 100
	// DefaultAckWait is how long JetStream waits for the analyzer's ack
	// before it redelivers. It bounds how late a delivery lost in flight
	// arrives: when a consumer's leader is killed mid-pull, what it had
	// sent but the analyzer never received is redelivered only after the
	// ack wait, and the node's summary is short until then. A batch takes
	// the analyzer microseconds and a pull holds at most
	// bus.DefaultPullBatch of them, so 15 s is far above any handling time
	// (bus.DefaultAckWait, 2 min, is for handlers that publish).
	DefaultAckWait = 15 * time.Second
)

type runID struct {
	boot  string
	start uint64
}

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
	// MaxNodes caps the nodes kept (default DefaultMaxNodes); NodeIdle is
	// how long a silent node keeps its place when room is needed (default
	// DefaultNodeIdle). A new node with no room is refused as "node_cap".
	MaxNodes int
	NodeIdle time.Duration
	// MaxDeliver bounds deliveries per message (default DefaultMaxDeliver;
	// see bus.ConsumerSpec.MaxDeliver).
	MaxDeliver int
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
	limits   map[string]uint64
	lastSeen map[string]time.Time            // per node kept
	runs     map[string]map[runID]bool       // per node: runs with a batch seen
	held     map[string][]event.Stats        // per node: stats of runs not seen yet
	services map[string]report.ServiceHealth // other services' reports, by name
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
	if cfg.MaxNodes <= 0 {
		cfg.MaxNodes = DefaultMaxNodes
	}
	if cfg.NodeIdle <= 0 {
		cfg.NodeIdle = DefaultNodeIdle
	}
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = DefaultMaxDeliver
	}
	if cfg.DropAlert.Rate == 0 {
		cfg.DropAlert = alert.DefaultDropConfig()
	}
	if cfg.MetadataAlert.Rate == 0 {
		cfg.MetadataAlert = alert.DefaultMetadataConfig()
	}
	a := &Analyzer{cfg: cfg, log: cfg.Logger, codec: event.NewCodec(), agg: report.NewAggregator(),
		stats: map[string][]event.Stats{}, badInput: map[string]uint64{}, limits: map[string]uint64{},
		lastSeen: map[string]time.Time{}, runs: map[string]map[runID]bool{}, held: map[string][]event.Stats{},
		services:   map[string]report.ServiceHealth{},
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
	if a.cfg.NC != nil {
		sub, err := a.cfg.NC.Subscribe(bus.SubjectService+">", a.serviceHealth)
		if err != nil {
			return fmt.Errorf("analyzer: subscribe %s>: %w", bus.SubjectService, err)
		}
		defer sub.Unsubscribe()
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
			MaxBytes: event.MaxBatchBytes, MaxDeliver: a.cfg.MaxDeliver, AckWait: DefaultAckWait},
		{Stream: bus.StreamStats, Durable: a.cfg.Durable + statsDurableSuffix, StartSeq: a.cfg.FromSeq[bus.StreamStats],
			MaxDeliver: a.cfg.MaxDeliver, AckWait: DefaultAckWait},
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
		return a.bad(bus.ReasonBadSubject, err, bus.StreamEnriched, bus.Delivery{Subject: subject})
	}
	return a.handleEnriched(context.Background(), bus.Delivery{Subject: subject, Kind: k, Node: node, Data: data})
}

func (a *Analyzer) handleEnriched(ctx context.Context, d bus.Delivery) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.codec.DecodeEnriched(d.Data, &a.batch); err != nil {
		return a.bad(event.ErrorKind(err), err, bus.StreamEnriched, d)
	}
	if d.Node != a.batch.Node {
		err := fmt.Errorf("enriched batch on %s claims node %q: %w", d.Subject, a.batch.Node, event.ErrMalformed)
		return a.bad("node_mismatch", err, bus.StreamEnriched, d)
	}
	if err := a.admit(a.batch.Node); err != nil {
		return a.bad("node_cap", err, bus.StreamEnriched, d)
	}
	if d.Header.Get(bus.HeaderRunUnconfirmed) == "" {
		// A batch of a run the enricher has not adopted (a forged boot id,
		// say) does not make the run real: its held stats stay held.
		a.seenRun(a.batch.Node, a.batch.BootID, a.batch.SensorStartNs)
	}
	telemetry.SetEvents(trace.SpanFromContext(ctx), len(a.batch.Events))
	if v := d.Header.Get(bus.HeaderRawStreamSeq); v != "" {
		if pos, err := strconv.ParseUint(v, 10, 64); err == nil && !a.agg.ObservePosition(a.batch.Node, d.Header.Get(bus.HeaderRawStream), pos, d.StreamSeq, d.Delivered > 1) {
			return nil // the same raw batch enriched twice: counted once
		}
	}
	a.agg.AddBatch(&a.batch)
	if lb, le, ok := bus.ParseCount2(d.Header.Get(bus.HeaderRetentionLost)); ok {
		a.agg.AddRetentionLost(a.batch.Node, lb, le)
	}
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
		return a.bad("malformed", err, bus.StreamStats, d)
	}
	if err := bus.ValidNode(st.Node); err != nil {
		err = fmt.Errorf("stats: %w: %v", event.ErrMalformed, err)
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.bad("malformed", err, bus.StreamStats, d)
	}
	if d.Node != "" && d.Node != st.Node {
		err := fmt.Errorf("stats on %s claim node %q: %w", d.Subject, st.Node, event.ErrMalformed)
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.bad("node_mismatch", err, bus.StreamStats, d)
	}
	a.mu.Lock()
	if err := a.admit(st.Node); err != nil {
		defer a.mu.Unlock()
		return a.bad("node_cap", err, bus.StreamStats, d)
	}
	list := a.stats[st.Node]
	if len(list) > 0 && (list[0].SensorStartNs != st.SensorStartNs || list[0].BootID != st.BootID) {
		cur := list[0]
		if cur.BootID == st.BootID && st.SensorStartNs < cur.SensorStartNs {
			defer a.mu.Unlock()
			err := fmt.Errorf("stats on %s of sensor run %d, older than the current run %d: %w", d.Subject, st.SensorStartNs, cur.SensorStartNs, event.ErrMalformed)
			return a.bad("stats_stale_run", err, bus.StreamStats, d)
		}
		if !a.runSeen(st.Node, st.BootID, st.SensorStartNs) {
			// Another run than the current one, of which no batch came yet:
			// held until one does (a run is real when its batches are).
			a.holdStats(st)
			a.mu.Unlock()
			return nil
		}
		list = nil // a new sensor run: its load replaces the old one
	}
	if n := len(list); n > 0 && backwards(&st, &list[n-1]) {
		if n >= 2 && !backwards(&st, &list[n-2]) {
			// In line with the one before the last: the last jumped ahead
			// of its run, and is taken back.
			a.limits["stats_outliers_removed"]++
			a.log.Warn("stats outlier taken back: it ran ahead of its successor", "node", st.Node,
				"stream", bus.StreamStats, "subject", d.Subject, "seq", d.StreamSeq)
			list = list[:n-1]
			a.agg.ReplaceRunStats(st.Node, st.BootID, st.SensorStartNs, list)
		} else {
			defer a.mu.Unlock()
			err := fmt.Errorf("stats on %s: counters go backwards within sensor run %d: %w", d.Subject, st.SensorStartNs, event.ErrMalformed)
			return a.bad("stats_backwards", err, bus.StreamStats, d)
		}
	}
	a.agg.AddStats(&st)
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
func (a *Analyzer) bad(kind string, err error, stream string, d bus.Delivery) error {
	a.badInput[kind]++
	a.log.Warn("bad input", "kind", kind, "stream", stream, "subject", d.Subject, "seq", d.StreamSeq, "err", err)
	return bus.PoisonAs(kind, err)
}

// maxServices bounds the services whose health reports are kept.
const maxServices = 64

// serviceHealth keeps a service's health report from
// ringwise.svc.<role>.<instance>.
func (a *Analyzer) serviceHealth(m *nats.Msg) {
	name := strings.TrimPrefix(m.Subject, bus.SubjectService)
	name = strings.Replace(name, ".", "/", 1)
	var h report.ServiceHealth
	if len(m.Data) > 1<<16 || json.Unmarshal(m.Data, &h) != nil {
		a.mu.Lock()
		a.badInput["service_health"]++
		a.mu.Unlock()
		// Core NATS: no stream, no sequence.
		a.log.Warn("bad input", "kind", "service_health", "stream", "none (core NATS)", "subject", m.Subject, "seq", "none", "bytes", len(m.Data))
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.services[name]; !ok && len(a.services) >= maxServices {
		oldest := ""
		for k, v := range a.services {
			if oldest == "" || v.Updated < a.services[oldest].Updated {
				oldest = k
			}
		}
		delete(a.services, oldest)
	}
	a.services[name] = h
}

// backwards reports whether any cumulative counter of st is below prev's.
func backwards(st, prev *event.Stats) bool {
	for c := range st.Counters.Attempted {
		if st.Counters.Attempted[c] < prev.Counters.Attempted[c] || st.Counters.Delivered[c] < prev.Counters.Delivered[c] ||
			st.Counters.Dropped[c] < prev.Counters.Dropped[c] || st.Counters.Shed[c] < prev.Counters.Shed[c] {
			return true
		}
	}
	return st.Batches < prev.Batches || st.LastBatchSeq < prev.LastBatchSeq
}

// admit makes room for node under Config.MaxNodes: a known node passes; a
// new one evicts the nodes idle for NodeIdle when the cap is reached, and
// is refused when there is still no room. The caller holds mu.
func (a *Analyzer) admit(node string) error {
	now := time.Now()
	if _, ok := a.lastSeen[node]; ok || a.agg.Has(node) {
		a.lastSeen[node] = now
		return nil
	}
	if len(a.lastSeen) >= a.cfg.MaxNodes {
		for n, t := range a.lastSeen {
			if now.Sub(t) >= a.cfg.NodeIdle {
				a.forget(n)
				a.limits["nodes_evicted_idle"]++
			}
		}
	}
	if len(a.lastSeen) >= a.cfg.MaxNodes {
		a.limits["nodes_refused"]++
		return fmt.Errorf("node %q: the analyzer already keeps %d nodes (its cap), none idle for %v", node, len(a.lastSeen), a.cfg.NodeIdle)
	}
	a.lastSeen[node] = now
	return nil
}

// forget drops everything kept about node. The caller holds mu.
func (a *Analyzer) forget(node string) {
	delete(a.lastSeen, node)
	delete(a.stats, node)
	delete(a.runs, node)
	delete(a.held, node)
	delete(a.dropAlerts, node)
	delete(a.metaAlerts, node)
	delete(a.recommended, node)
	a.agg.RemoveNode(node)
}

// seenRun records that a batch of node's sensor run (boot, start) arrived,
// and applies the stats held for that run. The caller holds mu.
func (a *Analyzer) seenRun(node, boot string, start uint64) {
	runs := a.runs[node]
	if runs == nil {
		runs = map[runID]bool{}
		a.runs[node] = runs
	}
	k := runID{boot, start}
	if runs[k] {
		return
	}
	if len(runs) >= maxRunsPerNode {
		clear(runs)
	}
	runs[k] = true
	var keep []event.Stats
	var apply []event.Stats
	for _, st := range a.held[node] {
		if st.BootID == boot && st.SensorStartNs == start {
			apply = append(apply, st)
		} else {
			keep = append(keep, st)
		}
	}
	a.held[node] = keep
	if len(apply) > 0 {
		a.stats[node] = nil // the new run's load replaces the old one
		for i := range apply {
			a.agg.AddStats(&apply[i])
			a.stats[node] = append(a.stats[node], apply[i])
		}
	}
}

func (a *Analyzer) runSeen(node, boot string, start uint64) bool {
	return a.runs[node][runID{boot, start}]
}

// holdStats keeps st until a batch of its run arrives (at most
// maxHeldStats per node, the oldest dropped). The caller holds mu.
func (a *Analyzer) holdStats(st event.Stats) {
	h := a.held[st.Node]
	if len(h) >= maxHeldStats {
		h = h[1:]
		a.limits["stats_held_dropped"]++
	}
	a.held[st.Node] = append(h, st)
	a.limits["stats_held"]++
}

// Health is the analyzer's own account of bad input and limits, as
// /api/summary shows it under services.analyzer.
func (a *Analyzer) Health() report.ServiceHealth {
	a.mu.Lock()
	cs := a.consumers
	h := report.ServiceHealth{BadInput: map[string]uint64{}, Limits: map[string]uint64{}}
	for k, v := range a.badInput {
		h.BadInput[k] = v
	}
	for k, v := range a.limits {
		h.Limits[k] = v
	}
	h.Limits["max_nodes"] = uint64(a.cfg.MaxNodes)
	h.Limits["nodes"] = uint64(len(a.lastSeen))
	h.Limits["max_deliver"] = uint64(a.cfg.MaxDeliver)
	a.mu.Unlock()
	// What the consume loops refused before a handler saw it (oversized,
	// bad subject, schema version) is bad input too; what the handlers
	// refused is counted above already.
	for _, c := range cs {
		st := c.Stats()
		h.Limits["max_delivered_dead_lettered"] += st.Poisoned[bus.ReasonMaxDeliver]
		h.Limits["dead_lettered"] += st.DeadLettered
		h.Limits["dead_letter_errors"] += st.DeadLetterErrors
		for k, v := range st.Poisoned {
			if _, counted := h.BadInput[k]; !counted {
				h.BadInput[k] += v
			}
		}
	}
	return h
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
	health := a.Health()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.agg.Summary(node)
	if a.truth != nil {
		s.Truth = a.truth.Result()
	}
	s.Services = make(map[string]report.ServiceHealth, len(a.services)+1)
	for k, v := range a.services {
		s.Services[k] = v
	}
	s.Services["analyzer"] = health
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
	return a.recommendation(node, true)
}

// recommendation is Recommendation, with the fewer-syscalls what-ifs only
// when whatIf is set.
func (a *Analyzer) recommendation(node string, whatIf bool) (ringmodel.Recommendation, error) {
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
	load := ringmodel.LoadFromStats(stats)
	opt := a.cfg.Recommend
	ring := ringmodel.Ring{SizeBytes: last.SizeBytes, LifecycleSizeBytes: last.LifecycleSizeBytes, Layout: last.Layout}
	if last.Layout == ringspec.LayoutFalco {
		// The node runs Falco's layout: its own rings are the measured ones,
		// and the Falco answer uses its cpus_for_each_buffer.
		ring.CPUsPerRing, ring.CPUs = last.CPUsPerRing, load.CPUs()
		opt.CPUsPerRing = last.CPUsPerRing
	}
	// The what-if from the syscall events seen of this node.
	if whatIf {
		opt.Syscalls = make([]ringmodel.SyscallCount, 0, len(sum.Analyzer.BySyscall))
		for name, n := range sum.Analyzer.BySyscall {
			opt.Syscalls = append(opt.Syscalls, ringmodel.SyscallCount{Name: name, Count: n})
		}
	}
	as := ringmodel.Assess([]ringmodel.Run{{
		Ring:                       ring,
		Load:                       load,
		LifecycleDropped:           float64(sum.Sensor.DroppedLifecycle),
		MissingLifecycleAttributed: float64(sum.Analyzer.LifecycleAttributed),
		Delivered:                  float64(sum.Sensor.Delivered),
		MissingPct:                 sum.Analyzer.MissingPct,
		// Shedding changes the load: its measurement is not of a plain ring.
		Modified: last.Shedding,
	}}, opt)
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
