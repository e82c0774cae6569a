package enricher

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
)

// Defaults of the scaled mode.
const (
	// DefaultCheckpointInterval is the longest time between two
	// checkpoints of an owned node that has new input.
	DefaultCheckpointInterval = 2 * time.Second
	// DefaultCheckpointBatches checkpoints after this many raw batches,
	// whichever comes first.
	DefaultCheckpointBatches = 200
)

// HeaderRawStream is bus.HeaderRawStream.
const HeaderRawStream = bus.HeaderRawStream

// ScaleConfig configures the scaled mode (Config.Scale).
type ScaleConfig struct {
	// ID names this enricher among the members; default host-pid-random.
	ID string
	// Buckets are the members, leases and checkpoints buckets
	// (bus.EnsureBuckets); their TTLs must be MemberTTL and LeaseTTL.
	Buckets bus.Buckets
	// MemberTTL and LeaseTTL are the buckets' TTLs (default
	// bus.DefaultMemberTTL, bus.DefaultLeaseTTL): heartbeats and renewals
	// run three times per TTL.
	MemberTTL, LeaseTTL time.Duration
	// CheckpointInterval and CheckpointBatches bound the raw input a new
	// owner replays (DefaultCheckpointInterval, DefaultCheckpointBatches).
	CheckpointInterval time.Duration
	CheckpointBatches  int
}

func (c ScaleConfig) withDefaults() ScaleConfig {
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%d-%04x", NodeKeySafe(host), os.Getpid(), rand.IntN(1<<16))
	}
	if c.MemberTTL == 0 {
		c.MemberTTL = bus.DefaultMemberTTL
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = bus.DefaultLeaseTTL
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.CheckpointBatches == 0 {
		c.CheckpointBatches = DefaultCheckpointBatches
	}
	return c
}

// NodeKeySafe maps s to characters allowed in KV keys.
func NodeKeySafe(s string) string { return bus.NodeKey(s) }

// OwnershipStats are the scaled mode's counters.
type OwnershipStats struct {
	ID      string   `json:"id"`
	Members int      `json:"members"`
	Owned   []string `json:"owned"`
	// Acquired, Released and Fenced count leases taken, handed over, and
	// lost (a renewal or a checkpoint refused: another owner has the node).
	Acquired uint64 `json:"acquired"`
	Released uint64 `json:"released"`
	Fenced   uint64 `json:"fenced"`
	// Checkpoints written, their last size, and failures (other than
	// fencing).
	Checkpoints         uint64 `json:"checkpoints"`
	CheckpointBytes     int    `json:"checkpoint_bytes"`
	CheckpointErrors    uint64 `json:"checkpoint_errors"`
	CheckpointNanos     int64  `json:"checkpoint_ns_total"`
	CheckpointProcesses int    `json:"checkpoint_processes"`
	// RetentionLost counts RINGWISE_RAW sequences removed by retention
	// between a checkpoint and the oldest message left (they may have
	// been other nodes' messages: an upper bound of this node's loss).
	RetentionLost uint64 `json:"retention_lost"`
	// PublishConflicts counts enriched publishes refused because another
	// owner had written the node's subject meanwhile.
	PublishConflicts uint64 `json:"publish_conflicts"`
	// SnapshotRequests counts take-overs without a checkpoint that asked
	// the node's sensor for a fresh /proc snapshot and read on from the
	// first unpublished position; SnapshotFallbacks those where no sensor
	// answered, which replayed the node's stream instead.
	SnapshotRequests  uint64 `json:"snapshot_requests"`
	SnapshotFallbacks uint64 `json:"snapshot_fallbacks"`
}

// Owner returns the member that should own node: rendezvous (highest
// random weight) hashing, so that a member joining or leaving moves only
// the nodes it wins or held. "" when there are no members.
func Owner(node string, members []string) string {
	best, bestScore := "", uint64(0)
	for _, m := range members {
		s := score(m, node)
		if best == "" || s > bestScore || s == bestScore && m < best {
			best, bestScore = m, s
		}
	}
	return best
}

