package analyzer_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ringwise/ringwise/analyzer"
	"github.com/ringwise/ringwise/services/bus"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
	"github.com/ringwise/ringwise/services/syscalls"
)

// falcoNodeStats is a 32-CPU node running Falco's layout (16 rings of
// 16 MiB) through 10 s with a 1 s burst on CPUs 0-3, its samples carrying
// the per-CPU attempts.
func falcoNodeStats(name string, ncpu int, layout ringspec.Layout) *event.Stats {
	st := &event.Stats{Node: name, BootID: "boot", SensorStartNs: 1000, LastBatchSeq: 1, Batches: 1, Final: true,
		Ring:        event.RingConfig{SizeBytes: 16 << 20, Layout: layout, Rings: 1, CPUsPerRing: 2},
		RecordBytes: [event.NumCategories]float64{800, 96}, DrainRate: 100_000}
	if layout == ringspec.LayoutFalco {
		st.Ring.Rings = ncpu / 2
	}
	cum := make([][event.NumCategories]uint64, ncpu)
	for i := 0; i <= 1000; i++ {
		s := event.Sample{TsNs: 1_000_000 + uint64(i)*10_000_000}
		if i > 0 {
			for cpu := range cum {
				switch {
				case cpu < 4 && i > 10 && i <= 110:
					cum[cpu][0] += 25
					cum[cpu][1] += 750
				case i%10 == 0:
					cum[cpu][1]++
				}
			}
		}
		s.AttemptedCPU = make([][event.NumCategories]uint64, ncpu)
		copy(s.AttemptedCPU, cum)
		for _, v := range cum {
			s.Attempted[0] += v[0]
			s.Attempted[1] += v[1]
		}
		s.Delivered = s.Attempted
		st.Series = append(st.Series, s)
	}
	last := st.Series[len(st.Series)-1]
	st.Counters = event.Counters{Attempted: last.Attempted, Delivered: last.Delivered}
	return st
}

// syscallBatch has n events of each named syscall, with full metadata.
func syscallBatch(t *testing.T, name string, counts map[string]int) *event.EnrichedBatch {
	b := &event.EnrichedBatch{Node: name, BootID: "boot", RawSeq: 1, SensorStartNs: 1000}
	ts := uint64(2000)
	for sc, n := range counts {
		nr, ok := syscalls.Number(syscalls.Native(), sc)
		if !ok {
			t.Fatalf("no syscall %s here", sc)
		}
		for range n {
			ts++
			e := event.Enriched{Event: event.Event{Header: event.Header{TsNs: ts, Pid: 10, Tid: 10, Type: event.TypeSyscall}, Syscall: nr},
				ProcName: "cat", ProcExePath: "/bin/cat", ProcCmdline: "cat x", ProcPPid: 1, Source: event.SourceState}
			b.Events = append(b.Events, e)
		}
	}
	return b
}

type recJSON struct {
	BufSizePreset int    `json:"buf_size_preset"`
	Layout        string `json:"layout"`
	Verdict       string `json:"verdict"`
	Falco         struct {
		CPUs      int  `json:"cpus"`
		PerCPU    bool `json:"per_cpu_arrivals"`
		Rings     int  `json:"rings"`
		Candidate struct {
			Preset      int    `json:"preset"`
			MemoryBytes int    `json:"memory_bytes"`
			Basis       string `json:"basis"`
		} `json:"candidate"`
	} `json:"falco"`
	Candidates []struct {
		Preset      int    `json:"preset"`
		Layout      string `json:"layout"`
		MeetsTarget bool   `json:"meets_target"`
	} `json:"candidates"`
	WhatIf []struct {
		Without     []string `json:"without"`
		SharePct    float64  `json:"share_pct"`
		CustomSet   string   `json:"base_syscalls_custom_set"`
		FalcoPreset int      `json:"falco_buf_size_preset"`
		Sentence    string   `json:"sentence"`
	} `json:"what_if"`
}

