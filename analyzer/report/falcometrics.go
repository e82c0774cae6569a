package report

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ringwise/ringwise/services/promtext"
)

// FalcoCounters is one reading of Falco's kernel-side event counters, as
// Falco publishes them in a metrics snapshot (output_fields "scap.n_evts",
// "scap.n_drops_buffer_clone_fork_exit", …), in its Prometheus text
// (falcosecurity_scap_n_evts_total, falcosecurity_scap_n_drops_buffer_total
// {dir,drop}, …) or, as deltas over the last second, in a drop alert.
//
// Snapshot and Prometheus readings are cumulative since Falco started;
// drop-alert readings are deltas.
type FalcoCounters struct {
	// TsNs is the reading's time in Unix ns; 0 when unknown.
	TsNs int64 `json:"ts_ns,omitempty"`
	// UptimeSec is Falco's falco.duration_sec when present (another clock
	// for scrapes without timestamps).
	UptimeSec float64 `json:"uptime_sec,omitempty"`
	// NEvts is n_evts: the events the kernel side tried to deliver, drops
	// included.
	NEvts uint64 `json:"n_evts"`
	// NDrops is n_drops, all kernel-side drops.
	NDrops uint64 `json:"n_drops"`
	// NDropsBuffer is n_drops_buffer(_total): drops because the ring was
	// full; it includes every buffer category and the uncategorised ones.
	NDropsBuffer uint64 `json:"n_drops_buffer"`
	// Buffer is the full-ring drops per Falco category, keyed
	// "<drop>_<dir>": clone_fork_exit, execve_enter, open_exit, proc_exit, …
	Buffer map[string]uint64 `json:"buffer,omitempty"`
	// NDropsScratchMap, NDropsPF and NDropsBug are the other drop kinds:
	// scratch map full, page fault reading user memory, driver bug.
	NDropsScratchMap uint64 `json:"n_drops_scratch_map"`
	NDropsPF         uint64 `json:"n_drops_pf"`
	NDropsBug        uint64 `json:"n_drops_bug"`
	// NumCPUs is falco.host_num_cpus (0 when absent).
	NumCPUs int `json:"num_cpus,omitempty"`
	// Engine is scap.engine_name (modern_bpf, bpf, kmod) when present.
	Engine string `json:"engine,omitempty"`
	// Host is the hostname when present.
	Host string `json:"host,omitempty"`
	// Fields counts the counter values read into this reading; 0 means the
	// source carried none (for example a snapshot without
	// kernel_event_counters_enabled).
	Fields int `json:"fields"`
}

// LifecycleBufferCategories are Falco's buffer-drop categories that carry
// the records Falco builds its process table from: a lost clone/fork, execve
// or process exit is what leaves later events without metadata.
func LifecycleBufferCategories() []string {
	return []string{"clone_fork_enter", "clone_fork_exit", "execve_enter", "execve_exit", "proc_exit"}
}

func isLifecycleCategory(c string) bool {
	return slices.Contains(LifecycleBufferCategories(), c)
}

// setCounter stores value under Falco's counter name (without the "scap."
// prefix and the Prometheus "_total" suffix): n_evts, n_drops,
// n_drops_buffer, n_drops_buffer_total, n_drops_buffer_<cat>_<dir>,
// n_drops_scratch_map, n_drops_pf, n_drops_page_faults, n_drops_bug. It
// reports whether name is one of them.
func (c *FalcoCounters) setCounter(name string, v uint64) bool {
	switch name {
	case "n_evts":
		c.NEvts = v
	case "n_drops":
		c.NDrops = v
	case "n_drops_buffer", "n_drops_buffer_total":
		c.NDropsBuffer = v
	case "n_drops_scratch_map":
		c.NDropsScratchMap = v
	case "n_drops_pf", "n_drops_page_faults":
		c.NDropsPF = v
	case "n_drops_bug":
		c.NDropsBug = v
	default:
		cat, ok := strings.CutPrefix(name, "n_drops_buffer_")
		if !ok || !(strings.HasSuffix(cat, "_enter") || strings.HasSuffix(cat, "_exit")) {
			return false
		}
		c.addBuffer(cat, v)
		return true
	}
	c.Fields++
	return true
}

