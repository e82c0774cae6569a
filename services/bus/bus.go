// Package bus is ringwise's transport: subject names (Subject,
// ParseSubject), JetStream streams, an embedded NATS server for all-in-one
// runs, publishers, and the one consume loop every service uses (Consumer:
// a ConsumerSpec and a Handler; Poison for bad input, which goes to the
// dead-letter stream RINGWISE_DLQ; other errors are retried with back-off),
// so that services stay free of NATS details.
//
// Every raw and enriched batch is published with a Nats-Msg-Id built from
// node, boot, sensor start and sequence number, so JetStream removes
// duplicates after a retry, and consumers see gaps as lost batches. NATS
// headers are passed through untouched, leaving room for trace context.
package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Subject prefixes (see Kind and ParseSubject). A node name is appended as
// the last token.
const (
	PrefixRaw      = subjectRoot + string(KindRaw) + "."
	PrefixSnapshot = subjectRoot + string(KindSnapshot) + "."
	PrefixEnriched = subjectRoot + string(KindEnriched) + "."
	PrefixStats    = subjectRoot + string(KindStats) + "."
	PrefixProc     = subjectRoot + string(KindProc) + "."
	PrefixDLQ      = subjectRoot + "dlq."
	SubjectAlerts  = "ringwise.alerts"
)

// Stream names.
const (
	StreamRaw      = "RINGWISE_RAW"
	StreamEnriched = "RINGWISE_ENRICHED"
	StreamStats    = "RINGWISE_STATS"
	// StreamDLQ holds dead letters: messages a consumer loop refused as
	// poison (see Poison), on ringwise.dlq.<kind>.<node>.
	StreamDLQ = "RINGWISE_DLQ"
)

// Header names.
const (
	// HeaderSchema carries the payload's schema version (Msg.Schema sets
	// it). A consumer loop whose ConsumerSpec.Schema is set poisons a
	// message that carries another version, as "schema_version".
	HeaderSchema = "Ringwise-Schema"
	// HeaderEnricherEvents carries, on an enriched batch, how many events
	// the enricher has enriched for the batch's node and sensor run so far,
	// this batch included: the enricher's own count, for the analyzer.
	HeaderEnricherEvents = "Ringwise-Enricher-Events"
	// HeaderRawStreamSeq carries, on an enriched batch, the RINGWISE_RAW
	// sequence of the raw batch it was made from: its position, by which
	// duplicates and order are judged (never by a number in the payload).
	HeaderRawStreamSeq = "Ringwise-Raw-Stream-Seq"
	// HeaderRawStream names the RINGWISE_RAW incarnation (its creation
	// time) that HeaderRawStreamSeq refers to.
	HeaderRawStream = "Ringwise-Raw-Stream"
	// HeaderRunUnconfirmed marks an enriched batch of a sensor run the
	// enricher has not adopted as its node's run (its batches were not yet
	// consistent with a new run: a restart's first, or a forgery). Its
	// events count; it does not make its run real for the analyzer (stats
	// held for that run stay held).
	HeaderRunUnconfirmed = "Ringwise-Run-Unconfirmed"
	// HeaderSensorUnsent carries, on a raw batch, "BATCHES EVENTS": how
	// many batches of this sensor run, and their events, the sensor itself
	// never stored before this one (spool overflow, publish or encode
	// failure). A batch-number gap downstream that these do not explain
	// was stored and then removed: retention (see HeaderRetentionLost).
	HeaderSensorUnsent = "Ringwise-Sensor-Unsent"
	// HeaderRetentionLost carries, on an enriched batch, "BATCHES EVENTS":
	// raw batches of the node, and their events, that were stored in
	// RINGWISE_RAW and removed by its limits (age, bytes, messages per
	// node) before an enricher read them, just before this batch.
	HeaderRetentionLost = "Ringwise-Retention-Lost"
)