func score(member, node string) uint64 {
	h := uint64(14695981039346656037) // FNV-1a
	for _, s := range [...]string{member, "\x00", node} {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
	}
	// splitmix64 finaliser: FNV alone barely mixes similar names.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

// checkpointMeta is the JSON head of a checkpoint value; the process table
// follows as an event.Snapshot.
type checkpointMeta struct {
	Node string `json:"node"`
	// Seq is the last RINGWISE_RAW sequence of the node the table covers;
	// a new owner replays from Seq+1.
	Seq uint64 `json:"seq"`
	// Stream is the RINGWISE_RAW incarnation Seq refers to.
	Stream   string    `json:"stream"`
	Owner    string    `json:"owner"`
	LeaseRev uint64    `json:"lease_rev"`
	Time     time.Time `json:"time"`
	// The sensor run and its batch numbers (gap evidence) at Seq.
	BootID       string `json:"boot_id"`
	StartNs      uint64 `json:"start_ns"`
	LastBatchSeq uint64 `json:"last_batch_seq"`
	RunEvents    uint64 `json:"run_events"`
	Procs        int    `json:"procs"`
	// Gap is the sensor's account at LastBatchSeq (retention loss is told
	// from the sensor's own by it).
	Gap gapBase `json:"gap"`
}

func encodeCheckpoint(m checkpointMeta, procs []event.ProcInfo) ([]byte, error) {
	m.Procs = len(procs)
	head, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	body, err := event.EncodeSnapshot(&event.Snapshot{Node: m.Node, BootID: m.BootID, SensorStartNs: m.StartNs, Part: 1, Parts: 1, Procs: procs})
	if err != nil {
		return nil, err
	}
	out := binary.AppendUvarint(nil, uint64(len(head)))
	out = append(out, head...)
	return append(out, body...), nil
}

func decodeCheckpoint(data []byte) (checkpointMeta, []event.ProcInfo, error) {
	var m checkpointMeta
	n, k := binary.Uvarint(data)
	if k <= 0 || uint64(len(data)-k) < n {
		return m, nil, fmt.Errorf("checkpoint: bad head length: %w", event.ErrMalformed)
	}
	if err := json.Unmarshal(data[k:k+int(n)], &m); err != nil {
		return m, nil, fmt.Errorf("checkpoint head: %w: %v", event.ErrMalformed, err)
	}
	s, err := event.DecodeSnapshot(data[k+int(n):])
	if err != nil {
		return m, nil, fmt.Errorf("checkpoint table: %w", err)
	}
	return m, s.Procs, nil
}

// scaler runs the scaled mode of one enricher.
type scaler struct {
	e   *Enricher
	cfg ScaleConfig
	js  jetstream.JetStream

	mu    sync.Mutex
	held  map[string]*ownedNode
	stats OwnershipStats
}

// ownedNode is one node this enricher holds the lease of.
type ownedNode struct {
	s         *scaler
	node, key string
	cancel    context.CancelFunc
	done      chan struct{}
	fenced    atomic.Bool
	releasing bool // controller only

	leaseRev uint64 // under s.mu: the fencing token, renewed by the controller

	// pending is the node's consumer lag at its last delivery (read by
	// /metrics).
	pending atomic.Uint64

	// Worker goroutine only.
	ckptRev   uint64
	seq       uint64 // last raw sequence handled
	ckptSeq   uint64 // seq of the last checkpoint
	sinceCkpt int
	lastCkpt  time.Time
	// published is the raw sequence of the node's last enriched batch in
	// RINGWISE_ENRICHED; enrLast that message's sequence there.
	published uint64
	enrLast   uint64
}

func (e *Enricher) runScaled(ctx context.Context) error {
	cfg := e.cfg.Scale.withDefaults()
	b := cfg.Buckets
	if b.Members == nil || b.Leases == nil || b.Checkpoints == nil {
		return errors.New("enricher: scaled mode needs the members, leases and checkpoints buckets")
	}
	s := &scaler{e: e, cfg: cfg, js: e.cfg.JS, held: map[string]*ownedNode{}, stats: OwnershipStats{ID: cfg.ID}}
	e.mu.Lock()
	e.scale = s
	e.mu.Unlock()
	e.log.Info("scaled mode", "id", cfg.ID, "member_ttl", cfg.MemberTTL, "lease_ttl", cfg.LeaseTTL,
		"checkpoint_interval", cfg.CheckpointInterval, "checkpoint_batches", cfg.CheckpointBatches)
	tick := min(cfg.MemberTTL, cfg.LeaseTTL) / 6
	t := time.NewTicker(tick)
	defer t.Stop()
	var lastBeat, lastRenew time.Time
	for {
		now := time.Now()
		if now.Sub(lastBeat) >= cfg.MemberTTL/3 {
			if _, err := b.Members.Put(ctx, cfg.ID, []byte(now.UTC().Format(time.RFC3339Nano))); err != nil && ctx.Err() == nil {
				e.log.Warn("heartbeat", "bucket", bus.BucketMembers, "id", cfg.ID, "err", err)
			} else {
				lastBeat = now
			}
		}
		if now.Sub(lastRenew) >= cfg.LeaseTTL/3 {
			s.renew(ctx)
			lastRenew = now
		}
		s.reap(ctx)
		s.balance(ctx)
		select {
		case <-ctx.Done():
			s.shutdown()
			return nil
		case <-t.C:
		}
	}
}

// members lists the live members, this one included.
func (s *scaler) members(ctx context.Context) ([]string, error) {
	keys, err := s.cfg.Buckets.Members.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, fmt.Errorf("bucket %s: %w", bus.BucketMembers, err)
	}
	if !slices.Contains(keys, s.cfg.ID) {
		keys = append(keys, s.cfg.ID)
	}
	slices.Sort(keys)
	return keys, nil
}