func (c *FalcoCounters) addBuffer(cat string, v uint64) {
	if c.Buffer == nil {
		c.Buffer = map[string]uint64{}
	}
	c.Buffer[cat] += v
	c.Fields++
}

// add adds d's counters into c (for summing drop alerts).
func (c *FalcoCounters) add(d *FalcoCounters) {
	c.NEvts += d.NEvts
	c.NDrops += d.NDrops
	c.NDropsBuffer += d.NDropsBuffer
	c.NDropsScratchMap += d.NDropsScratchMap
	c.NDropsPF += d.NDropsPF
	c.NDropsBug += d.NDropsBug
	for k, v := range d.Buffer {
		c.addBuffer(k, v)
		c.Fields--
	}
	c.Fields += d.Fields
}

// sub returns c − prev for cumulative counters and reports false when any
// counter went backwards (Falco restarted between the readings).
func (c *FalcoCounters) sub(prev *FalcoCounters) (FalcoCounters, bool) {
	d := FalcoCounters{TsNs: c.TsNs, UptimeSec: c.UptimeSec, NumCPUs: c.NumCPUs, Engine: c.Engine, Host: c.Host, Fields: c.Fields}
	ok := true
	diff := func(a, b uint64) uint64 {
		if a < b {
			ok = false
			return 0
		}
		return a - b
	}
	d.NEvts = diff(c.NEvts, prev.NEvts)
	d.NDrops = diff(c.NDrops, prev.NDrops)
	d.NDropsBuffer = diff(c.NDropsBuffer, prev.NDropsBuffer)
	d.NDropsScratchMap = diff(c.NDropsScratchMap, prev.NDropsScratchMap)
	d.NDropsPF = diff(c.NDropsPF, prev.NDropsPF)
	d.NDropsBug = diff(c.NDropsBug, prev.NDropsBug)
	for k, v := range c.Buffer {
		if d.Buffer == nil {
			d.Buffer = map[string]uint64{}
		}
		d.Buffer[k] = diff(v, prev.Buffer[k])
	}
	return d, ok
}

// FalcoInterval is the drops of one interval between two readings.
type FalcoInterval struct {
	// StartSec and EndSec are seconds since the first reading (by
	// timestamp, else by Falco's uptime, else by reading index).
	StartSec float64 `json:"start_sec"`
	EndSec   float64 `json:"end_sec"`
	Events   uint64  `json:"events"`
	Drops    uint64  `json:"drops"`
	// DropPct is 100 × drops / events (Falco's n_evts includes its drops).
	DropPct float64 `json:"drop_pct"`
	// BufferPct is the full-ring drops per category as % of events.
	BufferPct map[string]float64 `json:"buffer_pct,omitempty"`
	// DeliveredRate is (events − drops) / seconds: what Falco's consumer
	// read. In an interval with buffer drops the consumer was saturated, so
	// this is its drain rate.
	DeliveredRate float64 `json:"delivered_eps"`
	Restart       bool    `json:"restart,omitempty"`
}

