package ringmodel

import (
	"math"
	"slices"

	"github.com/ringwise/ringwise/services/event"
)

const (
	lc  = int(event.CategoryLifecycle)
	sys = int(event.CategorySyscall)
)

// Bin is one interval of the arrival curve: how many records of each category
// (indexed by event.Category) the kernel tried to put into the ring during
// DurNs nanoseconds. Attempts, not deliveries, so drops are included.
type Bin struct {
	DurNs    uint64
	Arrivals [event.NumCategories]float64
	// Start marks the first bin of a separate run (PoolLoads): the ring
	// was empty then, whatever the bins before left in it.
	Start bool
	// CPU is Arrivals per CPU (index = CPU), when the samples carried the
	// kernel's per-CPU counters (event.Sample.AttemptedCPU); nil when not.
	// Only Falco's layout needs it: its rings are per CPU group.
	CPU [][event.NumCategories]float64
}

// Load is the measured arrival curve of one node plus the two constants the
// model needs to turn records into ring bytes and consumer time.
type Load struct {
	Bins []Bin
	// RecordBytes is the mean ring footprint of one record per category
	// (payload + 8-byte ringbuf header, 8-aligned), from event.Stats. A value
	// ≤ 0 is replaced by DefaultRecordBytes in the model.
	RecordBytes [event.NumCategories]float64
	// DrainRate is the records per second the consumer reads while records
	// arrive at least as fast as it reads them: inside a burst, where it
	// shares the CPU with the burst's own processes. From event.Stats (the
	// sensor measures it over the sampled intervals with a backlog and
	// arrivals ≥ reads). ≤ 0 means the consumer reads nothing.
	DrainRate float64
	// QuietDrainRate is the records per second the consumer reads with a
	// backlog while arrivals are slower than that: between bursts, when it
	// has the CPU to itself. ≤ 0 (never measured) means DrainRate, the
	// conservative choice. See Load.DrainAt and Evidence.DrainRate.
	QuietDrainRate float64
	// Backlog is what the sampled ring fill showed; zero if the samples
	// carried no fill.
	Backlog Backlog
}

// DrainAt is the consumer's drain in a bin with arrivals n over secs
// seconds: DrainRate while arrivals outpace it (a burst), QuietDrainRate
// (if measured and higher) otherwise.
func (l Load) DrainAt(n, secs float64) float64 {
	burst := l.DrainRate
	if !finitePos(burst) {
		burst = 0
	}
	quiet := l.QuietDrainRate
	if !finitePos(quiet) || quiet < burst {
		quiet = burst
	}
	if secs <= 0 {
		if n > 0 {
			return burst
		}
		return quiet
	}
	if n/secs > burst {
		return burst
	}
	return quiet
}

// CapacityOverRun is the consumer's capacity averaged over the whole load:
// the time-weighted mean of DrainAt over the bins. This, not the in-burst
// DrainRate alone, is what the mean arrival rate must stay below for the
// backlog to clear: between bursts the consumer runs alone and catches up.
func (l Load) CapacityOverRun() float64 {
	var recs, secs float64
	for _, b := range l.Bins {
		d := float64(b.DurNs) / 1e9
		recs += l.DrainAt(nonNeg(b.Arrivals[lc])+nonNeg(b.Arrivals[sys]), d) * d
		secs += d
	}
	if secs <= 0 {
		return max(l.DrainAt(0, 0), 0)
	}
	return recs / secs
}

// BacklogThreshold is the fill, in bytes, above which a ring of sizeBytes
// counts as backlogged: well above what accumulates between two polls of the
// reader (64 KiB), and at most a quarter of the ring. The sensor uses the same
// rule to measure its drain rate.
func BacklogThreshold(sizeBytes int) int {
	if sizeBytes <= 0 {
		return 64 << 10
	}
	return min(64<<10, sizeBytes/4)
}

