// Package enricher rebuilds process state per node from the raw event
// stream and publishes every event with its Falco metadata, or with the
// fields that are missing and why.
//
// It consumes RINGWISE_RAW through a durable JetStream consumer, keeps one
// state.Table per node (seeded by the sensor's snapshot, asking the sensor's
// /proc lookup for strangers), and acks each raw batch only after its
// enriched batch is stored, so a crash re-delivers instead of losing.
package enricher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/ringwise/ringwise/enricher/state"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
	"github.com/ringwise/ringwise/services/telemetry"
)

// publishAttempts bounds the in-place retries of an enriched publish.
const publishAttempts = 3

// DefaultDurable is the name of the enrichers' shared durable consumer.
const DefaultDurable = "ringwise-enricher"

// Config configures an enricher.
type Config struct {
	JS jetstream.JetStream
	// NC serves /proc lookups against the sensors; nil disables lookups.
	NC *nats.Conn
	// Durable consumer name (default DefaultDurable). Enrichers sharing it
	// share the work.
	Durable string
	// Node limits the enricher to one node's subjects ("" = all nodes).
	Node string
	// PlainBatches publishes enriched batches as plain msgpack; by default
	// they are S2-compressed (event.CompressedMark), which every reader
	// decodes.
	PlainBatches bool
	// FromSeq, when set, starts at this sequence of RINGWISE_RAW (a run
	// against a long-lived NATS must not replay earlier runs); zero reads
	// everything.
	FromSeq uint64
	State   state.Config
	// Publisher stores enriched batches; default JetStream with ack.
	Publisher bus.Publisher
	Logger    *slog.Logger
	// Tracing traces each enriched batch's publish, as the child of the
	// batch's process span in ctx (nil: no tracing).
	Tracing *telemetry.Tracing
	// Scale, when set, runs the scaled mode: nodes are owned under KV
	// leases shared with the other enrichers, each owned node is read in
	// order from its checkpoint (see docs/scaling.md). Durable and Node
	// are then unused.
	Scale *ScaleConfig
	// MaxNodes caps the nodes whose state this enricher keeps (default
	// DefaultMaxNodes); NodeIdle is how long a node may be silent before
	// its state may be evicted to make room (default DefaultNodeIdle). A
	// new node that finds no room is refused as "node_cap".
	MaxNodes int
	NodeIdle time.Duration
	// MaxSnapshotProcs caps the processes of one snapshot (default
	// DefaultMaxSnapshotProcs); a larger one is refused.
	MaxSnapshotProcs int
	// Instance names this enricher in its health reports (default
	// <host>-<pid>); it must be a valid subject token.
	Instance string
}

// Limits of an enricher (see Config).
const (
	// DefaultMaxDeliver bounds the deliveries of one raw message: a batch
	// that still fails after so many (with the loop's back-off capped at
	// bus.DefaultRetryMax, some eight minutes) is dead-lettered as
	// "max_deliver" instead of being retried forever; a NATS outage
	// shorter than that loses nothing.
	DefaultMaxDeliver = 100
	// DefaultMaxNodes: each node's state costs some 250 KB before it holds
	// a process (bounded caches), so 512 nodes stay near 128 MB.
	DefaultMaxNodes = 512
	// DefaultNodeIdle is how long a silent node keeps its state when room
	// is needed.
	DefaultNodeIdle = 10 * time.Minute
	// DefaultMaxSnapshotProcs is far above any real node's process count
	// (pid_max is 2^22, a busy host has some 10^4 processes).
	DefaultMaxSnapshotProcs = 1 << 18
)

// LimitStats count what the enricher's limits refused or evicted.
type LimitStats struct {
	MaxNodes     int    `json:"max_nodes"`
	NodesRefused uint64 `json:"nodes_refused"` // messages of a new node refused: no room
	// RunsAdopted counts new sensor runs whose batches were consistent
	// with one; RunsRefused other runs' batches that were not (a forged
	// boot id or start, or a run that never went on): enriched, counted,
	// and the current run went on.
	RunsAdopted      uint64 `json:"runs_adopted"`
	RunsRefused      uint64 `json:"runs_refused"`
	NodesEvicted     uint64 `json:"nodes_evicted_idle"` // idle nodes whose state was dropped to make room
	SnapshotTooLarge uint64 `json:"snapshot_too_large"` // snapshots above MaxSnapshotProcs
}

// SnapshotEntryStats count what happened to the entries of snapshots
// merged into a running node's state (state.MergeResult, summed).
type SnapshotEntryStats struct {
	Applied       uint64 `json:"applied"`
	Agreed        uint64 `json:"agreed"`
	Stale         uint64 `json:"stale"`
	Contradicting uint64 `json:"contradicting"`
	// ContradictingContainer: of Contradicting, those whose container id
	// differs from the one the process's cgroup gave it.
	ContradictingContainer uint64 `json:"contradicting_container"`
}

func (s *SnapshotEntryStats) add(r state.MergeResult) {
	s.Applied += uint64(r.Applied)
	s.Agreed += uint64(r.Agreed)
	s.Stale += uint64(r.Stale)
	s.Contradicting += uint64(r.Contradicting)
	s.ContradictingContainer += uint64(r.ContradictingContainer)
}