// FormatCount2 formats the "A B" value of HeaderSensorUnsent and
// HeaderRetentionLost.
func FormatCount2(a, b uint64) string {
	return strconv.FormatUint(a, 10) + " " + strconv.FormatUint(b, 10)
}

// ParseCount2 parses an "A B" header value; ok is false when absent or
// malformed.
func ParseCount2(v string) (a, b uint64, ok bool) {
	x, y, found := strings.Cut(v, " ")
	if !found {
		return 0, 0, false
	}
	a, err1 := strconv.ParseUint(x, 10, 64)
	b, err2 := strconv.ParseUint(y, 10, 64)
	return a, b, err1 == nil && err2 == nil
}

// RawSubject is where the sensor of node publishes raw batches.
func RawSubject(node string) string { return Subject(KindRaw, node) }

// SnapshotSubject is where the sensor of node publishes its /proc snapshot.
func SnapshotSubject(node string) string { return Subject(KindSnapshot, node) }

// EnrichedSubject is where enrichers publish node's enriched batches.
func EnrichedSubject(node string) string { return Subject(KindEnriched, node) }

// StatsSubject is where the sensor of node publishes its counters.
func StatsSubject(node string) string { return Subject(KindStats, node) }

// ProcSubject is the request/reply subject of node's /proc lookup service.
func ProcSubject(node string) string { return Subject(KindProc, node) }

// ValidNode reports whether name can be used as a subject token.
func ValidNode(name string) error {
	if name == "" {
		return errors.New("node name is empty")
	}
	if len(name) > 128 {
		return fmt.Errorf("node name %q: longer than 128 bytes", name)
	}
	for _, c := range name {
		if c == '.' || c == '*' || c == '>' || c == ' ' || c == '\t' || c < 0x20 {
			return fmt.Errorf("node name %q: %q is not allowed in a NATS subject token", name, c)
		}
	}
	return nil
}

// Dead-letter stream limits: it keeps the newest dead letters within these
// bounds and discards the oldest, so a flood of poison cannot fill the
// server.
const (
	DefaultDLQMaxBytes = 64 << 20
	DefaultDLQMaxMsgs  = 100_000
	DefaultDLQMaxAge   = 7 * 24 * time.Hour
)