// Backlog is what a series of fill readings shows about the consumer: how
// often the ring built up a backlog and whether it cleared again, and the
// reads in the intervals with a backlog, from which the drain rates follow.
// All counts add up over runs (see Backlog.Add).
type Backlog struct {
	// Samples is the fill readings seen.
	Samples int `json:"samples"`
	// Episodes counts the times the fill rose to the backlog threshold.
	Episodes int `json:"episodes"`
	// Cleared counts the episodes after which the fill fell back below the
	// threshold: the consumer caught up.
	Cleared int `json:"cleared"`
	// StuckNs is the length of a final episode that never cleared (0 if
	// the last episode cleared): how long the ring stayed backlogged up to
	// the last reading.
	StuckNs uint64 `json:"stuck_ns"`
	// SpanNs is the time from the first reading to the last.
	SpanNs uint64 `json:"span_ns"`
	// BurstReads and BurstNs are the records read, and the time, between
	// two readings that both found a backlog while arrivals kept up with the
	// reads; QuietReads and QuietNs the same while arrivals were slower.
	BurstReads uint64 `json:"burst_reads"`
	BurstNs    uint64 `json:"burst_ns"`
	QuietReads uint64 `json:"quiet_reads"`
	QuietNs    uint64 `json:"quiet_ns"`
}

// MinDrainNs is the backlogged time a drain rate needs before it is trusted.
const MinDrainNs = 100_000_000

// BurstRate is the in-burst drain, records/s; 0 if under MinDrainNs of it.
func (b Backlog) BurstRate() float64 {
	if b.BurstNs < MinDrainNs || b.BurstReads == 0 {
		return 0
	}
	return float64(b.BurstReads) / (float64(b.BurstNs) / 1e9)
}

// QuietRate is the between-bursts drain, records/s; 0 if under MinDrainNs.
func (b Backlog) QuietRate() float64 {
	if b.QuietNs < MinDrainNs || b.QuietReads == 0 {
		return 0
	}
	return float64(b.QuietReads) / (float64(b.QuietNs) / 1e9)
}

// Add sums two Backlogs (for several runs); StuckNs and SpanNs keep the
// longer.
func (b Backlog) Add(o Backlog) Backlog {
	return Backlog{Samples: b.Samples + o.Samples, Episodes: b.Episodes + o.Episodes, Cleared: b.Cleared + o.Cleared,
		StuckNs: max(b.StuckNs, o.StuckNs), SpanNs: max(b.SpanNs, o.SpanNs), BurstReads: b.BurstReads + o.BurstReads, BurstNs: b.BurstNs + o.BurstNs,
		QuietReads: b.QuietReads + o.QuietReads, QuietNs: b.QuietNs + o.QuietNs}
}

// BacklogFromSamples reads the fill of one sensor run's samples (in
// publication order; out-of-order ones are skipped) against thresholdBytes
// (see BacklogThreshold).
func BacklogFromSamples(samples []event.Sample, thresholdBytes int) Backlog {
	var fill fillReader
	var prev *event.Sample
	for i := range samples {
		s := &samples[i]
		if prev != nil && s.TsNs <= prev.TsNs {
			continue
		}
		high := s.FillBytes >= thresholdBytes
		fill.read(s.TsNs, high)
		b := &fill.b
		if prev != nil && high && prev.FillBytes >= thresholdBytes &&
			event.Sum(s.Delivered) >= event.Sum(prev.Delivered) && event.Sum(s.Attempted) >= event.Sum(prev.Attempted) {
			dt := s.TsNs - prev.TsNs
			read := event.Sum(s.Delivered) - event.Sum(prev.Delivered)
			if event.Sum(s.Attempted)-event.Sum(prev.Attempted) >= read {
				b.BurstNs += dt
				b.BurstReads += read
			} else {
				b.QuietNs += dt
				b.QuietReads += read
			}
		}
		prev = s
	}
	return fill.done()
}

// fillReader reads a series of fill readings, backlogged (high) or not,
// into a Backlog's Samples, Episodes, Cleared, StuckNs and SpanNs; for the
// sensor's samples and the model's simulated fill alike.
type fillReader struct {
	b                  Backlog
	first, last, start uint64
	in                 bool
}

