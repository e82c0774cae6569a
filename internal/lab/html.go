package lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ringwise/ringwise/services/ringspec"
)

// htmlView is what the report template shows, already formatted.
type htmlView struct {
	Sim        bool
	SimTitle   string
	Title      string
	Params     [][2]string
	RunInfo    [][2]string
	Header     []string
	Rows       [][]string
	RecLine    string
	WhatIf     []string
	ArgsTitle  string
	ArgsHeader []string
	ArgsRows   [][]string
	Verdict    string
	Evidence   [][2]string
	Candidates []htmlCandidate
	SeedLabel  string
	Seed       []SeedRow
	SVG        template.HTML
}

type htmlCandidate struct {
	Preset, Size, Layout, Lifecycle, Memory, Missing, Measured, Meets, Basis string
	Chosen                                                                   bool
}

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"size": ringspec.ProseSize,
	"pct":  renderPct,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;color:#222;background:#fff;margin:0;padding:24px 32px;max-width:1100px;font-size:14px;line-height:1.45}
h1{font-size:22px;margin:0 0 8px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.banner{background:#c0392b;color:#fff;font-weight:bold;padding:10px 14px;margin:0 0 16px;font-size:16px;border-radius:4px}
.rec{background:#eef8f0;border-left:5px solid #27ae60;padding:10px 14px;font-size:15px;margin:8px 0}
.rec.sim{background:#fdf0ee;border-left-color:#c0392b}
table{border-collapse:collapse;margin:6px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}
th{white-space:normal;vertical-align:bottom}
th{background:#f4f4f4;font-weight:600}
td.l,th.l{text-align:left}
tr.chosen td{background:#eef8f0;font-weight:600}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:6px 0}
dl.kv dt{color:#555}
dl.kv dd{margin:0}
.chart{margin:8px 0}
.chart svg{width:100%;max-width:980px;height:auto;border:1px solid #eee}
.note{color:#555;font-size:13px}
.cols{display:flex;gap:32px;flex-wrap:wrap}
.cols>div{max-width:520px}
</style>
</head>
<body>
{{if .Sim}}<div class="banner" id="simulated">{{.SimTitle}} — these figures come from the ring model replaying the load, not from the kernel. Run the lab with BPF to measure this node.</div>
{{end}}<h1>{{.Title}}</h1>
<div class="rec{{if .Sim}} sim{{end}}" id="recommendation"><strong>{{if .Sim}}SIMULATED {{end}}Recommendation:</strong> {{.RecLine}}</div>
{{range .WhatIf}}<p class="note what-if">What-if: {{.}}</p>
{{end}}
<h2>Chart</h2>
<div class="chart">{{.SVG}}</div>

<h2>Results{{if .Sim}} (SIMULATED){{end}}</h2>
<table id="results">
<thead><tr>{{range $i, $h := .Header}}<th{{if eq $i 1}} class="l"{{end}}>{{$h}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr>{{range $i, $c := .}}<td{{if eq $i 1}} class="l"{{end}}>{{$c}}</td>{{end}}</tr>
{{else}}<tr><td colspan="{{len .Header}}" class="l">no rows</td></tr>
{{end}}</tbody>
</table>
{{if .ArgsRows}}
<h2>{{.ArgsTitle}}</h2>
<table id="args">
<thead><tr>{{range .ArgsHeader}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .ArgsRows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{end}}
<div class="cols">
<div>
<h2>Parameters</h2>
<dl class="kv" id="params">{{range .Params}}<dt>{{index . 0}}</dt><dd>{{index . 1}}</dd>{{end}}{{range .RunInfo}}<dt>{{index . 0}}</dt><dd>{{index . 1}}</dd>{{end}}</dl>
</div>
<div>
<h2>Seed article, for comparison</h2>
<p class="note">{{.SeedLabel}}</p>
<table id="seed">
<thead><tr><th>buffer size</th><th>missing % (article)</th><th class="l">note</th></tr></thead>
<tbody>
{{range .Seed}}<tr><td>{{size .SizeBytes}}</td><td>{{pct .MissingPct}}</td><td class="l">{{.Note}}</td></tr>
{{end}}</tbody>
</table>
</div>
</div>

<h2>Evidence behind the recommendation</h2>
{{if .Verdict}}<p>{{.Verdict}}</p>{{end}}
<dl class="kv" id="evidence">{{range .Evidence}}<dt>{{index . 0}}</dt><dd>{{index . 1}}</dd>{{end}}</dl>
{{if .Candidates}}
<h2>Candidates the ring model replayed</h2>
<table id="candidates">
<thead><tr><th>preset</th><th>size</th><th class="l">layout</th><th>lifecycle ring</th><th>memory</th><th>predicted missing %</th><th>measured missing %</th><th>meets target</th><th class="l">decided by</th></tr></thead>
<tbody>
{{range .Candidates}}<tr{{if .Chosen}} class="chosen"{{end}}><td>{{.Preset}}</td><td>{{.Size}}</td><td class="l">{{.Layout}}</td><td>{{.Lifecycle}}</td><td>{{.Memory}}</td><td>{{.Missing}}</td><td>{{.Measured}}</td><td>{{.Meets}}</td><td class="l">{{.Basis}}</td></tr>
{{end}}</tbody>
</table>
<p class="note">The highlighted row is the recommendation.</p>
{{end}}

<h2>How to read this</h2>
<p>Under a process flood the kernel writes records into the ring faster than the consumer reads them. When the ring is full the kernel drops records; if a dropped record is a fork, exec or exit, the monitor's process table misses that step and later events of the process come out without metadata (<code>null</code>, <code>-1</code>, <code>4294967295</code>). <em>dropped %</em> is the share of records the kernel could not write; <em>lifecycle dropped %</em> the share of fork/exec/exit records lost; <em>missing %</em> the share of delivered events whose process metadata could not be filled (± the standard deviation over repeats); <em>wrong %</em> the share filled with the wrong process; <em>predicted missing % (out of sample)</em> is what the ring model expects for the same load, with the missing-per-lost-record factor learned from the other rows only (leave one row out), so the row's own measurement cannot pull the prediction into agreement; <em>in-sample fit %</em> is the same with the factor learned from every row. <em>missing % by field</em> is, per Falco field, the share of delivered events that lacked it: which fields a lost fork or exec takes away, and which ones hints fill. In the chart, solid lines are {{if .Sim}}the simulation{{else}}the measurement{{end}}, dashed lines the model's prediction, and the black diamonds the seed article's figures for Falco. A larger ring (or a separate ring for lifecycle records, the <em>split</em> layout) bridges longer bursts; only if the backlog never clears (the consumer's capacity over the run, bursts and the quiet between them, is below the mean arrival rate) does no ring size help.</p>
</body>
</html>
`))

// htmlEvidence lists the recommendation's evidence for humans.
func htmlEvidence(r *Results) ([][2]string, string) {
	rec := r.Recommendation
	ev := rec.Evidence.Evidence
	cal := "uncalibrated (default factor " + strconv.FormatFloat(ev.Calibration.MissingPerLifecycleDrop, 'g', 4, 64) + ")"
	if ev.Calibration.Samples > 0 {
		cal = fmt.Sprintf("%s missing events per lifecycle drop, from %d sample(s)",
			strconv.FormatFloat(ev.Calibration.MissingPerLifecycleDrop, 'g', 4, 64), ev.Calibration.Samples)
	}
	out := [][2]string{
		{"peak rate", renderRate(ev.PeakRate)},
		{"mean rate", renderRate(ev.MeanRate)},
		{"burst length", renderMs(ev.BurstMs) + " (" + renderCount(ev.BurstRecords) + " records beyond the in-burst drain)"},
		{"consumer capacity over the run", renderRate(ev.DrainRate) + " (" + renderRate(ev.BurstDrainRate) + " in bursts, " + renderRate(ev.QuietDrainRate) + " between)"},
		{"headroom (capacity / mean)", strconv.FormatFloat(ev.Headroom, 'f', 2, 64) + "×"},
		{"backlog (" + ev.BacklogSource + " fill)", fmt.Sprintf("%d backlog(s), %d cleared", ev.Backlog.Episodes, ev.Backlog.Cleared)},
		{"consumer too slow", yes(ev.ConsumerTooSlow)},
		{"calibration", cal},
	}
	if rec.SizeBytes > 0 {
		out = append(out, [2]string{"recommended", fmt.Sprintf("%s %s (bufSizePreset %d)", ringspec.ProseSize(rec.SizeBytes), rec.Layout, rec.BufSizePreset)})
	}
	tp := rec.TargetPct
	if tp <= 0 {
		tp = rec.Evidence.TargetPct
	}
	if tp > 0 {
		out = append(out, [2]string{"target", renderPct(tp) + " % missing"})
	}
	if m := rec.Evidence.MeasuredMissingPct; m != nil {
		out = append(out, [2]string{"measured missing", renderPct(*m) + " %"})
	}
	out = append(out, [2]string{"predicted missing", renderPct(rec.Evidence.PredictedMissingPct) + " %"},
		[2]string{"meets target", yes(rec.Evidence.MeetsTarget) + " (" + rec.Evidence.Basis + ")"})
	return out, rec.Evidence.Verdict
}

func htmlBuildView(r *Results) htmlView {
	sim := renderIsSim(r)
	v := htmlView{
		Sim:       sim,
		SimTitle:  renderSimTitle,
		Title:     "ringwise lab: events missing metadata by ring size",
		Params:    renderParams(r),
		RunInfo:   renderRunInfo(r),
		Header:    renderTableHeader(),
		RecLine:   renderRecLine(r),
		SeedLabel: "The " + renderSeedLabel + ".",
		Seed:      renderSeed(r),
		SVG:       template.HTML(svgBody(r)),
	}
	if sim {
		v.Title = "SIMULATED — " + v.Title
	}
	for _, row := range r.Rows {
		v.Rows = append(v.Rows, renderRowCells(row))
	}
	v.Evidence, v.Verdict = htmlEvidence(r)
	v.WhatIf = r.Recommendation.WhatIf
	if a := r.Args; a != nil && len(a.Rows) > 0 {
		v.ArgsTitle, v.ArgsHeader = argsTitle(a), argsHeader()
		for _, row := range a.Rows {
			v.ArgsRows = append(v.ArgsRows, argsCells(row))
		}
	}
	rec := r.Recommendation
	for _, c := range rec.Evidence.Candidates {
		lc := "—"
		if c.LifecycleSizeBytes > 0 {
			lc = ringspec.ProseSize(c.LifecycleSizeBytes)
		}
		measured := "—"
		if c.MeasuredMissingPct != nil {
			measured = renderPct(*c.MeasuredMissingPct)
		}
		v.Candidates = append(v.Candidates, htmlCandidate{
			Preset:    strconv.Itoa(c.Preset),
			Size:      ringspec.ProseSize(c.SizeBytes),
			Layout:    string(c.Layout),
			Lifecycle: lc,
			Memory:    ringspec.ProseSize(c.MemoryBytes),
			Missing:   renderPct(c.PredictedMissingPct),
			Measured:  measured,
			Meets:     yes(c.MeetsTarget),
			Basis:     c.Basis,
			Chosen:    rec.SizeBytes > 0 && c.SizeBytes == rec.SizeBytes && c.Layout == rec.Layout,
		})
	}
	return v
}

// WriteReport writes report.html: a self-contained page (inline CSS, the
// chart inlined, no scripts, no network) with the parameters, the table, the
// chart, the recommendation and its evidence, and the seed article's table.
func WriteReport(w io.Writer, r *Results) error {
	if r == nil {
		r = &Results{}
	}
	return htmlTmpl.Execute(w, htmlBuildView(r))
}

// WriteOutputs writes results.json (indented), loss.svg and report.html into
// dir, creating it if missing. It writes as many of the three as it can and
// returns every error.
func WriteOutputs(dir string, r *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lab outputs: %w", err)
	}
	var errs []error
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		errs = append(errs, fmt.Errorf("results.json: %w", err))
	} else {
		errs = append(errs, htmlWriteFile(filepath.Join(dir, "results.json"), append(js, '\n')))
	}
	errs = append(errs, htmlWriteFile(filepath.Join(dir, "loss.svg"), RenderSVG(r)))
	var page bytes.Buffer
	if err := WriteReport(&page, r); err != nil {
		errs = append(errs, fmt.Errorf("report.html: %w", err))
	} else {
		errs = append(errs, htmlWriteFile(filepath.Join(dir, "report.html"), page.Bytes()))
	}
	return errors.Join(errs...)
}

// htmlWriteFile writes via a temporary file and a rename, so that a reader
// never sees half a file.
func htmlWriteFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), 0o644)
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("%s: %w", filepath.Base(path), werr)
	}
	return nil
}

// yes renders a flag.
func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