// Stats are the enricher's counters.
type Stats struct {
	Batches   uint64 `json:"batches"`
	Events    uint64 `json:"events"`
	Snapshots uint64 `json:"snapshots"`
	// BadInput counts poison by reason: what Run's consume loop refused
	// and dead-lettered, and what Handle refused when called directly.
	BadInput map[string]uint64 `json:"bad_input"`
	SeqGaps  uint64            `json:"seq_gaps"`
	// RetentionLostBatches and RetentionLostEvents are the part of SeqGaps
	// that RINGWISE_RAW's limits removed (age, bytes, messages per node):
	// stored by the sensor, gone before they were read. The rest of a gap
	// is what the sensor says it never stored (bus.HeaderSensorUnsent).
	// Gaps are classified only where the sensor's counts are known.
	RetentionLostBatches uint64 `json:"retention_lost_batches"`
	RetentionLostEvents  uint64 `json:"retention_lost_events"`
	Nodes                int    `json:"nodes"`
	PubErrors            uint64 `json:"publish_errors"`
	// Replayed counts raw batches re-enriched after a take-over to rebuild
	// a node's table, whose enriched batches the previous owner had
	// already published (so not published again).
	Replayed uint64 `json:"replayed"`
	// Ownership is the scaled mode's account (nil otherwise).
	Ownership *OwnershipStats `json:"ownership,omitempty"`
	// SnapshotEntries: entries of snapshots merged into a running node's
	// state; SnapshotsPending: snapshots of a new sensor run held until a
	// batch of that run arrived.
	SnapshotEntries  SnapshotEntryStats `json:"snapshot_entries"`
	SnapshotsPending uint64             `json:"snapshots_pending"`
	Limits           LimitStats         `json:"limits"`
	// Consumer is the consume loop's account (acked, retried, poisoned
	// by reason, dead-lettered), once Run has started.
	Consumer bus.ConsumerStats `json:"consumer"`
}

// Enricher processes raw batches. Use New and Run, or Handle directly.
type Enricher struct {
	cfg   Config
	log   *slog.Logger
	codec *event.Codec

	mu       sync.Mutex
	nodes    map[string]*nodeState
	stats    Stats
	consumer *bus.Consumer // set by Run
	scale    *scaler       // set by Run in scaled mode
	// nodeConsumers are the scaled mode's per-node loops, for their counters.
	nodeConsumers []*bus.Consumer
	rawInc        string // RINGWISE_RAW's creation time, set by Run
}

// rawIncarnation names the RINGWISE_RAW stream that positions refer to (its
// creation time): a stream recreated after a store loss restarts its
// sequences, and must not reuse the old enriched ids.
func (e *Enricher) rawIncarnation() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rawInc == "" {
		return "0"
	}
	return e.rawInc
}

type pendingSnapshot struct {
	procs   []event.ProcInfo
	bootID  string
	startNs uint64
}

type nodeState struct {
	// snap gathers the parts of a snapshot until the last one arrives.
	snap      []event.ProcInfo
	snapNext  uint32
	snapBoot  string
	snapStart uint64
	// pending is a complete snapshot of another sensor run than the
	// current one, applied when a batch of that run arrives.
	pending *pendingSnapshot
	// lastSeen is when a message of the node last arrived.
	lastSeen time.Time

	table   state.Table
	bootID  string
	startNs uint64
	lastSeq uint64
	// runEvents counts the events enriched in the current sensor run.
	runEvents uint64
	// gap is the sensor's account at lastSeq (gapBase: known), to tell a
	// retention loss from what the sensor never stored.
	gap gapBase
	// lost is retention loss (batches, events) found before the batch in
	// hand, reported with its enriched batch once that is stored.
	lost [2]uint64
	// retry holds raw positions whose enriched publish failed; their
	// redelivery (after newer batches) is not a duplicate.
	retry map[uint64]struct{}
	// cand is a sensor run other than the current one whose batches have
	// arrived, not yet adopted (see runSwitch); prev is the run before the
	// current one, so that going back to it (the current run was forged)
	// neither counts false gaps nor restarts its event count.
	cand *runCandidate
	prev struct {
		bootID             string
		startNs            uint64
		lastSeq, runEvents uint64
	}
	// lastPos is the highest raw position enriched: the raw stream
	// sequence (the sensor's batch number only when Handle is called
	// without a stream). Positions at or below it are duplicates.
	lastPos uint64

	// owned is set while this enricher holds the node's lease (scaled
	// mode): it publishes in order and checkpoints.
	owned *ownedNode
	// Per-node buffers: owned nodes are handled concurrently.
	codec *event.Codec
	raw   event.Batch
	out   event.EnrichedBatch
}

// runConfirmBatches is how many batches of another sensor run, in
// sequence and with none of the current run between them, make it the
// node's current run (see runSwitch).
const runConfirmBatches = 2

// runCandidate is a sensor run seen in batches but not adopted yet.
type runCandidate struct {
	bootID           string
	startNs          uint64
	firstSeq, seq    uint64 // its first and last batch numbers seen
	batches, events  uint64 // its batches and events enriched so far
	firstStreamSeq   uint64
	firstSubjectSeen string
}