func (f *fillReader) read(tsNs uint64, high bool) {
	if f.b.Samples == 0 {
		f.first = tsNs
	}
	f.b.Samples++
	f.last = tsNs
	switch {
	case high && !f.in:
		f.in, f.start = true, tsNs
		f.b.Episodes++
	case !high && f.in:
		f.in = false
		f.b.Cleared++
	}
}

func (f *fillReader) done() Backlog {
	if f.b.Samples > 0 {
		f.b.SpanNs = f.last - f.first
		if f.in {
			f.b.StuckNs = f.last - f.start
		}
	}
	return f.b
}

// DefaultRecordBytes returns the ring footprint of the sensor's fixed-size
// records, used when a measured mean is missing: lifecycle is
// the mean of fork (80), exec (424) and exit (72) — one of each per process —
// and syscall is 80 (72-byte record + 8-byte ringbuf header). A function, not
// a variable, so that nobody can change it under the model.
func DefaultRecordBytes() [event.NumCategories]float64 {
	return [event.NumCategories]float64{(80 + 424 + 72) / 3.0, 80}
}

// recordBytes returns rb with every unusable entry replaced by its default,
// so that the model never divides by zero.
func recordBytes(rb [event.NumCategories]float64) [event.NumCategories]float64 {
	def := DefaultRecordBytes()
	for c := range rb {
		if !finitePos(rb[c]) {
			rb[c] = def[c]
		}
	}
	return rb
}

func finitePos(x float64) bool { return x > 0 && !math.IsInf(x, 0) }

// nonNeg maps NaN, ±Inf and negatives to 0: arrival counts from the wire must
// not poison the model.
func nonNeg(x float64) float64 {
	if x > 0 && !math.IsInf(x, 0) {
		return x
	}
	return 0
}

// MinBinNs is the shortest bin LoadFromSamples emits; closer readings are
// merged into the following bin.
const MinBinNs = 2_000_000

// LoadFromSamples turns one sensor run's cumulative counter readings into
// bins: each bin is the delta of Attempted between two consecutive accepted
// samples. Attempted is used (not Delivered) because the kernel counts an
// attempt even when the reserve fails, so it is the true offered load; shed
// records are never attempted and so are not part of the load.
//
// Robustness, because samples arrive over a network and across restarts:
//   - a sample whose TsNs is not strictly after the last accepted one
//     (duplicate, redelivered or out of order) is skipped;
//   - a sample less than MinBinNs after the last accepted one is merged
//     into the next bin;
//   - a sample whose counters went backwards while time went forward is a
//     sensor restart: it becomes the new baseline and no bin is emitted for the
//     gap (its load is unknown, not zero).
//
// Pass the samples of one node in publication order; a reboot (ktime starting
// over) must be split off by the caller using event.Stats.BootID.
//
// The drain rates: drainRate (the sensor's in-burst figure) is kept unless
// the samples' own fill, read against BacklogThreshold(ringBytes), measured
// at least MinDrainNs of in-burst backlog; QuietDrainRate comes from the
// samples alone. Backlog is set from the same reading.
func LoadFromSamples(samples []event.Sample, recordBytes [event.NumCategories]float64, drainRate float64, ringBytes int) Load {
	l := Load{RecordBytes: recordBytes, DrainRate: drainRate}
	l.Backlog = BacklogFromSamples(samples, BacklogThreshold(ringBytes))
	if r := l.Backlog.BurstRate(); r > 0 {
		l.DrainRate = r
	}
	l.QuietDrainRate = l.Backlog.QuietRate()
	if len(samples) > 1 {
		l.Bins = make([]Bin, 0, len(samples)-1)
	}
	var prev *event.Sample
	for i := range samples {
		s := &samples[i]
		if prev == nil {
			prev = s
			continue
		}
		if s.TsNs <= prev.TsNs {
			continue
		}
		reset := false
		for c := range s.Attempted {
			if s.Attempted[c] < prev.Attempted[c] {
				reset = true
			}
		}
		if !reset && s.TsNs-prev.TsNs < MinBinNs {
			// Too close to the previous reading: a delay between reading
			// the counters and the clock would turn into an absurd rate.
			// Fold this reading into the next bin instead.
			continue
		}
		if !reset {
			var b Bin
			b.DurNs = s.TsNs - prev.TsNs
			for c := range s.Attempted {
				b.Arrivals[c] = float64(s.Attempted[c] - prev.Attempted[c])
			}
			b.CPU = cpuDelta(prev.AttemptedCPU, s.AttemptedCPU)
			l.Bins = append(l.Bins, b)
		}
		prev = s
	}
	return l
}