// TestRecommendationFalcoLayoutAndWhatIf: /api/recommendation answers in
// Falco's layout from the per-CPU samples (a 32-CPU falco node: 16 rings,
// the node's own measured; a 2-CPU node: one ring, the same as shared), and
// gives the fewer-syscalls what-if from the syscall events seen.
func TestRecommendationFalcoLayoutAndWhatIf(t *testing.T) {
	a := analyzer.New(analyzer.Config{})
	h := a.Handler()
	events := map[string]int{"read": 90, "openat": 6, "execve": 4}
	for _, n := range []struct {
		name   string
		cpus   int
		layout ringspec.Layout
	}{{"big", 32, ringspec.LayoutFalco}, {"small", 2, ringspec.LayoutShared}} {
		if err := a.HandleEnriched(bus.EnrichedSubject(n.name), encode(t, syscallBatch(t, n.name, events))); err != nil {
			t.Fatal(err)
		}
		if err := a.HandleStats(statsJSON(t, falcoNodeStats(n.name, n.cpus, n.layout))); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(name string) recJSON {
		code, body := get(t, h, "/api/recommendation?node="+name)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", name, code, body)
		}
		var r recJSON
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	big := rec("big")
	f := big.Falco
	if f.CPUs != 32 || !f.PerCPU || f.Rings != 16 || f.Candidate.MemoryBytes != f.Rings*(1<<(20+f.Candidate.Preset-1)) {
		t.Errorf("big: falco %+v", f)
	}
	// The node's own 16 MiB falco rings were measured (0% missing).
	if f.Candidate.Preset > 5 || !strings.Contains(big.Verdict, "16 rings of the preset's size, one per cpus_for_each_buffer=2 CPUs of 32") {
		t.Errorf("big: falco preset %d (%s): %s", f.Candidate.Preset, f.Candidate.Basis, big.Verdict)
	}
	// A single shared ring must hold the whole burst: a bigger preset.
	shared := 0
	for _, c := range big.Candidates {
		if c.Layout == "shared" && c.MeetsTarget && (shared == 0 || c.Preset < shared) {
			shared = c.Preset
		}
	}
	if shared != 6 || f.Candidate.Preset != 5 {
		t.Errorf("big: shared preset %d, falco %d; want 6 and 5", shared, f.Candidate.Preset)
	}
	t.Logf("big: %s", big.Verdict)
	for _, x := range big.WhatIf {
		t.Log(x.Sentence)
	}
	small := rec("small")
	if small.Falco.Rings != 1 || small.Falco.CPUs != 2 || !strings.Contains(small.Verdict, "on this 2-CPU node one ring, the same as shared") {
		t.Errorf("small: %+v: %s", small.Falco, small.Verdict)
	}
	// What-if: read is 90% of the syscall events; execve stays (Falco's
	// state engine needs it), so openat is next.
	w := big.WhatIf
	if len(w) != 2 || strings.Join(w[0].Without, ",") != "read" || w[0].SharePct != 90 || w[0].CustomSet != "[!read]" ||
		strings.Join(w[1].Without, ",") != "read,openat" || w[1].CustomSet != "[!read, !openat]" {
		t.Fatalf("what-if %+v", w)
	}
	if w[0].FalcoPreset >= f.Candidate.Preset || !strings.Contains(w[0].Sentence, "without read (90% of the syscall events seen)") {
		t.Errorf("what-if without read: falco preset %d (full load %d): %s", w[0].FalcoPreset, f.Candidate.Preset, w[0].Sentence)
	}
	// The summary carries the counts the what-if came from.
	var s struct {
		Analyzer struct {
			BySyscall map[string]uint64 `json:"by_syscall"`
		} `json:"analyzer"`
	}
	_, body := get(t, h, "/api/summary?node=big")
	if err := json.Unmarshal(body, &s); err != nil || s.Analyzer.BySyscall["read"] != 90 || s.Analyzer.BySyscall["execve"] != 4 {
		t.Errorf("by_syscall %v (%v)", s.Analyzer.BySyscall, err)
	}
}
