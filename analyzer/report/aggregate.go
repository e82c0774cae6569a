package report

import (
	"slices"
	"strconv"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
	"github.com/ringwise/ringwise/services/syscalls"
)

// Summary is the analyzer's report for one node, or merged over all nodes.
// Its JSON names are part of ringwise's interface (CLI and HTTP output).
type Summary struct {
	// Node is the node's name; "" for a summary merged over several nodes.
	Node string `json:"node"`
	// Nodes lists the nodes a merged summary covers.
	Nodes    []string         `json:"nodes,omitempty"`
	Ring     event.RingConfig `json:"ring"`
	Sensor   SensorSummary    `json:"sensor"`
	Enricher EnricherSummary  `json:"enricher"`
	Analyzer AnalyzerSummary  `json:"analyzer"`
	Truth    TruthResult      `json:"truth"`
	// Falco is set for summaries of Falco output (AnalyzeFalco): drop
	// alerts, causes, skipped lines, metrics snapshots.
	Falco *FalcoReport `json:"falco,omitempty"`
	// Services is what each service refused as bad input and what its
	// limits refused or evicted, by kind: "analyzer", and each enricher
	// as "enricher/<instance>" (from its own counters on ringwise.svc.>).
	Services map[string]ServiceHealth `json:"services,omitempty"`
}

// ServiceHealth is one service's account of bad input and limits.
type ServiceHealth struct {
	// BadInput counts messages refused as bad input, by kind.
	BadInput map[string]uint64 `json:"bad_input"`
	// Limits counts what each limit refused or evicted, and gives the
	// limits themselves (max_nodes, …).
	Limits map[string]uint64 `json:"limits"`
	// Updated is when the service last reported (unix ns); 0 for the
	// analyzer itself.
	Updated int64 `json:"updated_unix_ns,omitempty"`
}

// SensorSummary holds the sensor's ring counters: for each sensor run the
// latest cumulative values (from stats or batch envelopes), summed over runs.
type SensorSummary struct {
	Attempted        uint64 `json:"attempted"`
	Delivered        uint64 `json:"delivered"`
	Dropped          uint64 `json:"dropped"`
	DroppedLifecycle uint64 `json:"dropped_lifecycle"`
	DroppedSyscall   uint64 `json:"dropped_syscall"`
	Shed             uint64 `json:"shed"`
	Batches          uint64 `json:"batches"`
	PublishErrors    uint64 `json:"publish_errors"`
	// SpoolOverflow counts delivered events the sensor's spool dropped
	// during a NATS outage (never published): the identity is
	// attempted == (delivered - spool_overflow) + dropped + spool_overflow.
	SpoolOverflow uint64 `json:"spool_overflow"`
	// SpoolPublishErrors counts the sensor's failed publish attempts
	// (each retried from the spool); SpoolQueuedBytes is what its latest
	// stats said was waiting.
	SpoolPublishErrors uint64 `json:"spool_publish_errors"`
	SpoolQueuedBytes   int64  `json:"spool_queued_bytes"`
	AttemptedLifecycle uint64 `json:"attempted_lifecycle"`
	AttemptedSyscall   uint64 `json:"attempted_syscall"`
	// DropPct is 100*dropped/attempted (0 when nothing was attempted).
	DropPct float64 `json:"drop_pct"`
	// LifecycleDropPct is 100*dropped_lifecycle/attempted_lifecycle.
	LifecycleDropPct float64 `json:"lifecycle_drop_pct"`
	// Final is set when the latest sensor run sent its final stats (after a
	// full drain), so the counters are complete.
	Final bool `json:"final"`
	// Runs is the number of sensor runs (boot id, start time) seen.
	Runs int `json:"runs"`
}

// EnricherSummary holds what the enricher reports about itself; the caller
// fills it (see Aggregator.AddEnricherEvents).
type EnricherSummary struct {
	Events uint64 `json:"events"`
}