// cpuDelta is the per-CPU arrivals between two readings of the kernel's
// per-CPU attempts, or nil when either lacks them, their CPU counts differ
// or a counter went backwards (a broken reading is no per-CPU data, and the
// load falls back to its totals).
func cpuDelta(prev, cur [][event.NumCategories]uint64) [][event.NumCategories]float64 {
	if len(cur) == 0 || len(prev) != len(cur) {
		return nil
	}
	out := make([][event.NumCategories]float64, len(cur))
	for cpu := range cur {
		for c := range event.NumCategories {
			if cur[cpu][c] < prev[cpu][c] {
				return nil
			}
			out[cpu][c] = float64(cur[cpu][c] - prev[cpu][c])
		}
	}
	return out
}

// LoadFromStats concatenates the series of consecutive event.Stats messages
// of one node and sensor run (see LoadFromSamples) and takes RecordBytes and
// DrainRate from them: the mean of the positive RecordBytes readings per
// category, and the median of the positive DrainRate readings — the median
// because the reader's busy-time estimate is noisy when it is mostly idle.
// The ring size for the backlog threshold is the last message's.
func LoadFromStats(stats []event.Stats) Load {
	ringBytes := 0
	if n := len(stats); n > 0 {
		ringBytes = stats[n-1].Ring.SizeBytes
	}
	var series []event.Sample
	var rbs recordBytesMean
	var drains []float64
	for i := range stats {
		st := &stats[i]
		series = append(series, st.Series...)
		rbs.add(st.RecordBytes)
		if finitePos(st.DrainRate) {
			drains = append(drains, st.DrainRate)
		}
	}
	rb := rbs.mean()
	var drain float64
	if n := len(drains); n > 0 {
		slices.Sort(drains)
		if n%2 == 1 {
			drain = drains[n/2]
		} else {
			drain = (drains[n/2-1] + drains[n/2]) / 2
		}
	}
	return LoadFromSamples(series, rb, drain, ringBytes)
}

// CPUs is the number of CPUs whose arrivals every bin carries (Bin.CPU),
// or 0 when a bin has none or the bins disagree: then the load cannot be
// split into Falco's per-CPU-group rings.
func (l Load) CPUs() int {
	n := 0
	for i, b := range l.Bins {
		if len(b.CPU) == 0 || (i > 0 && len(b.CPU) != n) {
			return 0
		}
		n = len(b.CPU)
	}
	return n
}

// totals returns the total arrivals per category and the total duration in
// seconds.
func (l Load) totals() (arr [event.NumCategories]float64, secs float64) {
	for _, b := range l.Bins {
		for c, a := range b.Arrivals {
			arr[c] += nonNeg(a)
		}
		secs += float64(b.DurNs) / 1e9
	}
	return arr, secs
}

// recordBytesMean averages the positive RecordBytes readings per category
// (a missing or broken reading does not drag the mean to 0).
type recordBytesMean struct {
	sum [event.NumCategories]float64
	n   [event.NumCategories]int
}

func (m *recordBytesMean) add(rb [event.NumCategories]float64) {
	for c, v := range rb {
		if finitePos(v) {
			m.sum[c] += v
			m.n[c]++
		}
	}
}

// mean is the mean per category, 0 where nothing was read.
func (m *recordBytesMean) mean() [event.NumCategories]float64 {
	var rb [event.NumCategories]float64
	for c := range rb {
		if m.n[c] > 0 {
			rb[c] = m.sum[c] / float64(m.n[c])
		}
	}
	return rb
}
