package sensor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/services/event"
)

// pendingLifecycle bounds the lifecycle records the split layout holds in
// user space while the syscall ring catches up (about 2.5 MB).
const pendingLifecycle = 16384

// chunk is how many records are read between checks of the clock, the
// batch age and the lifecycle ring.
const chunk = 256

// reader is the hot loop's state: one goroutine reads every ring into the
// batch's preallocated events, so no record allocates.
//
// With the split layout it merges the two rings by time, as Falco's reader
// merges its per-CPU buffers: lifecycle records are drained from their ring
// at once (so it never fills) but held back in user space until the
// syscall ring has been read up to their timestamp. Under a syscall backlog
// the syscall ring lags by up to its whole size; without the hold an exec
// would overtake the syscalls the process made before it, and those would
// be enriched with the new image — wrong metadata, worse than missing.
type reader struct {
	s         *sensor
	lifecycle Ring // nil in the shared layout
	syscalls  Ring
	n         int // events in the open batch
	bytes     int // the open batch's encoded size, bounded (event.SyscallWireBound)
	first     time.Time
	// pubCtx publishes batches: it outlives the run's cancellation, because
	// the drain's last batches must still go out.
	pubCtx context.Context

	pend        []event.Event // FIFO of held lifecycle records
	head, count int
	cur         event.Event // a syscall record on its way into the batch

	// Records read and their ring bytes, per category, not yet added to
	// the sensor's counters (publishCounts).
	delivered, recordBytes [event.NumCategories]uint64
	// waitedUntil is when the step's first read returned, if it could wait.
	waitedUntil time.Time
	got         int // records read since run's loop last reset it
}

func newReader(s *sensor) *reader {
	r := &reader{s: s, lifecycle: s.lifecycle, syscalls: s.syscalls}
	if r.lifecycle != nil {
		r.pend = make([]event.Event, pendingLifecycle)
	}
	return r
}

// pastDeadline is a deadline in the past: read only what is already there.
func pastDeadline() time.Time { return time.Unix(0, 1) }

func (r *reader) run(ctx context.Context) error {
	r.pubCtx = context.WithoutCancel(ctx)
	poll := r.s.cfg.PollInterval
	for {
		if ctx.Err() != nil {
			return r.drain()
		}
		if err := r.flushIfDue(time.Now(), false); err != nil {
			r.s.log.Warn("publish failed", "err", err)
		}
		r.got = 0
		if _, err := r.step(time.Now().Add(poll)); err != nil {
			return err
		}
		poll = r.nextPoll(poll)
	}
}

// nextPoll is the wait of the next step. While records come, and while a
// batch is open (its delay must be kept), it is PollInterval. A step that
// waited in vain doubles it, up to IdlePollMax: the ring wakes the reader
// itself once its unread bytes cross the wake-up threshold, so a longer
// wait only delays records that trickle in below it, and an idle sensor
// then wakes some 50 times a second rather than 200 (each wake-up of a Go
// program costs tens of microseconds of scheduler work on this VM).
func (r *reader) nextPoll(poll time.Duration) time.Duration {
	if r.got > 0 || r.n > 0 {
		return r.s.cfg.PollInterval
	}
	return min(2*poll, max(r.s.cfg.PollInterval, r.s.cfg.IdlePollMax))
}

// step reads up to a chunk, waiting until deadline for the first record;
// empty reports that a ring ran out of records before the chunk was full.
//
// It also measures the drain capacity: the time the step spent reading,
// decoding, batching and publishing is busy time, except that a first
// record that had to be waited for (a read that blocked on an empty ring)
// starts the busy time when it came. Three clock reads per step, not per
// record: on this VM a time.Now was the biggest single cost of the read
// path in BenchmarkSensorDrain's profile.
func (r *reader) step(deadline time.Time) (empty bool, err error) {
	r.waitedUntil = time.Time{}
	t0 := time.Now()
	if r.lifecycle == nil {
		empty, err = r.stepShared(deadline)
	} else {
		empty, err = r.stepSplit(deadline)
	}
	r.publishCounts()
	end := time.Now()
	if !r.waitedUntil.IsZero() && r.waitedUntil.Sub(t0) >= waitedRead {
		t0 = r.waitedUntil
	}
	r.s.busyNs.Add(int64(end.Sub(t0)))
	return empty, err
}

