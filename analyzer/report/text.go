package report

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
)

// WriteText writes a human-readable report of s: events and the share
// missing metadata, counts by field and by reason, the sensor's drops, and a
// verdict tying missing metadata to dropped lifecycle records. Write errors
// are ignored (the caller's writer reports them, e.g. a bufio.Writer's Flush).
func WriteText(w io.Writer, s Summary) {
	var b strings.Builder
	an, se := &s.Analyzer, &s.Sensor
	title := "ringwise report"
	switch {
	case s.Node != "":
		title += ": node " + s.Node
	case len(s.Nodes) > 0:
		title += ": nodes " + strings.Join(s.Nodes, ", ")
	}
	b.WriteString(title + "\n")
	if s.Ring.SizeBytes > 0 || s.Ring.Layout != "" {
		fmt.Fprintf(&b, "ring:     %s, layout %s", ringspec.ProseSize(s.Ring.SizeBytes), orDash(string(s.Ring.Layout)))
		if s.Ring.LifecycleSizeBytes > 0 {
			fmt.Fprintf(&b, " (lifecycle ring %s)", ringspec.ProseSize(s.Ring.LifecycleSizeBytes))
		}
		if s.Ring.Hints {
			b.WriteString(", hints")
		}
		if s.Ring.Shedding {
			b.WriteString(", shedding")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "events:   %d analyzed, %d missing metadata (%.2f%%)\n", an.Events, an.Missing, an.MissingPct)
	if s.Enricher.Events > 0 {
		fmt.Fprintf(&b, "enricher: %d events enriched\n", s.Enricher.Events)
	}
	if len(an.ByField) > 0 {
		// Two shares: of the missing events (which field a loss takes
		// away), and of all events (what a ring layout or hints fill).
		b.WriteString("missing by field (share of missing events, of all events):\n")
		writeCounts(&b, an.ByField, an.Missing, func(k string) string {
			return fmt.Sprintf("  %6.2f%% of events", pct(an.ByField[k], an.Events))
		})
	}
	if len(an.ByReason) > 0 {
		b.WriteString("missing by reason (share of missing events):\n")
		writeCounts(&b, an.ByReason, an.Missing, func(k string) string {
			if r, ok := event.ReasonByName(k); ok && r.LifecycleLoss() {
				return "  (lifecycle record dropped)"
			}
			return ""
		})
	}
	if se.Attempted > 0 || se.Batches > 0 {
		fmt.Fprintf(&b, "sensor:   %d attempted, %d delivered, %d dropped (%.2f%%): lifecycle %d of %d (%.2f%%), syscall %d of %d\n",
			se.Attempted, se.Delivered, se.Dropped, se.DropPct,
			se.DroppedLifecycle, se.AttemptedLifecycle, se.LifecycleDropPct,
			se.DroppedSyscall, se.AttemptedSyscall)
		fmt.Fprintf(&b, "          %d shed, %d batches, %d publish errors", se.Shed, se.Batches, se.PublishErrors)
		if se.Final {
			b.WriteString(", final counters")
		} else {
			b.WriteString(", counters not final")
		}
		b.WriteString("\n")
	}
	if an.BatchGaps > 0 {
		fmt.Fprintf(&b, "lost:     %d batches never reached the analyzer\n", an.BatchGaps)
	}
	if an.RetentionLostBatches > 0 {
		fmt.Fprintf(&b, "          %d of them (%d events) removed from RINGWISE_RAW by its limits before they were enriched\n", an.RetentionLostBatches, an.RetentionLostEvents)
	}
	if t := s.Truth; t.Processes > 0 {
		fmt.Fprintf(&b, "truth:    %d flood processes, %d matched, %d wrong (%d wrong events of %d), %d unseen\n",
			t.Processes, t.Matched, t.Wrong, t.WrongEvents, t.Events, t.Unseen)
	}
	if s.Falco != nil {
		writeFalco(&b, s)
	}
	b.WriteString("verdict:  " + verdict(s) + "\n")
	io.WriteString(w, b.String())
}

// verdict is the one line tying missing metadata to the ring's drops.
func verdict(s Summary) string {
	an, se := &s.Analyzer, &s.Sensor
	if s.Falco != nil && se.Attempted == 0 {
		return falcoVerdict(s)
	}
	switch {
	case an.Events == 0:
		return "no events analyzed."
	case an.Missing == 0 && se.DroppedLifecycle == 0:
		return "no event is missing metadata."
	case an.Missing == 0:
		return fmt.Sprintf("no event is missing metadata, although the ring dropped %d lifecycle records.", se.DroppedLifecycle)
	case se.Attempted == 0 && an.LifecycleAttributed > 0:
		return fmt.Sprintf("%d of %d events missing metadata (%.1f%%) blame lifecycle records the ring dropped; "+
			"this input has no ring counters to confirm it.", an.LifecycleAttributed, an.Missing, pct(an.LifecycleAttributed, an.Missing))
	case se.Attempted == 0:
		return "no ring counters in this input: compare with the monitor's drop counters " +
			"(Falco: syscall_event_drops alerts, scap.n_drops_buffer_* metrics) to tie missing metadata to ring overflow."
	case an.LifecycleAttributed > 0 && se.DroppedLifecycle > 0:
		return fmt.Sprintf("%d of %d events missing metadata (%.1f%%) are explained by lifecycle records (fork, exec, exit) "+
			"the ring dropped: %d lifecycle drops (%.2f%% of lifecycle records). A larger ring or the split layout prevents them.",
			an.LifecycleAttributed, an.Missing, pct(an.LifecycleAttributed, an.Missing), se.DroppedLifecycle, se.LifecycleDropPct)
	case se.DroppedLifecycle == 0:
		return "the ring dropped no lifecycle records: the missing metadata has other causes (see reasons); a larger ring will not help."
	default:
		return fmt.Sprintf("the ring dropped %d lifecycle records, but no missing event is attributed to them (see reasons).", se.DroppedLifecycle)
	}
}

func writeCounts(b *strings.Builder, m map[string]uint64, total uint64, note func(string) string) {
	keys := make([]string, 0, len(m))
	width := 0
	for k := range m {
		keys = append(keys, k)
		width = max(width, len(k))
	}
	slices.SortFunc(keys, func(x, y string) int {
		if c := cmp.Compare(m[y], m[x]); c != 0 {
			return c
		}
		return cmp.Compare(x, y)
	})
	for _, k := range keys {
		fmt.Fprintf(b, "  %-*s %10d  %6.2f%%", width, k, m[k], pct(m[k], total))
		if note != nil {
			b.WriteString(note(k))
		}
		b.WriteString("\n")
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