// AnalyzerSummary is what the analyzer counted in the enriched stream.
type AnalyzerSummary struct {
	Events  uint64 `json:"events"`
	Missing uint64 `json:"missing"`
	// MissingPct is 100*missing/events (0 when there are no events).
	MissingPct float64 `json:"missing_pct"`
	// ByField counts missing events per Falco field name; an event missing
	// three fields counts once in each.
	ByField map[string]uint64 `json:"by_field"`
	// ByReason counts missing events per reason.
	ByReason map[string]uint64 `json:"by_reason"`
	// BySyscall counts the syscall events per syscall name (Falco's
	// evt.type: ia32 calls under their x86_64 name; syscall_N where no
	// table names one): the dominant syscalls of the load, for the
	// recommendation's fewer-syscalls what-if.
	BySyscall map[string]uint64 `json:"by_syscall,omitempty"`
	// LifecycleAttributed counts missing events whose reason blames a
	// lifecycle record dropped by the ring.
	LifecycleAttributed uint64 `json:"lifecycle_attributed"`
	// BatchGaps counts enriched batches never received: sequence numbers
	// skipped between the first batch seen of a sensor run and the last one
	// the sensor says it published (from final stats) or the highest seen.
	BatchGaps uint64 `json:"batch_gaps"`
	// Batches counts batches received (duplicates excluded).
	Batches uint64 `json:"batches"`
	// DuplicateBatches counts redelivered batches, which were not counted.
	DuplicateBatches uint64 `json:"duplicate_batches"`
	// DuplicatePositions counts enriched batches whose raw position (the
	// RINGWISE_RAW sequence they were made from) was already seen: the
	// same raw batch enriched and stored twice. Not counted again.
	DuplicatePositions uint64 `json:"duplicate_positions"`
	// OutOfOrderBatches counts enriched batches whose raw position is
	// below one already seen for their node on their first delivery: the
	// per-node order broken in the stream itself (two writers interleaved).
	OutOfOrderBatches uint64 `json:"out_of_order_batches"`
	// LateBatches counts redelivered enriched batches whose raw position is
	// below one already seen: delivered late by JetStream, not out of
	// order in the stream. A delivery lost in flight (a consumer leader
	// killed mid-pull) comes back after the ack wait, after newer batches.
	// Counted once, as any new batch; a gap they fill closes.
	LateBatches uint64 `json:"late_batches"`
	// RetentionLostBatches and RetentionLostEvents count raw batches of
	// the node (and their events) that RINGWISE_RAW's limits removed before
	// an enricher read them (age, bytes, messages per node): lost, and
	// among the batch gaps. The enricher reports them on the next enriched
	// batch (bus.HeaderRetentionLost).
	RetentionLostBatches uint64 `json:"retention_lost_batches"`
	RetentionLostEvents  uint64 `json:"retention_lost_events"`
}

// ReasonUnspecified is the by_reason key for events with missing fields but
// no reason (event.ReasonNone).
const ReasonUnspecified = "unspecified"

// reasonKey is the by_reason key of r.
func reasonKey(r event.Reason) string {
	if r == event.ReasonNone {
		return ReasonUnspecified
	}
	return r.String()
}

// maxTrackedGaps bounds the per-run set of missing sequence numbers kept to
// recognise late (reordered) batches; gaps beyond it are still counted.
const maxTrackedGaps = 1 << 16

type runKey struct {
	boot    string
	startNs uint64
}

// runState is one sensor run (boot id, sensor start time): batch sequence
// tracking and the latest counters.
type runState struct {
	seen           bool   // at least one sequenced batch
	minSeq, maxSeq uint64 // range of sequence numbers seen
	missing        map[uint64]struct{}
	untracked      uint64 // gaps not in missing (set full)

	counters event.Counters // element-wise max of all cumulative readings

	haveStats     bool
	batches       uint64
	publishErrors uint64
	spoolOverflow [event.NumCategories]uint64
	spoolErrors   uint64
	spoolQueued   int64
	lastBatchSeq  uint64
	final         bool

	enricherEvents uint64 // the enricher's own count for this run
}

func (r *runState) gaps() uint64 {
	g := uint64(len(r.missing)) + r.untracked
	if r.seen && r.final && r.lastBatchSeq > r.maxSeq {
		g += r.lastBatchSeq - r.maxSeq
	}
	return g
}

func (r *runState) addGap(seq uint64) {
	if len(r.missing) < maxTrackedGaps {
		if r.missing == nil {
			r.missing = make(map[uint64]struct{})
		}
		r.missing[seq] = struct{}{}
	} else {
		r.untracked++
	}
}

// addRange records lo..hi (inclusive) as missing.
func (r *runState) addRange(lo, hi uint64) {
	for s := lo; s <= hi; s++ {
		if len(r.missing) >= maxTrackedGaps {
			r.untracked += hi - s + 1
			return
		}
		r.addGap(s)
	}
}