// waitedRead: a first read of a step that took longer than this waited for
// data; its wait is idle time, not drain capacity.
const waitedRead = 200 * time.Microsecond

// firstRead reads a step's first record, which may wait until deadline,
// and notes when it returned (step's busy time starts there if it waited).
func (r *reader) firstRead(ring Ring, ev *event.Event, deadline time.Time) (bool, error) {
	ok, err := r.record(ring, ev, deadline)
	if !deadline.Equal(pastDeadline()) {
		r.waitedUntil = time.Now()
	}
	return ok, err
}

// record reads one record of ring into ev and accounts for it (in the
// reader's own counters: publishCounts hands them to the sensor); false if
// none came before deadline, or the ring's flush was reached.
func (r *reader) record(ring Ring, ev *event.Event, deadline time.Time) (bool, error) {
	if err := ring.Read(ev, deadline); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, bpf.ErrFlushed) {
			return false, nil
		}
		return false, fmt.Errorf("read ring %s: %w", ring.Name(), err)
	}
	if r.got == 0 {
		// The first record since the last wait: a backed-off sampler
		// comes back now, not after this step (a step of slow reads,
		// ConsumerCost's, can take milliseconds).
		r.s.wakeSampler()
	}
	r.got++
	cat := ev.Type.Category()
	fp := uint64(footprint(ring, ev))
	r.delivered[cat]++
	r.recordBytes[cat] += fp
	if ev.Type == event.TypeExec { // rare: atomics are fine here
		r.s.execs.Add(1)
		r.s.execBytes.Add(fp)
		if ev.Flags&event.FlagTruncated != 0 {
			r.s.execCut.Add(1)
		}
	}
	if r.s.cfg.ConsumerCost > 0 {
		spin(r.s.cfg.ConsumerCost)
	}
	return true, nil
}

// publishCounts adds the records counted since the last call to the
// sensor's counters, which the stats and the drain's check read. Once per
// step rather than two atomic adds per record.
func (r *reader) publishCounts() {
	for cat := range r.delivered {
		if r.delivered[cat] != 0 {
			r.s.delivered[cat].Add(r.delivered[cat])
			r.s.recordBytes[cat].Add(r.recordBytes[cat])
			r.delivered[cat], r.recordBytes[cat] = 0, 0
		}
	}
}

// commit counts the event in batch slot n, publishing a full batch; a
// failed publish is logged and counted (sensor.pubErrors), never fatal.
func (r *reader) commit() {
	if r.n == 0 {
		r.first = time.Now()
		r.bytes = event.MaxBatchEnvelopeBytes
	}
	r.bytes += event.SyscallWireBound(&r.s.batch.Events[r.n])
	r.n++
	if r.n >= r.s.cfg.BatchMaxEvents || r.bytes+maxEventWireBytes > r.s.cfg.BatchMaxBytes {
		if err := r.flushIfDue(time.Now(), true); err != nil {
			r.s.log.Warn("publish failed", "err", err)
		}
	}
}

// appendSwap moves ev into the batch by swapping, so the byte buffers of
// both stay owned by exactly one event and nothing is copied or allocated.
func (r *reader) appendSwap(ev *event.Event) {
	slot := &r.s.batch.Events[r.n]
	*slot, *ev = *ev, *slot
	r.commit()
}

func (r *reader) flushIfDue(now time.Time, force bool) error {
	if r.n > 0 && (force || r.n >= r.s.cfg.BatchMaxEvents || now.Sub(r.first) >= r.s.cfg.BatchMaxDelay) {
		n := r.n
		r.n = 0
		return r.s.publishBatch(r.pubCtx, n)
	}
	return nil
}

// stepShared reads up to a chunk straight into the batch's slots.
func (r *reader) stepShared(deadline time.Time) (empty bool, err error) {
	past := pastDeadline()
	for i := 0; i < chunk; i++ {
		read := r.record
		if i == 0 {
			read = r.firstRead
		}
		ok, err := read(r.syscalls, &r.s.batch.Events[r.n], deadline)
		if err != nil || !ok {
			return !ok, err
		}
		r.commit()
		deadline = past
	}
	return false, nil
}