// runSwitch decides what a batch of another sensor run than ns's current
// one does, and returns the candidate the batch belongs to when it does not
// (yet) start a new run. A new boot id or sensor start time starts a new run
// only when its batches are consistent with one: its first batch (number
// 1), or runConfirmBatches of them in sequence (each number the last + 1;
// a run whose first batches were lost) with no batch of the current run in
// between, since a node runs one sensor at a time. Until then its
// batches are enriched with the current state and counted, but reset
// nothing: not the current run's sequence (a forged run cannot make real
// batches look lost or old), not its event count, and a snapshot held for
// the candidate run is not applied. Caller holds mu.
func (e *Enricher) runSwitch(ns *nodeState, b *event.Batch, d bus.Delivery) *runCandidate {
	if ns.bootID == "" || b.Seq == 1 {
		if ns.cand != nil {
			e.dropCandidate(ns, d, "a new run began")
		}
		if ns.bootID != "" {
			e.stats.Limits.RunsAdopted++
		}
		e.adoptRun(ns, b.BootID, b.SensorStartNs, 0, 0)
		return nil
	}
	c := ns.cand
	if c != nil && c.bootID == b.BootID && c.startNs == b.SensorStartNs && b.Seq == c.seq+1 {
		c.seq = b.Seq
		if c.batches+1 >= runConfirmBatches {
			// Consistent: the new run is real. The numbers before its first
			// batch seen were lost (after the last one known, if it is the
			// run before the current one); those seen were enriched already.
			known, events := uint64(0), c.events
			if ns.prev.bootID == c.bootID && ns.prev.startNs == c.startNs && c.firstSeq > ns.prev.lastSeq {
				known, events = ns.prev.lastSeq, ns.prev.runEvents+c.events
			}
			if c.firstSeq > known+1 {
				e.stats.SeqGaps += c.firstSeq - 1 - known
			}
			e.stats.Limits.RunsAdopted++
			e.adoptRun(ns, b.BootID, b.SensorStartNs, c.seq-1, events)
			ns.cand = nil
			return nil
		}
		return c
	}
	if c != nil {
		e.dropCandidate(ns, d, "another run's batch, out of its sequence")
	}
	ns.cand = &runCandidate{bootID: b.BootID, startNs: b.SensorStartNs, firstSeq: b.Seq, seq: b.Seq,
		firstStreamSeq: d.StreamSeq, firstSubjectSeen: d.Subject}
	return ns.cand
}

// dropCandidate forgets ns's candidate run, which its batches did not
// confirm: counted, and logged with the candidate's first batch. Caller
// holds mu.
func (e *Enricher) dropCandidate(ns *nodeState, d bus.Delivery, why string) {
	c := ns.cand
	ns.cand = nil
	e.stats.Limits.RunsRefused++
	e.log.Warn("batches of another sensor run not consistent with a new run: the current run goes on", "why", why,
		"run_boot_id", c.bootID, "run_sensor_start_ns", c.startNs, "run_batches", c.batches, "run_first_batch_seq", c.firstSeq,
		"current_boot_id", ns.bootID, "current_sensor_start_ns", ns.startNs,
		"stream", bus.StreamRaw, "subject", c.firstSubjectSeen, "seq", c.firstStreamSeq, "now_subject", d.Subject, "now_seq", d.StreamSeq)
}

// adoptRun makes (boot, start) ns's current run, seeding the table from a
// snapshot held for it. Caller holds mu.
func (e *Enricher) adoptRun(ns *nodeState, boot string, start, lastSeq, events uint64) {
	ns.prev.bootID, ns.prev.startNs, ns.prev.lastSeq, ns.prev.runEvents = ns.bootID, ns.startNs, ns.lastSeq, ns.runEvents
	e.applyPending(ns, boot, start)
	ns.bootID, ns.startNs, ns.lastSeq, ns.runEvents = boot, start, lastSeq, events
	// A run read from its start: its account starts at zero, and a later
	// gap can be told apart as retention loss. Started at a chosen
	// sequence, or adopted after its first batches were lost, it is not.
	ns.gap = gapBase{Known: e.cfg.FromSeq == 0 && lastSeq == 0}
}

// gapBase is the sensor's account at a node's last handled batch: its
// cumulative delivered events and what it had not stored by then.
type gapBase struct {
	Known         bool   `json:"known"`
	Delivered     uint64 `json:"delivered"`
	UnsentBatches uint64 `json:"unsent_batches"`
	UnsentEvents  uint64 `json:"unsent_events"`
}

// classifyGap splits a gap of gap batches before batch b of n events (whose raw
// message carried unsent, the bus.HeaderSensorUnsent value) into what
// retention removed: batches and events stored but never read. It is
// pure: the sensor's cumulative counters say how many events the gap
// held, its unsent counts how many of them it never stored.
func classifyGap(base gapBase, gap uint64, b *event.Batch, n int, unsentB, unsentE uint64) (lostB, lostE uint64) {
	sensorB := min(unsentB-min(unsentB, base.UnsentBatches), gap)
	lostB = gap - sensorB
	if lostB == 0 {
		return 0, 0
	}
	before := event.Sum(b.Counters.Delivered)
	before -= min(before, uint64(n))
	inGap := before - min(before, base.Delivered)
	sensorE := unsentE - min(unsentE, base.UnsentEvents)
	return lostB, inGap - min(inGap, sensorE)
}

