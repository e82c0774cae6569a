package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultSpoolBytes bounds a Spool: at a flood's ~100 raw batches of ~80
// KiB per second, about 30 s of a node's output.
const DefaultSpoolBytes = 256 << 20

// SpoolStats are a Spool's counters.
type SpoolStats struct {
	// Queued and QueuedBytes are what waits to be stored now.
	Queued      int   `json:"queued"`
	QueuedBytes int64 `json:"queued_bytes"`
	MaxBytes    int64 `json:"max_bytes"`
	// Sent counts messages stored (acknowledged by the stream).
	Sent uint64 `json:"sent"`
	// PublishErrors counts failed attempts; each is retried in order.
	PublishErrors uint64 `json:"publish_errors"`
	LastError     string `json:"last_error,omitempty"`
	// Refused counts messages the stream refused for good (larger than
	// its MaxMsgSize, or than the server's max_payload): each is dropped
	// (its OnDrop called) rather than retried, which would stop the spool.
	Refused uint64 `json:"refused"`
	// Overflow counts messages refused because the spool was full;
	// Abandoned those still queued when Close gave up.
	Overflow  uint64 `json:"overflow"`
	Abandoned uint64 `json:"abandoned"`
}

// Spool is a Publisher for a producer that must never block on NATS (a
// sensor reading a kernel ring): Publish queues a copy in memory, bounded
// by bytes, and one goroutine stores the queue in order, each message
// acknowledged by its stream before the next, retrying through an outage
// (the Nats-Msg-Id makes a retry after a lost ack harmless). When the queue
// is full, Publish refuses the new message: it is counted as overflow and
// its OnDrop is called, so the producer accounts for exactly what was lost.
type Spool struct {
	js  jetstream.JetStream
	max int64
	log *slog.Logger

	mu     sync.Mutex
	cond   *sync.Cond
	q      []Msg
	bytes  int64
	closed bool
	free   [][]byte // payload buffers of stored messages, for reuse (buffer)
	stats  SpoolStats
	done   chan struct{}
	stop   context.CancelFunc
}

// NewSpool starts a spool of at most maxBytes (DefaultSpoolBytes if 0).
func NewSpool(js jetstream.JetStream, maxBytes int64, log *slog.Logger) *Spool {
	if maxBytes <= 0 {
		maxBytes = DefaultSpoolBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Spool{js: js, max: maxBytes, log: log, done: make(chan struct{}), stop: cancel}
	s.cond = sync.NewCond(&s.mu)
	s.stats.MaxBytes = maxBytes
	go s.send(ctx)
	return s
}

// ErrSpoolClosed is returned by Publish after Close.
var ErrSpoolClosed = errors.New("spool closed")

// Publish implements Publisher: it queues a copy of m, or counts it as
// overflow (calling m.OnDrop) when the spool is full, and returns nil
// either way.
func (s *Spool) Publish(_ context.Context, m Msg) error {
	if m.Header != nil {
		m.Header = cloneHeader(m.Header)
	}
	n := int64(len(m.Data))
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrSpoolClosed
	}
	if s.bytes+n > s.max {
		s.stats.Overflow++
		s.mu.Unlock()
		if m.OnDrop != nil {
			m.OnDrop()
		}
		return nil
	}
	m.Data = append(s.buffer(len(m.Data)), m.Data...)
	s.q = append(s.q, m)
	s.bytes += n
	s.cond.Broadcast()
	s.mu.Unlock()
	return nil
}

// spoolFreeBuffers bounds the payload buffers kept for reuse.
const spoolFreeBuffers = 4

