package report

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The lines in these tests are written by us in Falco's documented JSON
// output format (json_output: true): time, rule, priority, source,
// hostname, output, output_fields, tags.

func fields(t *testing.T, js string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFalcoCauseRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		of      string
		cause   string
		missing []string
		lookup  []string
		legit   []string
	}{
		{
			name:    "thread state lost: placeholder thread",
			of:      `{"proc.name":"<NA>","proc.exepath":"","proc.cwd":"","proc.sid":-1,"proc.ppid":-1,"proc.pid":812,"user.uid":4294967295,"user.name":"<NA>"}`,
			cause:   CauseThreadStateLost,
			missing: []string{"proc.cwd", "proc.exepath", "proc.name", "proc.ppid", "proc.sid", "user.name", "user.uid"},
		},
		{
			name:    "thread state lost: ppid 0 of a user process, uid as a string",
			of:      `{"proc.name":"worker","proc.exepath":"","proc.ppid":0,"proc.pid":4000,"user.uid":"4294967295"}`,
			cause:   CauseThreadStateLost,
			missing: []string{"proc.exepath", "proc.ppid", "user.uid"},
		},
		{
			name:    "parent not in table",
			of:      `{"proc.name":"curl","proc.exepath":"/usr/bin/curl","proc.pid":90,"proc.ppid":89,"proc.pname":null,"user.uid":0}`,
			cause:   CauseParentNotInTable,
			missing: []string{"proc.pname"},
		},
		{
			name:    "ancestor gap below a known ancestor",
			of:      `{"proc.name":"sh","proc.pid":91,"proc.ppid":90,"proc.pname":"curl","proc.aname[2]":"<NA>","proc.aname[3]":"containerd-shim"}`,
			cause:   CauseParentNotInTable,
			missing: []string{"proc.aname[N]"},
		},
		{
			name:   "name lookup failed with the uid known: apart, not missing",
			of:     `{"proc.name":"nginx","proc.exepath":"/usr/sbin/nginx","proc.pid":7,"proc.ppid":1,"user.uid":101,"user.name":"<NA>","group.gid":101,"group.name":""}`,
			lookup: []string{"group.name", "user.name"},
		},
		{
			name:   "container name lookup failed in a container",
			of:     `{"proc.name":"app","proc.pid":7,"proc.ppid":1,"container.id":"a1b2c3d4e5f6","container.name":"<NA>","container.image.repository":null}`,
			lookup: []string{"container.image.repository", "container.name"},
		},
		{
			name:  "legitimately absent: loginuid -1, anames past the top, container.* of a host process",
			of:    `{"proc.name":"cron","proc.pid":500,"proc.ppid":1,"proc.pname":"systemd","proc.aname[2]":null,"proc.aname[3]":null,"user.loginuid":-1,"container.id":"host","container.image.repository":"","container.name":"<NA>"}`,
			legit: []string{"container.*", "proc.aname[N]", "user.loginuid"},
		},
		{
			name:  "pname of init and of a kernel thread's parent are legit",
			of:    `{"proc.name":"systemd","proc.pid":1,"proc.ppid":0,"proc.pname":null,"proc.aname[1]":null}`,
			legit: []string{"proc.aname[N]", "proc.pname"},
		},
		{
			name:    "one unknown own field: no pattern",
			of:      `{"proc.name":null,"proc.pid":5002,"user.uid":0}`,
			cause:   ReasonFalcoInput,
			missing: []string{"proc.name"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fi := classifyFalcoFields(fields(t, tc.of))
			if got := fi.cause(); got != tc.cause {
				t.Errorf("cause %q want %q (signals %d)", got, tc.cause, fi.signals)
			}
			if !slices.Equal(fi.processMissing, tc.missing) {
				t.Errorf("missing %v want %v", fi.processMissing, tc.missing)
			}
			slices.Sort(fi.lookupFailed)
			if !slices.Equal(fi.lookupFailed, tc.lookup) {
				t.Errorf("lookup %v want %v", fi.lookupFailed, tc.lookup)
			}
			if !slices.Equal(fi.legit, tc.legit) {
				t.Errorf("legit %v want %v", fi.legit, tc.legit)
			}
		})
	}
}