// New returns an enricher; Run consumes with it.
func New(cfg Config) (*Enricher, error) {
	if cfg.JS == nil && cfg.Publisher == nil {
		return nil, errors.New("enricher: need a JetStream context or a publisher")
	}
	if cfg.Durable == "" {
		cfg.Durable = DefaultDurable
	}
	if cfg.Node != "" {
		if err := bus.ValidNode(cfg.Node); err != nil {
			return nil, fmt.Errorf("enricher: %w", err)
		}
	}
	if cfg.Publisher == nil {
		cfg.Publisher = bus.JetStreamPublisher{JS: cfg.JS}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxNodes <= 0 {
		cfg.MaxNodes = DefaultMaxNodes
	}
	if cfg.NodeIdle <= 0 {
		cfg.NodeIdle = DefaultNodeIdle
	}
	if cfg.MaxSnapshotProcs <= 0 {
		cfg.MaxSnapshotProcs = DefaultMaxSnapshotProcs
	}
	if cfg.Instance == "" {
		host, _ := os.Hostname()
		host = strings.Map(func(r rune) rune {
			if r == '.' || r == '*' || r == '>' || r <= ' ' {
				return '_'
			}
			return r
		}, host)
		cfg.Instance = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if err := bus.ValidNode(cfg.Instance); err != nil {
		return nil, fmt.Errorf("enricher: instance: %w", err)
	}
	if cfg.Tracing == nil {
		cfg.Tracing = telemetry.Disabled()
	}
	return &Enricher{cfg: cfg, log: cfg.Logger, codec: event.NewCodec(), nodes: map[string]*nodeState{},
		stats: Stats{BadInput: map[string]uint64{}}}, nil
}

// Spec is the consumer the enricher runs: the raw and snapshot subjects of
// its node (or of all nodes) on RINGWISE_RAW.
func (e *Enricher) Spec() bus.ConsumerSpec {
	node := ">"
	if e.cfg.Node != "" {
		node = e.cfg.Node
	}
	return bus.ConsumerSpec{
		Stream:         bus.StreamRaw,
		Durable:        e.cfg.Durable,
		FilterSubjects: []string{bus.PrefixSnapshot + node, bus.PrefixRaw + node},
		StartSeq:       e.cfg.FromSeq,
		// Per-node order matters; with more than one message in flight a
		// failed batch comes back after newer ones, which handleBatch
		// tolerates (see nodeState.retry).
		MaxAckPending: bus.DefaultMaxAckPending,
		Schema:        event.SchemaVersion,
		MaxDeliver:    DefaultMaxDeliver,
	}
}

// Run consumes until ctx is done, then drains (see bus.Consumer.Run).
func (e *Enricher) Run(ctx context.Context) error {
	if err := e.loadIncarnation(ctx); err != nil {
		return err
	}
	if e.cfg.NC != nil {
		done := make(chan struct{})
		defer close(done)
		go e.reportHealth(done)
	}
	if e.cfg.Scale != nil {
		return e.runScaled(ctx)
	}
	c, err := bus.NewConsumer(e.cfg.JS, e.Spec(), e.handle, bus.WithLogger(e.log), bus.WithTracing(e.cfg.Tracing))
	if err != nil {
		return fmt.Errorf("enricher: %w", err)
	}
	e.mu.Lock()
	e.consumer = c
	e.mu.Unlock()
	if err := c.Run(ctx); err != nil {
		return fmt.Errorf("enricher: %w", err)
	}
	return nil
}

// loadIncarnation reads RINGWISE_RAW's creation time (see rawIncarnation).
func (e *Enricher) loadIncarnation(ctx context.Context) error {
	if e.cfg.JS == nil {
		return nil
	}
	st, err := e.cfg.JS.Stream(ctx, bus.StreamRaw)
	if err != nil {
		return fmt.Errorf("enricher: stream %s: %w", bus.StreamRaw, err)
	}
	e.mu.Lock()
	e.rawInc = strconv.FormatInt(st.CachedInfo().Created.UnixNano(), 36)
	e.mu.Unlock()
	return nil
}

// HealthInterval is how often a running enricher publishes its Health on
// ringwise.svc.enricher.<instance> for the analyzer's /api/summary.
const HealthInterval = 2 * time.Second

// Health is the enricher's account of bad input and limits (the
// analyzer shows it under services."enricher/<instance>").
type Health struct {
	BadInput map[string]uint64 `json:"bad_input"`
	Limits   map[string]uint64 `json:"limits"`
	Updated  int64             `json:"updated_unix_ns"`
}

// Health returns the enricher's bad input by kind and its limits' counters.
func (e *Enricher) Health() Health {
	st := e.Stats()
	return Health{BadInput: st.BadInput, Updated: time.Now().UnixNano(), Limits: map[string]uint64{
		"max_nodes": uint64(st.Limits.MaxNodes), "nodes": uint64(st.Nodes),
		"nodes_refused": st.Limits.NodesRefused, "nodes_evicted_idle": st.Limits.NodesEvicted,
		"runs_adopted": st.Limits.RunsAdopted, "runs_refused": st.Limits.RunsRefused,
		"snapshot_too_large": st.Limits.SnapshotTooLarge, "max_snapshot_procs": uint64(e.cfg.MaxSnapshotProcs),
		"snapshot_entries_contradicting":           st.SnapshotEntries.Contradicting,
		"snapshot_entries_contradicting_container": st.SnapshotEntries.ContradictingContainer, "snapshot_entries_stale": st.SnapshotEntries.Stale,
		"snapshots_pending": st.SnapshotsPending, "dead_lettered": st.Consumer.DeadLettered,
		"dead_letter_errors": st.Consumer.DeadLetterErrors, "publish_errors": st.PubErrors,
		"max_deliver": DefaultMaxDeliver, "max_delivered_dead_lettered": st.Consumer.Poisoned[bus.ReasonMaxDeliver],
		"seq_gaps": st.SeqGaps, "retention_lost_batches": st.RetentionLostBatches, "retention_lost_events": st.RetentionLostEvents,
	}}
}

func (e *Enricher) reportHealth(done <-chan struct{}) {
	subject := bus.SubjectService + "enricher." + e.cfg.Instance
	t := time.NewTicker(HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		data, err := json.Marshal(e.Health())
		if err == nil {
			_ = e.cfg.NC.Publish(subject, data)
		}
	}
}

// Handle processes one message from the raw stream: a snapshot or a batch.
// Bad input is counted by kind and returned marked by bus.PoisonAs with
// that kind; it never affects other nodes or later batches. (Run counts
// through its consume loop instead, which also dead-letters.)
func (e *Enricher) Handle(ctx context.Context, subject string, data []byte) error {
	k, node, err := bus.ParseSubject(subject)
	if err != nil {
		err = bus.PoisonAs(bus.ReasonBadSubject, err)
	} else {
		err = e.handle(ctx, bus.Delivery{Subject: subject, Kind: k, Node: node, Data: data})
	}
	if reason, ok := bus.PoisonReason(err); ok {
		e.mu.Lock()
		e.stats.BadInput[reason]++
		e.mu.Unlock()
	}
	return err
}

func (e *Enricher) handle(ctx context.Context, d bus.Delivery) error {
	switch d.Kind {
	case bus.KindSnapshot:
		return e.handleSnapshot(d)
	case bus.KindRaw:
		return e.handleBatch(ctx, d)
	}
	return bus.PoisonAs(bus.ReasonBadSubject, fmt.Errorf("enricher: unexpected subject %q", d.Subject))
}

func (e *Enricher) handleSnapshot(d bus.Delivery) error {
	node := d.Node
	where := fmt.Sprintf("snapshot on %s (stream %s seq %d)", d.Subject, bus.StreamRaw, d.StreamSeq)
	s, err := event.DecodeSnapshot(d.Data)
	if err != nil {
		err = fmt.Errorf("%s: %w", where, err)
		return bus.PoisonAs(event.ErrorKind(err), err)
	}
	if s.Node != node {
		err := fmt.Errorf("%s claims node %q: %w", where, s.Node, event.ErrMalformed)
		return bus.PoisonAs("node_mismatch", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ns, err := e.node(node)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	// Parts arrive in order on the stream; gather them, seed on the last.
	if s.Part == 1 {
		ns.snap = ns.snap[:0]
		ns.snapBoot, ns.snapStart = s.BootID, s.SensorStartNs
	} else if ns.snapNext != s.Part || ns.snapBoot != s.BootID || ns.snapStart != s.SensorStartNs {
		ns.snap, ns.snapNext = nil, 0
		err := fmt.Errorf("%s: part %d of %d out of sequence: %w", where, s.Part, s.Parts, event.ErrMalformed)
		return bus.PoisonAs("snapshot_sequence", err)
	}
	if len(ns.snap)+len(s.Procs) > e.cfg.MaxSnapshotProcs {
		ns.snap, ns.snapNext = nil, 0
		e.stats.Limits.SnapshotTooLarge++
		err := fmt.Errorf("%s: part %d of %d takes the snapshot above %d processes: %w", where, s.Part, s.Parts, e.cfg.MaxSnapshotProcs, event.ErrOversized)
		return bus.PoisonAs("snapshot_too_large", err)
	}
	ns.snap = append(ns.snap, s.Procs...)
	ns.snapNext = s.Part + 1
	if s.Part < s.Parts {
		return nil
	}
	procs := ns.snap
	ns.snap, ns.snapNext = nil, 0
	switch {
	case ns.bootID == "":
		// The node's first word: nothing to protect yet.
		e.seed(ns, procs, s.BootID, s.SensorStartNs)
		e.log.Info("seeded process table from snapshot", "node", node, "processes", len(procs), "parts", s.Parts,
			"stream", bus.StreamRaw, "subject", d.Subject, "seq", d.StreamSeq)
	case ns.bootID == s.BootID && ns.startNs == s.SensorStartNs:
		// The current run's state is newer than any snapshot of it.
		r := ns.table.Merge(procs)
		e.stats.Snapshots++
		e.stats.SnapshotEntries.add(r)
		if r.Contradicting > 0 || r.Stale > 0 {
			e.log.Warn("snapshot entries refused: they contradict or predate the state built from events", "node", node,
				"contradicting", r.Contradicting, "contradicting_container", r.ContradictingContainer, "stale", r.Stale, "applied", r.Applied,
				"stream", bus.StreamRaw, "subject", d.Subject, "seq", d.StreamSeq)
		}
	case ns.bootID == s.BootID && s.SensorStartNs < ns.startNs:
		err := fmt.Errorf("%s: of sensor run %d, older than the current run %d: %w", where, s.SensorStartNs, ns.startNs, event.ErrMalformed)
		return bus.PoisonAs("snapshot_stale_run", err)
	default:
		// Another run: it replaces the state only once a batch of that run
		// shows the run is real (see applyPending).
		ns.pending = &pendingSnapshot{procs: procs, bootID: s.BootID, startNs: s.SensorStartNs}
		e.stats.SnapshotsPending++
		e.log.Info("snapshot of a new sensor run held until a batch of that run arrives", "node", node,
			"processes", len(procs), "stream", bus.StreamRaw, "subject", d.Subject, "seq", d.StreamSeq)
	}
	return nil
}

// seed replaces ns's table with procs for the run (boot, start). Caller
// holds mu.
func (e *Enricher) seed(ns *nodeState, procs []event.ProcInfo, boot string, start uint64) {
	ns.table.Seed(procs)
	if ns.bootID != boot || ns.startNs != start {
		ns.runEvents = 0
	}
	ns.bootID, ns.startNs, ns.lastSeq, ns.pending = boot, start, 0, nil
	ns.gap = gapBase{Known: e.cfg.FromSeq == 0}
	e.stats.Snapshots++
}

// applyPending seeds ns from the snapshot held for run (boot, start), if
// any: a batch of that run arrived. Caller holds mu.
func (e *Enricher) applyPending(ns *nodeState, boot string, start uint64) {
	if p := ns.pending; p != nil && p.bootID == boot && p.startNs == start {
		e.seed(ns, p.procs, boot, start)
	}
}

// node returns node's state, creating it on first sight. At MaxNodes it
// first evicts the nodes idle for NodeIdle; with no room still, it refuses
// the new node. Caller holds mu.
func (e *Enricher) node(name string) (*nodeState, error) {
	now := time.Now()
	ns := e.nodes[name]
	if ns == nil {
		if len(e.nodes) >= e.cfg.MaxNodes {
			for n, old := range e.nodes {
				if old.owned == nil && now.Sub(old.lastSeen) >= e.cfg.NodeIdle {
					delete(e.nodes, n)
					e.stats.Limits.NodesEvicted++
					e.log.Info("idle node evicted to make room", "node", n, "idle", now.Sub(old.lastSeen).Round(time.Second), "max_nodes", e.cfg.MaxNodes)
				}
			}
		}
		if len(e.nodes) >= e.cfg.MaxNodes {
			e.stats.Limits.NodesRefused++
			e.stats.Nodes = len(e.nodes)
			return nil, bus.PoisonAs("node_cap", fmt.Errorf("node %q: this enricher already keeps the state of %d nodes (its cap), none idle for %v", name, len(e.nodes), e.cfg.NodeIdle))
		}
		ns = &nodeState{table: state.New(e.tableConfig(name))}
		e.nodes[name] = ns
		e.stats.Nodes = len(e.nodes)
	}
	ns.lastSeen = now
	return ns, nil
}

// tableConfig is the state engine's configuration for node name: the
// enricher's, with the node's sensor as the resolver of unknown processes
// and of cgroup ids (the sensor reads its host's /proc and cgroup
// hierarchy) where none is set. Shared and scaled mode use the same.
func (e *Enricher) tableConfig(name string) state.Config {
	cfg := e.cfg.State
	if cfg.Lookup == nil && e.cfg.NC != nil {
		cfg.Lookup = procfs.NATSLookup{NC: e.cfg.NC, Node: name, NotFound: state.ErrNotFound}
	}
	if cfg.Containers == nil && e.cfg.NC != nil {
		cfg.Containers = procfs.NATSLookup{NC: e.cfg.NC, Node: name, NotFound: state.ErrNotFound}
	}
	return cfg
}

// ownedNodeState returns node's state for an owner that holds its lease:
// never refused by MaxNodes (leases bound owned nodes). Caller holds mu.
func (e *Enricher) ownedNodeState(name string) *nodeState {
	if ns := e.nodes[name]; ns != nil {
		ns.lastSeen = time.Now()
		return ns
	}
	ns := &nodeState{table: state.New(e.tableConfig(name)), lastSeen: time.Now()}
	e.nodes[name] = ns
	e.stats.Nodes = len(e.nodes)
	return ns
}

// HeaderRawStreamSeq is bus.HeaderRawStreamSeq.
const HeaderRawStreamSeq = bus.HeaderRawStreamSeq

func (e *Enricher) handleBatch(ctx context.Context, d bus.Delivery) error {
	node := d.Node
	e.mu.Lock()
	ns, err := e.node(node)
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("batch on %s (stream %s seq %d): %w", d.Subject, bus.StreamRaw, d.StreamSeq, err)
	}
	if ns.codec == nil {
		ns.codec = event.NewCodec()
	}
	// The raw events go straight into the enriched batch's events, which
	// are enriched in place: ns.raw holds the envelope only.
	out := &ns.out
	if out.Events, err = ns.codec.DecodeEnrichable(d.Data, &ns.raw, out.Events); err != nil {
		err = fmt.Errorf("batch from %s: %w", node, err)
		return bus.PoisonAs(event.ErrorKind(err), err)
	}
	b := &ns.raw
	if b.Node != node {
		err := fmt.Errorf("batch on subject of node %q claims node %q: %w", node, b.Node, event.ErrMalformed)
		return bus.PoisonAs("node_mismatch", err)
	}
	// Duplicates are recognised by the raw stream's own sequence, never by
	// a number in the payload (the sensor's batch number is evidence of
	// lost batches only). Without a stream (Handle), the batch number is
	// all there is.
	pos := d.StreamSeq
	if pos == 0 {
		pos = b.Seq
	}
	e.mu.Lock()
	var foreign *runCandidate // the batch's run, not (yet) the current one
	if ns.bootID != b.BootID || ns.startNs != b.SensorStartNs {
		// Another sensor run (a restart, or a forgery): see runSwitch. The
		// table is kept; a snapshot held for the run replaces it once the
		// run is adopted.
		foreign = e.runSwitch(ns, b, d)
		if foreign == nil && d.StreamSeq == 0 {
			ns.lastPos, ns.retry = 0, nil
		}
	} else if ns.cand != nil {
		e.dropCandidate(ns, d, "a batch of the current run came between")
	}
	if foreign != nil && d.StreamSeq == 0 {
		// Without a stream the batch number is the position: a foreign
		// run's numbers neither are judged by nor move the current run's.
		pos = 0
	}
	_, retrying := ns.retry[pos]
	if pos != 0 && pos <= ns.lastPos && !retrying {
		e.mu.Unlock()
		return nil // duplicate re-delivery; already enriched
	}
	unsentB, unsentE, unsentOK := bus.ParseCount2(d.Header.Get(bus.HeaderSensorUnsent))
	if foreign == nil && !retrying && b.Seq > ns.lastSeq+1 {
		gap := b.Seq - ns.lastSeq - 1
		e.stats.SeqGaps += gap
		var lostB, lostE uint64
		if ns.gap.Known && unsentOK && d.StreamSeq != 0 {
			lostB, lostE = classifyGap(ns.gap, gap, b, len(out.Events), unsentB, unsentE)
		}
		if lostB > 0 {
			ns.lost[0] += lostB
			ns.lost[1] += lostE
			e.log.Error("raw batches removed from the stream by its limits (age, bytes, messages per node) before they were enriched: lost",
				"node", node, "after_seq", ns.lastSeq, "got_seq", b.Seq, "batches", lostB, "events", lostE,
				"stream", bus.StreamRaw, "subject", d.Subject, "seq", d.StreamSeq)
		} else {
			e.log.Warn("raw batches lost", "node", node, "after_seq", ns.lastSeq, "got_seq", b.Seq,
				"sensor_unsent_known", ns.gap.Known && unsentOK, "stream", bus.StreamRaw, "subject", d.Subject, "seq", d.StreamSeq)
		}
	}
	if foreign == nil && !retrying && b.Seq > ns.lastSeq {
		ns.lastSeq = b.Seq
		ns.gap = gapBase{Known: unsentOK, Delivered: event.Sum(b.Counters.Delivered), UnsentBatches: unsentB, UnsentEvents: unsentE}
	}
	table := ns.table
	runEvents := ns.runEvents
	if foreign != nil {
		runEvents = foreign.events
	}
	owned := ns.owned
	lostB, lostE := ns.lost[0], ns.lost[1]
	e.mu.Unlock()

	table.EnrichInPlace(ctx, b, out.Events)
	out.Schema, out.Node, out.BootID = event.SchemaVersion, node, b.BootID
	out.RawSeq, out.SensorStartNs, out.WallOffsetNs, out.Counters = b.Seq, b.SensorStartNs, b.WallOffsetNs, b.Counters
	if owned != nil && d.StreamSeq <= owned.published {
		// Replayed after a take-over: already in RINGWISE_ENRICHED (the
		// previous owner published it); the table is rebuilt, nothing sent.
		e.mu.Lock()
		ns.lastPos = max(ns.lastPos, pos)
		ns.countRun(foreign, len(out.Events))
		ns.lost = [2]uint64{} // counted by the owner that published it
		e.stats.Replayed++
		e.mu.Unlock()
		return nil
	}
	payload, err := ns.codec.EncodeEnriched(out)
	if err != nil {
		// Retrying cannot help: count it as bad input and move on rather
		// than block the node's stream on one batch forever.
		err = fmt.Errorf("encode enriched batch %d of %s: %w", b.Seq, node, err)
		return bus.PoisonAs("encode_failed", err)
	}
	if !e.cfg.PlainBatches {
		payload = ns.codec.Compress(payload)
	}
	hdr := nats.Header{}
	// The enricher's own count travels with its output, so an analyzer run
	// apart reports it too (a maximum: a redelivered batch repeats no count).
	hdr.Set(bus.HeaderEnricherEvents, strconv.FormatUint(runEvents+uint64(len(out.Events)), 10))
	if foreign != nil {
		hdr.Set(bus.HeaderRunUnconfirmed, "1")
	}
	if v := d.Header.Get(bus.HeaderSensorUnsent); v != "" {
		// A new owner without a checkpoint resumes the sensor's account
		// from the last enriched batch.
		hdr.Set(bus.HeaderSensorUnsent, v)
	}
	if lostB > 0 {
		// The analyzer reports the loss per node with the batch after it.
		hdr.Set(bus.HeaderRetentionLost, bus.FormatCount2(lostB, lostE))
	}
	id := out.MsgID()
	if d.StreamSeq != 0 {
		hdr.Set(HeaderRawStreamSeq, strconv.FormatUint(d.StreamSeq, 10))
		hdr.Set(bus.HeaderRawStream, e.rawIncarnation())
		// The id is the raw position: a replay by another owner makes the
		// same id, and JetStream's duplicate window drops it.
		id = fmt.Sprintf("%s.%s.%d.e", node, e.rawIncarnation(), d.StreamSeq)
	}
	msg := bus.Msg{Subject: bus.EnrichedSubject(node), ID: id, Header: hdr, Data: payload, Schema: event.SchemaVersion}
	telemetry.SetEvents(trace.SpanFromContext(ctx), len(out.Events))
	pctx, span := e.cfg.Tracing.StartPublish(ctx, telemetry.Batch{Subject: msg.Subject, MsgID: msg.ID, Events: len(out.Events), Node: node}, hdr)
	if owned != nil {
		// Scaled mode: the server enforces one writer in raw order.
		err := owned.publish(pctx, msg, d.StreamSeq)
		telemetry.EndSpan(span, err)
		if err != nil {
			e.mu.Lock()
			e.stats.PubErrors++
			e.mu.Unlock()
			return err
		}
	} else {
		// The table already holds this batch's lifecycle events: retry here a
		// few times before giving the batch back to JetStream, whose redelivery
		// could come after newer batches. The Nats-Msg-Id makes retries safe.
		err = e.cfg.Publisher.Publish(pctx, msg)
		for attempt := 1; err != nil && attempt < publishAttempts && ctx.Err() == nil; attempt++ {
			time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
			err = e.cfg.Publisher.Publish(pctx, msg)
		}
		telemetry.EndSpan(span, err)
		if err != nil {
			e.mu.Lock()
			e.stats.PubErrors++
			// It will be redelivered, possibly after newer batches: remember
			// it, and do not count a gap when the next one arrives.
			if ns.retry == nil {
				ns.retry = map[uint64]struct{}{}
			}
			ns.retry[pos] = struct{}{}
			ns.lastPos = max(ns.lastPos, pos)
			e.mu.Unlock()
			return err
		}
	}
	e.mu.Lock()
	delete(ns.retry, pos)
	ns.lastPos = max(ns.lastPos, pos)
	// The loss is counted once, with the batch that reported it.
	e.stats.RetentionLostBatches += lostB
	e.stats.RetentionLostEvents += lostE
	ns.lost = [2]uint64{}
	e.stats.Batches++
	e.stats.Events += uint64(len(out.Events))
	ns.countRun(foreign, len(out.Events))
	e.mu.Unlock()
	return nil
}

// countRun adds a batch's events to its run's count: the current run's, or
// the candidate's it belongs to. Caller holds mu.
func (ns *nodeState) countRun(foreign *runCandidate, events int) {
	if foreign == nil {
		ns.runEvents += uint64(events)
		return
	}
	foreign.batches++
	foreign.events += uint64(events)
}

// Stats returns a copy of the counters.
func (e *Enricher) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Limits.MaxNodes = e.cfg.MaxNodes
	s.BadInput = make(map[string]uint64, len(e.stats.BadInput))
	for k, v := range e.stats.BadInput {
		s.BadInput[k] = v
	}
	cs := e.nodeConsumers
	if e.consumer != nil {
		cs = append([]*bus.Consumer{e.consumer}, cs...)
	}
	s.Consumer.Poisoned = map[string]uint64{}
	for _, c := range cs {
		st := c.Stats()
		s.Consumer.Acked += st.Acked
		s.Consumer.Retried += st.Retried
		s.Consumer.DeadLettered += st.DeadLettered
		s.Consumer.DeadLetterErrors += st.DeadLetterErrors
		for k, v := range st.Poisoned {
			s.Consumer.Poisoned[k] += v
			s.BadInput[k] += v
		}
	}
	s.Ownership = e.ownership()
	return s
}

// TableStats returns the state engine's counters of node.
func (e *Enricher) TableStats(node string) (state.Stats, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ns, ok := e.nodes[node]
	if !ok {
		return state.Stats{}, false
	}
	return ns.table.Stats(), true
}