// FalcoMetricsReport is drop % by category over time from a series of
// Falco counter readings.
type FalcoMetricsReport struct {
	Readings int `json:"readings"`
	// Clock says how interval times were obtained: "timestamp", "uptime"
	// or "index" (readings without time: intervals are numbered, rates 0).
	Clock     string          `json:"clock"`
	Intervals []FalcoInterval `json:"intervals,omitempty"`
	// Total is the whole series: the last reading minus the first (summed
	// over restarts), or, for one reading, the counters since Falco started.
	Total FalcoInterval `json:"total"`
	// BufferDrops is the full-ring drops per category over the series.
	BufferDrops map[string]uint64 `json:"buffer_drops,omitempty"`
	// LifecycleBufferDrops sums the lifecycle categories (see
	// LifecycleBufferCategories).
	LifecycleBufferDrops uint64 `json:"lifecycle_buffer_drops"`
	OtherDrops           struct {
		ScratchMap uint64 `json:"scratch_map"`
		PageFaults uint64 `json:"page_faults"`
		Bug        uint64 `json:"bug"`
	} `json:"other_drops"`
	// DrainRate is the highest delivered rate of an interval with buffer
	// drops (the consumer was saturated then); 0 when there is none.
	DrainRate float64 `json:"drain_eps"`
	// DrainLowerBound is the highest delivered rate of any interval: a lower
	// bound on the drain when no interval saturated Falco.
	DrainLowerBound float64 `json:"drain_lower_bound_eps"`
	NumCPUs         int     `json:"num_cpus,omitempty"`
	Engine          string  `json:"engine,omitempty"`
	Host            string  `json:"host,omitempty"`
}

// AnalyzeFalcoCounters turns cumulative readings (in reading order) into
// drop % per interval and category. Readings without any counter are
// ignored.
func AnalyzeFalcoCounters(readings []FalcoCounters) FalcoMetricsReport {
	var rs []FalcoCounters
	for _, r := range readings {
		if r.Fields > 0 {
			rs = append(rs, r)
		}
	}
	rep := FalcoMetricsReport{Readings: len(rs), BufferDrops: map[string]uint64{}}
	if len(rs) == 0 {
		return rep
	}
	last := rs[len(rs)-1]
	rep.NumCPUs, rep.Engine, rep.Host = last.NumCPUs, last.Engine, last.Host
	rep.Clock = "index"
	switch {
	case allHave(rs, func(r FalcoCounters) bool { return r.TsNs != 0 }):
		rep.Clock = "timestamp"
	case allHave(rs, func(r FalcoCounters) bool { return r.UptimeSec > 0 }):
		rep.Clock = "uptime"
	}
	at := func(i int) float64 {
		switch rep.Clock {
		case "timestamp":
			return float64(rs[i].TsNs-rs[0].TsNs) / 1e9
		case "uptime":
			return rs[i].UptimeSec - rs[0].UptimeSec
		}
		return float64(i)
	}
	var total FalcoCounters
	if len(rs) == 1 {
		total = rs[0]
		rep.Total = interval(&total, 0, rs[0].UptimeSec, rs[0].UptimeSec > 0)
	} else {
		for i := 1; i < len(rs); i++ {
			d, ok := rs[i].sub(&rs[i-1])
			if !ok { // restart: the new reading counts from zero
				d = rs[i]
				d.Buffer = maps0(rs[i].Buffer)
			}
			iv := interval(&d, at(i-1), at(i), rep.Clock != "index")
			iv.Restart = !ok
			rep.Intervals = append(rep.Intervals, iv)
			total.add(&d)
			if iv.DeliveredRate > rep.DrainLowerBound {
				rep.DrainLowerBound = iv.DeliveredRate
			}
			if d.NDropsBuffer > 0 && iv.DeliveredRate > rep.DrainRate {
				rep.DrainRate = iv.DeliveredRate
			}
		}
		rep.Total = interval(&total, 0, at(len(rs)-1), rep.Clock != "index")
	}
	if len(rs) == 1 {
		rep.DrainLowerBound = rep.Total.DeliveredRate
		if total.NDropsBuffer > 0 {
			rep.DrainRate = rep.Total.DeliveredRate // averaged since start: a low estimate
		}
	}
	for k, v := range total.Buffer {
		rep.BufferDrops[k] = v
		if isLifecycleCategory(k) {
			rep.LifecycleBufferDrops += v
		}
	}
	rep.OtherDrops.ScratchMap, rep.OtherDrops.PageFaults, rep.OtherDrops.Bug = total.NDropsScratchMap, total.NDropsPF, total.NDropsBug
	return rep
}