// Per-stream limits. One node's sensor publishes on its own subjects
// (ringwise.raw.<node>, ringwise.snapshot.<node>, ringwise.stats.<node>),
// so a per-subject message limit is a per-node limit; with MaxMsgSize it
// also bounds a node's bytes (JetStream has no per-subject byte limit).
//
// Discard policy: DiscardOld. A full stream (or a full subject) drops its
// oldest message and always accepts the new one. With DiscardNew, junk that
// fills the stream shuts every well-behaved node out (its publishes are
// refused for as long as the junk is retained); with DiscardOld a new
// message is never refused for lack of room.
//
// Strict per-node bound (StreamOptions.Nodes): with DiscardOld, what a
// stream drops when it is over its MaxBytes is its oldest message of any
// subject, which may be another node's unconsumed batch. So when the
// number of nodes that may publish is known (the sensor identities of the
// server's config, see PublishingNodes), the per-subject message limits of
// the streams sensors write (RINGWISE_RAW: raw and snapshot subjects;
// RINGWISE_STATS) are sized so that every node's worst case fits the
// stream together: nodes x subjects per node x MaxMsgsPerSubject x
// StoredMsgBound(MaxMsgSize) <= MaxBytes. nats-server (v2.15.2, memstore
// and filestore storeRawMsg) enforces a subject's message limit before the
// stream's byte limit on every store, so the byte limit then never binds:
// a node flooding its own subjects with maximum-size messages pushes out
// only its own oldest messages, never another node's, and never gets
// another node's new message refused. The price: a node's backlog is
// counted in messages of the maximum size, so MaxBytes / (nodes x 2 x
// 256 KiB) raw batches per node (2047 for one node in the default 1 GiB);
// raise StreamOptions.MaxBytes (`ringwise nats --stream-max-bytes`) for
// more. RINGWISE_ENRICHED is written by the enricher identity, which is
// trusted for every node; its per-node message limit holds, its byte bound
// is the stream's (see README "Security").
const (
	// DefaultRawMaxMsgSize bounds a raw batch or snapshot part in the
	// stream: larger ones are refused to their publisher (the sensor's
	// spool counts and drops them, see SpoolStats.Refused). The sensor
	// cuts batches under it (sensor.DefaultBatchMaxBytes) and snapshot
	// parts are far under it (event.SnapshotPartBytes). Small on purpose:
	// the strict per-node bound counts every message at this size, so it
	// sets how many batches a node may hold: 2047 for one node in 1 GiB.
	DefaultRawMaxMsgSize = 256 << 10
	// DefaultRawMaxMsgsPerNode bounds one node's raw batches (and, apart,
	// its snapshot parts) in RINGWISE_RAW when the nodes are not known
	// (anonymous servers): at a batch every 20 ms, more than half an hour
	// of a node's full-rate flood. With StreamOptions.Nodes the strict
	// limit is used when it is lower.
	DefaultRawMaxMsgsPerNode = 100_000
	// DefaultEnrichedMaxMsgSize bounds an enriched batch (event.MaxBatchBytes).
	DefaultEnrichedMaxMsgSize = 16 << 20
	// DefaultEnrichedMaxMsgsPerNode bounds one node's enriched batches.
	DefaultEnrichedMaxMsgsPerNode = 100_000
	// DefaultMaxStatsBytes bounds a stats message (about 100 samples of a
	// second at the default rates take some 30 KiB).
	DefaultMaxStatsBytes = 1 << 20
	// DefaultStatsMaxMsgsPerNode bounds one node's stats messages: about
	// three hours at one a second (with Nodes, the strict limit when lower).
	DefaultStatsMaxMsgsPerNode = 10_000
)

// maxSubjectBytes is the longest subject a node's message can have in a
// ringwise stream: the longest prefix and a node name of ValidNode's 128.
const maxSubjectBytes = len(PrefixSnapshot) + 128

// StoredMsgBound is the most a message of at most maxMsgSize bytes
// (payload and headers: what MaxMsgSize limits) adds to a stream's byte
// count. nats-server v2.15.2 counts payload + headers + subject + a record
// overhead of 16 bytes in memory (memStoreMsgSize) and at most 34 on file
// (fileStoreMsgSize); 64 covers both.
func StoredMsgBound(maxMsgSize int32) int64 {
	return int64(maxMsgSize) + int64(maxSubjectBytes) + 64
}

// StrictMsgsPerSubject is the largest per-subject message limit with which
// nodes nodes, each with subjectsPerNode subjects of messages of at most
// maxMsgSize bytes, fit maxBytes all together (0: not even one message).
func StrictMsgsPerSubject(maxBytes int64, nodes, subjectsPerNode int, maxMsgSize int32) int64 {
	if nodes <= 0 || subjectsPerNode <= 0 {
		return 0
	}
	return maxBytes / (int64(nodes) * int64(subjectsPerNode) * StoredMsgBound(maxMsgSize))
}

