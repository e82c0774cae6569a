package ringmodel

import (
	"math"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
)

// MaxStepNs bounds the model's time step. Within a bin arrivals are assumed
// uniform; stepping at ≤ 1 ms lets the queue composition (which decides how
// many bytes a record read frees) follow the load, and makes the ring's
// behaviour inside a long bin (fill, then overflow) come out in time order.
const MaxStepNs = 1_000_000

// Ring is one candidate ring configuration.
type Ring struct {
	// SizeBytes is the data capacity of the ring that holds syscall records
	// (and, in the shared layout, lifecycle records too). The BPF ring buffer
	// holds exactly this many bytes of records including their 8-byte
	// headers, which RecordBytes already counts. ≤ 0 is the fluid limit of no
	// buffer: only what the consumer reads at once survives.
	SizeBytes int
	// LifecycleSizeBytes is the lifecycle ring of the split layout; ignored
	// for shared. ≤ 0 means ringspec.DefaultLifecycleRingSize, because a
	// split layout without a lifecycle ring is a misconfiguration the
	// sensor never runs.
	LifecycleSizeBytes int
	// Layout is ringspec.LayoutShared (one ring for all CPUs),
	// ringspec.LayoutSplit or ringspec.LayoutFalco (Falco's modern eBPF: one
	// ring of SizeBytes per group of CPUsPerRing CPUs, see simulateFalco);
	// anything else (including "") is simulated as shared, the sensor's
	// default.
	Layout ringspec.Layout
	// CPUsPerRing is Falco's cpus_for_each_buffer for LayoutFalco; ≤ 0
	// means ringspec.DefaultCPUsPerRing.
	CPUsPerRing int `json:",omitempty"`
	// CPUs is the node's CPU count for LayoutFalco's memory (Rings); 0
	// means unknown (one ring). The simulation takes the CPUs from the
	// load's per-CPU arrivals (Load.CPUs), not from here.
	CPUs int `json:",omitempty"`
}

// MemoryBytes is the kernel memory the configuration pins.
func (r Ring) MemoryBytes() int {
	size := max(r.SizeBytes, 0)
	switch r.Layout {
	case ringspec.LayoutSplit:
		return size + r.lifecycleSize()
	case ringspec.LayoutFalco:
		return size * r.Rings()
	}
	return size
}

// Rings is the number of rings of SizeBytes: ceil(CPUs / CPUsPerRing) for
// LayoutFalco (at least 1), else 1.
func (r Ring) Rings() int {
	if r.Layout != ringspec.LayoutFalco {
		return 1
	}
	return FalcoRingCount(r.CPUs, r.cpusPerRing())
}

func (r Ring) cpusPerRing() int {
	if r.CPUsPerRing <= 0 {
		return ringspec.DefaultCPUsPerRing
	}
	return r.CPUsPerRing
}

// FalcoRingCount is the rings of Falco's layout on cpus CPUs at
// cpusPerRing (≤ 0: ringspec.DefaultCPUsPerRing) CPUs per ring: one per
// group, the last group possibly smaller; 1 when cpus is unknown (≤ 0).
func FalcoRingCount(cpus, cpusPerRing int) int {
	if cpusPerRing <= 0 {
		cpusPerRing = ringspec.DefaultCPUsPerRing
	}
	return max(1, (cpus+cpusPerRing-1)/cpusPerRing)
}

func (r Ring) lifecycleSize() int {
	if r.LifecycleSizeBytes <= 0 {
		return ringspec.DefaultLifecycleRingSize
	}
	return r.LifecycleSizeBytes
}

// Prediction is what a ring would have done under a load. Records are
// fluid, so counts are fractional.
type Prediction struct {
	// Attempted is the offered load per category (the load's arrivals).
	Attempted [event.NumCategories]float64 `json:"attempted"`
	// Dropped is the records per category that found the ring full.
	Dropped [event.NumCategories]float64 `json:"dropped"`
	// DroppedBytes is Dropped in ring bytes (an addition to the brief: the
	// exact quantity the model computes, useful for checking by hand).
	DroppedBytes [event.NumCategories]float64 `json:"dropped_bytes"`
	// PeakFillBytes is the highest fill reached (of both rings, for split).
	PeakFillBytes float64 `json:"peak_fill_bytes"`
	// OverflowNs is the time during which the ring (for split: either ring)
	// was full and dropping.
	OverflowNs uint64 `json:"overflow_ns"`
}