// observe records sequence number seq and reports whether the batch is new
// (false: a duplicate). Seq 0 means unsequenced and is always new.
func (r *runState) observe(seq uint64) bool {
	if seq == 0 {
		return true
	}
	switch {
	case !r.seen:
		r.seen, r.minSeq, r.maxSeq = true, seq, seq
	case seq > r.maxSeq:
		if seq > r.maxSeq+1 {
			r.addRange(r.maxSeq+1, seq-1)
		}
		r.maxSeq = seq
	case seq < r.minSeq:
		if seq+1 < r.minSeq {
			r.addRange(seq+1, r.minSeq-1)
		}
		r.minSeq = seq
	default:
		if _, ok := r.missing[seq]; ok {
			delete(r.missing, seq) // a late batch fills its gap
			return true
		}
		return false
	}
	return true
}

func maxCounters(dst *event.Counters, c *event.Counters) {
	for i := range event.NumCategories {
		dst.Attempted[i] = max(dst.Attempted[i], c.Attempted[i])
		dst.Dropped[i] = max(dst.Dropped[i], c.Dropped[i])
		dst.Shed[i] = max(dst.Shed[i], c.Shed[i])
		dst.Delivered[i] = max(dst.Delivered[i], c.Delivered[i])
	}
}

// nodeState is everything counted for one node.
type nodeState struct {
	events, missing uint64
	byField         [8]uint64   // per Field bit
	byReason        [256]uint64 // per Reason, missing events only
	bySyscall       map[syscallKey]uint64
	batches, dups   uint64
	positions       map[string]*positions // per RINGWISE_RAW incarnation
	posDups, posOOO uint64
	posLate         uint64    // redelivered below the highest position seen
	retLost         [2]uint64 // batches, events lost to RINGWISE_RAW's retention
	runs            map[runKey]*runState
	latestRun       *runState        // run of the most recent stats or new run
	ring            event.RingConfig // from the most recent stats
}

func (n *nodeState) run(boot string, startNs uint64) *runState {
	k := runKey{boot, startNs}
	r := n.runs[k]
	if r == nil {
		r = &runState{}
		n.runs[k] = r
		n.latestRun = r
	}
	return r
}

// Aggregator counts enriched events and sensor stats per node. It is not
// safe for concurrent use; the caller locks.
type Aggregator struct {
	nodes map[string]*nodeState
}

// NewAggregator returns an empty Aggregator.
func NewAggregator() *Aggregator {
	return &Aggregator{nodes: make(map[string]*nodeState)}
}

// RemoveNode forgets everything about node (an idle node evicted to make
// room).
func (a *Aggregator) RemoveNode(name string) { delete(a.nodes, name) }

// Has reports whether node was seen.
func (a *Aggregator) Has(name string) bool { return a.nodes[name] != nil }

// NumNodes is the number of nodes seen.
func (a *Aggregator) NumNodes() int { return len(a.nodes) }

// ReplaceRunStats recomputes the stats-derived counters of node's sensor
// run (boot, startNs) from list alone: a stats message found to be an
// outlier is taken back this way.
func (a *Aggregator) ReplaceRunStats(node, boot string, startNs uint64, list []event.Stats) {
	n := a.nodes[node]
	if n == nil {
		return
	}
	r := n.run(boot, startNs)
	r.counters, r.batches, r.publishErrors, r.lastBatchSeq, r.final = event.Counters{}, 0, 0, 0, false
	for i := range list {
		a.AddStats(&list[i])
	}
}

func (a *Aggregator) node(name string) *nodeState {
	n := a.nodes[name]
	if n == nil {
		n = &nodeState{runs: make(map[runKey]*runState)}
		a.nodes[name] = n
	}
	return n
}

// positions tracks the raw positions of one node's enriched batches.
type positions struct {
	max  uint64
	seen map[uint64]uint64 // raw position → the enriched stream sequence it came in (0: unknown)
}

// maxTrackedPositions bounds the remembered positions per node; older ones
// are forgotten (a duplicate that far back counts as out of order).
const maxTrackedPositions = 1 << 16