// StreamOptions sizes the streams.
type StreamOptions struct {
	// Memory keeps streams in memory (all-in-one runs); otherwise on file.
	Memory   bool
	MaxBytes int64         // per stream; default 1 GiB on file, 512 MiB in memory
	MaxAge   time.Duration // default 1h
	Replicas int           // default 1
	// DLQMaxBytes and DLQMaxAge bound RINGWISE_DLQ (default
	// DefaultDLQMaxBytes, DefaultDLQMaxAge).
	DLQMaxBytes int64
	DLQMaxAge   time.Duration
	// RawMaxMsgSize, RawMaxMsgsPerNode, EnrichedMaxMsgSize,
	// EnrichedMaxMsgsPerNode, StatsMaxMsgSize and StatsMaxMsgsPerNode
	// bound each stream per message and per node subject (defaults: the
	// Default* constants above).
	RawMaxMsgSize          int32
	RawMaxMsgsPerNode      int64
	EnrichedMaxMsgSize     int32
	EnrichedMaxMsgsPerNode int64
	StatsMaxMsgSize        int32
	StatsMaxMsgsPerNode    int64
	// Nodes, when above 0, is how many nodes may publish into the streams
	// (the sensor identities: PublishingNodes). The per-node message
	// limits of RINGWISE_RAW and RINGWISE_STATS are then made strict (see
	// the Per-stream limits above): lowered to StrictMsgsPerSubject when
	// left at their default, an error when set explicitly above it.
	Nodes int
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.MaxBytes == 0 {
		o.MaxBytes = 1 << 30
		if o.Memory {
			o.MaxBytes = 512 << 20 // three streams fit the embedded 2 GiB
		}
	}
	if o.MaxAge == 0 {
		o.MaxAge = time.Hour
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.DLQMaxBytes == 0 {
		o.DLQMaxBytes = DefaultDLQMaxBytes
	}
	if o.DLQMaxAge == 0 {
		o.DLQMaxAge = DefaultDLQMaxAge
	}
	def32 := func(v *int32, d int32) {
		if *v == 0 {
			*v = d
		}
	}
	def64 := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def32(&o.RawMaxMsgSize, DefaultRawMaxMsgSize)
	def64(&o.RawMaxMsgsPerNode, DefaultRawMaxMsgsPerNode)
	def32(&o.EnrichedMaxMsgSize, DefaultEnrichedMaxMsgSize)
	def64(&o.EnrichedMaxMsgsPerNode, DefaultEnrichedMaxMsgsPerNode)
	def32(&o.StatsMaxMsgSize, DefaultMaxStatsBytes)
	def64(&o.StatsMaxMsgsPerNode, DefaultStatsMaxMsgsPerNode)
	return o
}

// Subjects per node in the streams sensors write: raw and snapshot in
// RINGWISE_RAW, stats in RINGWISE_STATS.
const (
	rawSubjectsPerNode   = 2
	statsSubjectsPerNode = 1
)

// resolve applies the defaults and, with Nodes, the strict per-node
// limits. given is o before defaults, to tell an explicit limit from one
// left at its default.
func (o StreamOptions) resolve() (StreamOptions, error) {
	given := o
	o = o.withDefaults()
	if o.Nodes <= 0 {
		return o, nil
	}
	strict := func(stream string, limit *int64, explicit int64, subjects int, size int32) error {
		n := StrictMsgsPerSubject(o.MaxBytes, o.Nodes, subjects, size)
		if n < 1 {
			return fmt.Errorf("stream %s: %d bytes cannot hold one message of %d bytes on each of %d subjects of %d nodes: raise the stream's bytes or lower its message size", stream, o.MaxBytes, size, subjects, o.Nodes)
		}
		if explicit > n {
			return fmt.Errorf("stream %s: %d messages per node subject of up to %d bytes for %d nodes (%d subjects each) exceed the stream's %d bytes (at most %d fit): one node could push out another's", stream, explicit, size, o.Nodes, subjects, o.MaxBytes, n)
		}
		*limit = min(*limit, n)
		return nil
	}
	if err := strict(StreamRaw, &o.RawMaxMsgsPerNode, given.RawMaxMsgsPerNode, rawSubjectsPerNode, o.RawMaxMsgSize); err != nil {
		return o, err
	}
	if err := strict(StreamStats, &o.StatsMaxMsgsPerNode, given.StatsMaxMsgsPerNode, statsSubjectsPerNode, o.StatsMaxMsgSize); err != nil {
		return o, err
	}
	return o, nil
}

// StreamConfigs are the configurations EnsureStreams applies: RINGWISE_RAW
// (raw batches and snapshots), RINGWISE_ENRICHED, RINGWISE_STATS and the
// dead-letter stream RINGWISE_DLQ. It fails when o.Nodes is set and the
// strict per-node bound cannot hold (see StreamOptions.Nodes).
func StreamConfigs(o StreamOptions) ([]jetstream.StreamConfig, error) {
	o, err := o.resolve()
	if err != nil {
		return nil, err
	}
	storage := jetstream.FileStorage
	if o.Memory {
		storage = jetstream.MemoryStorage
	}
	var out []jetstream.StreamConfig
	for _, sc := range []jetstream.StreamConfig{
		{Name: StreamRaw, Subjects: []string{PrefixRaw + ">", PrefixSnapshot + ">"},
			MaxMsgSize: o.RawMaxMsgSize, MaxMsgsPerSubject: o.RawMaxMsgsPerNode},
		{Name: StreamEnriched, Subjects: []string{PrefixEnriched + ">"},
			MaxMsgSize: o.EnrichedMaxMsgSize, MaxMsgsPerSubject: o.EnrichedMaxMsgsPerNode},
		{Name: StreamStats, Subjects: []string{PrefixStats + ">"},
			MaxMsgSize: o.StatsMaxMsgSize, MaxMsgsPerSubject: o.StatsMaxMsgsPerNode},
	} {
		sc.Storage = storage
		sc.MaxBytes = o.MaxBytes
		sc.MaxAge = o.MaxAge
		sc.Replicas = o.Replicas
		sc.Duplicates = 2 * time.Minute
		// See the Default* limits above: junk must not shut real data out.
		sc.Discard = jetstream.DiscardOld
		out = append(out, sc)
	}
	return append(out, jetstream.StreamConfig{
		Name: StreamDLQ, Subjects: []string{PrefixDLQ + ">"}, Storage: storage, Replicas: o.Replicas,
		MaxBytes: o.DLQMaxBytes, MaxMsgs: DefaultDLQMaxMsgs, MaxAge: o.DLQMaxAge,
		// A redelivered poison message is dead-lettered once (its id is
		// the original stream and sequence).
		Duplicates: 2 * time.Minute,
		// The newest dead letters matter most; the DLQ must never refuse one.
		Discard: jetstream.DiscardOld,
	}), nil
}

// EnsureStreams creates or updates the streams of StreamConfigs.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	cfgs, err := StreamConfigs(o)
	if err != nil {
		return err
	}
	for _, sc := range cfgs {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("stream %s (subjects %v): %w", sc.Name, sc.Subjects, err)
		}
	}
	return nil
}

