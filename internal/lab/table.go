package lab

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/ringwise/ringwise/services/ringspec"
)

// renderSimTitle is what every simulated output says, so that nobody takes a
// ring-model replay for a measurement of the node's kernel.
const renderSimTitle = "SIMULATED (ring model only, no BPF)"

// renderIsSim reports whether r is a simulation rather than a BPF measurement.
func renderIsSim(r *Results) bool { return r != nil && r.Params.Source == "sim" }

// renderPct formats a percentage with two decimals; non-finite values as "n/a".
func renderPct(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// renderMissing formats missing % with its spread over repeats.
func renderMissing(row Row) string {
	s := renderPct(row.MissingPct)
	if row.MissingPctSpread > 0 && !math.IsInf(row.MissingPctSpread, 0) {
		s += " ± " + renderPct(row.MissingPctSpread)
	}
	return s
}

// renderCount formats a (mean) count without decimals.
func renderCount(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
}

// renderRate formats an event rate in records/s.
func renderRate(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + " M/s"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + " k/s"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " /s"
}

// renderDuration formats a nanosecond cost as a Go duration (2µs, 150ns).
func renderDuration(ns int64) string { return time.Duration(ns).String() }

// renderMs formats milliseconds as a duration.
func renderMs(ms float64) string {
	if math.IsNaN(ms) || math.IsInf(ms, 0) {
		return "n/a"
	}
	d := time.Duration(ms * float64(time.Millisecond))
	if d >= time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}

// layoutLabel is the row's layout with its note, if any.
func (row Row) layoutLabel() string {
	if row.Note != "" {
		return string(row.Layout) + " (" + row.Note + ")"
	}
	return string(row.Layout)
}

// renderTableHeader is the column header shared by text, markdown and HTML.
func renderTableHeader() []string {
	return []string{"size", "layout", "attempted", "dropped %", "lifecycle dropped %", "shed %", "bytes/record", "missing % (± s.d.)", "wrong %",
		"predicted missing % (out of sample)", "in-sample fit %", "missing % by field"}
}

// renderByField lists the fields some events lacked, with the share of
// events that lacked each ("—" when none did, or nothing was measured).
func renderByField(row Row) string {
	var names []string
	for k, v := range row.MissingByFieldPct {
		if v > 0 {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return "—"
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = strings.TrimPrefix(k, "proc.") + " " + renderPct(row.MissingByFieldPct[k])
	}
	return strings.Join(parts, ", ")
}

// renderRowCells is one row's cells, in renderTableHeader's order.
func renderRowCells(row Row) []string {
	return []string{
		ringspec.ProseSize(row.SizeBytes),
		row.layoutLabel(),
		renderCount(row.Attempted),
		renderPct(row.DroppedPct),
		renderPct(row.LifecycleDroppedPct),
		renderPct(row.ShedPct),
		strconv.FormatFloat(row.BytesPerEvent, 'f', 1, 64),
		renderMissing(row),
		renderPct(row.WrongPct),
		renderOutOfSample(row),
		renderPct(row.InSampleMissingPct),
		renderByField(row),
	}
}

// renderOutOfSample is the out-of-sample prediction, marked when no other
// row could calibrate it (the conservative default factor was used).
func renderOutOfSample(row Row) string {
	if !row.OutOfSampleCalibrated {
		return renderPct(row.PredictedMissingPct) + " (default factor)"
	}
	return renderPct(row.PredictedMissingPct)
}

// renderParams is the parameter list as label/value pairs.
func renderParams(r *Results) [][2]string {
	p := r.Params
	out := [][2]string{
		{"consumer cost", renderDuration(p.ConsumerCostNs) + "/record"},
		{"procs", strconv.Itoa(p.Procs)},
		{"burst", strconv.Itoa(p.Burst)},
		{"pause", renderMs(p.PauseMs)},
		{"parallel", strconv.Itoa(p.Parallel)},
		{"repeat", strconv.Itoa(p.Repeat)},
		{"source", renderSource(p.Source)},
	}
	if p.LifecycleSize > 0 {
		out = append(out, [2]string{"lifecycle ring (split)", ringspec.ProseSize(p.LifecycleSize)})
	}
	if p.TargetPct > 0 {
		out = append(out, [2]string{"target", renderPct(p.TargetPct) + " % missing"})
	}
	return out
}

func renderSource(s string) string {
	switch s {
	case "sim":
		return "sim — " + renderSimTitle
	case "bpf":
		return "bpf (measured)"
	case "":
		return "(unknown)"
	}
	return s
}

// renderRunInfo is node, kernel, start and duration, as far as known.
func renderRunInfo(r *Results) [][2]string {
	var out [][2]string
	if r.Node != "" {
		out = append(out, [2]string{"node", r.Node})
	}
	if r.Kernel != "" {
		out = append(out, [2]string{"kernel", r.Kernel})
	}
	if r.StartedAt != "" {
		out = append(out, [2]string{"started", r.StartedAt})
	}
	if r.DurationSec > 0 {
		out = append(out, [2]string{"duration", time.Duration(r.DurationSec * float64(time.Second)).Round(time.Millisecond).String()})
	}
	return out
}

// renderSeedLabel labels the article's table as the article's, not ours.
const renderSeedLabel = "seed article's figures (Falco, process flood; the article's own measurements, not this node)"

// renderSeed returns the seed table (r.Seed, or SeedTable if empty) sorted by size.
func renderSeed(r *Results) []SeedRow {
	s := r.Seed
	if len(s) == 0 {
		s = SeedTable()
	}
	s = append([]SeedRow(nil), s...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].SizeBytes < s[j].SizeBytes })
	return s
}