func TestAnalyzeFalcoOutputFile(t *testing.T) {
	f, err := os.Open("testdata/falco_output.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, st, err := AnalyzeFalco(f)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lines != 12 || st.Blank != 1 || st.Events != 6 || st.DropAlerts != 1 || st.MetricsSnapshots != 2 || st.Malformed != 2 {
		t.Errorf("stats %+v", st)
	}
	wantSkip := map[string]int{SkipNotJSON: 1, SkipNotObject: 1, SkipOtherSource + ": k8s_audit": 1}
	if !maps.Equal(st.Skipped, wantSkip) {
		t.Errorf("skipped %v want %v", st.Skipped, wantSkip)
	}
	for _, k := range []string{"time: ISO 8601", "time: output prefix, ISO 8601", "time: output prefix, default (time of day)", "without output", "with tags"} {
		if st.Formats[k] == 0 {
			t.Errorf("format %q not seen: %v", k, st.Formats)
		}
	}
	an := s.Analyzer
	if s.Node != "worker-7" || an.Events != 6 || an.Missing != 3 {
		t.Errorf("node %q events %d missing %d", s.Node, an.Events, an.Missing)
	}
	if want := map[string]uint64{CauseThreadStateLost: 1, CauseParentNotInTable: 2}; !maps.Equal(an.ByReason, want) {
		t.Errorf("by_reason %v want %v", an.ByReason, want)
	}
	fr := s.Falco
	if fr.RingLossMissing != 3 || fr.LookupFailed != 1 || fr.LookupByField["user.name"] != 1 {
		t.Errorf("ring loss %d lookup %d %v", fr.RingLossMissing, fr.LookupFailed, fr.LookupByField)
	}
	if want := map[string]uint64{"user.loginuid": 2, "proc.aname[N]": 1}; !maps.Equal(fr.Legit, want) {
		t.Errorf("legit %v want %v", fr.Legit, want)
	}

	// Drop alerts: evidence, summed by category.
	d := fr.Drops
	c := d.Counters
	if d.Alerts != 1 || d.EBPF != 1 || c.NEvts != 84000 || c.NDrops != 4200 || c.NDropsBuffer != 4200 || d.DropPct != 5 {
		t.Errorf("drops %+v", d)
	}
	wantBuf := map[string]uint64{"clone_fork_exit": 300, "close_exit": 900, "connect_exit": 0, "dir_file_exit": 0, "execve_exit": 150,
		"open_exit": 1200, "other_interest_exit": 1500, "proc_exit": 150}
	if !maps.Equal(c.Buffer, wantBuf) || d.LifecycleBufferDrops != 600 {
		t.Errorf("buffer %v lifecycle %d", c.Buffer, d.LifecycleBufferDrops)
	}
	if d.First != "2026-11-27T10:00:10Z" || d.SpanSec != 0 {
		t.Errorf("span %q %v", d.First, d.SpanSec)
	}

	// Correlation: shadow, curl, nginx (10:00:10.4–12) and sh (13, from
	// the ISO prefix) are near the alert at 10:00:10; bash (10:00:01) and
	// ls (10:00:40, a time of day dated from the lines before) are not.
	cor := fr.Correlation
	if cor == nil || cor.NearEvents != 4 || cor.NearMissing != 3 || cor.ElsewhereEvents != 2 || cor.ElsewhereMissing != 0 || cor.NearPct != 75 {
		t.Errorf("correlation %+v", cor)
	}

	// Metrics snapshots: one interval of 60 s.
	m := fr.Metrics
	if m == nil || m.Readings != 2 || m.Clock != "timestamp" || len(m.Intervals) != 1 || m.NumCPUs != 4 || m.Engine != "modern_bpf" {
		t.Fatalf("metrics %+v", m)
	}
	iv := m.Intervals[0]
	if iv.Events != 1_200_000 || iv.Drops != 4200 || iv.DropPct != 0.35 || iv.EndSec != 60 || m.LifecycleBufferDrops != 600 {
		t.Errorf("interval %+v lifecycle %d", iv, m.LifecycleBufferDrops)
	}
	if m.DrainRate != (1_200_000-4200)/60.0 {
		t.Errorf("drain %v", m.DrainRate)
	}

	var out bytes.Buffer
	WriteText(&out, s)
	for _, want := range []string{
		"6 analyzed, 3 missing metadata (50.00%)", "thread_state_lost", "parent_not_in_table",
		"1 Falco drop alerts", "n_drops 4200 (5.00%)", "600 in clone/fork, execve, proc exit",
		"3 of 4 events missing metadata (75.00%)", "skipped 1: source without process metadata: k8s_audit",
		"lookups:  1 events", "0.0–60.0", "0.35%", "verdict:  3 of 3 events missing metadata (100.0%) show the pattern of lost process records, and Falco dropped 4200",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDropAlertsAreNotEvents(t *testing.T) {
	// Two drop alerts in the old field names (n_drops_buffer, n_drops_pf,
	// enter categories) and as numbers, no event.
	in := `{"output":"Falco internal: syscall event drop. 10 system calls dropped in last second.","output_fields":{"ebpf_enabled":"0","n_drops":10,"n_drops_buffer":8,"n_drops_buffer_execve_enter":5,"n_drops_buffer_execve_exit":3,"n_drops_pf":2,"n_drops_scratch_map":0,"n_evts":1000},"priority":"Critical","rule":"Falco internal: syscall event drop","time":"2026-11-27T10:00:00Z"}
{"output":"Falco internal: syscall event drop. 30 system calls dropped in last second.","output_fields":{"ebpf_enabled":"1","n_drops":"30","n_drops_buffer_total":"30","n_drops_buffer_open_exit":"30","n_drops_page_faults":"0","n_evts":"2000"},"priority":"Critical","rule":"Falco internal: syscall event drop","time":"2026-11-27T10:00:05.5Z"}
`
	s, st, err := AnalyzeFalco(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	d := s.Falco.Drops
	if s.Analyzer.Events != 0 || st.Events != 0 || st.DropAlerts != 2 || d.Alerts != 2 || d.EBPF != 1 {
		t.Fatalf("events %d alerts %+v", s.Analyzer.Events, d)
	}
	c := d.Counters
	if c.NEvts != 3000 || c.NDrops != 40 || c.NDropsBuffer != 38 || c.NDropsPF != 2 || d.SpanSec != 5.5 || d.LifecycleBufferDrops != 8 {
		t.Errorf("counters %+v span %v", c, d.SpanSec)
	}
	if want := map[string]uint64{"execve_enter": 5, "execve_exit": 3, "open_exit": 30}; !maps.Equal(c.Buffer, want) {
		t.Errorf("buffer %v", c.Buffer)
	}
	if s.Falco.Correlation != nil {
		t.Error("correlation without events")
	}
	var out bytes.Buffer
	WriteText(&out, s)
	if strings.Contains(out.String(), "no ring counters") || !strings.Contains(out.String(), "2 Falco drop alerts") {
		t.Errorf("report:\n%s", out.String())
	}
}

func TestDropCorrelationWindow(t *testing.T) {
	sec := int64(time.Second)
	alerts := []int64{100 * sec, 300 * sec}
	events := []timedEvent{
		{99*sec + 1, true},   // 1 s lookback: near
		{98 * sec, false},    // before the lookback: elsewhere
		{100 * sec, true},    // near
		{110 * sec, true},    // window end: near
		{110*sec + 1, false}, // just after: elsewhere
		{200 * sec, true},    // elsewhere
		{299 * sec, false},   // near the second alert
		{400 * sec, false},   // elsewhere
	}
	c := correlate(events, alerts, 10*time.Second)
	if c.NearEvents != 4 || c.NearMissing != 3 || c.ElsewhereEvents != 4 || c.ElsewhereMissing != 1 {
		t.Fatalf("%+v", c)
	}
	if c.NearPct != 75 || c.ElsewherePct != 25 || c.Ratio != 3 {
		t.Errorf("%+v", c)
	}
	// A wider window takes in the event at 110 s + 1 ns.
	c = correlate(events, alerts, 11*time.Second)
	if c.NearEvents != 5 {
		t.Errorf("window 11 s: %+v", c)
	}
}

func TestFalcoTimeFormats(t *testing.T) {
	// One event each: "time" ISO 8601; no "time" but evt.time in ns; an
	// ISO 8601 output prefix (time_format_iso_8601: true); the default
	// prefix (a time of day) after midnight of the last dated line; and a
	// line without any time.
	in := `{"rule":"r","time":"2026-11-27T23:59:59.5Z","output_fields":{"proc.name":"a"}}
{"rule":"r","output_fields":{"proc.name":"b","evt.time":1795823999600000000}}
{"rule":"r","output":"2026-11-27T23:59:59.700000000+0000: Notice r (proc.name=c)","output_fields":{"proc.name":"c"}}
{"rule":"r","output":"00:00:00.100000000: Notice r (proc.name=d)","output_fields":{"proc.name":"d"}}
{"rule":"r","output":"no time here","output_fields":{"proc.name":"e"}}
{"rule":"Falco internal: syscall event drop","output":"00:00:00.200000000: Debug Falco internal: syscall event drop. 1 system calls dropped in last second.","output_fields":{"n_drops":"1","n_evts":"10"}}
`
	var fr falcoReader
	fr.rep.Input.Formats = map[string]int{}
	var got []int64
	for _, line := range strings.Split(strings.TrimSpace(in), "\n") {
		var fl falcoLine
		if err := json.Unmarshal([]byte(line), &fl); err != nil {
			t.Fatal(err)
		}
		got = append(got, fr.lineTime(&fl))
	}
	base := time.Date(2026, 11, 27, 23, 59, 59, 0, time.UTC).UnixNano()
	want := []int64{base + 5e8, base + 6e8, base + 7e8, base + 11e8, 0, base + 12e8}
	if !slices.Equal(got, want) {
		t.Errorf("times\n%v\nwant\n%v", got, want)
	}
	s, st, err := AnalyzeFalco(strings.NewReader(in))
	if err != nil || st.Events != 5 || st.DropAlerts != 1 || st.Untimed != 1 || s.Falco.Drops.First != "2026-11-28T00:00:00.2Z" {
		t.Errorf("%v %+v %+v", err, st, s.Falco.Drops)
	}
}

func TestFalcoMetricsSnapshotsWithoutCounters(t *testing.T) {
	// A snapshot without kernel_event_counters_enabled has no scap.n_*;
	// the metrics output_file writes {"sample":N,"output_fields":{...}}.
	in := `{"output":"Falco metrics snapshot","output_fields":{"falco.version":"0.41.0","scap.engine_name":"modern_bpf","scap.n_drops_perc":0.0},"priority":"Informational","rule":"Falco internal: metrics snapshot","source":"internal","time":"2026-11-27T10:00:00Z"}
{"sample":1,"output_fields":{"evt.time":1795773600000000000,"scap.n_evts":100,"scap.n_drops":0,"falco.duration_sec":10}}
{"sample":2,"output_fields":{"evt.time":1795773610000000000,"scap.n_evts":1100,"scap.n_drops":100,"scap.n_drops_buffer_total":100,"scap.n_drops_buffer_proc_exit":100,"falco.duration_sec":20}}
`
	s, st, err := AnalyzeFalco(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if st.MetricsSnapshots != 2 || st.Skipped[SkipEmptyMetrics] != 1 || st.Events != 0 || st.Formats["metrics output_file line"] != 2 {
		t.Fatalf("%+v", st)
	}
	m := s.Falco.Metrics
	if m == nil || len(m.Intervals) != 1 || m.Intervals[0].DropPct != 10 || m.Intervals[0].BufferPct["proc_exit"] != 10 || m.LifecycleBufferDrops != 100 {
		t.Fatalf("%+v", m)
	}
	if m.DrainRate != 90 {
		t.Errorf("drain %v want 900 delivered / 10 s", m.DrainRate)
	}
}