// CheckStreams reports the first of names that does not exist, with a
// clear error: a service with least-privilege credentials cannot create
// streams, `ringwise nats` (as admin) does.
func CheckStreams(ctx context.Context, js jetstream.JetStream, names ...string) error {
	for _, n := range names {
		if _, err := js.Stream(ctx, n); err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("stream %s does not exist: `ringwise nats` creates it with its admin identity (or run the service once with admin credentials): %w", n, err)
			}
			return fmt.Errorf("stream %s: %w", n, err)
		}
	}
	return nil
}

// Connect dials url with options suited to ringwise services: a name,
// unlimited reconnects, and a larger pending buffer for bursts.
func Connect(url, name string, extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(64 << 20),
	}, extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
			return nil, fmt.Errorf("connect to NATS at %s as %s: the server refused the credentials (wrong password, unknown user or key, or none given where the server requires them): %w", url, name, err)
		}
		return nil, fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	return nc, nil
}

// Msg is a message to publish.
type Msg struct {
	Subject string
	// ID is the Nats-Msg-Id used by JetStream to drop duplicates.
	ID     string
	Header nats.Header
	Data   []byte
	// Schema, when not 0, is sent as HeaderSchema.
	Schema int
	// OnDrop, when set, is called by a Spool that drops the message
	// (full, or closed before it was stored), so the producer can count
	// what it carried.
	OnDrop func()
}