// nodes lists the nodes that have raw input in RINGWISE_RAW.
func (s *scaler) nodes(ctx context.Context) ([]string, error) {
	st, err := s.js.Stream(ctx, bus.StreamRaw)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", bus.StreamRaw, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(bus.PrefixRaw+">"))
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", bus.StreamRaw, err)
	}
	out := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		if _, node, err := bus.ParseSubject(subj); err == nil {
			out = append(out, node)
		}
	}
	slices.Sort(out)
	return out, nil
}

// balance acquires the nodes this member should own and hands over those
// another live member should own.
func (s *scaler) balance(ctx context.Context) {
	members, err := s.members(ctx)
	if err != nil {
		s.e.log.Warn("members", "err", err)
		return
	}
	nodes, err := s.nodes(ctx)
	if err != nil {
		s.e.log.Warn("nodes", "err", err)
		return
	}
	s.mu.Lock()
	s.stats.Members = len(members)
	for node := range s.held {
		if !slices.Contains(nodes, node) {
			nodes = append(nodes, node)
		}
	}
	s.mu.Unlock()
	for _, node := range nodes {
		pref := Owner(node, members)
		s.mu.Lock()
		o := s.held[node]
		s.mu.Unlock()
		switch {
		case o == nil && pref == s.cfg.ID:
			s.acquire(ctx, node)
		case o != nil && pref != s.cfg.ID && !o.releasing:
			o.releasing = true
			s.e.log.Info("handing over", "node", node, "to", pref)
			go s.release(o)
		}
	}
}

// acquire takes node's lease if it is free and starts its worker.
func (s *scaler) acquire(ctx context.Context, node string) {
	key := bus.NodeKey(node)
	rev, err := s.cfg.Buckets.Leases.Create(ctx, key, []byte(s.cfg.ID))
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
			s.e.log.Warn("lease", "bucket", bus.BucketLeases, "node", node, "err", err)
		}
		return // held by another: it hands over, or its lease expires
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	o := &ownedNode{s: s, node: node, key: key, cancel: cancel, done: make(chan struct{}), leaseRev: rev}
	s.mu.Lock()
	s.held[node] = o
	s.stats.Acquired++
	s.mu.Unlock()
	s.e.log.Info("took node", "node", node, "lease_rev", rev, "id", s.cfg.ID)
	go o.run(wctx)
}

// renew renews every held lease; a refused renewal fences the node.
func (s *scaler) renew(ctx context.Context) {
	s.mu.Lock()
	owned := make([]*ownedNode, 0, len(s.held))
	for _, o := range s.held {
		owned = append(owned, o)
	}
	s.mu.Unlock()
	for _, o := range owned {
		if o.fenced.Load() {
			continue
		}
		s.mu.Lock()
		rev := o.leaseRev
		s.mu.Unlock()
		nrev, err := s.cfg.Buckets.Leases.Update(ctx, o.key, []byte(s.cfg.ID), rev)
		if err == nil {
			s.mu.Lock()
			o.leaseRev = nrev
			s.mu.Unlock()
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			s.fence(o, fmt.Errorf("lease renewal refused: %w", err))
			continue
		}
		s.e.log.Warn("lease renewal failed; retrying", "node", o.node, "err", err)
	}
}

