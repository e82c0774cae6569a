package report

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/ringwise/ringwise/services/event"
)

func TestAggregatorCounts(t *testing.T) {
	a := NewAggregator()
	const all = event.AllFields
	b1 := batch("n1", 1,
		known(event.TypeSyscall, 10, 1, 1, "bash", "/bin/bash"),
		ev(event.TypeSyscall, 11, 1, all, event.ReasonForkDropped),
		ev(event.TypeSyscall, 12, 2, event.FieldName|event.FieldExePath|event.FieldCmdline, event.ReasonExecDropped),
		ev(event.TypeSyscall, 13, 1, all, event.ReasonProcGone),
	)
	b1.Counters.Attempted = [2]uint64{100, 900}
	b1.Counters.Dropped = [2]uint64{10, 40}
	b1.Counters.Delivered = [2]uint64{90, 860}
	a.AddBatch(b1)
	b2 := batch("n1", 2,
		known(event.TypeExec, 14, 2, 1, "x", "/x"),
		ev(event.TypeSyscall, 15, 1, event.FieldUID, event.ReasonNone),
	)
	b2.Counters = b1.Counters
	b2.Counters.Attempted[1] = 1000
	a.AddBatch(b2)

	s := a.Summary("")
	if s.Node != "n1" {
		t.Errorf("node = %q", s.Node)
	}
	an := s.Analyzer
	if an.Events != 6 || an.Missing != 4 {
		t.Fatalf("events %d missing %d, want 6 4", an.Events, an.Missing)
	}
	if want := 100 * 4.0 / 6; an.MissingPct != want {
		t.Errorf("missing_pct %v want %v", an.MissingPct, want)
	}
	wantField := map[string]uint64{"proc.ppid": 2, "proc.name": 3, "proc.exepath": 3, "proc.cmdline": 3, "user.uid": 3}
	if !maps.Equal(an.ByField, wantField) {
		t.Errorf("by_field %v want %v", an.ByField, wantField)
	}
	wantReason := map[string]uint64{"fork_dropped": 1, "exec_dropped": 1, "process_gone_before_lookup": 1, ReasonUnspecified: 1}
	if !maps.Equal(an.ByReason, wantReason) {
		t.Errorf("by_reason %v want %v", an.ByReason, wantReason)
	}
	if an.LifecycleAttributed != 2 {
		t.Errorf("lifecycle_attributed %d want 2", an.LifecycleAttributed)
	}
	se := s.Sensor
	if se.Attempted != 1100 || se.Dropped != 50 || se.Delivered != 950 || se.DroppedLifecycle != 10 || se.DroppedSyscall != 40 {
		t.Errorf("sensor %+v", se)
	}
	if se.Batches != 2 || an.Batches != 2 || an.BatchGaps != 0 || se.Final {
		t.Errorf("batches %d/%d gaps %d final %v", se.Batches, an.Batches, an.BatchGaps, se.Final)
	}
}

func TestAggregatorGapsAndDuplicates(t *testing.T) {
	a := NewAggregator()
	one := ev(event.TypeSyscall, 1, 1, event.FieldName, event.ReasonForkDropped)
	for _, seq := range []uint64{1, 2, 5} {
		a.AddBatch(batch("n", seq, one))
	}
	if g := a.Summary("n").Analyzer.BatchGaps; g != 2 {
		t.Fatalf("gaps after 1,2,5 = %d, want 2", g)
	}
	a.AddBatch(batch("n", 3, one)) // late, fills a gap
	a.AddBatch(batch("n", 2, one)) // redelivered
	s := a.Summary("n")
	if s.Analyzer.BatchGaps != 1 || s.Analyzer.DuplicateBatches != 1 || s.Analyzer.Events != 4 || s.Analyzer.Batches != 4 {
		t.Fatalf("after late 3 and dup 2: %+v", s.Analyzer)
	}
	// Final stats say 7 batches were published: 6 and 7 are lost too.
	a.AddStats(&event.Stats{Node: "n", BootID: "boot-1", SensorStartNs: 1000, LastBatchSeq: 7, Batches: 7, Final: true,
		Ring: event.RingConfig{SizeBytes: 8 << 20, Layout: "shared"}})
	s = a.Summary("n")
	if s.Analyzer.BatchGaps != 3 || !s.Sensor.Final || s.Sensor.Batches != 7 {
		t.Fatalf("after final stats: gaps %d final %v batches %d", s.Analyzer.BatchGaps, s.Sensor.Final, s.Sensor.Batches)
	}
	// A new sensor run starts its own sequence.
	b := batch("n", 1, one)
	b.SensorStartNs = 2000
	a.AddBatch(b)
	s = a.Summary("n")
	if s.Analyzer.BatchGaps != 3 || s.Sensor.Runs != 2 || s.Sensor.Final {
		t.Fatalf("new run: gaps %d runs %d final %v", s.Analyzer.BatchGaps, s.Sensor.Runs, s.Sensor.Final)
	}
}

