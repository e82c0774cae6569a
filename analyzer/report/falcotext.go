package report

import (
	"fmt"
	"slices"
	"strings"
)

// writeFalco writes the Falco-only sections of the text report: input
// shapes and skipped lines, name lookups, legitimately absent values, drop
// alerts and their correlation with missing metadata, metrics snapshots.
func writeFalco(b *strings.Builder, s Summary) {
	f := s.Falco
	in := &f.Input
	fmt.Fprintf(b, "input:    %d lines: %d events, %d drop alerts, %d metrics snapshots, %d skipped (%d blank lines ignored)\n",
		in.Lines, in.Events, in.DropAlerts, in.MetricsSnapshots, sumInts(in.Skipped), in.Blank)
	for _, k := range sortedKeys(in.Skipped) {
		fmt.Fprintf(b, "          skipped %d: %s\n", in.Skipped[k], k)
	}
	if len(in.Formats) > 0 {
		var parts []string
		for _, k := range sortedKeys(in.Formats) {
			parts = append(parts, fmt.Sprintf("%s %d", k, in.Formats[k]))
		}
		fmt.Fprintf(b, "formats:  %s\n", strings.Join(parts, "; "))
	}
	if in.Untimed > 0 {
		fmt.Fprintf(b, "          %d events or alerts without a usable time (left out of the time correlation)\n", in.Untimed)
	}
	if f.LookupFailed > 0 {
		fmt.Fprintf(b, "lookups:  %d events with a name unknown while its id is known (passwd/group or container runtime lookup, not ring loss; not counted as missing):\n", f.LookupFailed)
		writeCounts(b, f.LookupByField, f.LookupFailed, nil)
	}
	if len(f.Legit) > 0 {
		var parts []string
		for _, k := range sortedKeys(f.Legit) {
			parts = append(parts, fmt.Sprintf("%s %d", k, f.Legit[k]))
		}
		fmt.Fprintf(b, "legit:    legitimately absent, never counted: %s\n", strings.Join(parts, "; "))
	}
	d := &f.Drops
	if d.Alerts > 0 {
		c := &d.Counters
		fmt.Fprintf(b, "drops:    %d Falco drop alerts (%d with ebpf_enabled) from %s to %s (%.1f s): n_evts %d, n_drops %d (%.2f%%), n_drops_buffer %d, n_drops_scratch_map %d, n_drops_pf %d, n_drops_bug %d\n",
			d.Alerts, d.EBPF, orDash(d.First), orDash(d.Last), d.SpanSec, c.NEvts, c.NDrops, d.DropPct, c.NDropsBuffer, c.NDropsScratchMap, c.NDropsPF, c.NDropsBug)
		if len(c.Buffer) > 0 {
			fmt.Fprintf(b, "          full-ring drops by category (%d in clone/fork, execve, proc exit: the process table's records):\n", d.LifecycleBufferDrops)
			writeCounts(b, nonZero(c.Buffer), c.NDropsBuffer, func(k string) string {
				if isLifecycleCategory(k) {
					return "  (process table)"
				}
				return ""
			})
		}
	} else {
		b.WriteString("drops:    no Falco drop alerts in this input (syscall_event_drops.actions without alert, or no drops)\n")
	}
	if c := f.Correlation; c != nil {
		fmt.Fprintf(b, "timing:   within %.0f s before to %.0f s after a drop alert: %d of %d events missing metadata (%.2f%%); elsewhere: %d of %d (%.2f%%)",
			c.LookbackSec, c.WindowSec, c.NearMissing, c.NearEvents, c.NearPct, c.ElsewhereMissing, c.ElsewhereEvents, c.ElsewherePct)
		if c.Ratio > 0 {
			fmt.Fprintf(b, ", %.1f× as often near drops", c.Ratio)
		}
		b.WriteString("\n")
	}
	if f.Metrics != nil {
		var mb strings.Builder
		WriteFalcoMetricsText(&mb, *f.Metrics)
		b.WriteString(mb.String())
	}
}

// falcoVerdict ties Falco's missing metadata to its drop evidence.
func falcoVerdict(s Summary) string {
	an, f := &s.Analyzer, s.Falco
	d := &f.Drops
	ringDrops := d.Counters.NDropsBuffer
	if f.Metrics != nil && f.Metrics.Total.Drops > 0 {
		ringDrops = max(ringDrops, f.Metrics.Total.Drops)
	}
	switch {
	case an.Events == 0 && d.Alerts == 0:
		return "no events analyzed."
	case an.Missing == 0 && ringDrops == 0:
		return "no event is missing metadata and Falco reported no drops."
	case an.Missing == 0:
		return fmt.Sprintf("no event is missing metadata, although Falco reported %d ring drops.", ringDrops)
	case f.RingLossMissing == 0:
		return fmt.Sprintf("%d events miss metadata, none with a pattern ring loss produces: a larger ring will not help (see causes).", an.Missing)
	case ringDrops == 0:
		return fmt.Sprintf("%d of %d events missing metadata (%.1f%%) show the pattern of lost process records (thread state lost, parent not in table), "+
			"but this input has no drop evidence: enable syscall_event_drops.actions: [alert] or Falco's metrics to confirm ring loss.",
			f.RingLossMissing, an.Missing, pct(f.RingLossMissing, an.Missing))
	}
	v := fmt.Sprintf("%d of %d events missing metadata (%.1f%%) show the pattern of lost process records, and Falco dropped %d events on a full ring",
		f.RingLossMissing, an.Missing, pct(f.RingLossMissing, an.Missing), ringDrops)
	if d.LifecycleBufferDrops > 0 {
		v += fmt.Sprintf(" (%d of them clone/fork, execve or exit records)", d.LifecycleBufferDrops)
	}
	if c := f.Correlation; c != nil && c.Ratio > 1 {
		v += fmt.Sprintf("; missing metadata is %.1f× as frequent near drop alerts", c.Ratio)
	}
	return v + ": a larger engine.modern_ebpf.buf_size_preset (see 'ringwise measure') or fewer syscalls (base_syscalls) prevents it."
}

func sumInts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