// fence stops o at once: another owner has its node. Its checkpoint is
// not written (it would be refused anyway).
func (s *scaler) fence(o *ownedNode, why error) {
	if o.fenced.Swap(true) {
		return
	}
	o.cancel()
	s.mu.Lock()
	s.stats.Fenced++
	s.mu.Unlock()
	// It stays in held until its worker is done (reap drops it then), so
	// the node is not taken again by this enricher while the batch in hand
	// finishes.
	s.e.log.Warn("fenced: node lost to another owner", "node", o.node, "id", s.cfg.ID, "err", why)
}

// reap drops workers that stopped by themselves (a failed take-over) and
// frees their leases.
func (s *scaler) reap(ctx context.Context) {
	s.mu.Lock()
	var dead []*ownedNode
	for _, o := range s.held {
		select {
		case <-o.done:
			if !o.releasing {
				dead = append(dead, o)
			}
		default:
		}
	}
	s.mu.Unlock()
	for _, o := range dead {
		s.dropLease(ctx, o)
	}
}

// release hands o's node over: the worker finishes the batch in hand and
// writes a final checkpoint, then the lease is deleted so the preferred
// owner takes the node without waiting for the TTL.
func (s *scaler) release(o *ownedNode) {
	o.cancel()
	<-o.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.dropLease(ctx, o)
	s.mu.Lock()
	s.stats.Released++
	s.mu.Unlock()
}

func (s *scaler) dropLease(ctx context.Context, o *ownedNode) {
	s.mu.Lock()
	rev := o.leaseRev
	if s.held[o.node] == o {
		delete(s.held, o.node)
	}
	s.mu.Unlock()
	if !o.fenced.Load() {
		if err := s.cfg.Buckets.Leases.Delete(ctx, o.key, jetstream.LastRevision(rev)); err != nil {
			s.e.log.Warn("lease release", "node", o.node, "err", err)
		}
	}
	s.e.forget(o.node, o)
	s.e.log.Info("released node", "node", o.node, "id", s.cfg.ID)
}

// shutdown hands every node over and leaves the members.
func (s *scaler) shutdown() {
	s.mu.Lock()
	var all []*ownedNode
	for _, o := range s.held {
		if !o.releasing {
			o.releasing = true
			all = append(all, o)
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, o := range all {
		wg.Add(1)
		go func() { defer wg.Done(); s.release(o) }()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.cfg.Buckets.Members.Delete(ctx, s.cfg.ID)
}

// forget drops node's state if o still has it.
func (e *Enricher) forget(node string, o *ownedNode) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ns := e.nodes[node]; ns != nil && ns.owned == o {
		delete(e.nodes, node)
		e.stats.Nodes = len(e.nodes)
	}
}

// run is the worker of one owned node: take over from the checkpoint, then
// consume the node's raw and snapshot subjects in order from the next
// sequence, checkpointing as it goes; a final checkpoint on hand-over.
func (o *ownedNode) run(ctx context.Context) {
	defer close(o.done)
	s, e := o.s, o.s.e
	start, err := o.takeover(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("take-over failed", "node", o.node, "err", err)
		}
		return
	}
	spec := e.Spec()
	spec.Durable = "ringwise-enricher-" + bus.NodeKey(s.cfg.ID)
	spec.FilterSubjects = []string{bus.SnapshotSubject(o.node), bus.RawSubject(o.node)}
	c, err := bus.NewConsumer(s.js, spec, o.handle, bus.WithLogger(e.log), bus.WithTracing(e.cfg.Tracing))
	if err != nil {
		e.log.Error("consumer", "node", o.node, "err", err)
		return
	}
	e.mu.Lock()
	e.nodeConsumers = append(e.nodeConsumers, c)
	e.mu.Unlock()
	e.log.Info("consuming node", "node", o.node, "from_seq", start, "published_up_to", o.published)
	if err := c.RunOrdered(ctx, start); err != nil {
		e.log.Error("consuming node stopped", "node", o.node, "err", err)
	}
	if !o.fenced.Load() && o.seq > o.ckptSeq {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		o.checkpoint(cctx)
	}
}

// handle processes one message of the node and checkpoints when due.
func (o *ownedNode) handle(ctx context.Context, d bus.Delivery) error {
	if o.fenced.Load() {
		return errors.New("fenced")
	}
	err := o.s.e.handle(ctx, d)
	if _, poison := bus.PoisonReason(err); err != nil && !poison {
		return err
	}
	o.seq = d.StreamSeq
	o.pending.Store(d.Pending)
	o.sinceCkpt++
	if o.sinceCkpt >= o.s.cfg.CheckpointBatches || time.Since(o.lastCkpt) >= o.s.cfg.CheckpointInterval {
		o.checkpoint(ctx)
	}
	return err
}

// checkpoint writes the node's table and sequence by compare-and-set on the
// checkpoint's revision: once another owner has claimed the checkpoint, the
// write is refused and this owner is fenced.
func (o *ownedNode) checkpoint(ctx context.Context) {
	s, e := o.s, o.s.e
	t0 := time.Now()
	e.mu.Lock()
	ns := e.nodes[o.node]
	if ns == nil || ns.owned != o {
		e.mu.Unlock()
		return
	}
	meta := checkpointMeta{Node: o.node, Seq: o.seq, Stream: e.rawInc, Owner: s.cfg.ID, Time: t0.UTC(),
		BootID: ns.bootID, StartNs: ns.startNs, LastBatchSeq: ns.lastSeq, RunEvents: ns.runEvents, Gap: ns.gap}
	table := ns.table
	e.mu.Unlock()
	s.mu.Lock()
	meta.LeaseRev = o.leaseRev
	s.mu.Unlock()
	procs := table.Snapshot()
	data, err := encodeCheckpoint(meta, procs)
	if err == nil {
		var rev uint64
		rev, err = s.cfg.Buckets.Checkpoints.Update(ctx, o.key, data, o.ckptRev)
		if err == nil {
			o.ckptRev, o.ckptSeq, o.sinceCkpt, o.lastCkpt = rev, o.seq, 0, time.Now()
			s.mu.Lock()
			s.stats.Checkpoints++
			s.stats.CheckpointBytes = len(data)
			s.stats.CheckpointProcesses = len(procs)
			s.stats.CheckpointNanos += int64(time.Since(t0))
			s.mu.Unlock()
			return
		}
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			s.fence(o, fmt.Errorf("checkpoint of %s refused: %w", o.node, err))
			return
		}
	}
	o.lastCkpt = time.Now() // do not retry on every batch
	s.mu.Lock()
	s.stats.CheckpointErrors++
	s.mu.Unlock()
	e.log.Warn("checkpoint failed", "bucket", bus.BucketCheckpoints, "node", o.node, "bytes", len(data), "err", err)
}