// renderRecLine is the recommendation line, or a placeholder if there is none.
func renderRecLine(r *Results) string {
	if l := strings.TrimSpace(r.Recommendation.Line); l != "" {
		return l
	}
	return "(no recommendation)"
}

// WriteTable prints the seed-like text table: parameters, one line per row,
// the recommendation line, and the seed article's table for comparison.
// Simulated results say SIMULATED in the title and on every line.
func WriteTable(w io.Writer, r *Results) {
	if r == nil {
		r = &Results{}
	}
	sim := renderIsSim(r)
	mark := ""
	if sim {
		mark = "SIMULATED"
	}
	title := "ringwise lab — events missing metadata by ring size and layout (process flood)"
	if sim {
		title = "ringwise lab — " + renderSimTitle + " — events missing metadata by ring size and layout"
	}
	fmt.Fprintln(w, title)
	var ps []string
	for _, kv := range renderParams(r) {
		ps = append(ps, kv[0]+" "+kv[1])
	}
	fmt.Fprintln(w, "parameters: "+strings.Join(ps, ", "))
	if info := renderRunInfo(r); len(info) > 0 {
		var is []string
		for _, kv := range info {
			is = append(is, kv[0]+" "+kv[1])
		}
		fmt.Fprintln(w, strings.Join(is, ", "))
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	hdr := append([]string(nil), renderTableHeader()...)
	if sim {
		hdr = append(hdr, "source")
	}
	// Right-aligned numbers, left-aligned layout: pad the layout column.
	lw := len(hdr[1])
	for _, row := range r.Rows {
		lw = max(lw, utf8.RuneCountInString(row.layoutLabel()))
	}
	pad := func(s string) string { return s + strings.Repeat(" ", lw-utf8.RuneCountInString(s)) }
	hdr[1] = pad(hdr[1])
	fmt.Fprintln(tw, strings.Join(hdr, "\t")+"\t")
	for _, row := range r.Rows {
		cells := renderRowCells(row)
		cells[1] = pad(cells[1])
		if sim {
			cells = append(cells, mark)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	tw.Flush()
	if len(r.Rows) == 0 {
		fmt.Fprintln(w, "(no rows)")
	}
	fmt.Fprintln(w)
	line := "recommendation: " + renderRecLine(r)
	if sim {
		line = "SIMULATED " + line
	}
	fmt.Fprintln(w, line)
	for _, wi := range r.Recommendation.WhatIf {
		fmt.Fprintln(w, "what-if: "+wi)
	}
	fmt.Fprintln(w)
	writeArgsTable(w, r.Args, false)

	fmt.Fprintln(w, renderSeedLabel+":")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  buffer size\tmissing % (article)\tnote")
	for _, s := range renderSeed(r) {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", ringspec.ProseSize(s.SizeBytes), renderPct(s.MissingPct), s.Note)
	}
	tw.Flush()
}

// renderMDEscape makes a cell safe inside a markdown table.
func renderMDEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\n", " ")
	return s
}

func renderMDRow(w io.Writer, cells []string) {
	es := make([]string, len(cells))
	for i, c := range cells {
		es[i] = renderMDEscape(c)
	}
	fmt.Fprintln(w, "| "+strings.Join(es, " | ")+" |")
}

// WriteMarkdownTable writes the same as WriteTable as GitHub markdown (for
// the README).
func WriteMarkdownTable(w io.Writer, r *Results) {
	if r == nil {
		r = &Results{}
	}
	sim := renderIsSim(r)
	if sim {
		fmt.Fprintln(w, "**"+renderSimTitle+"** — these figures come from the ring model, not from the kernel.")
		fmt.Fprintln(w)
	}
	var ps []string
	for _, kv := range append(renderParams(r), renderRunInfo(r)...) {
		ps = append(ps, kv[0]+" "+renderMDEscape(kv[1]))
	}
	fmt.Fprintln(w, "Parameters: "+strings.Join(ps, ", ")+".")
	fmt.Fprintln(w)
	hdr := append([]string(nil), renderTableHeader()...)
	if sim {
		hdr = append(hdr, "source")
	}
	renderMDRow(w, hdr)
	sep := make([]string, len(hdr))
	for i := range sep {
		sep[i] = "---:"
		if i == 1 || (sim && i == len(hdr)-1) {
			sep[i] = "---"
		}
	}
	fmt.Fprintln(w, "| "+strings.Join(sep, " | ")+" |")
	for _, row := range r.Rows {
		cells := renderRowCells(row)
		if sim {
			cells = append(cells, "SIMULATED")
		}
		renderMDRow(w, cells)
	}
	fmt.Fprintln(w)
	rec := "**Recommendation:** " + renderMDEscape(renderRecLine(r))
	if sim {
		rec = "**SIMULATED** " + rec
	}
	fmt.Fprintln(w, rec)
	for _, wi := range r.Recommendation.WhatIf {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "**What-if:** "+renderMDEscape(wi))
	}
	fmt.Fprintln(w)
	writeArgsTable(w, r.Args, true)
	fmt.Fprintln(w, "For comparison, the "+renderSeedLabel+":")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| buffer size | missing % (article) | note |")
	fmt.Fprintln(w, "|---:|---:|---|")
	for _, s := range renderSeed(r) {
		renderMDRow(w, []string{ringspec.ProseSize(s.SizeBytes), renderPct(s.MissingPct), s.Note})
	}
}