// Delivered returns the records per category that would have been read.
func (p Prediction) Delivered() [event.NumCategories]float64 {
	var d [event.NumCategories]float64
	for c := range d {
		d[c] = max(p.Attempted[c]-p.Dropped[c], 0)
	}
	return d
}

// Simulate replays load through ring with a fluid queue and returns the
// predicted drops.
//
// Assumptions, and why they are good enough for sizing:
//   - Fluid: records are divisible and, within a bin, arrive uniformly. Bins
//     come from ~10 ms counter samples, far shorter than the bursts that
//     overflow a ring, and each bin is cut into steps of ≤ MaxStepNs.
//   - The ring starts empty. Within a step, with constant arrival and service
//     rates, the fill moves monotonically, so clip(fill+in-out, 0, capacity)
//     and the overflow max(0, fill+in-out-capacity) are the exact fluid
//     solution; for a single category the result does not depend on the step.
//   - The consumer reads whenever data waits: DrainRate records per second
//     in a bin whose arrivals outpace that (a burst, where the consumer
//     shares the CPU with the burst), QuietDrainRate in the other bins, where
//     it runs alone (Load.DrainAt). Wakeup latency is ignored: the sensor
//     polls with a short deadline, which is small against a ring's worth of
//     records.
//   - Shared layout: a read takes records from the categories in proportion
//     to the records queued (queue + this step's arrivals), not strictly in
//     FIFO order; that only shifts which category's bytes are freed first,
//     and it is exact when one category dominates or the mix is steady.
//   - What does not fit is dropped from the arrivals of that step, split
//     across categories in proportion to their arrival bytes: a full BPF ring
//     refuses whichever reserve comes next, so each category loses the same
//     fraction of what it offers (and so the same fraction of its records).
//   - Split layout: the consumer serves the lifecycle ring first and gives the
//     syscall ring the remaining capacity. The sensor merges its rings by
//     timestamp, but lifecycle records are few, so their ring empties at their
//     arrival rate either way; the priority only matters once the consumer is
//     slower than lifecycle arrivals alone.
//   - Falco layout: see simulateFalco; with one ring (the node has at most
//     CPUsPerRing CPUs, or the load carries no per-CPU arrivals) it is the
//     shared ring of that size, exactly.
func Simulate(load Load, ring Ring) Prediction {
	p, _ := simulate(load, ring, 0)
	return p
}

// simulate is Simulate; with trackBytes > 0 it also reads the simulated fill
// against that threshold after every step, as BacklogFromSamples reads a
// sensor's samples (Samples counts steps; the drain fields stay 0).
func simulate(load Load, ring Ring, trackBytes float64) (Prediction, Backlog) {
	if ring.Layout == ringspec.LayoutFalco {
		p, _, bl := simulateFalco(load, ring, trackBytes)
		return p, bl
	}
	rb := recordBytes(load.RecordBytes)
	var s sim
	s.rb = rb
	if ring.Layout == ringspec.LayoutSplit {
		s.split = true
		s.cap[lc] = float64(ring.lifecycleSize())
		s.cap[sys] = float64(max(ring.SizeBytes, 0))
	} else {
		s.cap[0] = float64(max(ring.SizeBytes, 0))
	}
	var fill fillReader
	var t float64 // ns since the start of the load
	track := func() {
		if trackBytes > 0 {
			fill.read(uint64(math.Round(t)), s.q[lc]+s.q[sys] >= trackBytes)
		}
	}
	track() // the ring starts empty
	for _, b := range load.Bins {
		if b.Start {
			s.q = [event.NumCategories]float64{} // a new run starts empty
		}
		var a [event.NumCategories]float64
		for c := range a {
			a[c] = nonNeg(b.Arrivals[c])
			s.p.Attempted[c] += a[c]
		}
		// The consumer's drain in this bin: its in-burst rate while the
		// arrivals outpace it, its quiet rate otherwise (Load.DrainAt).
		s.drain = load.DrainAt(a[lc]+a[sys], float64(b.DurNs)/1e9)
		steps := max((b.DurNs+MaxStepNs-1)/MaxStepNs, 1)
		dt := float64(b.DurNs) / float64(steps) / 1e9
		var in [event.NumCategories]float64
		for c := range in {
			in[c] = a[c] / float64(steps)
		}
		// Fast path, exact: an empty ring whose consumer keeps up with the
		// whole bin stays empty (most bins of a real node).
		if s.q[lc]+s.q[sys] == 0 && in[lc]+in[sys] <= s.drain*dt {
			t += float64(b.DurNs)
			track()
			continue
		}
		for range steps {
			if s.split {
				s.stepSplit(in, dt)
			} else {
				s.stepShared(in, dt)
			}
			t += dt * 1e9
			track()
		}
	}
	s.p.OverflowNs = uint64(math.Round(s.overflowNs))
	return s.p, fill.done()
}