func TestAggregatorStatsAndNodes(t *testing.T) {
	a := NewAggregator()
	a.AddBatch(batch("b", 1, ev(event.TypeSyscall, 1, 1, 0, 0)))
	a.AddBatch(batch("a", 1, ev(event.TypeSyscall, 1, 1, event.FieldPPid, event.ReasonPidReused)))
	st := &event.Stats{Node: "a", BootID: "boot-1", SensorStartNs: 1000, Batches: 1, PublishErrors: 2,
		Ring: event.RingConfig{SizeBytes: 8 << 20, Layout: "shared"}}
	st.Counters.Attempted = [2]uint64{5, 50}
	st.Counters.Dropped = [2]uint64{1, 2}
	st.Counters.Shed = [2]uint64{0, 7}
	a.AddStats(st)
	a.AddStats(&event.Stats{Node: "b", BootID: "boot-1", SensorStartNs: 1000, Final: true,
		Ring: event.RingConfig{SizeBytes: 16 << 20, Layout: "split"}})
	// The highest count per sensor run counts (batches may come late), and
	// runs add up.
	a.AddEnricherEvents("a", "boot-1", 1000, 2)
	a.AddEnricherEvents("a", "boot-1", 1000, 3)
	a.AddEnricherEvents("a", "boot-1", 1000, 1)
	a.AddEnricherEvents("b", "boot-1", 1000, 1)
	a.AddEnricherEvents("b", "boot-2", 5, 3)

	if got := a.Nodes(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("nodes %v", got)
	}
	sa := a.Summary("a")
	if sa.Ring.SizeBytes != 8<<20 || sa.Ring.Layout != "shared" || sa.Sensor.Attempted != 55 || sa.Sensor.Shed != 7 ||
		sa.Sensor.PublishErrors != 2 || sa.Enricher.Events != 3 || sa.Analyzer.LifecycleAttributed != 1 {
		t.Errorf("node a: %+v", sa)
	}
	m := a.Summary("")
	if m.Node != "" || !slices.Equal(m.Nodes, []string{"a", "b"}) || m.Analyzer.Events != 2 || m.Analyzer.Missing != 1 ||
		m.Enricher.Events != 7 || m.Ring.Layout != "mixed" || m.Sensor.Final {
		t.Errorf("merged: %+v", m)
	}
	if u := a.Summary("nope"); u.Node != "nope" || u.Analyzer.Events != 0 || u.Analyzer.ByField == nil {
		t.Errorf("unknown node: %+v", u)
	}
	if e := NewAggregator().Summary(""); e.Analyzer.MissingPct != 0 || e.Node != "" {
		t.Errorf("empty: %+v", e)
	}
}

// TestSummaryJSONNames pins the JSON names that are ringwise's interface.
func TestSummaryJSONNames(t *testing.T) {
	a := NewAggregator()
	a.AddBatch(batch("n1", 1, ev(event.TypeSyscall, 1, 1, event.FieldName, event.ReasonForkDropped)))
	data, err := json.Marshal(a.Summary(""))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]any
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	if string(top["node"]) != `"n1"` {
		t.Errorf("node = %s", top["node"])
	}
	delete(top, "node")
	rest, _ := json.Marshal(top)
	if err := json.Unmarshal(rest, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"ring":     {"size_bytes", "layout"},
		"sensor":   {"attempted", "delivered", "dropped", "dropped_lifecycle", "dropped_syscall", "shed", "batches", "publish_errors"},
		"enricher": {"events"},
		"analyzer": {"events", "missing", "missing_pct", "by_field", "by_reason", "lifecycle_attributed", "batch_gaps"},
		"truth":    {"processes", "matched", "wrong", "wrong_events", "events"},
	}
	for sec, keys := range want {
		for _, k := range keys {
			if _, ok := m[sec][k]; !ok {
				t.Errorf("%s.%s missing in %s", sec, k, data)
			}
		}
	}
	if got := m["analyzer"]["by_field"]; !reflect.DeepEqual(got, map[string]any{"proc.name": 1.0}) {
		t.Errorf("by_field %v", got)
	}
}

// TestObservePositionLateVersusOutOfOrder: a position below the highest
// seen is out of order on its first delivery (the stream's own order is
// broken) and late when redelivered (JetStream brought back a delivery lost
// in flight after its ack wait); a position seen before is a redelivery
// when the same enriched message brings it again, and a duplicate position
// when another enriched message holds it. Only new positions are counted.
func TestObservePositionLateVersusOutOfOrder(t *testing.T) {
	a := NewAggregator()
	steps := []struct {
		seq, enrichedSeq uint64
		redelivered      bool
		isNew            bool
	}{
		{1, 10, false, true}, {2, 11, false, true}, {5, 14, false, true},
		{3, 12, true, true},   // lost in flight, redelivered: late
		{4, 13, false, true},  // first delivery below 5: out of order
		{5, 14, true, false},  // processed, ack lost, the same message again: redelivery
		{2, 20, false, false}, // another enriched message of raw batch 2: duplicate position
	}
	for _, s := range steps {
		if got := a.ObservePosition("n1", "inc1", s.seq, s.enrichedSeq, s.redelivered); got != s.isNew {
			t.Errorf("ObservePosition(seq %d, enriched seq %d, redelivered %v) = %v, want %v", s.seq, s.enrichedSeq, s.redelivered, got, s.isNew)
		}
	}
	an := a.Summary("n1").Analyzer
	if an.LateBatches != 1 || an.OutOfOrderBatches != 1 || an.DuplicatePositions != 1 || an.DuplicateBatches != 1 {
		t.Errorf("late %d, out of order %d, duplicate positions %d, redelivered duplicates %d: want 1, 1, 1, 1",
			an.LateBatches, an.OutOfOrderBatches, an.DuplicatePositions, an.DuplicateBatches)
	}
}