func maps0(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func allHave(rs []FalcoCounters, f func(FalcoCounters) bool) bool {
	for _, r := range rs {
		if !f(r) {
			return false
		}
	}
	return true
}

func interval(d *FalcoCounters, start, end float64, timed bool) FalcoInterval {
	iv := FalcoInterval{StartSec: start, EndSec: end, Events: d.NEvts, Drops: d.NDrops, DropPct: pct(d.NDrops, d.NEvts)}
	for k, v := range d.Buffer {
		if v == 0 {
			continue
		}
		if iv.BufferPct == nil {
			iv.BufferPct = map[string]float64{}
		}
		iv.BufferPct[k] = pct(v, d.NEvts)
	}
	if secs := end - start; timed && secs > 0 && d.NEvts >= d.NDrops {
		iv.DeliveredRate = float64(d.NEvts-d.NDrops) / secs
	}
	return iv
}

// WriteFalcoMetricsText writes rep as a table: one line per interval with
// events, drops, drop % and the top buffer categories, then the totals.
func WriteFalcoMetricsText(w io.Writer, rep FalcoMetricsReport) {
	var b strings.Builder
	fmt.Fprintf(&b, "falco metrics: %d readings (clock: %s)", rep.Readings, orDash(rep.Clock))
	if rep.Engine != "" {
		fmt.Fprintf(&b, ", engine %s", rep.Engine)
	}
	if rep.NumCPUs > 0 {
		fmt.Fprintf(&b, ", %d CPUs", rep.NumCPUs)
	}
	if rep.Host != "" {
		fmt.Fprintf(&b, ", host %s", rep.Host)
	}
	b.WriteString("\n")
	if rep.Readings == 0 {
		b.WriteString("  no kernel event counters (enable metrics.kernel_event_counters_enabled)\n")
		io.WriteString(w, b.String())
		return
	}
	if len(rep.Intervals) > 0 {
		fmt.Fprintf(&b, "  %-17s %12s %10s %8s  %s\n", "interval (s)", "events", "drops", "drop %", "full-ring drops by category (% of events)")
		for _, iv := range rep.Intervals {
			span := fmt.Sprintf("%.1f–%.1f", iv.StartSec, iv.EndSec)
			if iv.Restart {
				span += "*"
			}
			fmt.Fprintf(&b, "  %-17s %12d %10d %7.2f%%  %s\n", span, iv.Events, iv.Drops, iv.DropPct, topCategories(iv.BufferPct, 4))
		}
	}
	t := rep.Total
	what := "over the series"
	if len(rep.Intervals) == 0 {
		what = "since Falco started"
	}
	fmt.Fprintf(&b, "  total %s: %d events, %d drops (%.2f%%); full-ring drops in lifecycle categories (clone/fork, execve, proc exit): %d\n",
		what, t.Events, t.Drops, t.DropPct, rep.LifecycleBufferDrops)
	if nz := nonZero(rep.BufferDrops); len(nz) > 0 {
		b.WriteString("  full-ring drops by category:\n")
		writeCounts(&b, nz, sumMap(nz), func(k string) string {
			if isLifecycleCategory(k) {
				return "  (process table)"
			}
			return ""
		})
	}
	if o := rep.OtherDrops; o.ScratchMap+o.PageFaults+o.Bug > 0 {
		fmt.Fprintf(&b, "  other drops: scratch map %d, page faults %d, bug %d (not ring size)\n", o.ScratchMap, o.PageFaults, o.Bug)
	}
	switch {
	case rep.DrainRate > 0:
		fmt.Fprintf(&b, "  Falco's drain (delivered rate while the ring overflowed): %.0f events/s\n", rep.DrainRate)
	case rep.DrainLowerBound > 0:
		fmt.Fprintf(&b, "  Falco's drain: at least %.0f events/s (never saturated in these readings)\n", rep.DrainLowerBound)
	}
	if slices.ContainsFunc(rep.Intervals, func(iv FalcoInterval) bool { return iv.Restart }) {
		b.WriteString("  (* Falco restarted: the interval counts from zero)\n")
	}
	io.WriteString(w, b.String())
}

func nonZero(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

func sumMap(m map[string]uint64) uint64 {
	var s uint64
	for _, v := range m {
		s += v
	}
	return s
}

func topCategories(m map[string]float64, n int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	var parts []string
	for i, k := range keys {
		if i == n {
			parts = append(parts, fmt.Sprintf("+%d more", len(keys)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// Falco's Prometheus metric names (webserver.prometheus_metrics_enabled).
const (
	PromNEvts        = "falcosecurity_scap_n_evts_total"
	PromNDrops       = "falcosecurity_scap_n_drops_total"
	PromNDropsBuffer = "falcosecurity_scap_n_drops_buffer_total" // {dir,drop}
	PromScratchMap   = "falcosecurity_scap_n_drops_scratch_map_total"
	PromPageFaults   = "falcosecurity_scap_n_drops_page_faults_total"
	PromBug          = "falcosecurity_scap_n_drops_bug_total"
	PromDuration     = "falcosecurity_falco_duration_seconds_total"
	PromNumCPUs      = "falcosecurity_falco_host_num_cpus_total"
	PromEngine       = "falcosecurity_scap_engine_name_info" // {engine_name}
	PromHostname     = "falcosecurity_evt_hostname_info"     // {hostname}
)

// FalcoCountersFromScrape reads Falco's kernel event counters from one
// Prometheus scrape. The reading's time is the samples' timestamp when they
// carry one, else tsNs (the scrape time, 0 if unknown). Without an
// unlabelled n_drops_buffer total, NDropsBuffer is the sum of the
// categories.
func FalcoCountersFromScrape(sc promtext.Scrape, tsNs int64) FalcoCounters {
	c := FalcoCounters{TsNs: tsNs}
	haveBufferTotal := false
	var catSum uint64
	for i := range sc.Samples {
		s := &sc.Samples[i]
		if s.HasTs && c.TsNs == 0 {
			c.TsNs = s.TsMs * 1e6
		}
		v := s.Value
		counter := uint64(0)
		if v > 0 && v < 1<<63 {
			counter = uint64(v)
		}
		switch s.Name {
		case PromNEvts:
			c.setCounter("n_evts", counter)
		case PromNDrops:
			c.setCounter("n_drops", counter)
		case PromScratchMap:
			c.setCounter("n_drops_scratch_map", counter)
		case PromPageFaults:
			c.setCounter("n_drops_pf", counter)
		case PromBug:
			c.setCounter("n_drops_bug", counter)
		case PromNDropsBuffer:
			drop, okDrop := s.Label("drop")
			dir, okDir := s.Label("dir")
			if okDrop && okDir {
				c.addBuffer(drop+"_"+dir, counter)
				catSum += counter
			} else {
				c.setCounter("n_drops_buffer", counter)
				haveBufferTotal = true
			}
		case PromDuration:
			c.UptimeSec = v
		case PromNumCPUs:
			if v > 0 && v < 1<<20 {
				c.NumCPUs = int(v)
			}
		case PromEngine:
			c.Engine, _ = s.Label("engine_name")
		case PromHostname:
			c.Host, _ = s.Label("hostname")
		}
	}
	if !haveBufferTotal {
		c.NDropsBuffer = catSum
	}
	return c
}

// FalcoCountersFromText reads Falco's Prometheus text: one scrape, or a
// file of consecutive scrapes (see promtext.Parse), each becoming one
// reading. Scrapes with none of Falco's kernel event counters are left out
// (and counted in the returned skipped count).
func FalcoCountersFromText(r io.Reader) ([]FalcoCounters, promtext.Stats, int, error) {
	scrapes, st, err := promtext.Parse(r)
	if err != nil {
		return nil, st, 0, err
	}
	var out []FalcoCounters
	skipped := 0
	for _, sc := range scrapes {
		c := FalcoCountersFromScrape(sc, 0)
		if c.Fields == 0 {
			skipped++
			continue
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, st, skipped, fmt.Errorf("no Falco kernel event counters (%s …) in %d scrapes: enable metrics.kernel_event_counters_enabled", PromNEvts, len(scrapes))
	}
	return out, st, skipped, nil
}
