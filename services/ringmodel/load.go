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
}

// Load is the measured arrival curve of one node plus the two constants the
// model needs to turn records into ring bytes and consumer time.
type Load struct {
	Bins []Bin
	// RecordBytes is the mean ring footprint of one record per category
	// (payload + 8-byte ringbuf header, 8-aligned), from event.Stats. A value
	// ≤ 0 is replaced by DefaultRecordBytes in the model.
	RecordBytes [event.NumCategories]float64
	// DrainRate is the records per second the consumer reads while busy, from
	// event.Stats. ≤ 0 means the consumer reads nothing.
	DrainRate float64
}

// DefaultRecordBytes returns the ring footprint of the sensor's fixed-size
// records without hints, used when a measured mean is missing: lifecycle is
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
func LoadFromSamples(samples []event.Sample, recordBytes [event.NumCategories]float64, drainRate float64) Load {
	l := Load{RecordBytes: recordBytes, DrainRate: drainRate}
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
			l.Bins = append(l.Bins, b)
		}
		prev = s
	}
	return l
}

// LoadFromStats concatenates the series of consecutive event.Stats messages
// of one node and sensor run (see LoadFromSamples) and takes RecordBytes and
// DrainRate from them: the mean of the positive RecordBytes readings per
// category, and the median of the positive DrainRate readings — the median
// because the reader's busy-time estimate is noisy when it is mostly idle.
func LoadFromStats(stats []event.Stats) Load {
	var series []event.Sample
	var rbSum [event.NumCategories]float64
	var rbN [event.NumCategories]int
	var drains []float64
	for i := range stats {
		st := &stats[i]
		series = append(series, st.Series...)
		for c, v := range st.RecordBytes {
			if finitePos(v) {
				rbSum[c] += v
				rbN[c]++
			}
		}
		if finitePos(st.DrainRate) {
			drains = append(drains, st.DrainRate)
		}
	}
	var rb [event.NumCategories]float64
	for c := range rb {
		if rbN[c] > 0 {
			rb[c] = rbSum[c] / float64(rbN[c])
		}
	}
	var drain float64
	if n := len(drains); n > 0 {
		slices.Sort(drains)
		if n%2 == 1 {
			drain = drains[n/2]
		} else {
			drain = (drains[n/2-1] + drains[n/2]) / 2
		}
	}
	return LoadFromSamples(series, rb, drain)
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