// takeover loads the node's checkpoint into a fresh table, claims the
// checkpoint (so a previous owner's late writes are refused), and finds
// what the previous owner already published. It returns the raw sequence
// to consume from.
func (o *ownedNode) takeover(ctx context.Context) (uint64, error) {
	s, e := o.s, o.s.e
	e.mu.Lock()
	delete(e.nodes, o.node)
	ns := e.ownedNodeState(o.node)
	ns.owned = o
	inc := e.rawInc
	e.mu.Unlock()
	kv := s.cfg.Buckets.Checkpoints
	start := e.cfg.FromSeq
	claimed, loaded := false, false
	for attempt := 0; attempt < 10 && !claimed; attempt++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		s.mu.Lock()
		leaseRev := o.leaseRev
		s.mu.Unlock()
		entry, err := kv.Get(ctx, o.key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			meta := checkpointMeta{Node: o.node, Stream: inc, Owner: s.cfg.ID, LeaseRev: leaseRev, Time: time.Now().UTC()}
			data, _ := encodeCheckpoint(meta, nil)
			rev, err := kv.Create(ctx, o.key, data)
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			if err != nil {
				return 0, fmt.Errorf("bucket %s key %s: %w", bus.BucketCheckpoints, o.key, err)
			}
			o.ckptRev, claimed = rev, true
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("bucket %s key %s: %w", bus.BucketCheckpoints, o.key, err)
		}
		meta, procs, derr := decodeCheckpoint(entry.Value())
		if derr != nil || meta.Stream != inc {
			// Unreadable, or of a RINGWISE_RAW that no longer exists:
			// start afresh (the loss is the raw stream's, reported as such).
			e.log.Warn("checkpoint unusable; replaying the node's stream", "node", o.node, "err", derr,
				"checkpoint_stream", meta.Stream, "stream", inc)
			meta, procs = checkpointMeta{Node: o.node, Stream: inc}, nil
		}
		meta.Owner, meta.LeaseRev, meta.Time = s.cfg.ID, leaseRev, time.Now().UTC()
		data, err := encodeCheckpoint(meta, procs)
		if err != nil {
			return 0, err
		}
		rev, err := kv.Update(ctx, o.key, data, entry.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			continue // the previous owner wrote one more: load that
		}
		if err != nil {
			return 0, fmt.Errorf("bucket %s key %s: claim: %w", bus.BucketCheckpoints, o.key, err)
		}
		o.ckptRev, claimed = rev, true
		e.mu.Lock()
		if meta.Seq > 0 || len(procs) > 0 {
			ns.table.Seed(procs)
			ns.bootID, ns.startNs, ns.lastSeq, ns.runEvents, ns.lastPos = meta.BootID, meta.StartNs, meta.LastBatchSeq, meta.RunEvents, meta.Seq
			ns.gap = meta.Gap
		}
		e.mu.Unlock()
		if meta.Seq > 0 {
			start = meta.Seq + 1
			o.seq, o.ckptSeq = meta.Seq, meta.Seq
			loaded = true
		}
		e.log.Info("loaded checkpoint", "node", o.node, "seq", meta.Seq, "processes", len(procs), "previous_owner_lease_rev", meta.LeaseRev)
	}
	if !claimed {
		return 0, fmt.Errorf("bucket %s key %s: could not claim the checkpoint", bus.BucketCheckpoints, o.key)
	}
	o.lastCkpt = time.Now()
	// Retention: raw input removed before a checkpoint covered it is lost.
	if st, err := s.js.Stream(ctx, bus.StreamRaw); err == nil && start > 0 {
		if first := st.CachedInfo().State.FirstSeq; first > start {
			s.mu.Lock()
			s.stats.RetentionLost += first - start
			s.mu.Unlock()
			e.log.Error("raw input lost to retention before a checkpoint covered it", "node", o.node,
				"checkpoint_next_seq", start, "stream_first_seq", first)
		}
	}
	// What the previous owner already published is not published again.
	est, err := s.js.Stream(ctx, bus.StreamEnriched)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", bus.StreamEnriched, err)
	}
	last, err := est.GetLastMsgForSubject(ctx, bus.EnrichedSubject(o.node))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return 0, fmt.Errorf("stream %s subject %s: %w", bus.StreamEnriched, bus.EnrichedSubject(o.node), err)
	default:
		o.enrLast = last.Sequence
		if last.Header.Get(HeaderRawStream) == inc {
			o.published, _ = strconv.ParseUint(last.Header.Get(HeaderRawStreamSeq), 10, 64)
		}
	}
	switch {
	case loaded:
	case o.published == 0:
		// Nothing of the node was enriched yet: every message from the
		// start must be, so reading from there replays nothing.
		e.log.Info("no checkpoint and nothing published yet: reading the node's stream from its start", "node", o.node, "from_seq", start)
	default:
		if from, err := o.freshSnapshot(ctx, last); err == nil {
			start = from
		} else {
			s.mu.Lock()
			s.stats.SnapshotFallbacks++
			s.mu.Unlock()
			e.log.Warn("no checkpoint and no fresh snapshot from the sensor: replaying the node's stream to rebuild its table",
				"node", o.node, "from_seq", start, "published_up_to", o.published, "err", err)
		}
	}
	return start, nil
}

