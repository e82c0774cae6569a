package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/services/telemetry"
)

// Defaults of a ConsumerSpec.
const (
	// DefaultAckWait is how long the server waits for an ack before it
	// redelivers.
	DefaultAckWait = 2 * time.Minute
	// DefaultMaxAckPending bounds the unacknowledged messages in flight.
	// Above 1, a nak'ed message can come back after newer ones: a consumer
	// that needs strict order per subject uses 1 (one consumer per node).
	DefaultMaxAckPending = 4096
	// DefaultPullBatch is how many messages one pull asks for.
	DefaultPullBatch = 256
	// DefaultMaxDeliver of -1 redelivers a retryable failure without
	// limit; with a limit, the last failed delivery is dead-lettered as
	// "max_deliver" rather than silently dropped.
	DefaultMaxDeliver = -1
	// DefaultMaxMessageBytes is NATS's default max_payload: a larger
	// message would not pass a standard server, and no ringwise producer
	// writes one (batches and snapshot parts stay well under it). Larger
	// messages are poisoned as "oversized" before the handler sees them.
	DefaultMaxMessageBytes = 1 << 20
	// DefaultRetryBase and DefaultRetryMax bound the nak back-off: base
	// after the first failed delivery, doubling per delivery, at most max.
	DefaultRetryBase = 100 * time.Millisecond
	DefaultRetryMax  = 5 * time.Second
	// DeadLetterMaxData bounds the payload copied into a dead letter; the
	// original size is in HeaderDLQSize, truncation in HeaderDLQTruncated.
	DeadLetterMaxData = 256 << 10
)

// Reasons the loop itself poisons a message for, before any handler.
const (
	ReasonBadSubject    = "bad_subject"
	ReasonOversized     = "oversized"
	ReasonSchemaVersion = "schema_version"
	ReasonMaxDeliver    = "max_deliver"
	// ReasonBadInput is the reason of a Poison without one.
	ReasonBadInput = "bad_input"
)

// Dead-letter headers, set on every message in RINGWISE_DLQ.
const (
	HeaderDLQReason    = "Ringwise-Dlq-Reason"    // why: "malformed", "oversized", "schema_version", …
	HeaderDLQError     = "Ringwise-Dlq-Error"     // the handler's error text (at most 1 KiB)
	HeaderDLQSubject   = "Ringwise-Dlq-Subject"   // the original subject
	HeaderDLQStream    = "Ringwise-Dlq-Stream"    // the original stream
	HeaderDLQSeq       = "Ringwise-Dlq-Seq"       // the original stream sequence
	HeaderDLQConsumer  = "Ringwise-Dlq-Consumer"  // the durable that refused it
	HeaderDLQDelivered = "Ringwise-Dlq-Delivered" // its delivery count then
	HeaderDLQSize      = "Ringwise-Dlq-Size"      // the original payload size in bytes
	HeaderDLQTruncated = "Ringwise-Dlq-Truncated" // "true" when only the first DeadLetterMaxData bytes are kept
)

// ConsumerSpec describes one durable pull consumer and how the loop runs it.
// Zero fields take the Default* constants.
type ConsumerSpec struct {
	Stream         string
	Durable        string
	FilterSubjects []string
	// StartSeq, when set, is the first stream sequence to deliver (a run
	// against a long-lived NATS must not replay earlier runs); 0 delivers
	// everything stored.
	StartSeq uint64
	AckWait  time.Duration
	// MaxAckPending bounds unacknowledged messages; 1 keeps strict order
	// through redeliveries (see DefaultMaxAckPending).
	MaxAckPending int
	PullBatch     int
	// MaxDeliver bounds deliveries of one message (DefaultMaxDeliver:
	// none): the handler sees a message at most MaxDeliver times, and a
	// retryable failure on the last is dead-lettered as "max_deliver". The
	// server delivers once more (its MaxDeliver is this + 1), so a message
	// that was delivered MaxDeliver times without being settled — the
	// service stopped or crashed while handling it, or overran AckWait —
	// is dead-lettered on that delivery without the handler, instead of
	// being left unacknowledged for ever once the server gives up.
	MaxDeliver int
	// MaxBytes poisons larger messages as "oversized".
	MaxBytes int
	// Schema, when not 0, poisons a message whose HeaderSchema is present
	// and says another version, as "schema_version". Messages without the
	// header pass (their payload decoder checks its own version).
	Schema int
	// RetryBase and RetryMax bound the back-off of retryable failures.
	RetryBase, RetryMax time.Duration
}

