package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringwise/ringwise/services/event"
)

// Falco's internal rules: their lines are evidence about Falco, not events.
const (
	FalcoDropRule    = "Falco internal: syscall event drop"
	FalcoMetricsRule = "Falco internal: metrics snapshot"
)

// Causes of missing metadata read from the pattern of values in Falco's
// output (the by_reason keys of Falco input; see the README, "Why a field is
// missing").
const (
	// CauseThreadStateLost: Falco's thread lookup failed and it made a
	// placeholder thread, so several fields are unknown together.
	CauseThreadStateLost = "thread_state_lost"
	// CauseParentNotInTable: the process is known but its parent or an
	// ancestor below a known one is not in Falco's thread table.
	CauseParentNotInTable = "parent_not_in_table"
	// ReasonFalcoInput is the cause of missing metadata that matches no
	// pattern.
	ReasonFalcoInput = "unknown (falco input)"
)

// ringLossCauses are the causes a lost lifecycle record (fork, exec, exit)
// produces in Falco: the thread or its parent never entered the table.
func isRingLossCause(c string) bool {
	return c == CauseThreadStateLost || c == CauseParentNotInTable
}

// FalcoMetadataFields returns the output_fields AnalyzeFalco checks for
// metadata from Falco's process table. An event is missing metadata if any
// of them that is present holds an unknown value (proc.aname[N] only when a
// higher ancestor is known: see AnalyzeFalco).
func FalcoMetadataFields() []string {
	return []string{
		"proc.name", "proc.exe", "proc.exepath", "proc.cmdline", "proc.cwd",
		"proc.pid", "proc.tid", "thread.tid", "proc.ppid", "proc.sid",
		"proc.pname", "proc.pexe", "proc.pexepath", "proc.pcmdline", "proc.aname[N]",
		"user.uid", "group.gid",
	}
}

// isMetadataField reports whether name is a process-table field (see
// FalcoMetadataFields; proc.aname[N] is handled apart).
func isMetadataField(name string) bool {
	switch name {
	case "proc.name", "proc.exe", "proc.exepath", "proc.cmdline", "proc.cwd",
		"proc.pid", "proc.tid", "thread.tid", "proc.ppid", "proc.sid",
		"proc.pname", "proc.pexe", "proc.pexepath", "proc.pcmdline",
		"user.uid", "group.gid":
		return true
	}
	return false
}

// isParentField reports whether name describes the parent or an ancestor.
func isParentField(name string) bool {
	switch name {
	case "proc.pname", "proc.pexe", "proc.pexepath", "proc.pcmdline":
		return true
	}
	return strings.HasPrefix(name, "proc.aname[")
}

// isLookupField reports whether name is resolved from an id outside the
// process table: a passwd/group lookup, or the container runtime.
func isLookupField(name string) bool {
	switch name {
	case "user.name", "group.name", "user.homedir", "user.shell", "user.loginname":
		return true
	}
	return strings.HasPrefix(name, "container.") && name != "container.id"
}

// MaxFalcoLine is the longest line AnalyzeFalco accepts; longer lines are
// counted as malformed.
const MaxFalcoLine = 1 << 20

// DefaultDropWindow is how long after a drop alert events count as "near"
// it: a lost fork or exec leaves a process without metadata for the rest of
// its life, which for the processes of a burst is seconds.
const DefaultDropWindow = 10 * time.Second

// DropAlertLookback is how far before a drop alert events count as near
// it: Falco checks its counters once a second, so the drops it reports
// happened up to a second before the alert.
const DropAlertLookback = time.Second

// Skip reasons of FalcoStats.Skipped.
const (
	SkipNotJSON      = "not JSON (a log line?)"
	SkipNotObject    = "JSON but not an object"
	SkipNotFalco     = "JSON object without rule, output or output_fields"
	SkipTooLong      = "longer than MaxFalcoLine"
	SkipOtherSource  = "source without process metadata"
	SkipEmptyMetrics = "metrics snapshot without kernel event counters"
)