// snapshotRequestTimeout bounds one snapshot request to a sensor.
const snapshotRequestTimeout = 2 * time.Second

// freshSnapshot is the take-over of a node without a checkpoint whose
// enriched output exists (up to o.published): instead of replaying the
// node's raw stream from its start to rebuild the table, it asks the
// node's sensor for a fresh /proc snapshot, which the sensor publishes in
// order with its raw batches (so after o.published), resumes the sensor
// run's account from the last enriched batch (last), and returns the
// first unpublished position to read from. Until the snapshot arrives the
// table is empty and unknown processes are looked up in /proc. It fails
// when no sensor answers (the caller replays instead).
func (o *ownedNode) freshSnapshot(ctx context.Context, last *jetstream.RawStreamMsg) (uint64, error) {
	s, e := o.s, o.s.e
	if e.cfg.NC == nil {
		return 0, errors.New("no NATS connection for requests")
	}
	var b event.EnrichedBatch
	if err := event.NewCodec().DecodeEnriched(last.Data, &b); err != nil {
		return 0, fmt.Errorf("last enriched batch: %w", err)
	}
	l := procfs.NATSLookup{NC: e.cfg.NC, Node: o.node}
	var rep procfs.SnapshotReply
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, snapshotRequestTimeout)
		rep, err = l.RequestSnapshot(rctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), procfs.ErrSnapshotTooSoon) {
			break
		}
		time.Sleep(procfs.SnapshotRequestInterval)
	}
	if err != nil {
		return 0, err
	}
	unsentB, unsentE, unsentOK := bus.ParseCount2(last.Header.Get(bus.HeaderSensorUnsent))
	runEvents, _ := strconv.ParseUint(last.Header.Get(bus.HeaderEnricherEvents), 10, 64)
	e.mu.Lock()
	if ns := e.nodes[o.node]; ns != nil && ns.owned == o {
		ns.bootID, ns.startNs, ns.lastSeq, ns.lastPos, ns.runEvents = b.BootID, b.SensorStartNs, b.RawSeq, o.published, runEvents
		ns.gap = gapBase{Known: unsentOK, Delivered: event.Sum(b.Counters.Delivered), UnsentBatches: unsentB, UnsentEvents: unsentE}
	}
	e.mu.Unlock()
	s.mu.Lock()
	s.stats.SnapshotRequests++
	s.mu.Unlock()
	e.log.Info("no checkpoint: asked the sensor for a fresh /proc snapshot instead of replaying; reading from the first unpublished position",
		"node", o.node, "from_seq", o.published+1, "snapshot_processes", rep.Processes, "snapshot_parts", rep.Parts, "snapshot_id", rep.ID)
	return o.published + 1, nil
}