func (s ConsumerSpec) withDefaults() ConsumerSpec {
	if s.AckWait == 0 {
		s.AckWait = DefaultAckWait
	}
	if s.MaxAckPending == 0 {
		s.MaxAckPending = DefaultMaxAckPending
	}
	if s.PullBatch == 0 {
		s.PullBatch = DefaultPullBatch
	}
	if s.MaxDeliver == 0 {
		s.MaxDeliver = DefaultMaxDeliver
	}
	if s.MaxBytes == 0 {
		s.MaxBytes = DefaultMaxMessageBytes
	}
	if s.RetryBase == 0 {
		s.RetryBase = DefaultRetryBase
	}
	if s.RetryMax == 0 {
		s.RetryMax = DefaultRetryMax
	}
	return s
}

// ConsumerConfig is the JetStream configuration of the durable consumer.
func (s ConsumerSpec) ConsumerConfig() jetstream.ConsumerConfig {
	s = s.withDefaults()
	cc := jetstream.ConsumerConfig{
		Durable:        s.Durable,
		FilterSubjects: s.FilterSubjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        s.AckWait,
		MaxAckPending:  s.MaxAckPending,
		MaxDeliver:     s.MaxDeliver,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if s.MaxDeliver > 0 {
		cc.MaxDeliver = s.MaxDeliver + 1 // see ConsumerSpec.MaxDeliver
	}
	if s.StartSeq > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, s.StartSeq
	}
	return cc
}

// Backoff is the nak delay after the delivered-th failed delivery:
// RetryBase doubling per delivery, at most RetryMax.
func (s ConsumerSpec) Backoff(delivered uint64) time.Duration {
	s = s.withDefaults()
	d := s.RetryBase
	for i := uint64(1); i < delivered && d < s.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.RetryMax)
}

// Delivery is one message handed to a Handler.
type Delivery struct {
	Subject string
	Kind    Kind   // parsed from Subject
	Node    string // parsed from Subject
	Data    []byte // valid until the handler returns
	Header  nats.Header
	// StreamSeq is the message's sequence in its stream.
	StreamSeq uint64
	// Delivered counts deliveries of this message, 1 the first time.
	Delivered uint64
	// Pending is how many messages the consumer still had to deliver after
	// this one when it was sent: the consumer's lag behind its stream.
	Pending uint64
}

// Handler processes one delivery. nil acks it; an error wrapped by Poison
// terminates it and dead-letters it; any other error naks it with back-off,
// so it is redelivered (possibly after newer messages, unless MaxAckPending
// is 1).
type Handler func(ctx context.Context, d Delivery) error

type poisonError struct {
	reason string
	err    error
}

func (p *poisonError) Error() string { return p.err.Error() }
func (p *poisonError) Unwrap() error { return p.err }

// Poison marks err as bad input: redelivery cannot help. The loop
// terminates the message, counts it and copies it to RINGWISE_DLQ with
// reason ReasonBadInput. nil stays nil.
func Poison(err error) error { return PoisonAs(ReasonBadInput, err) }

// PoisonAs is Poison with a reason (a short snake_case word such as
// "malformed" or "node_mismatch") for the counters and the dead letter.
func PoisonAs(reason string, err error) error {
	if err == nil {
		return nil
	}
	return &poisonError{reason: reason, err: err}
}

// PoisonReason reports whether err was marked by Poison, and its reason.
func PoisonReason(err error) (string, bool) {
	var p *poisonError
	if errors.As(err, &p) {
		return p.reason, true
	}
	return "", false
}

// ConsumerStats are a loop's counters.
type ConsumerStats struct {
	Acked   uint64 `json:"acked"`
	Retried uint64 `json:"retried"` // nak'ed with back-off
	// Poisoned counts terminated messages by reason.
	Poisoned     map[string]uint64 `json:"poisoned"`
	DeadLettered uint64            `json:"dead_lettered"`
	// DeadLetterErrors counts poison that could not be copied to the DLQ
	// (it is terminated all the same, never redelivered forever).
	DeadLetterErrors uint64 `json:"dead_letter_errors"`
}