// buffer returns an empty buffer for n bytes: the payload buffer of a
// message already stored when one is large enough, else a new one. A
// sensor queues a copy of every batch (tens of KiB); allocating each made
// a large-object allocation and GC work per batch on its one core (CPU
// profile of the drain: Spool.Publish's growslice and mallocgcLarge about
// a tenth of the sensor's CPU). Called with s.mu held.
func (s *Spool) buffer(n int) []byte {
	for i := len(s.free) - 1; i >= 0; i-- {
		if b := s.free[i]; cap(b) >= n {
			s.free[i] = s.free[len(s.free)-1]
			s.free = s.free[:len(s.free)-1]
			return b[:0]
		}
	}
	// Rounded up, so that a buffer fits the next batch, a few bytes larger.
	return make([]byte, 0, (n+4095)&^4095)
}

// send stores the queue's head until it is acknowledged, then the next.
func (s *Spool) send(ctx context.Context) {
	defer close(s.done)
	backoff := 50 * time.Millisecond
	// failed is the payload of a head whose publish failed or timed out:
	// its bytes may still sit in the connection's buffers, so once it is
	// stored on a retry its buffer is not taken for reuse.
	var failed []byte
	for {
		s.mu.Lock()
		for len(s.q) == 0 && !s.closed {
			s.cond.Wait()
		}
		if len(s.q) == 0 || ctx.Err() != nil {
			s.mu.Unlock()
			return
		}
		m := s.q[0]
		s.mu.Unlock()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var opts []jetstream.PublishOpt
		if m.ID != "" {
			opts = append(opts, jetstream.WithMsgID(m.ID))
		}
		_, err := s.js.PublishMsg(pctx, m.natsMsg(false), opts...)
		cancel()
		if err != nil && permanentPublishError(err) {
			s.mu.Lock()
			s.stats.PublishErrors++
			s.stats.Refused++
			s.stats.LastError = fmt.Sprintf("publish %s (msg id %q): %v", m.Subject, m.ID, err)
			s.q[0] = Msg{}
			s.q = s.q[1:]
			s.bytes -= int64(len(m.Data))
			s.cond.Broadcast()
			s.mu.Unlock()
			s.log.Warn("publish refused by the stream; dropped", "subject", m.Subject, "bytes", len(m.Data), "err", err)
			if m.OnDrop != nil {
				m.OnDrop()
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			s.stats.PublishErrors++
			s.stats.LastError = fmt.Sprintf("publish %s (msg id %q): %v", m.Subject, m.ID, err)
			s.mu.Unlock()
			failed = m.Data
			s.log.Warn("publish failed; spooling", "subject", m.Subject, "queued", len(s.q), "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		s.mu.Lock()
		s.q[0] = Msg{}
		s.q = s.q[1:]
		s.bytes -= int64(len(m.Data))
		s.stats.Sent++
		// Acknowledged at the first attempt: the server has the payload, so
		// the client no longer holds it. After a failed or timed-out
		// attempt its bytes may still sit in the connection's buffers:
		// that buffer is left to the garbage collector.
		retried := len(failed) > 0 && len(m.Data) > 0 && &failed[0] == &m.Data[0]
		failed = nil
		if !retried && len(s.free) < spoolFreeBuffers {
			s.free = append(s.free, m.Data[:0])
		}
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// Stats returns the counters.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Queued, st.QueuedBytes = len(s.q), s.bytes
	return st
}

// Close stops accepting messages and waits until the queue is stored or
// ctx is done; then what is still queued is abandoned (each OnDrop called)
// and counted. It returns the number abandoned.
func (s *Spool) Close(ctx context.Context) int {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	select {
	case <-s.done:
	case <-ctx.Done():
		s.stop()
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
		<-s.done
	}
	s.mu.Lock()
	left := s.q
	s.q, s.bytes = nil, 0
	s.stats.Abandoned += uint64(len(left))
	s.mu.Unlock()
	for _, m := range left {
		if m.OnDrop != nil {
			m.OnDrop()
		}
	}
	return len(left)
}

// permanentPublishError reports whether a retry of the same message can
// never succeed: it is larger than the stream or the server accepts.
func permanentPublishError(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum {
		return true
	}
	return errors.Is(err, nats.ErrMaxPayload)
}