// sim is the state of one Simulate run.
type sim struct {
	rb    [event.NumCategories]float64
	drain float64 // records/s
	split bool
	// cap and q are per ring: shared uses cap[0] and q as the bytes of each
	// category in the one ring; split uses cap[c] and q[c] per ring.
	cap        [event.NumCategories]float64
	q          [event.NumCategories]float64
	overflowNs float64
	p          Prediction
}

// stepShared advances the shared ring by dt seconds with in[c] records
// arriving uniformly.
func (s *sim) stepShared(in [event.NumCategories]float64, dt float64) {
	var avail, inB [event.NumCategories]float64 // bytes queued or arriving
	var n, inTot, q0 float64                    // records available; bytes in; bytes queued
	for c := range in {
		inB[c] = in[c] * s.rb[c]
		avail[c] = s.q[c] + inB[c]
		n += avail[c] / s.rb[c]
		inTot += inB[c]
		q0 += s.q[c]
	}
	r := s.drain * dt // records the consumer can read in this step
	var rest [event.NumCategories]float64
	var restTot, out float64
	for c := range avail {
		if r >= n {
			rest[c] = 0
		} else {
			rest[c] = avail[c] * (1 - r/n) // reads proportional to records queued
		}
		out += avail[c] - rest[c]
		restTot += rest[c]
	}
	capB := s.cap[0]
	if excess := restTot - capB; excess > 0 && inTot > 0 {
		for c := range rest {
			e := min(excess*inB[c]/inTot, rest[c])
			rest[c] -= e
			s.p.DroppedBytes[c] += e
			s.p.Dropped[c] += e / s.rb[c]
		}
		s.overflowNs += overflowPart(q0, capB, inTot-out, dt)
		restTot = rest[0] + rest[1]
	}
	s.q = rest
	s.p.PeakFillBytes = max(s.p.PeakFillBytes, restTot)
}

// stepSplit advances both rings of the split layout: the lifecycle ring is
// served first, the syscall ring gets what read capacity is left.
func (s *sim) stepSplit(in [event.NumCategories]float64, dt float64) {
	r := s.drain * dt
	var fill, over float64
	for _, c := range [...]int{lc, sys} {
		inB := in[c] * s.rb[c]
		q0 := s.q[c]
		availRec := (q0 + inB) / s.rb[c]
		read := min(r, availRec)
		r -= read
		out := read * s.rb[c]
		rest := max(q0+inB-out, 0)
		if excess := rest - s.cap[c]; excess > 0 {
			rest = s.cap[c]
			s.p.DroppedBytes[c] += excess
			s.p.Dropped[c] += excess / s.rb[c]
			// Both rings, once full, stay full to the end of the step, so
			// the union of their overflow intervals is the longer one.
			over = max(over, overflowPart(q0, s.cap[c], inB-out, dt))
		}
		s.q[c] = rest
		fill += rest
	}
	s.overflowNs += over
	s.p.PeakFillBytes = max(s.p.PeakFillBytes, fill)
}

// overflowPart returns the ns of a step of dt seconds during which a ring
// that started at q0 bytes and grows by net bytes over the step was full.
func overflowPart(q0, capB, net, dt float64) float64 {
	if net <= 0 {
		return 0
	}
	fillFrac := min(max((capB-q0)/net, 0), 1)
	return (1 - fillFrac) * dt * 1e9
}
