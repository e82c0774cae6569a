// Package promtext parses the Prometheus text exposition format (version
// 0.0.4): the body of a /metrics scrape, or a file of several scrapes one
// after another. It is a small, allocation-light reader for the counters and
// gauges a tool needs, not a full client: histograms and summaries come out
// as their plain _bucket/_sum/_count samples, and exemplars are not read.
//
// The package is pure: no I/O beyond the io.Reader it is given, no package
// state, standard library only.
package promtext

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Label is one name="value" pair.
type Label struct {
	Name, Value string
}

// Sample is one line of a scrape: a metric name, its labels in the order
// written, its value and, when the line has one, its timestamp.
type Sample struct {
	Name   string
	Labels []Label
	Value  float64
	// TsMs is the sample's timestamp in Unix milliseconds when HasTs.
	TsMs  int64
	HasTs bool
}

// Label returns the value of label name and whether it is present.
func (s *Sample) Label(name string) (string, bool) {
	for _, l := range s.Labels {
		if l.Name == name {
			return l.Value, true
		}
	}
	return "", false
}

// key identifies a series: name and labels as written.
func (s *Sample) key() string {
	var b strings.Builder
	b.WriteString(s.Name)
	for _, l := range s.Labels {
		b.WriteByte(0)
		b.WriteString(l.Name)
		b.WriteByte(1)
		b.WriteString(l.Value)
	}
	return b.String()
}

// Scrape is the samples of one scrape.
type Scrape struct {
	Samples []Sample
}

// Stats counts what Parse read.
type Stats struct {
	Lines    int // non-blank lines
	Comments int // # HELP, # TYPE and other comments
	Samples  int
	// Bad counts sample lines that could not be parsed (skipped).
	Bad int
	// FirstError describes the first bad line.
	FirstError string
}

// MaxLine is the longest line Parse accepts; a longer line is bad.
const MaxLine = 1 << 16

// ErrNoSamples is returned when the input holds no sample at all.
var ErrNoSamples = errors.New("no Prometheus samples")

// Parse reads one scrape or several concatenated scrapes. A new scrape
// starts when a series (name and labels) seen in the current scrape appears
// again, which is how a file of consecutive scrapes of one endpoint reads.
// Bad lines are counted and skipped; a read error aborts with what was
// read; an input without any sample returns ErrNoSamples.
func Parse(r io.Reader) ([]Scrape, Stats, error) {
	var st Stats
	var scrapes []Scrape
	var cur Scrape
	seen := map[string]struct{}{}
	br := bufio.NewReaderSize(r, 64<<10)
	lineNo := 0
	for {
		line, tooLong, err := readLine(br)
		if err != nil && err != io.EOF {
			return append(scrapes, cur), st, fmt.Errorf("prometheus text: line %d: %w", lineNo+1, err)
		}
		if len(line) > 0 || tooLong {
			lineNo++
		}
		text := strings.TrimSpace(line)
		switch {
		case tooLong:
			st.Lines++
			st.bad(lineNo, fmt.Sprintf("longer than %d bytes", MaxLine))
		case text == "":
		case text[0] == '#':
			st.Lines++
			st.Comments++
		default:
			st.Lines++
			s, perr := ParseSample(text)
			if perr != nil {
				st.bad(lineNo, perr.Error())
				break
			}
			k := s.key()
			if _, dup := seen[k]; dup {
				scrapes = append(scrapes, cur)
				cur = Scrape{}
				clear(seen)
			}
			seen[k] = struct{}{}
			cur.Samples = append(cur.Samples, s)
			st.Samples++
		}
		if err == io.EOF {
			break
		}
	}
	if len(cur.Samples) > 0 {
		scrapes = append(scrapes, cur)
	}
	if st.Samples == 0 {
		if st.Bad > 0 {
			return nil, st, fmt.Errorf("%w (%d bad lines, first: %s)", ErrNoSamples, st.Bad, st.FirstError)
		}
		return nil, st, ErrNoSamples
	}
	return scrapes, st, nil
}

func (st *Stats) bad(line int, msg string) {
	st.Bad++
	if st.FirstError == "" {
		st.FirstError = fmt.Sprintf("line %d: %s", line, msg)
	}
}

// readLine returns the next line without its newline; a line longer than
// MaxLine is consumed and reported as tooLong.
func readLine(br *bufio.Reader) (string, bool, error) {
	var buf []byte
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > MaxLine+2 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return strings.TrimRight(string(buf), "\r\n"), tooLong, err
	}
}

// ParseSample parses one sample line: name{label="value",...} value
// [timestamp_ms].
func ParseSample(line string) (Sample, error) {
	var s Sample
	i := 0
	for i < len(line) && isNameChar(line[i], i == 0) {
		i++
	}
	if i == 0 {
		return s, fmt.Errorf("no metric name in %q", clip(line))
	}
	s.Name = line[:i]
	rest := line[i:]
	if strings.HasPrefix(rest, "{") {
		labels, n, err := parseLabels(rest)
		if err != nil {
			return s, fmt.Errorf("%s: %w", s.Name, err)
		}
		s.Labels = labels
		rest = rest[n:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 || len(fields) > 2 {
		return s, fmt.Errorf("%s: want a value and an optional timestamp, got %q", s.Name, clip(rest))
	}
	v, err := parseValue(fields[0])
	if err != nil {
		return s, fmt.Errorf("%s: %w", s.Name, err)
	}
	s.Value = v
	if len(fields) == 2 {
		ts, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return s, fmt.Errorf("%s: timestamp %q: not an integer", s.Name, clip(fields[1]))
		}
		s.TsMs, s.HasTs = ts, true
	}
	return s, nil
}

func parseValue(f string) (float64, error) {
	switch f {
	case "+Inf", "Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q: not a number", clip(f))
	}
	return v, nil
}

func isNameChar(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':':
		return true
	case c >= '0' && c <= '9':
		return !first
	}
	return false
}

// parseLabels parses {a="x",b="y"} at the start of s and returns the labels
// and the bytes consumed.
func parseLabels(s string) ([]Label, int, error) {
	var labels []Label
	i := 1 // past '{'
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i < len(s) && s[i] == '}' {
			return labels, i + 1, nil
		}
		start := i
		for i < len(s) && isNameChar(s[i], i == start) {
			i++
		}
		if i == start {
			return nil, 0, errors.New("bad label name")
		}
		name := s[start:i]
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i >= len(s) || s[i] != '=' {
			return nil, 0, fmt.Errorf("label %s: want =", name)
		}
		i++
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i >= len(s) || s[i] != '"' {
			return nil, 0, fmt.Errorf("label %s: want a quoted value", name)
		}
		i++
		var v strings.Builder
		closed := false
		for i < len(s) {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				switch s[i+1] {
				case 'n':
					v.WriteByte('\n')
				case '\\', '"':
					v.WriteByte(s[i+1])
				default:
					v.WriteByte('\\')
					v.WriteByte(s[i+1])
				}
				i += 2
				continue
			}
			if c == '"' {
				closed = true
				i++
				break
			}
			v.WriteByte(c)
			i++
		}
		if !closed {
			return nil, 0, fmt.Errorf("label %s: unterminated value", name)
		}
		labels = append(labels, Label{name, v.String()})
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i < len(s) && s[i] == ',' {
			i++
			continue
		}
		if i < len(s) && s[i] == '}' {
			return labels, i + 1, nil
		}
		return nil, 0, errors.New("want , or } after a label")
	}
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
