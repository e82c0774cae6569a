package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/ringwise/ringwise/services/event"
)

// FalcoMetadataFields returns the output_fields AnalyzeFalco checks: the
// ones that come from Falco's process table (proc.* and user.*). An event is
// missing metadata if any of them that is present holds an unknown value.
// container.* and user.loginuid are left out: "host" and -1 are legitimate
// values there.
func FalcoMetadataFields() []string {
	return []string{
		"proc.name", "proc.exe", "proc.exepath", "proc.cmdline",
		"proc.pid", "proc.tid", "thread.tid", "proc.ppid", "proc.pname",
		"user.uid", "user.name",
	}
}

// isMetadataField reports whether name is in FalcoMetadataFields.
func isMetadataField(name string) bool {
	switch name {
	case "proc.name", "proc.exe", "proc.exepath", "proc.cmdline",
		"proc.pid", "proc.tid", "thread.tid", "proc.ppid", "proc.pname",
		"user.uid", "user.name":
		return true
	}
	return false
}

// ReasonFalcoInput is the by_reason key of missing events read from Falco
// output, which carries no reason.
const ReasonFalcoInput = "unknown (falco input)"

// MaxFalcoLine is the longest line AnalyzeFalco accepts; longer lines are
// counted as malformed.
const MaxFalcoLine = 1 << 20

// FalcoStats describes the input read by AnalyzeFalco.
type FalcoStats struct {
	// Lines counts non-blank lines.
	Lines int `json:"lines"`
	// Blank counts lines holding only white space (skipped).
	Blank int `json:"blank"`
	// Events counts lines parsed as Falco events.
	Events int `json:"events"`
	// Malformed counts lines that are not a Falco JSON event.
	Malformed int `json:"malformed"`
	// FirstError describes the first malformed line.
	FirstError string `json:"first_error,omitempty"`
}

// falcoLine is the part of a Falco JSON line AnalyzeFalco reads.
type falcoLine struct {
	Hostname     *string                    `json:"hostname"`
	Rule         *string                    `json:"rule"`
	Output       *string                    `json:"output"`
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

// AnalyzeFalco reads Falco's JSON output (one object per line, as written
// with json_output: true, or by `ringwise up --output json`) and counts the
// events missing metadata, by field (see FalcoMetadataFields) and by reason.
// Falco gives no reason, so missing events count under "unknown (falco
// input)" unless the line carries ringwise's {"ringwise":{"reason":...}}.
//
// Blank lines are skipped. Malformed lines (not JSON, not an object, no
// rule/output/output_fields, longer than MaxFalcoLine) are counted in
// FalcoStats and skipped; only if every non-blank line is malformed is an
// error returned. A read error aborts with the counts so far.
//
// The summary's node is the events' hostname when they all share one.
// Sensor and ring sections stay zero: Falco's output has no ring counters.
func AnalyzeFalco(r io.Reader) (Summary, FalcoStats, error) {
	var st FalcoStats
	s := newSummary("")
	an := &s.Analyzer
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	lineNo := 0
	host, hostSet, hostMixed := "", false, false
	malformed := func(msg string) {
		st.Malformed++
		if st.FirstError == "" {
			st.FirstError = fmt.Sprintf("line %d: %s", lineNo, msg)
		}
	}
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
			s.finishFalco(host, hostSet && !hostMixed)
			return s, st, fmt.Errorf("read falco events: line %d: %w", lineNo+1, rerr)
		}
		if tooLong || len(line) > 0 {
			lineNo++
		}
		switch {
		case tooLong:
			st.Lines++
			malformed(fmt.Sprintf("longer than %d bytes", MaxFalcoLine))
		case len(bytes.TrimSpace(line)) == 0:
			if len(line) > 0 {
				st.Blank++
			}
		default:
			st.Lines++
			var fl falcoLine
			if err := json.Unmarshal(line, &fl); err != nil {
				malformed(err.Error())
				break
			}
			if fl.Rule == nil && fl.Output == nil && fl.OutputFields == nil {
				malformed("not a Falco event: no rule, output or output_fields")
				break
			}
			st.Events++
			if fl.Hostname != nil {
				if !hostSet {
					host, hostSet = *fl.Hostname, true
				} else if host != *fl.Hostname {
					hostMixed = true
				}
			}
			countFalcoEvent(an, &fl)
		}
		if rerr == io.EOF {
			break
		}
	}
	s.finishFalco(host, hostSet && !hostMixed)
	if st.Lines > 0 && st.Malformed == st.Lines {
		return s, st, fmt.Errorf("falco input: all %d non-blank lines are malformed (first: %s)", st.Lines, st.FirstError)
	}
	return s, st, nil
}

func countFalcoEvent(an *AnalyzerSummary, fl *falcoLine) {
	an.Events++
	missing := false
	for name, raw := range fl.OutputFields {
		if !isMetadataField(name) || !IsUnknownFalcoValue(raw) {
			continue
		}
		missing = true
		an.ByField[name]++
	}
	if !missing {
		return
	}
	an.Missing++
	reason := ReasonFalcoInput
	if fl.Ringwise != nil && fl.Ringwise.Reason != "" {
		reason = fl.Ringwise.Reason
	}
	an.ByReason[reason]++
	if r, ok := event.ReasonByName(reason); ok && r.LifecycleLoss() {
		an.LifecycleAttributed++
	}
}

func (s *Summary) finishFalco(host string, ok bool) {
	if ok {
		s.Node = host
	}
	s.finish()
}