// ObservePosition records that an enriched batch of node was made from
// RINGWISE_RAW sequence seq of the stream incarnation stream, delivered from
// RINGWISE_ENRICHED sequence enrichedSeq (0 if unknown), and reports
// whether it is new. A position seen before is not counted again: as a
// redelivery (DuplicateBatches) when it comes in the same enriched message
// again (an ack lost, the message delivered twice by JetStream), and as a
// duplicate position when another enriched message holds it (the output
// itself duplicated). A new position below the highest seen is counted,
// as out of order on its first delivery and as late when redelivered (the
// transport's delay, not the stream's order).
func (a *Aggregator) ObservePosition(node, stream string, seq, enrichedSeq uint64, redelivered bool) bool {
	n := a.node(node)
	if n.positions == nil {
		n.positions = map[string]*positions{}
	}
	p := n.positions[stream]
	if p == nil {
		p = &positions{seen: map[uint64]uint64{}}
		n.positions[stream] = p
	}
	if at, dup := p.seen[seq]; dup {
		if enrichedSeq != 0 && at == enrichedSeq {
			n.dups++
		} else {
			n.posDups++
		}
		return false
	}
	if seq < p.max {
		if redelivered {
			n.posLate++
		} else {
			n.posOOO++
		}
	}
	p.max = max(p.max, seq)
	p.seen[seq] = enrichedSeq
	if len(p.seen) > 2*maxTrackedPositions {
		for k := range p.seen {
			if k+maxTrackedPositions < p.max {
				delete(p.seen, k)
			}
		}
	}
	return true
}

// AddRetentionLost counts raw batches and events of node that the raw
// stream's retention removed before they were enriched.
func (a *Aggregator) AddRetentionLost(node string, batches, events uint64) {
	n := a.node(node)
	n.retLost[0] += batches
	n.retLost[1] += events
}

// AddBatch counts the events of b: all events, events with missing fields,
// per field and per reason. It records b's cumulative counters for the
// sensor run and tracks b.RawSeq: a skipped sequence number is a lost batch,
// a repeated one a redelivery whose events are not counted again.
func (a *Aggregator) AddBatch(b *event.EnrichedBatch) {
	if b == nil {
		return
	}
	n := a.node(b.Node)
	r := n.run(b.BootID, b.SensorStartNs)
	maxCounters(&r.counters, &b.Counters)
	if !r.observe(b.RawSeq) {
		n.dups++
		return
	}
	n.batches++
	n.events += uint64(len(b.Events))
	for i := range b.Events {
		e := &b.Events[i]
		if e.Type == event.TypeSyscall {
			if n.bySyscall == nil {
				n.bySyscall = map[syscallKey]uint64{}
			}
			n.bySyscall[keyOfSyscall(&e.Event)]++
		}
		if e.Missing == 0 {
			continue
		}
		n.missing++
		n.byReason[e.Reason]++
		for bit := 0; bit < 8; bit++ {
			if e.Missing&(1<<bit) != 0 {
				n.byField[bit]++
			}
		}
	}
}

// AddStats records the latest stats of s's node and sensor run: counters,
// ring configuration, batch and publish-error counts, and the Final flag.
func (a *Aggregator) AddStats(s *event.Stats) {
	if s == nil {
		return
	}
	n := a.node(s.Node)
	r := n.run(s.BootID, s.SensorStartNs)
	n.latestRun = r
	maxCounters(&r.counters, &s.Counters)
	r.batches = max(r.batches, s.Batches)
	r.publishErrors = max(r.publishErrors, s.PublishErrors)
	for i, v := range s.SpoolOverflow {
		r.spoolOverflow[i] = max(r.spoolOverflow[i], v)
	}
	if s.Spool != nil {
		r.spoolErrors = max(r.spoolErrors, s.Spool.PublishErrors)
		r.spoolQueued = s.Spool.QueuedBytes
	}
	r.lastBatchSeq = max(r.lastBatchSeq, s.LastBatchSeq)
	r.final = r.final || s.Final
	r.haveStats = true
	n.ring = s.Ring
}

// AddEnricherEvents records the enricher's own count of events enriched for
// node's sensor run (boot, startNs), as its enriched batches carry it; the
// highest count seen per run is reported as enricher.events.
func (a *Aggregator) AddEnricherEvents(node, boot string, startNs, events uint64) {
	r := a.node(node).run(boot, startNs)
	r.enricherEvents = max(r.enricherEvents, events)
}