// PoisonedTotal is the sum of Poisoned.
func (s ConsumerStats) PoisonedTotal() uint64 {
	var n uint64
	for _, v := range s.Poisoned {
		n += v
	}
	return n
}

// Consumer is the consume loop of one ConsumerSpec; see Run.
type Consumer struct {
	js   jetstream.JetStream
	spec ConsumerSpec
	h    Handler
	log  *slog.Logger
	// tracing starts each delivery's process span (disabled by default).
	tracing *telemetry.Tracing

	mu    sync.Mutex
	stats ConsumerStats
}

// ConsumerOption configures a Consumer.
type ConsumerOption func(*Consumer)

// WithLogger logs retries, poison and consume errors to log.
func WithLogger(log *slog.Logger) ConsumerOption {
	return func(c *Consumer) {
		if log != nil {
			c.log = log
		}
	}
}

// WithTracing starts a consumer span ("process <subject>") around each
// delivery: the child of the trace context in the message's headers, and
// linked to it, with the messaging attributes (the durable is the consumer
// group). The handler's ctx carries the span: a handler adds the batch's
// event count with telemetry.SetEvents(trace.SpanFromContext(ctx), n), and
// spans it starts (a publish) are its children. nil disables tracing.
func WithTracing(t *telemetry.Tracing) ConsumerOption {
	return func(c *Consumer) {
		if t != nil {
			c.tracing = t
		}
	}
}

// NewConsumer returns the loop of spec with handler h; Run runs it.
func NewConsumer(js jetstream.JetStream, spec ConsumerSpec, h Handler, opts ...ConsumerOption) (*Consumer, error) {
	if js == nil {
		return nil, fmt.Errorf("consumer %s on stream %s: no JetStream context", spec.Durable, spec.Stream)
	}
	if spec.Stream == "" || spec.Durable == "" || h == nil {
		return nil, fmt.Errorf("consumer %q on stream %q: need a stream, a durable name and a handler", spec.Durable, spec.Stream)
	}
	c := &Consumer{js: js, spec: spec.withDefaults(), h: h, log: slog.New(slog.DiscardHandler),
		tracing: telemetry.Disabled(), stats: ConsumerStats{Poisoned: map[string]uint64{}}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Spec returns the spec with its defaults filled in.
func (c *Consumer) Spec() ConsumerSpec { return c.spec }

// Stats returns a copy of the counters.
func (c *Consumer) Stats() ConsumerStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Poisoned = make(map[string]uint64, len(c.stats.Poisoned))
	for k, v := range c.stats.Poisoned {
		s.Poisoned[k] = v
	}
	return s
}

// Run creates or updates the durable consumer and feeds its messages, one
// at a time, to the handler until ctx is done. Then it drains: it stops
// pulling, hands the messages already received to the handler, and returns
// nil. The handler's context is not cancelled by ctx, so in-flight work
// finishes. Run returns an error if the consumer cannot be created, or if
// consuming stops by itself (the consumer or stream was deleted).
func (c *Consumer) Run(ctx context.Context) error {
	where := fmt.Sprintf("consumer %s on stream %s", c.spec.Durable, c.spec.Stream)
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.spec.Stream, c.spec.ConsumerConfig())
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	hctx := context.WithoutCancel(ctx)
	var (
		errMu   sync.Mutex
		lastErr error
	)
	cc, err := cons.Consume(func(m jetstream.Msg) { c.handle(hctx, m) },
		jetstream.PullMaxMessages(c.spec.PullBatch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			errMu.Lock()
			lastErr = err
			errMu.Unlock()
			c.log.Warn("consume", "stream", c.spec.Stream, "consumer", c.spec.Durable, "err", err)
		}))
	if err != nil {
		return fmt.Errorf("%s: consume: %w", where, err)
	}
	select {
	case <-ctx.Done():
		cc.Drain()
		<-cc.Closed()
		return nil
	case <-cc.Closed():
		errMu.Lock()
		defer errMu.Unlock()
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%s: consuming stopped: %w", where, errors.Join(errors.New("closed by the client library"), lastErr))
	}
}