// FalcoStats describes the input read by AnalyzeFalco. Every non-blank line
// is exactly one of: an event, a drop alert, a metrics snapshot, or skipped
// (by reason; Malformed counts the skipped lines that are not Falco JSON).
type FalcoStats struct {
	Lines int `json:"lines"`
	// Blank counts lines holding only white space (not in Lines).
	Blank            int `json:"blank"`
	Events           int `json:"events"`
	DropAlerts       int `json:"drop_alerts"`
	MetricsSnapshots int `json:"metrics_snapshots"`
	// Skipped counts lines not used, by reason.
	Skipped map[string]int `json:"skipped"`
	// Malformed counts skipped lines that are not a Falco JSON line.
	Malformed int `json:"malformed"`
	// FirstError describes the first malformed line.
	FirstError string `json:"first_error,omitempty"`
	// Formats counts the shapes seen: "time: ISO 8601", "time: output
	// prefix, default format", "with output", "without output", "with
	// tags", "with message", "metrics file line", …
	Formats map[string]int `json:"formats"`
	// Untimed counts events and alerts without a usable time (left out of
	// the time correlation).
	Untimed int `json:"untimed"`
}

// DropAlertSummary sums Falco's drop alerts ("Falco internal: syscall event
// drop"), each the counter deltas of the second before it.
type DropAlertSummary struct {
	Alerts int `json:"alerts"`
	// EBPF counts alerts with ebpf_enabled 1.
	EBPF int `json:"ebpf"`
	// First, Last and SpanSec give the alerts' time span (timed ones).
	First    string        `json:"first,omitempty"`
	Last     string        `json:"last,omitempty"`
	SpanSec  float64       `json:"span_sec"`
	Counters FalcoCounters `json:"counters"`
	// DropPct is 100 × n_drops / n_evts over the alerts' seconds.
	DropPct float64 `json:"drop_pct"`
	// LifecycleBufferDrops sums the buffer categories that feed Falco's
	// process table (LifecycleBufferCategories).
	LifecycleBufferDrops uint64 `json:"lifecycle_buffer_drops"`
}

// DropCorrelation compares the share of events missing metadata near drop
// alerts (from Lookback before an alert to Window after it) with the share
// elsewhere.
type DropCorrelation struct {
	WindowSec        float64 `json:"window_sec"`
	LookbackSec      float64 `json:"lookback_sec"`
	NearEvents       uint64  `json:"near_events"`
	NearMissing      uint64  `json:"near_missing"`
	NearPct          float64 `json:"near_pct"`
	ElsewhereEvents  uint64  `json:"elsewhere_events"`
	ElsewhereMissing uint64  `json:"elsewhere_missing"`
	ElsewherePct     float64 `json:"elsewhere_pct"`
	// Ratio is NearPct / ElsewherePct (0 when undefined).
	Ratio float64 `json:"ratio"`
}

// FalcoReport is what AnalyzeFalco finds beyond the event counts.
type FalcoReport struct {
	Input FalcoStats       `json:"input"`
	Drops DropAlertSummary `json:"drop_alerts"`
	// Correlation is set when there are timed drop alerts and timed events.
	Correlation *DropCorrelation `json:"correlation,omitempty"`
	// RingLossMissing counts missing events whose cause is one a lost
	// lifecycle record produces (thread_state_lost, parent_not_in_table).
	RingLossMissing uint64 `json:"ring_loss_missing"`
	// LookupFailed counts events (not in analyzer.missing) with a name
	// unknown while its id is known: a passwd/group lookup or the container
	// runtime failed, not the ring. LookupByField counts them per field.
	LookupFailed  uint64            `json:"lookup_failed"`
	LookupByField map[string]uint64 `json:"lookup_by_field"`
	// Legit counts values that look unknown but are legitimate, per field;
	// never counted as missing.
	Legit map[string]uint64 `json:"legitimately_absent"`
	// Metrics is drop % over time from the metrics snapshots in the input.
	Metrics *FalcoMetricsReport `json:"metrics,omitempty"`
}

// falcoLine is the part of a Falco JSON line AnalyzeFalco reads.
type falcoLine struct {
	Hostname     *string                    `json:"hostname"`
	Rule         *string                    `json:"rule"`
	Output       *string                    `json:"output"`
	Message      *string                    `json:"message"`
	Source       *string                    `json:"source"`
	Time         *string                    `json:"time"`
	Tags         []string                   `json:"tags"`
	Sample       *json.RawMessage           `json:"sample"`
	OutputFields map[string]json.RawMessage `json:"output_fields"`
	Ringwise     *struct {
		Reason string `json:"reason"`
	} `json:"ringwise"`
}