// natsMsg builds the message to send; with copyData the data is copied.
func (m Msg) natsMsg(copyData bool) *nats.Msg {
	nm := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header}
	if copyData {
		nm.Data = append([]byte(nil), m.Data...)
	}
	if nm.Header == nil {
		nm.Header = nats.Header{}
	}
	if m.Schema != 0 {
		if m.Header != nil {
			nm.Header = cloneHeader(m.Header) // never write to the caller's map
		}
		nm.Header.Set(HeaderSchema, strconv.Itoa(m.Schema))
	}
	return nm
}

// Publisher publishes messages. Implementations must be safe for use by one
// goroutine; the data may be reused by the caller once Publish returns.
type Publisher interface {
	Publish(ctx context.Context, m Msg) error
}

// JetStreamPublisher publishes to JetStream and waits for the stream's ack,
// so a returned nil means the message is stored.
type JetStreamPublisher struct {
	JS jetstream.JetStream
}

// Publish implements Publisher.
func (p JetStreamPublisher) Publish(ctx context.Context, m Msg) error {
	nm := m.natsMsg(false)
	var opts []jetstream.PublishOpt
	if m.ID != "" {
		opts = append(opts, jetstream.WithMsgID(m.ID))
	}
	if _, err := p.JS.PublishMsg(ctx, nm, opts...); err != nil {
		return fmt.Errorf("publish %s (msg id %q): %w", m.Subject, m.ID, err)
	}
	return nil
}

// AsyncPublisher publishes to JetStream without waiting for each ack; Flush
// waits for all outstanding acks and returns how many failed. It copies the
// data, so callers may reuse their buffers.
type AsyncPublisher struct {
	JS      jetstream.JetStream
	pending []jetstream.PubAckFuture
	failed  int
	lastErr error
}

// Publish implements Publisher.
func (p *AsyncPublisher) Publish(ctx context.Context, m Msg) error {
	nm := m.natsMsg(true)
	var opts []jetstream.PublishOpt
	if m.ID != "" {
		opts = append(opts, jetstream.WithMsgID(m.ID))
	}
	f, err := p.JS.PublishMsgAsync(nm, opts...)
	if err != nil {
		return fmt.Errorf("publish %s (msg id %q): %w", m.Subject, m.ID, err)
	}
	p.pending = append(p.pending, f)
	if len(p.pending) >= 256 {
		p.reap(false)
	}
	return nil
}

// reap collects completed futures; with wait it blocks for all of them.
func (p *AsyncPublisher) reap(wait bool) {
	keep := p.pending[:0]
	for _, f := range p.pending {
		if wait {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				p.failed++
				p.lastErr = fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
			case <-time.After(30 * time.Second):
				p.failed++
				p.lastErr = fmt.Errorf("publish %s: no ack within 30s", f.Msg().Subject)
			}
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			p.failed++
			p.lastErr = fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
		default:
			keep = append(keep, f)
		}
	}
	if wait {
		keep = keep[:0]
	}
	for i := len(keep); i < len(p.pending); i++ {
		p.pending[i] = nil
	}
	p.pending = keep
}

// Failed returns and resets the number of publishes that failed since the
// last call, with the last error.
func (p *AsyncPublisher) Failed() (int, error) {
	p.reap(false)
	n, err := p.failed, p.lastErr
	p.failed, p.lastErr = 0, nil
	return n, err
}

// Flush waits for every outstanding ack.
func (p *AsyncPublisher) Flush() (failed int, err error) {
	p.reap(true)
	return p.Failed()
}

