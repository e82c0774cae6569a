package bpf

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/ringwise/ringwise/services/event"
)

// ErrFlushed is returned by Ring.Read once every record that was in the ring
// when Ring.Flush was called has been read.
var ErrFlushed = ringbuf.ErrFlushed

// Ring reads one BPF ring buffer. It reuses a single record buffer, so a Ring
// must be read from one goroutine at a time; Pending, Delivered, Name and
// Size are safe to call concurrently.
type Ring struct {
	name string
	size int
	rd   *ringbuf.Reader
	rec  ringbuf.Record
	// deadline is the one last given to the reader: setDeadline skips the
	// reader's SetDeadline (a mutex round trip) when it is unchanged, as
	// it is for every read of a drain after the first (CPU profile of
	// BenchmarkSensorDrain: SetDeadline was 9 % of sensor.Run).
	deadline  time.Time
	delivered [event.NumCategories]atomic.Uint64
	bad       atomic.Uint64
	// poll waits for the ring's wake-ups in the runtime's netpoller (see
	// ringPoll); nil if the runtime could not take the ring's fd, and then
	// reads wait in ringbuf's own blocking epoll_wait.
	poll    *ringPoll
	pollErr error
	ready   func() bool // poll's readiness check, made once
	// flushing is set by Flush until Read returned ErrFlushed: meanwhile
	// every read goes through ringbuf, which holds the flush's signal, so
	// that a read of an empty ring returns ErrFlushed rather than
	// os.ErrDeadlineExceeded.
	flushing atomic.Bool
	closed   atomic.Bool // set by close, before the fds are
}

func newRing(name string, m *ebpf.Map) (*Ring, error) {
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		return nil, fmt.Errorf("ringwise bpf: open %s ring: %w", name, err)
	}
	r := &Ring{
		name: name,
		size: rd.BufferSize(),
		rd:   rd,
		// Large enough for every record type: ReadInto never allocates.
		rec: ringbuf.Record{RawSample: make([]byte, 0, ExecRecordSize+ExeMax+ArgsMax+8)},
	}
	r.ready = func() bool { return r.rd.AvailableBytes() > 0 }
	if r.poll, r.pollErr = newRingPoll(m.FD()); r.pollErr != nil {
		r.pollErr = fmt.Errorf("ringwise bpf: %s ring: %w", name, r.pollErr)
	}
	return r, nil
}

// WaitsInNetpoller reports whether reads with a deadline wait in the Go
// runtime's netpoller (nil) or, failing that, why they wait in ringbuf's
// blocking epoll_wait.
func (r *Ring) WaitsInNetpoller() error { return r.pollErr }

// Name is "shared" (shared layout), or "lifecycle" / "syscall" (split layout).
func (r *Ring) Name() string { return r.name }

// Size is the ring's data size in bytes.
func (r *Ring) Size() int { return r.size }

// Pending returns the bytes written to the ring but not yet read, including
// ringbuf headers and padding: the fill level for shedding decisions and
// for the analyzer's drain-rate measurements.
func (r *Ring) Pending() int { return r.rd.AvailableBytes() }

// Delivered returns how many records this ring has handed out, per
// category. Together with Probe.Counters it gives the exact accounting.
func (r *Ring) Delivered() [event.NumCategories]uint64 {
	var d [event.NumCategories]uint64
	for i := range d {
		d[i] = r.delivered[i].Load()
	}
	return d
}

// Malformed returns how many records were consumed but failed to decode
// (they are not counted as delivered). Non-zero means a BPF/Go mismatch.
func (r *Ring) Malformed() uint64 { return r.bad.Load() }

// Read decodes the next record into ev without allocating (see
// DecodeRecord). Because the kernel side submits without wakeups below a
// fill threshold, Read must be given a deadline: it returns
// os.ErrDeadlineExceeded when no record arrived before it. A deadline in the
// past makes Read non-blocking: it returns records already in the ring, then
// os.ErrDeadlineExceeded. A zero deadline blocks until a record, Flush
// (ErrFlushed) or Close (os.ErrClosed). Decode errors consume the record and
// are returned.
func (r *Ring) Read(ev *event.Event, deadline time.Time) error {
	if r.poll == nil || deadline.IsZero() || r.flushing.Load() {
		return r.read(ev, deadline)
	}
	// Read what is there; if nothing, park in the netpoller until the
	// kernel wakes the ring or the deadline passes. Whether anything is
	// there is read off the ring's mapped positions, not asked of ringbuf:
	// its read of an empty ring is an epoll_wait syscall, and a probe that
	// records this process's syscalls would then always find the record of
	// the last one, and never wait.
	past := time.Unix(0, 1)
	for {
		if r.ready() {
			// Not ErrDeadlineExceeded but for a stale timeout ringbuf kept
			// from an earlier read (or records that were all discarded).
			if err := r.read(ev, past); err != os.ErrDeadlineExceeded {
				return err
			}
		}
		if !time.Now().Before(deadline) {
			return os.ErrDeadlineExceeded
		}
		switch werr := r.poll.wait(deadline, r.ready); {
		case werr == os.ErrDeadlineExceeded:
			// A record submitted without a wake-up is found here, as
			// ringbuf's own wait finds it once its timeout passes.
			if !r.ready() {
				return os.ErrDeadlineExceeded
			}
		case r.closed.Load():
			// Closed while parked: the netpoller says "use of closed
			// file"; ringbuf's wait said os.ErrClosed, and so does this.
			return os.ErrClosed
		case werr != nil:
			return fmt.Errorf("ringwise bpf: wait on %s ring: %w", r.name, werr)
		}
	}
}