// IsUnknownFalcoValue reports whether raw, one JSON value from Falco's
// output_fields, stands for an unknown value: null, "<NA>", "", -1 or
// 4294967295 (as a number or a string).
func IsUnknownFalcoValue(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return true
	}
	switch c := raw[0]; {
	case c == 'n':
		return string(raw) == "null"
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return false
		}
		switch s {
		case naString, "", "-1", naUID:
			return true
		}
		return false
	case c == '-' || (c >= '0' && c <= '9'):
		v, err := strconv.ParseFloat(string(raw), 64)
		return err == nil && (v == -1 || v == 4294967295)
	}
	return false
}

// falcoNumber reads a JSON number or a numeric string.
func falcoNumber(raw json.RawMessage) (float64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		raw = []byte(strings.TrimSpace(s))
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	return v, err == nil
}

func falcoString(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// falcoCounter reads a non-negative integer counter (number or string).
func falcoCounter(raw json.RawMessage) (uint64, bool) {
	v, ok := falcoNumber(raw)
	if !ok || v < 0 || v > 1<<63 {
		return 0, false
	}
	return uint64(v), true
}

// FalcoOption tunes AnalyzeFalco.
type FalcoOption func(*falcoOptions)

type falcoOptions struct {
	window time.Duration
}

// WithDropWindow sets how long after a drop alert events count as near it
// (default DefaultDropWindow; ≤ 0 keeps the default).
func WithDropWindow(d time.Duration) FalcoOption {
	return func(o *falcoOptions) {
		if d > 0 {
			o.window = d
		}
	}
}

// timedEvent is one event kept for the time correlation.
type timedEvent struct {
	ns      int64
	missing bool
}

// falcoReader is the state of one AnalyzeFalco run.
type falcoReader struct {
	s      Summary
	rep    FalcoReport
	events []timedEvent
	alerts []int64
	snaps  []FalcoCounters
	// lastDateNs is the midnight (UTC) of the last full timestamp, for
	// lines whose only time is a time of day.
	lastDateNs int64
	lastTodNs  int64
	host       string
	hostSet    bool
	hostMixed  bool
	lineNo     int
}

// AnalyzeFalco reads Falco's JSON output (one object per line, as written
// with json_output: true, or by `ringwise up --output json`).
//
// Events: it counts those missing metadata, by field and by cause (the
// cause comes from the pattern of values, see the CauseXxx constants; a
// ringwise line's own {"ringwise":{"reason":...}} wins). Names unknown while
// their id is known are counted apart (FalcoReport.LookupFailed), and values
// that are legitimately absent are never counted: user.loginuid -1,
// proc.aname[N] above the top of the tree, container.* of a host process,
// proc.pname of pid 1 or of a process whose ppid is 0.
//
// Falco's drop alerts ("Falco internal: syscall event drop") are not events:
// their counters are summed (FalcoReport.Drops) and missing metadata is
// tied to them in time (FalcoReport.Correlation). Metrics snapshots ("Falco
// internal: metrics snapshot", or metrics output_file lines) become a drop %
// series (FalcoReport.Metrics).
//
// Times come from "time" (ISO 8601), else output_fields evt.rawtime or a
// numeric evt.time, else the output text's prefix, ISO 8601 or Falco's
// default time of day (the date is taken from the last dated line).
//
// Blank lines are skipped. Other lines not used are counted in
// FalcoStats.Skipped by reason; only if every non-blank line is malformed
// is an error returned. A read error aborts with the counts so far.
func AnalyzeFalco(r io.Reader, opts ...FalcoOption) (Summary, FalcoStats, error) {
	o := falcoOptions{window: DefaultDropWindow}
	for _, f := range opts {
		f(&o)
	}
	fr := &falcoReader{s: newSummary("")}
	fr.rep.Input.Skipped = map[string]int{}
	fr.rep.Input.Formats = map[string]int{}
	fr.rep.LookupByField = map[string]uint64{}
	fr.rep.Legit = map[string]uint64{}
	st := &fr.rep.Input
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for {
		line = line[:0]
		tooLong := false
		var rerr error
		for {
			chunk, err := br.ReadSlice('\n')
			if !tooLong {
				if len(line)+len(chunk) > MaxFalcoLine+2 { // room for "\r\n"
					tooLong = true
					line = line[:0]
				} else {
					line = append(line, chunk...)
				}
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			rerr = err
			break
		}
		if rerr != nil && rerr != io.EOF {
			fr.finish(o)
			return fr.s, fr.rep.Input, fmt.Errorf("read falco events: line %d: %w", fr.lineNo+1, rerr)
		}
		if tooLong || len(line) > 0 {
			fr.lineNo++
		}
		switch {
		case tooLong:
			st.Lines++
			fr.malformed(SkipTooLong, fmt.Sprintf("longer than %d bytes", MaxFalcoLine))
		case len(bytes.TrimSpace(line)) == 0:
			if len(line) > 0 {
				st.Blank++
			}
		default:
			st.Lines++
			fr.line(line)
		}
		if rerr == io.EOF {
			break
		}
	}
	fr.finish(o)
	if st.Lines > 0 && st.Malformed == st.Lines {
		return fr.s, fr.rep.Input, fmt.Errorf("falco input: all %d non-blank lines are malformed (first: %s)", st.Lines, st.FirstError)
	}
	return fr.s, fr.rep.Input, nil
}

func (fr *falcoReader) malformed(reason, msg string) {
	st := &fr.rep.Input
	st.Malformed++
	st.Skipped[reason]++
	if st.FirstError == "" {
		st.FirstError = fmt.Sprintf("line %d: %s", fr.lineNo, msg)
	}
}

func (fr *falcoReader) line(line []byte) {
	st := &fr.rep.Input
	var fl falcoLine
	if err := json.Unmarshal(line, &fl); err != nil {
		reason := SkipNotJSON
		if t := bytes.TrimSpace(line); t[0] != '{' && json.Valid(t) {
			reason = SkipNotObject
		}
		fr.malformed(reason, err.Error())
		return
	}
	isMetricsFile := fl.Rule == nil && fl.Sample != nil && fl.OutputFields != nil
	if fl.Rule == nil && fl.Output == nil && fl.OutputFields == nil {
		fr.malformed(SkipNotFalco, "not a Falco event: no rule, output or output_fields")
		return
	}
	rule := ""
	if fl.Rule != nil {
		rule = *fl.Rule
	}
	switch {
	case rule == FalcoMetricsRule || isMetricsFile:
		if isMetricsFile {
			st.Formats["metrics output_file line"]++
		}
		c := fr.counters(&fl, "scap.")
		if c.Fields == 0 {
			st.Skipped[SkipEmptyMetrics]++
			return
		}
		st.MetricsSnapshots++
		fr.snaps = append(fr.snaps, c)
		return
	case rule == FalcoDropRule:
		fr.formats(&fl)
		st.DropAlerts++
		c := fr.counters(&fl, "")
		d := &fr.rep.Drops
		d.Alerts++
		d.Counters.add(&c)
		if v, ok := fl.OutputFields["ebpf_enabled"]; ok {
			if n, ok := falcoNumber(v); ok && n == 1 {
				d.EBPF++
			}
		}
		if c.TsNs != 0 {
			fr.alerts = append(fr.alerts, c.TsNs)
		} else {
			st.Untimed++
		}
		return
	}
	if fl.Source != nil && *fl.Source != "syscall" && *fl.Source != "" {
		st.Skipped[SkipOtherSource+": "+*fl.Source]++
		return
	}
	fr.formats(&fl)
	st.Events++
	if fl.Hostname != nil {
		if !fr.hostSet {
			fr.host, fr.hostSet = *fl.Hostname, true
		} else if fr.host != *fl.Hostname {
			fr.hostMixed = true
		}
	}
	missing := fr.countEvent(&fl)
	if ns := fr.lineTime(&fl); ns != 0 {
		fr.events = append(fr.events, timedEvent{ns, missing})
	} else {
		st.Untimed++
	}
}

// formats counts the shape of an event or alert line.
func (fr *falcoReader) formats(fl *falcoLine) {
	f := fr.rep.Input.Formats
	if fl.Output != nil {
		f["with output"]++
	} else {
		f["without output"]++
	}
	if fl.Tags != nil {
		f["with tags"]++
	}
	if fl.Message != nil {
		f["with message"]++
	}
}

// counters reads Falco's counters from fl's output_fields, with names
// prefixed by prefix ("scap." in snapshots, "" in drop alerts).
func (fr *falcoReader) counters(fl *falcoLine, prefix string) FalcoCounters {
	var c FalcoCounters
	for k, raw := range fl.OutputFields {
		name, ok := strings.CutPrefix(k, prefix)
		if !ok {
			switch k {
			case "falco.duration_sec":
				c.UptimeSec, _ = falcoNumber(raw)
			case "falco.host_num_cpus":
				if n, ok := falcoNumber(raw); ok && n > 0 && n < 1<<20 {
					c.NumCPUs = int(n)
				}
			case "evt.hostname":
				c.Host, _ = falcoString(raw)
			}
			continue
		}
		if name == "engine_name" {
			c.Engine, _ = falcoString(raw)
			continue
		}
		if !strings.HasPrefix(name, "n_") {
			continue
		}
		if v, ok := falcoCounter(raw); ok {
			c.setCounter(name, v)
		}
	}
	if c.Host == "" && fl.Hostname != nil {
		c.Host = *fl.Hostname
	}
	c.TsNs = fr.lineTime(fl)
	return c
}

// lineTime returns fl's time in Unix ns, or 0.
func (fr *falcoReader) lineTime(fl *falcoLine) int64 {
	f := fr.rep.Input.Formats
	if fl.Time != nil {
		if t, ok := parseFalcoISO(*fl.Time); ok {
			f["time: ISO 8601"]++
			fr.setDate(t)
			return t.UnixNano()
		}
	}
	for _, k := range []string{"evt.rawtime", "evt.time"} {
		if raw, ok := fl.OutputFields[k]; ok {
			if v, ok := falcoNumber(raw); ok && v > 1e15 {
				f["time: output_fields "+k]++
				t := time.Unix(0, int64(v)).UTC()
				fr.setDate(t)
				return t.UnixNano()
			}
		}
	}
	if fl.Output != nil {
		prefix, _, ok := strings.Cut(*fl.Output, ": ")
		if ok {
			if t, ok := parseFalcoISO(prefix); ok {
				f["time: output prefix, ISO 8601"]++
				fr.setDate(t)
				return t.UnixNano()
			}
			if tod, ok := parseTimeOfDay(prefix); ok {
				f["time: output prefix, default (time of day)"]++
				ns := fr.lastDateNs + tod
				if fr.lastTodNs != 0 && tod+12*3600e9 < fr.lastTodNs { // past midnight
					fr.lastDateNs += 24 * 3600e9
					ns += 24 * 3600e9
				}
				fr.lastTodNs = tod
				if ns == 0 {
					ns = 1 // midnight of day 0 is a time, not "none"
				}
				return ns
			}
		}
	}
	return 0
}

func (fr *falcoReader) setDate(t time.Time) {
	u := t.UTC()
	fr.lastDateNs = time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC).UnixNano()
	fr.lastTodNs = t.UnixNano() - fr.lastDateNs
}

// parseFalcoISO parses Falco's ISO 8601 times: RFC 3339 with nanoseconds
// ("2026-11-27T07:43:52.123456789Z") or with a numeric zone without colon
// ("2026-11-27T07:43:52.123456789+0000", the output prefix of
// time_format_iso_8601).
func parseFalcoISO(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999-0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// parseTimeOfDay parses Falco's default time format "15:04:05.123456789"
// into ns since midnight.
func parseTimeOfDay(s string) (int64, bool) {
	if len(s) < 8 || s[2] != ':' || s[5] != ':' {
		return 0, false
	}
	t, err := time.Parse("15:04:05.999999999", s)
	if err != nil {
		return 0, false
	}
	return int64(t.Hour())*3600e9 + int64(t.Minute())*60e9 + int64(t.Second())*1e9 + int64(t.Nanosecond()), true
}

// fieldInfo is an event's output_fields sorted out.
type fieldInfo struct {
	processMissing []string // process-table fields with an unknown value
	lookupFailed   []string // names unknown while the id is known
	legit          []string // unknown-looking but legitimate
	signals        int      // placeholder-thread signals
	selfKnown      bool     // a field of the process itself is known
	parentOnly     bool     // every processMissing field is a parent/ancestor field
}

// classifyFalcoFields sorts of's fields into missing, lookup failures and
// legitimately absent ones (see AnalyzeFalco and the README).
func classifyFalcoFields(of map[string]json.RawMessage) fieldInfo {
	var fi fieldInfo
	num := func(k string) (float64, bool) {
		raw, ok := of[k]
		if !ok {
			return 0, false
		}
		return falcoNumber(raw)
	}
	unknown := func(k string) bool {
		raw, ok := of[k]
		return ok && IsUnknownFalcoValue(raw)
	}
	known := func(k string) bool {
		raw, ok := of[k]
		return ok && !IsUnknownFalcoValue(raw)
	}
	pid, havePid := num("proc.pid")
	ppid, havePPid := num("proc.ppid")
	topOfTree := (havePid && pid == 1) || (havePPid && ppid == 0)

	// Placeholder-thread signals (libsinsp's thread made on a failed lookup).
	for _, k := range []string{"user.uid", "proc.exepath", "proc.cwd", "proc.name"} {
		if unknown(k) {
			fi.signals++
		}
	}
	if v, ok := num("proc.sid"); ok && v == -1 {
		fi.signals++
	}
	if havePPid && (ppid == -1 || (ppid == 0 && havePid && pid > 2)) {
		fi.signals++
	}
	if unknown("proc.ppid") {
		if _, isNum := num("proc.ppid"); !isNum { // null, "<NA>": not counted above
			fi.signals++
		}
	}
	for _, k := range []string{"proc.name", "proc.exepath", "proc.exe", "proc.cmdline"} {
		if known(k) {
			fi.selfKnown = true
		}
	}

	// Ancestors: the highest known index; unknowns below it are gaps.
	topKnown := 0
	for k, raw := range of {
		if n, ok := anameIndex(k); ok && !IsUnknownFalcoValue(raw) {
			topKnown = max(topKnown, n)
		}
	}
	hostProcess := false
	if raw, ok := of["container.id"]; ok {
		s, _ := falcoString(raw)
		hostProcess = s == "host" || s == ""
	}
	uidKnown := known("user.uid")
	gidKnown := known("group.gid")

	for k, raw := range of {
		if !IsUnknownFalcoValue(raw) {
			continue
		}
		switch {
		case k == "user.loginuid":
			fi.legit = append(fi.legit, k)
		case strings.HasPrefix(k, "proc.aname["):
			n, ok := anameIndex(k)
			switch {
			case !ok:
			case n < topKnown:
				fi.processMissing = append(fi.processMissing, "proc.aname[N]")
			case n == 1 && !topOfTree:
				fi.processMissing = append(fi.processMissing, "proc.aname[N]")
			default:
				fi.legit = append(fi.legit, "proc.aname[N]")
			}
		case k == "proc.pname" || k == "proc.pexe" || k == "proc.pexepath" || k == "proc.pcmdline":
			if topOfTree {
				fi.legit = append(fi.legit, k)
			} else {
				fi.processMissing = append(fi.processMissing, k)
			}
		case strings.HasPrefix(k, "container."):
			if hostProcess {
				fi.legit = append(fi.legit, "container.*")
			} else if k != "container.id" {
				fi.lookupFailed = append(fi.lookupFailed, k)
			}
		case k == "user.name" || k == "user.homedir" || k == "user.shell" || k == "user.loginname":
			if uidKnown {
				fi.lookupFailed = append(fi.lookupFailed, k)
			} else if _, ok := of["user.uid"]; ok {
				fi.processMissing = append(fi.processMissing, k) // the uid is lost too
			} else {
				fi.lookupFailed = append(fi.lookupFailed, k)
			}
		case k == "group.name":
			if gidKnown || !unknown("group.gid") {
				fi.lookupFailed = append(fi.lookupFailed, k)
			} else {
				fi.processMissing = append(fi.processMissing, k)
			}
		case k == "proc.ppid":
			if v, ok := num(k); ok && v == 0 {
				continue // a kernel thread's or init's parent
			}
			fi.processMissing = append(fi.processMissing, k)
		case isMetadataField(k):
			fi.processMissing = append(fi.processMissing, k)
		}
	}
	// proc.ppid 0 of a user process (pid > 2) is the placeholder's value.
	if havePPid && ppid == 0 && havePid && pid > 2 && fi.signals >= 2 {
		fi.processMissing = append(fi.processMissing, "proc.ppid")
	}
	fi.parentOnly = len(fi.processMissing) > 0
	for _, k := range fi.processMissing {
		if !isParentField(k) {
			fi.parentOnly = false
		}
	}
	slices.Sort(fi.processMissing)
	fi.processMissing = slices.Compact(fi.processMissing)
	slices.Sort(fi.legit)
	fi.legit = slices.Compact(fi.legit)
	return fi
}

func anameIndex(k string) (int, bool) {
	s, ok := strings.CutPrefix(k, "proc.aname[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

// FalcoCause returns the cause of the missing metadata in one event's
// output_fields ("" when nothing is missing), and the missing fields.
func FalcoCause(of map[string]json.RawMessage) (string, []string) {
	fi := classifyFalcoFields(of)
	return fi.cause(), fi.processMissing
}

func (fi fieldInfo) cause() string {
	switch {
	case len(fi.processMissing) == 0:
		return ""
	case fi.signals >= 2:
		return CauseThreadStateLost
	case fi.parentOnly && fi.selfKnown:
		return CauseParentNotInTable
	}
	return ReasonFalcoInput
}

// countEvent counts one event and reports whether it misses metadata.
func (fr *falcoReader) countEvent(fl *falcoLine) bool {
	an := &fr.s.Analyzer
	an.Events++
	fi := classifyFalcoFields(fl.OutputFields)
	for _, k := range fi.legit {
		fr.rep.Legit[k]++
	}
	if len(fi.lookupFailed) > 0 {
		fr.rep.LookupFailed++
		for _, k := range fi.lookupFailed {
			fr.rep.LookupByField[k]++
		}
	}
	if len(fi.processMissing) == 0 {
		return false
	}
	for _, k := range fi.processMissing {
		an.ByField[k]++
	}
	an.Missing++
	reason := fi.cause()
	if fl.Ringwise != nil && fl.Ringwise.Reason != "" {
		reason = fl.Ringwise.Reason
	}
	an.ByReason[reason]++
	if r, ok := event.ReasonByName(reason); ok && r.LifecycleLoss() {
		an.LifecycleAttributed++
	}
	if isRingLossCause(reason) {
		fr.rep.RingLossMissing++
	}
	return true
}

func (fr *falcoReader) finish(o falcoOptions) {
	if fr.hostSet && !fr.hostMixed {
		fr.s.Node = fr.host
	}
	d := &fr.rep.Drops
	d.DropPct = pct(d.Counters.NDrops, d.Counters.NEvts)
	for k, v := range d.Counters.Buffer {
		if isLifecycleCategory(k) {
			d.LifecycleBufferDrops += v
		}
	}
	if len(fr.alerts) > 0 {
		slices.Sort(fr.alerts)
		first, last := fr.alerts[0], fr.alerts[len(fr.alerts)-1]
		d.First = time.Unix(0, first).UTC().Format(time.RFC3339Nano)
		d.Last = time.Unix(0, last).UTC().Format(time.RFC3339Nano)
		d.SpanSec = float64(last-first) / 1e9
		if len(fr.events) > 0 {
			fr.rep.Correlation = correlate(fr.events, fr.alerts, o.window)
		}
	}
	if len(fr.snaps) > 0 {
		m := AnalyzeFalcoCounters(fr.snaps)
		fr.rep.Metrics = &m
	}
	rep := fr.rep
	fr.s.Falco = &rep
	fr.s.finish()
}

// correlate splits events into near a drop alert (within [alert −
// DropAlertLookback, alert + window]) and elsewhere. alerts must be sorted.
func correlate(events []timedEvent, alerts []int64, window time.Duration) *DropCorrelation {
	c := &DropCorrelation{WindowSec: window.Seconds(), LookbackSec: DropAlertLookback.Seconds()}
	for _, e := range events {
		// The first alert at or after e.ns − window is the only candidate
		// whose window can still cover e.
		i, _ := slices.BinarySearch(alerts, e.ns-int64(window))
		near := i < len(alerts) && alerts[i]-int64(DropAlertLookback) <= e.ns
		if near {
			c.NearEvents++
			if e.missing {
				c.NearMissing++
			}
		} else {
			c.ElsewhereEvents++
			if e.missing {
				c.ElsewhereMissing++
			}
		}
	}
	c.NearPct = pct(c.NearMissing, c.NearEvents)
	c.ElsewherePct = pct(c.ElsewhereMissing, c.ElsewhereEvents)
	if c.ElsewherePct > 0 {
		c.Ratio = c.NearPct / c.ElsewherePct
	}
	return c
}
