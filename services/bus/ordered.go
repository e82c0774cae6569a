package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringwise/ringwise/services/telemetry"
)

// RunOrdered feeds the messages of the spec's stream and filter subjects,
// from stream sequence start on (0: all), to the handler strictly in stream
// order through an ordered consumer: ephemeral, no acks, recreated by the
// client library after a gap. Progress is the caller's to keep (an enricher
// keeps it in checkpoints), so nothing is redelivered by the server: a
// retryable handler error is retried in place with the spec's back-off until
// it succeeds or ctx is done, and poison is dead-lettered to RINGWISE_DLQ and
// skipped, like Run does. When ctx is done the message in hand is finished
// (the handler's context is not cancelled) and RunOrdered returns nil;
// otherwise it returns the error that stopped consuming.
func (c *Consumer) RunOrdered(ctx context.Context, start uint64) error {
	where := fmt.Sprintf("ordered consumer %s on stream %s (subjects %v)", c.spec.Durable, c.spec.Stream, c.spec.FilterSubjects)
	oc := jetstream.OrderedConsumerConfig{FilterSubjects: c.spec.FilterSubjects, DeliverPolicy: jetstream.DeliverAllPolicy,
		InactiveThreshold: 30 * time.Second}
	if start > 0 {
		oc.DeliverPolicy, oc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	cons, err := c.js.OrderedConsumer(ctx, c.spec.Stream, oc)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%s: %w", where, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(c.spec.PullBatch))
	if err != nil {
		return fmt.Errorf("%s: messages: %w", where, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) && ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: %w", where, err)
		}
		c.handleOrdered(ctx, m)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// handleOrdered runs the handler on one message of an ordered consumer.
func (c *Consumer) handleOrdered(ctx context.Context, m jetstream.Msg) {
	hctx := context.WithoutCancel(ctx)
	d := newDelivery(m)
	d.Delivered = 1 // an ordered consumer's redelivery is a new consumer: count attempts here
	var node string
	if c.tracing.Enabled() {
		_, node, _ = ParseSubject(d.Subject) // check() refuses a bad one
	}
	for {
		sctx, span := c.tracing.StartProcess(hctx, telemetry.Batch{Subject: d.Subject, MsgID: d.Header.Get(jetstream.MsgIDHeader),
			Node: node, Group: c.spec.Durable}, d.Header)
		err := c.check(&d)
		if err == nil {
			err = c.h(sctx, d)
		}
		telemetry.EndSpan(span, err)
		if err == nil {
			c.count(func(s *ConsumerStats) { s.Acked++ })
			return
		}
		reason, poison := PoisonReason(err)
		if !poison && c.spec.MaxDeliver > 0 && d.Delivered >= uint64(c.spec.MaxDeliver) {
			reason, poison = ReasonMaxDeliver, true
			err = fmt.Errorf("failed on attempt %d of at most %d: %w", d.Delivered, c.spec.MaxDeliver, err)
		}
		if !poison && ctx.Err() != nil {
			return // stopped: the next owner starts from its checkpoint
		}
		if poison {
			c.log.Warn("poison message; dead-lettered", "stream", c.spec.Stream, "subject", d.Subject, "seq", d.StreamSeq,
				"reason", reason, "err", err)
			dlqErr := c.deadLetter(hctx, &d, reason, err)
			if dlqErr != nil {
				c.log.Error("dead letter lost", "stream", c.spec.Stream, "subject", d.Subject, "seq", d.StreamSeq, "err", dlqErr)
			}
			c.count(func(s *ConsumerStats) {
				s.Poisoned[reason]++
				if dlqErr != nil {
					s.DeadLetterErrors++
				} else {
					s.DeadLettered++
				}
			})
			return
		}
		delay := c.spec.Backoff(d.Delivered)
		c.log.Warn("handler failed; retrying in place", "stream", c.spec.Stream, "subject", d.Subject, "seq", d.StreamSeq,
			"attempt", d.Delivered, "after", delay, "err", err)
		c.count(func(s *ConsumerStats) { s.Retried++ })
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		d.Delivered++
	}
}