// publish stores an enriched batch of raw sequence pos only if the node's
// enriched subject still ends where this owner left it (expected last
// subject sequence): the server refuses a second writer, so a fenced owner
// can never interleave with the new one. A refusal whose last message is
// at or past pos means the batch is already there.
func (o *ownedNode) publish(ctx context.Context, m bus.Msg, pos uint64) error {
	s := o.s
	subj := m.Subject
	h := m.Header
	if h == nil {
		h = nats.Header{}
	}
	if m.Schema != 0 {
		h.Set(bus.HeaderSchema, strconv.Itoa(m.Schema))
	}
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		if o.fenced.Load() {
			return fmt.Errorf("publish %s: fenced", subj)
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ack, err := s.js.PublishMsg(pctx, &nats.Msg{Subject: subj, Header: h, Data: m.Data},
			jetstream.WithMsgID(m.ID), jetstream.WithExpectLastSequencePerSubject(o.enrLast))
		cancel()
		if err == nil && !ack.Duplicate {
			o.enrLast, o.published = ack.Sequence, pos
			return nil
		}
		var apiErr *jetstream.APIError
		conflict := err == nil || errors.As(err, &apiErr) &&
			(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
		if !conflict {
			lastErr = fmt.Errorf("publish %s (msg id %q): %w", subj, m.ID, err)
			time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
			continue
		}
		// Someone wrote the subject: this owner's own earlier attempt whose
		// ack was lost, or another owner.
		est, err := s.js.Stream(ctx, bus.StreamEnriched)
		if err != nil {
			lastErr = fmt.Errorf("stream %s: %w", bus.StreamEnriched, err)
			continue
		}
		last, err := est.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			lastErr = fmt.Errorf("stream %s subject %s: %w", bus.StreamEnriched, subj, err)
			continue
		}
		o.enrLast = last.Sequence
		p, _ := strconv.ParseUint(last.Header.Get(HeaderRawStreamSeq), 10, 64)
		if last.Header.Get(HeaderRawStream) == h.Get(HeaderRawStream) && p >= pos {
			if last.Header.Get(nats.MsgIdHdr) != m.ID {
				s.mu.Lock()
				s.stats.PublishConflicts++
				s.mu.Unlock()
			}
			o.published = p
			return nil
		}
		lastErr = fmt.Errorf("publish %s: last raw position %d is behind %d; retrying", subj, p, pos)
	}
	return lastErr
}

// ownership returns a copy of the scaled mode's counters, or nil.
func (e *Enricher) ownership() *OwnershipStats {
	if e.scale == nil {
		return nil
	}
	s := e.scale
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Owned = make([]string, 0, len(s.held))
	for n := range s.held {
		st.Owned = append(st.Owned, n)
	}
	slices.Sort(st.Owned)
	return &st
}

// lags returns the consumer lag of every node this enricher owns.
func (s *scaler) lags() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.held))
	for node, o := range s.held {
		out[node] = o.pending.Load()
	}
	return out
}
