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
	first     time.Time

	pend        []event.Event // FIFO of held lifecycle records
	head, count int
	cur         event.Event // a syscall record on its way into the batch
}

func newReader(s *sensor) *reader {
	r := &reader{s: s}
	r.lifecycle, r.syscalls = s.splitRings()
	if r.lifecycle != nil {
		r.pend = make([]event.Event, pendingLifecycle)
	}
	return r
}

// pastDeadline is a deadline in the past: read only what is already there.
func pastDeadline() time.Time { return time.Unix(0, 1) }

func (r *reader) run(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			return r.drain(ctx)
		}
		if err := r.flushIfDue(time.Now(), false); err != nil {
			r.s.log.Warn("publish failed", "err", err)
		}
		deadline := time.Now().Add(r.s.cfg.PollInterval)
		var err error
		if r.lifecycle == nil {
			err = r.stepShared(ctx, deadline)
		} else {
			err = r.stepSplit(ctx, deadline)
		}
		if err != nil {
			return err
		}
	}
}

// record reads one record of ring into ev and accounts for it; false if
// none came before deadline.
func (r *reader) record(ring Ring, ev *event.Event, deadline time.Time) (bool, error) {
	t0 := time.Now()
	err := ring.Read(ev, deadline)
	t1 := time.Now()
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false, nil
		}
		return false, fmt.Errorf("read ring %s: %w", ring.Name(), err)
	}
	s := r.s
	cat := ev.Type.Category()
	s.delivered[cat].Add(1)
	s.recordBytes[cat].Add(uint64(bpf.RecordSize(ev.Type, ev.Flags&event.FlagHints != 0)))
	if s.cfg.ConsumerCost > 0 {
		spin(s.cfg.ConsumerCost)
	}
	// A read that waited for data is idle time, not drain capacity.
	if t1.Sub(t0) < 200*time.Microsecond {
		s.busyNs.Add(int64(time.Since(t0)))
	} else {
		s.busyNs.Add(int64(time.Since(t1)))
	}
	return true, nil
}

// commit counts the event in batch slot n, publishing a full batch.
func (r *reader) commit(ctx context.Context) error {
	if r.n == 0 {
		r.first = time.Now()
	}
	r.n++
	if r.n >= r.s.cfg.BatchMaxEvents {
		return r.flushIfDue(time.Now(), true)
	}
	return nil
}

// appendSwap moves ev into the batch by swapping, so the byte buffers of
// both stay owned by exactly one event and nothing is copied or allocated.
func (r *reader) appendSwap(ctx context.Context, ev *event.Event) error {
	slot := &r.s.batch.Events[r.n]
	*slot, *ev = *ev, *slot
	return r.commit(ctx)
}

func (r *reader) flushIfDue(now time.Time, force bool) error {
	if r.n > 0 && (force || r.n >= r.s.cfg.BatchMaxEvents || now.Sub(r.first) >= r.s.cfg.BatchMaxDelay) {
		n := r.n
		r.n = 0
		return r.s.publishBatch(context.WithoutCancel(context.Background()), n)
	}
	return nil
}

// stepShared reads up to a chunk straight into the batch's slots.
func (r *reader) stepShared(ctx context.Context, deadline time.Time) error {
	for i := 0; i < chunk; i++ {
		ok, err := r.record(r.syscalls, &r.s.batch.Events[r.n], deadline)
		if err != nil || !ok {
			return err
		}
		if err := r.commit(ctx); err != nil {
			r.s.log.Warn("publish failed", "err", err)
		}
		deadline = pastDeadline()
	}
	return nil
}

// stepSplit reads up to a chunk of syscall records, merging the held
// lifecycle records in by time.
func (r *reader) stepSplit(ctx context.Context, deadline time.Time) error {
	for i := 0; i < chunk; i++ {
		if i%64 == 0 {
			if err := r.pullLifecycle(ctx); err != nil {
				return err
			}
		}
		ok, err := r.record(r.syscalls, &r.cur, deadline)
		if err != nil {
			return err
		}
		if !ok {
			// The syscall ring is empty: everything before now was read, so
			// every held lifecycle record is due.
			if err := r.pullLifecycle(ctx); err != nil {
				return err
			}
			return r.emitPending(ctx, ^uint64(0))
		}
		if err := r.emitPending(ctx, r.cur.TsNs); err != nil {
			return err
		}
		if err := r.appendSwap(ctx, &r.cur); err != nil {
			r.s.log.Warn("publish failed", "err", err)
		}
		deadline = pastDeadline()
	}
	return nil
}

// pullLifecycle moves every record waiting in the lifecycle ring into the
// hold. When the hold is full its oldest record is released first: order
// may then suffer, but no record is lost.
func (r *reader) pullLifecycle(ctx context.Context) error {
	for {
		if r.count == len(r.pend) {
			if err := r.emitOne(ctx); err != nil {
				return err
			}
		}
		slot := &r.pend[(r.head+r.count)%len(r.pend)]
		ok, err := r.record(r.lifecycle, slot, pastDeadline())
		if err != nil || !ok {
			return err
		}
		r.count++
	}
}

// emitPending releases held lifecycle records with a timestamp up to ts.
func (r *reader) emitPending(ctx context.Context, ts uint64) error {
	for r.count > 0 && r.pend[r.head].TsNs <= ts {
		if err := r.emitOne(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) emitOne(ctx context.Context) error {
	ev := &r.pend[r.head]
	r.head = (r.head + 1) % len(r.pend)
	r.count--
	if err := r.appendSwap(ctx, ev); err != nil {
		r.s.log.Warn("publish failed", "err", err)
	}
	return nil
}

// drain runs once ctx is done: detach, then read every ring until it is
// empty and the kernel's counters agree with what was read.
func (r *reader) drain(ctx context.Context) error {
	s := r.s
	if err := s.probe.Detach(); err != nil {
		s.log.Warn("detach", "err", err)
	}
	// Programs already running when the links went away finish within an
	// RCU grace period; give them that before the final drain.
	time.Sleep(20 * time.Millisecond)
	for round := 0; round < 3; round++ {
		for {
			var err error
			before := s.delivered[0].Load() + s.delivered[1].Load()
			if r.lifecycle == nil {
				err = r.stepShared(ctx, pastDeadline())
			} else {
				err = r.stepSplit(ctx, pastDeadline())
			}
			if err != nil {
				return err
			}
			if s.delivered[0].Load()+s.delivered[1].Load() == before {
				break
			}
		}
		if r.lifecycle != nil {
			if err := r.pullLifecycle(ctx); err != nil {
				return err
			}
			if err := r.emitPending(ctx, ^uint64(0)); err != nil {
				return err
			}
		}
		c, err := s.probe.Counters()
		if err != nil {
			return fmt.Errorf("read final counters: %w", err)
		}
		if s.consistent(c) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r.flushIfDue(time.Now(), true)
}