// WaitConsumed blocks until the durable consumer has no pending and no
// unacknowledged messages and no message matching its filter is stored
// after its ack floor, i.e. everything stored so far was processed.
//
// The last check is what makes the answer exact: the server counts a newly
// stored message into a consumer's pending count asynchronously (the stream
// signals its consumers from a queue), so for a moment after a publish was
// acked, consumer info can say "0 pending" for a message it has not seen.
func WaitConsumed(ctx context.Context, js jetstream.JetStream, stream, consumer string) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		done, err := consumedAll(ctx, js, stream, consumer)
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for consumer %s on stream %s: %w (last error: %v)", consumer, stream, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// consumedAll makes one check for WaitConsumed; err says why it was not
// (yet) consumed when the server answered with an error.
func consumedAll(ctx context.Context, js jetstream.JetStream, stream, consumer string) (bool, error) {
	c, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		return false, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return false, err
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		return false, nil
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return false, err
	}
	// A consumer has FilterSubject or FilterSubjects, never both.
	filters := info.Config.FilterSubjects
	if info.Config.FilterSubject != "" {
		filters = []string{info.Config.FilterSubject}
	}
	if len(filters) == 0 {
		filters = []string{">"}
	}
	for _, f := range filters {
		m, err := s.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(f))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		return false, fmt.Errorf("message %d on %s is stored after the ack floor %d", m.Sequence, m.Subject, info.AckFloor.Stream)
	}
	return true, nil
}

// NextSeq returns the sequence number the next message stored in stream
// will get: a consumer starting there sees only what comes after this call.
func NextSeq(ctx context.Context, js jetstream.JetStream, stream string) (uint64, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", stream, err)
	}
	return info.State.LastSeq + 1, nil
}

func cloneHeader(h nats.Header) nats.Header {
	out := make(nats.Header, len(h)+1)
	for k, v := range h {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// StreamWatcher notices ringwise streams that vanish (deleted by a client,
// or lost with a server's store) and recreates each with the configuration
// it last had, so that no service waits on a stream that is gone. What the
// stream held is lost; Check reports which streams were recreated.
type StreamWatcher struct {
	js      jetstream.JetStream
	known   map[string]jetstream.StreamConfig
	missing map[string]int
}

// StreamMissingChecks is how many consecutive checks must find a stream
// gone before StreamWatcher recreates it: a cluster in a leader election
// may answer "not found" for a moment, and recreating then would make an
// empty stream beside the real one.
const StreamMissingChecks = 3

// NewStreamWatcher watches the streams of StreamConfigs on js.
func NewStreamWatcher(js jetstream.JetStream) *StreamWatcher {
	return &StreamWatcher{js: js, known: map[string]jetstream.StreamConfig{}, missing: map[string]int{}}
}

// Check looks at every ringwise stream once: it remembers the
// configuration of those that exist and recreates those that existed
// before and were found gone by StreamMissingChecks checks in a row,
// returning their names.
func (w *StreamWatcher) Check(ctx context.Context) ([]string, error) {
	var made []string
	cfgs, err := StreamConfigs(StreamOptions{})
	if err != nil {
		return nil, err
	}
	for _, sc := range cfgs {
		st, err := w.js.Stream(ctx, sc.Name)
		if err == nil {
			info, err := st.Info(ctx)
			if err == nil {
				w.known[sc.Name] = info.Config
			}
			w.missing[sc.Name] = 0
			continue
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return made, fmt.Errorf("stream %s: %w", sc.Name, err)
		}
		cfg, seen := w.known[sc.Name]
		if !seen {
			continue // never existed: creating it is the services' or the admin's
		}
		if w.missing[sc.Name]++; w.missing[sc.Name] < StreamMissingChecks {
			continue
		}
		w.missing[sc.Name] = 0
		if _, err := w.js.CreateStream(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return made, fmt.Errorf("recreate stream %s (subjects %v): %w", cfg.Name, cfg.Subjects, err)
		}
		made = append(made, sc.Name)
	}
	return made, nil
}