// handle runs the handler on one message and settles it.
func (c *Consumer) handle(ctx context.Context, m jetstream.Msg) {
	d := newDelivery(m)
	var node string
	if c.tracing.Enabled() {
		_, node, _ = ParseSubject(d.Subject) // check() refuses a bad one
	}
	ctx, span := c.tracing.StartProcess(ctx, telemetry.Batch{Subject: d.Subject, MsgID: d.Header.Get(jetstream.MsgIDHeader),
		Node: node, Group: c.spec.Durable}, d.Header)
	err := c.check(&d)
	if err == nil && c.spec.MaxDeliver > 0 && d.Delivered > uint64(c.spec.MaxDeliver) {
		err = PoisonAs(ReasonMaxDeliver, fmt.Errorf("%s seq %d: delivery %d, after %d that were never settled (the service stopped or crashed while handling it, or overran its ack wait): not handed to the handler again",
			d.Subject, d.StreamSeq, d.Delivered, c.spec.MaxDeliver))
	}
	if err == nil {
		err = c.h(ctx, d)
	}
	telemetry.EndSpan(span, err)
	if err == nil {
		if aerr := m.Ack(); aerr != nil {
			c.log.Warn("ack", "subject", d.Subject, "seq", d.StreamSeq, "err", aerr)
		}
		c.count(func(s *ConsumerStats) { s.Acked++ })
		return
	}
	reason, poison := PoisonReason(err)
	if !poison && c.spec.MaxDeliver > 0 && d.Delivered >= uint64(c.spec.MaxDeliver) {
		reason, poison = ReasonMaxDeliver, true
		err = fmt.Errorf("failed on delivery %d of at most %d: %w", d.Delivered, c.spec.MaxDeliver, err)
	}
	if !poison {
		delay := c.spec.Backoff(d.Delivered)
		c.log.Warn("handler failed; redelivering", "stream", c.spec.Stream, "subject", d.Subject, "seq", d.StreamSeq,
			"delivered", d.Delivered, "after", delay, "err", err)
		_ = m.NakWithDelay(delay)
		c.count(func(s *ConsumerStats) { s.Retried++ })
		return
	}
	c.log.Warn("poison message; dead-lettered", "stream", c.spec.Stream, "subject", d.Subject, "seq", d.StreamSeq,
		"reason", reason, "err", err)
	dlqErr := c.deadLetter(ctx, &d, reason, err)
	if dlqErr != nil {
		c.log.Error("dead letter lost", "stream", c.spec.Stream, "subject", d.Subject, "seq", d.StreamSeq, "err", dlqErr)
	}
	_ = m.Term()
	c.count(func(s *ConsumerStats) {
		s.Poisoned[reason]++
		if dlqErr != nil {
			s.DeadLetterErrors++
		} else {
			s.DeadLettered++
		}
	})
}

// check parses the subject and applies the spec's size and schema limits.
func (c *Consumer) check(d *Delivery) error {
	k, node, err := ParseSubject(d.Subject)
	if err != nil {
		return PoisonAs(ReasonBadSubject, err)
	}
	d.Kind, d.Node = k, node
	if len(d.Data) > c.spec.MaxBytes {
		return PoisonAs(ReasonOversized, fmt.Errorf("%s seq %d: %d bytes, more than the limit of %d", d.Subject, d.StreamSeq, len(d.Data), c.spec.MaxBytes))
	}
	if c.spec.Schema != 0 {
		if v := d.Header.Get(HeaderSchema); v != "" && v != strconv.Itoa(c.spec.Schema) {
			return PoisonAs(ReasonSchemaVersion, fmt.Errorf("%s seq %d: schema %q, this build reads %d", d.Subject, d.StreamSeq, v, c.spec.Schema))
		}
	}
	return nil
}

func (c *Consumer) count(f func(*ConsumerStats)) {
	c.mu.Lock()
	f(&c.stats)
	c.mu.Unlock()
}

// DLQSubject is the dead-letter subject of a message of kind from node:
// ringwise.dlq.<kind>.<node>. An unknown kind or an invalid node becomes
// "unknown".
func DLQSubject(k Kind, node string) string {
	if k == "" {
		k = "unknown"
	}
	if ValidNode(node) != nil {
		node = "unknown"
	}
	return PrefixDLQ + string(k) + "." + node
}