// read is Read with ringbuf's own wait.
func (r *Ring) read(ev *event.Event, deadline time.Time) error {
	r.setDeadline(deadline)
	err := r.rd.ReadInto(&r.rec)
	for deadline.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) {
		// Stale: ringbuf keeps the timeout of an earlier deadline read
		// pending until the ring runs empty. Without a deadline there is
		// none to report.
		err = r.rd.ReadInto(&r.rec)
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return os.ErrDeadlineExceeded
		}
		if errors.Is(err, ErrFlushed) {
			r.flushing.Store(false)
			return ErrFlushed
		}
		if errors.Is(err, os.ErrClosed) {
			return os.ErrClosed
		}
		return fmt.Errorf("ringwise bpf: read %s ring: %w", r.name, err)
	}
	if err := DecodeRecord(r.rec.RawSample, ev); err != nil {
		r.bad.Add(1)
		return fmt.Errorf("ringwise bpf: %s ring: %w", r.name, err)
	}
	r.delivered[ev.Type.Category()].Add(1)
	return nil
}

// LastFootprint is the bytes the record last returned by Read occupied in
// the ring (header and padding included): exec records vary in size.
func (r *Ring) LastFootprint() int { return Footprint(len(r.rec.RawSample)) }

// Flush makes Read return every record in the ring now, then ErrFlushed
// once, whatever its deadline: after Probe.Detach, Flush and Read until
// ErrFlushed read the ring completely. Safe to call from any goroutine.
func (r *Ring) Flush() error {
	r.flushing.Store(true)
	if r.poll != nil {
		// Wake a read parked in the netpoller (from another goroutine),
		// so that it goes to ringbuf for the flush now rather than at
		// its deadline; the read's next wait sets its own deadline again.
		_ = r.poll.f.SetReadDeadline(time.Unix(0, 1))
	}
	if err := r.rd.Flush(); err != nil {
		r.flushing.Store(false)
		return fmt.Errorf("ringwise bpf: flush %s ring: %w", r.name, err)
	}
	return nil
}

func (r *Ring) close() error {
	r.closed.Store(true)
	err := r.rd.Close()
	if r.poll != nil {
		err = errors.Join(err, r.poll.close())
	}
	return err
}

// setDeadline gives the reader deadline unless it already has it (the
// zero deadline included: a new Ring's reader has none).
func (r *Ring) setDeadline(deadline time.Time) {
	if deadline.Equal(r.deadline) {
		return
	}
	r.deadline = deadline
	r.rd.SetDeadline(deadline)
}

// Discard consumes the next record without decoding it (ReadInto into the
// ring's reused buffer, then nothing): the no-op reader that is the limit
// the sensor's drain is measured against. Deadlines as for Read. It returns
// the record's size in bytes.
func (r *Ring) Discard(deadline time.Time) (int, error) {
	r.setDeadline(deadline)
	if err := r.rd.ReadInto(&r.rec); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, os.ErrDeadlineExceeded
		}
		return 0, fmt.Errorf("ringwise bpf: read %s ring: %w", r.name, err)
	}
	return len(r.rec.RawSample), nil
}

// AppendRaw appends the next record's bytes, as the BPF program wrote them,
// to dst, without decoding them: the reader of the sensor drain benchmark's
// transport floor (the records published as they are, no decode and no
// encode), which shows what NATS alone costs per event on the same core.
// Deadlines as for Read. On error dst is returned unchanged.
func (r *Ring) AppendRaw(dst []byte, deadline time.Time) ([]byte, error) {
	r.setDeadline(deadline)
	if err := r.rd.ReadInto(&r.rec); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return dst, os.ErrDeadlineExceeded
		}
		return dst, fmt.Errorf("ringwise bpf: read %s ring: %w", r.name, err)
	}
	return append(dst, r.rec.RawSample...), nil
}