// Nodes returns the names of the nodes seen, sorted.
func (a *Aggregator) Nodes() []string {
	out := make([]string, 0, len(a.nodes))
	for name := range a.nodes {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Summary reports on node. With node "" it reports on the only node seen, or,
// when several were seen, merges all of them (Node "" and Nodes set; the
// ring is the common one, or layout "mixed" if they differ). An unknown node
// yields an empty summary with its name.
func (a *Aggregator) Summary(node string) Summary {
	if node != "" || len(a.nodes) <= 1 {
		if node == "" {
			for name := range a.nodes {
				node = name
			}
		}
		s := newSummary(node)
		if n := a.nodes[node]; n != nil {
			n.addTo(&s)
			s.Ring = n.ring
			s.Sensor.Final = n.final()
		}
		s.finish()
		return s
	}
	s := newSummary("")
	s.Nodes = a.Nodes()
	for i, name := range s.Nodes {
		n := a.nodes[name]
		n.addTo(&s)
		s.Sensor.Final = n.final() && (i == 0 || s.Sensor.Final)
		switch {
		case i == 0:
			s.Ring = n.ring
		case s.Ring != n.ring:
			s.Ring = event.RingConfig{Layout: ringspec.LayoutMixed}
		}
	}
	s.finish()
	return s
}

func newSummary(node string) Summary {
	return Summary{
		Node: node,
		Analyzer: AnalyzerSummary{
			ByField:  map[string]uint64{},
			ByReason: map[string]uint64{},
		},
	}
}

// addTo adds n's counts into s.
func (n *nodeState) addTo(s *Summary) {
	an := &s.Analyzer
	an.Events += n.events
	an.Missing += n.missing
	an.Batches += n.batches
	an.DuplicateBatches += n.dups
	an.DuplicatePositions += n.posDups
	an.OutOfOrderBatches += n.posOOO
	an.LateBatches += n.posLate
	an.RetentionLostBatches += n.retLost[0]
	an.RetentionLostEvents += n.retLost[1]
	for bit, c := range n.byField {
		if c == 0 {
			continue
		}
		name := event.Field(1 << bit).String()
		if name == "" {
			name = "unknown_field"
		}
		an.ByField[name] += c
	}
	for k, c := range n.bySyscall {
		if an.BySyscall == nil {
			an.BySyscall = map[string]uint64{}
		}
		an.BySyscall[k.name()] += c
	}
	for r, c := range n.byReason {
		if c == 0 {
			continue
		}
		an.ByReason[reasonKey(event.Reason(r))] += c
		if event.Reason(r).LifecycleLoss() {
			an.LifecycleAttributed += c
		}
	}

	se := &s.Sensor
	for _, r := range n.runs {
		c := &r.counters
		se.AttemptedLifecycle += c.Attempted[event.CategoryLifecycle]
		se.AttemptedSyscall += c.Attempted[event.CategorySyscall]
		se.Attempted += event.Sum(c.Attempted)
		se.Delivered += event.Sum(c.Delivered)
		se.Dropped += event.Sum(c.Dropped)
		se.DroppedLifecycle += c.Dropped[event.CategoryLifecycle]
		se.DroppedSyscall += c.Dropped[event.CategorySyscall]
		se.Shed += event.Sum(c.Shed)
		if r.haveStats {
			se.Batches += max(r.batches, r.maxSeq)
		} else {
			se.Batches += r.maxSeq
		}
		se.PublishErrors += r.publishErrors
		se.SpoolOverflow += event.Sum(r.spoolOverflow)
		se.SpoolPublishErrors += r.spoolErrors
		se.SpoolQueuedBytes += r.spoolQueued
		s.Enricher.Events += r.enricherEvents
		an.BatchGaps += r.gaps()
	}
	se.Runs += len(n.runs)
}

// final reports whether n's latest sensor run sent its final stats.
func (n *nodeState) final() bool { return n.latestRun != nil && n.latestRun.final }

func pct(num, den uint64) float64 {
	if den == 0 {
		return 0
	}
	return 100 * float64(num) / float64(den)
}

// finish fills the derived percentages.
func (s *Summary) finish() {
	s.Analyzer.MissingPct = pct(s.Analyzer.Missing, s.Analyzer.Events)
	s.Sensor.DropPct = pct(s.Sensor.Dropped, s.Sensor.Attempted)
	s.Sensor.LifecycleDropPct = pct(s.Sensor.DroppedLifecycle, s.Sensor.AttemptedLifecycle)
}

// syscallKey is a syscall event's number in its normalized ABI (ia32 calls
// mapped to x86_64, as Falco names them), or in its own ABI when unmapped.
type syscallKey struct {
	abi syscalls.ABI
	nr  uint32
}

func keyOfSyscall(e *event.Event) syscallKey {
	abi := e.SyscallABI()
	if nr, ok := syscalls.Normalize(abi, e.Syscall); ok {
		return syscallKey{syscalls.NormalABI(abi), nr}
	}
	return syscallKey{event.ABIOther, e.Syscall}
}

// name is Falco's evt.type of k (see appendEvtType).
func (k syscallKey) name() string {
	if k.abi != event.ABIOther {
		if n := syscalls.Name(k.abi, k.nr); n != "" {
			return n
		}
	}
	return "syscall_" + strconv.FormatUint(uint64(k.nr), 10)
}