// deadLetter copies d to RINGWISE_DLQ with headers that say why.
func (c *Consumer) deadLetter(ctx context.Context, d *Delivery, reason string, cause error) error {
	msg := errText(cause)
	h := nats.Header{}
	h.Set(HeaderDLQReason, reason)
	h.Set(HeaderDLQError, msg)
	h.Set(HeaderDLQSubject, d.Subject)
	h.Set(HeaderDLQStream, c.spec.Stream)
	h.Set(HeaderDLQSeq, strconv.FormatUint(d.StreamSeq, 10))
	h.Set(HeaderDLQConsumer, c.spec.Durable)
	h.Set(HeaderDLQDelivered, strconv.FormatUint(d.Delivered, 10))
	h.Set(HeaderDLQSize, strconv.Itoa(len(d.Data)))
	if v := d.Header.Get(HeaderSchema); v != "" {
		h.Set(HeaderSchema, v)
	}
	data := d.Data
	if len(data) > DeadLetterMaxData {
		data = data[:DeadLetterMaxData]
		h.Set(HeaderDLQTruncated, "true")
	}
	k, node := d.Kind, d.Node
	if k == "" { // the subject did not parse: keep what can be kept
		k2, n2, err := ParseSubject(d.Subject)
		if err == nil {
			k, node = k2, n2
		}
	}
	subject := DLQSubject(k, node)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// One dead letter per original message, however often it is delivered.
	id := fmt.Sprintf("%s.%d", c.spec.Stream, d.StreamSeq)
	if _, err := c.js.PublishMsg(pctx, &nats.Msg{Subject: subject, Header: h, Data: data}, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("dead-letter %s seq %d to %s (stream %s): %w", d.Subject, d.StreamSeq, subject, StreamDLQ, err)
	}
	return nil
}

func errText(err error) string {
	s := err.Error()
	if len(s) > 1024 {
		s = s[:1024]
	}
	// Header values are single lines.
	b := []byte(s)
	for i, ch := range b {
		if ch == '\r' || ch == '\n' {
			b[i] = ' '
		}
	}
	return string(b)
}

// DeadLetter is one message in RINGWISE_DLQ.
type DeadLetter struct {
	Seq             uint64    `json:"seq"` // in RINGWISE_DLQ
	Time            time.Time `json:"time"`
	Subject         string    `json:"subject"` // ringwise.dlq.<kind>.<node>
	Reason          string    `json:"reason"`
	Error           string    `json:"error"`
	OriginalSubject string    `json:"original_subject"`
	OriginalStream  string    `json:"original_stream"`
	OriginalSeq     uint64    `json:"original_seq"`
	Consumer        string    `json:"consumer"`
	Size            int       `json:"size"` // original payload bytes
	Truncated       bool      `json:"truncated"`
}

// ListDeadLetters reads up to limit dead letters (0 = all) from
// RINGWISE_DLQ, oldest first, without consuming them.
func ListDeadLetters(ctx context.Context, js jetstream.JetStream, limit int) ([]DeadLetter, error) {
	st, err := js.Stream(ctx, StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamDLQ, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", StreamDLQ, err)
	}
	var out []DeadLetter
	if info.State.Msgs == 0 {
		return out, nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && (limit <= 0 || len(out) < limit); seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // removed by a limit meanwhile
		}
		if err != nil {
			return out, fmt.Errorf("stream %s seq %d: %w", StreamDLQ, seq, err)
		}
		h := m.Header
		dl := DeadLetter{Seq: m.Sequence, Time: m.Time, Subject: m.Subject, Reason: h.Get(HeaderDLQReason),
			Error: h.Get(HeaderDLQError), OriginalSubject: h.Get(HeaderDLQSubject), OriginalStream: h.Get(HeaderDLQStream),
			Consumer: h.Get(HeaderDLQConsumer), Truncated: h.Get(HeaderDLQTruncated) == "true", Size: len(m.Data)}
		dl.OriginalSeq, _ = strconv.ParseUint(h.Get(HeaderDLQSeq), 10, 64)
		if n, err := strconv.Atoi(h.Get(HeaderDLQSize)); err == nil {
			dl.Size = n
		}
		out = append(out, dl)
	}
	return out, nil
}

// newDelivery reads a message and its metadata (stream sequence, delivery
// count, what the consumer still holds) into a Delivery.
func newDelivery(m jetstream.Msg) Delivery {
	d := Delivery{Subject: m.Subject(), Data: m.Data(), Header: m.Headers(), Delivered: 1}
	if md, err := m.Metadata(); err == nil {
		d.StreamSeq, d.Delivered, d.Pending = md.Sequence.Stream, md.NumDelivered, md.NumPending
	}
	return d
}