// stepSplit reads up to a chunk of syscall records, merging the held
// lifecycle records in by time.
func (r *reader) stepSplit(deadline time.Time) (empty bool, err error) {
	for i := 0; i < chunk; i++ {
		if i%64 == 0 {
			if err := r.pullLifecycle(pastDeadline()); err != nil {
				return false, err
			}
		}
		read := r.record
		if i == 0 {
			read = r.firstRead
		}
		ok, err := read(r.syscalls, &r.cur, deadline)
		if err != nil {
			return false, err
		}
		if !ok {
			// The syscall ring is empty: everything before now was read, so
			// every held lifecycle record is due.
			if err := r.pullLifecycle(pastDeadline()); err != nil {
				return true, err
			}
			r.emitPending(^uint64(0))
			return true, nil
		}
		r.emitPending(r.cur.TsNs)
		r.appendSwap(&r.cur)
		deadline = pastDeadline()
	}
	return false, nil
}

// pullLifecycle moves every record waiting in the lifecycle ring into the
// hold, without waiting for more (deadline is a past one; the drain passes
// none and stops at the ring's flush). When the hold is full its oldest
// record is released first: order may then suffer, but no record is lost.
func (r *reader) pullLifecycle(deadline time.Time) error {
	for {
		if r.count == len(r.pend) {
			r.emitOne()
		}
		slot := &r.pend[(r.head+r.count)%len(r.pend)]
		ok, err := r.record(r.lifecycle, slot, deadline)
		if err != nil || !ok {
			return err
		}
		r.count++
	}
}

// emitPending releases held lifecycle records with a timestamp up to ts.
func (r *reader) emitPending(ts uint64) {
	for r.count > 0 && r.pend[r.head].TsNs <= ts {
		r.emitOne()
	}
}

func (r *reader) emitOne() {
	ev := &r.pend[r.head]
	r.head = (r.head + 1) % len(r.pend)
	r.count--
	r.appendSwap(ev)
}

// drain runs once the run's context is done: detach (Probe.Detach waits for
// programs still running, so the counters are final), then read every ring
// completely — Flush it and read until bpf.ErrFlushed, the lifecycle ring
// first so its records are held before the syscalls they precede — and
// check attempted == delivered + dropped. Should that not hold yet (a
// program outlived Detach's grace), it waits one more grace and drains
// again, at most twice.
func (r *reader) drain() error {
	s := r.s
	if err := s.probe.Detach(); err != nil {
		s.log.Warn("detach", "err", err)
	}
	const retries = 2
	for attempt := 0; ; attempt++ {
		if err := r.drainFlushed(); err != nil {
			return err
		}
		c, err := s.probe.Counters()
		if err != nil {
			return fmt.Errorf("read final counters: %w", err)
		}
		if s.consistent(c) || attempt == retries {
			break
		}
		s.log.Warn("counters not final after detach; draining again", "attempt", attempt+1)
		time.Sleep(bpf.DetachGrace)
	}
	return r.flushIfDue(time.Now(), true)
}

// drainFlushed reads every record the rings hold now.
func (r *reader) drainFlushed() error {
	if r.lifecycle != nil {
		if err := r.lifecycle.Flush(); err != nil {
			return err
		}
		err := r.pullLifecycle(time.Time{}) // up to the flush
		r.publishCounts()
		if err != nil {
			return err
		}
	}
	if err := r.syscalls.Flush(); err != nil {
		return err
	}
	for {
		// No deadline: the flush ends the read.
		empty, err := r.step(time.Time{})
		if err != nil || empty {
			return err
		}
	}
}

// footprint is the bytes the record just read took in its ring: measured
// by the ring when it can tell (exec records vary with their exe path and
// argv), else the fixed size of its type.
func footprint(ring Ring, ev *event.Event) int {
	if f, ok := ring.(interface{ LastFootprint() int }); ok {
		return f.LastFootprint()
	}
	return bpf.RecordSize(ev.Type)
}
