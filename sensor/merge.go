package sensor

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/services/event"
)

// mergedRing reads several rings as one, as Falco's reader reads its
// per-CPU buffers: of the rings that hold a record, the one whose next
// record is oldest goes first. It serves the falco layout (one ring per
// CPU group). Like a ring, it is read from one goroutine.
type mergedRing struct {
	rings []Ring
	heads []event.Event // each ring's next record, read ahead
	has   []bool
	foot  []int // footprint of each head
	last  int   // footprint of the record last returned
	wait  int   // the ring to wait on next when all are empty (round robin)
	// flushing: Flush was called; done[i] once ring i returned ErrFlushed.
	flushing bool
	done     []bool
}

// MergeRings reads rings as one stream, oldest record first among the rings
// that hold one (the falco layout's rings, one per CPU group).
func MergeRings(rings ...Ring) Ring {
	n := len(rings)
	return &mergedRing{rings: rings, heads: make([]event.Event, n), has: make([]bool, n), foot: make([]int, n), done: make([]bool, n)}
}

func (m *mergedRing) Name() string { return fmt.Sprintf("%d rings", len(m.rings)) }

// Size is the rings' total size.
func (m *mergedRing) Size() int {
	n := 0
	for _, r := range m.rings {
		n += r.Size()
	}
	return n
}

// Pending is the bytes waiting in all rings.
func (m *mergedRing) Pending() int {
	n := 0
	for _, r := range m.rings {
		n += r.Pending()
	}
	return n
}

// LastFootprint is the ring footprint of the record last returned by Read.
func (m *mergedRing) LastFootprint() int { return m.last }

func (m *mergedRing) Flush() error {
	var errs []error
	for i, r := range m.rings {
		m.done[i] = false
		errs = append(errs, r.Flush())
	}
	m.flushing = true
	return errors.Join(errs...)
}

// fill reads ring i's next record into its head slot, if it has none.
func (m *mergedRing) fill(i int, deadline time.Time) error {
	if m.has[i] || (m.flushing && m.done[i]) {
		return nil
	}
	err := m.rings[i].Read(&m.heads[i], deadline)
	switch {
	case err == nil:
		m.has[i] = true
		m.foot[i] = footprint(m.rings[i], &m.heads[i])
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil
	case errors.Is(err, bpf.ErrFlushed):
		if m.flushing {
			m.done[i] = true
		}
		return nil
	}
	return err
}

func (m *mergedRing) Read(ev *event.Event, deadline time.Time) error {
	for {
		best := -1
		for i := range m.rings {
			if err := m.fill(i, time.Unix(0, 1)); err != nil {
				return err
			}
			if m.has[i] && (best < 0 || m.heads[i].TsNs < m.heads[best].TsNs) {
				best = i
			}
		}
		if best >= 0 {
			// Swap, so both events keep their own byte buffers.
			*ev, m.heads[best] = m.heads[best], *ev
			m.has[best] = false
			m.last = m.foot[best]
			return nil
		}
		if m.flushing {
			all := true
			for _, d := range m.done {
				all = all && d
			}
			if all {
				m.flushing = false
				return bpf.ErrFlushed
			}
			continue
		}
		// Every ring is empty: wait on one of them, in turn.
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return os.ErrDeadlineExceeded
		}
		i := m.wait % len(m.rings)
		m.wait++
		d := time.Millisecond
		if !deadline.IsZero() {
			d = max(min(time.Until(deadline)/time.Duration(len(m.rings)), 5*time.Millisecond), 100*time.Microsecond)
		}
		if err := m.fill(i, time.Now().Add(d)); err != nil {
			return err
		}
	}
}
