package lab

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ringwise/ringwise/services/ringmodel"
	"github.com/ringwise/ringwise/services/ringspec"
)

// renderFixture is a hand-built lab result: 2 layouts × 4 sizes.
func renderFixture(source string) *Results {
	sizes := []int{1 << 20, 2 << 20, 4 << 20, 16 << 20}
	r := &Results{
		Params: Params{
			ConsumerCostNs: 2500, Procs: 5000, Burst: 200, PauseMs: 5, Parallel: 4, Repeat: 3,
			Source: source, Sizes: sizes, Layouts: DefaultLayouts(),
			LifecycleSize: 256 << 10, TargetPct: 0.1,
		},
		Seed:        SeedTable(),
		Node:        "node-a",
		Kernel:      "6.8.0-test",
		StartedAt:   "2025-01-02T03:04:05Z",
		DurationSec: 93.5,
	}
	shared := []float64{18.31, 12.07, 6.02, 0.04}
	split := []float64{3.12, 1.51, 0.42, 0}
	for li, l := range DefaultLayouts() {
		miss := shared
		if li == 1 {
			miss = split
		}
		for i, s := range sizes {
			r.Rows = append(r.Rows, Row{
				SizeBytes:           s,
				Layout:              l,
				Attempted:           float64(123450 + 1000*i + 7*li),
				DroppedPct:          miss[i]*1.7 + 0.11,
				LifecycleDroppedPct: miss[i]*0.9 + 0.05 + float64(li)*0.01,
				MissingPct:          miss[i],
				MissingPctSpread:    0.25 + float64(i)*0.1,
				WrongPct:            0.01 * float64(i+1+li),
				PredictedMissingPct: miss[i]*1.1 + 0.3,
				PredictedDroppedPct: miss[i] * 1.8,
				BytesPerEvent:       64,
				Events:              100000,
				ByReason:            map[string]float64{"lifecycle_dropped": miss[i]},
			})
		}
	}
	cands := []ringmodel.Candidate{}
	for p := 1; p <= 5; p++ {
		for _, l := range DefaultLayouts() {
			size, _ := ringspec.PresetSize(p)
			c := ringmodel.Candidate{Preset: p, SizeBytes: size, Layout: l, MemoryBytes: size, PredictedMissingPct: 20 / float64(p*p)}
			if l == ringspec.LayoutSplit {
				c.LifecycleSizeBytes = 256 << 10
				c.MemoryBytes += 256 << 10
				c.PredictedMissingPct /= 5
			}
			cands = append(cands, c)
		}
	}
	r.Recommendation = Recommendation{
		SizeBytes: 16 << 20, BufSizePreset: 5, Layout: "shared", TargetPct: 0.1,
		Line: "set bufSizePreset 5 (16 MiB, shared): predicted 0.05 % missing <= 0.1 % target",
		Evidence: ringmodel.Recommendation{
			SizeBytes: 16 << 20, BufSizePreset: 5, Layout: ringspec.LayoutShared, TargetPct: 0.1,
			PredictedMissingPct: 0.05, MeetsTarget: true,
			Evidence: ringmodel.Evidence{
				PeakRate: 2.4e6, MeanRate: 3.1e5, BurstMs: 42.5, BurstRecords: 81234,
				DrainRate: 4e5, Headroom: 1.29, ConsumerTooSlow: false,
				Calibration: ringmodel.Calibration{MissingPerLifecycleDrop: 3.7, Samples: 6},
			},
			Candidates: cands,
			Verdict:    "16 MiB shared bridges a 42 ms burst of 81k records at a drain of 400k/s.",
		},
	}
	return r
}

func TestRenderTableText(t *testing.T) {
	for _, src := range []string{"bpf", "sim"} {
		t.Run(src, func(t *testing.T) {
			r := renderFixture(src)
			var b bytes.Buffer
			WriteTable(&b, r)
			out := b.String()
			t.Logf("\n%s", out)
			for _, row := range r.Rows {
				for _, c := range renderRowCells(row) {
					if !strings.Contains(out, c) {
						t.Errorf("table lacks %q of row %s %s", c, ringspec.ProseSize(row.SizeBytes), row.Layout)
					}
				}
			}
			for _, want := range []string{"18.31 ± 0.25", "123450", "16 MiB", "2.5µs", "procs 5000", "burst 200", "pause 5ms", "parallel 4", "repeat 3",
				r.Recommendation.Line, "article", "17.20", "11.80", "5.50", "Falco default in the article"} {
				if !strings.Contains(out, want) {
					t.Errorf("table lacks %q", want)
				}
			}
			sim := strings.Contains(out, "SIMULATED")
			if sim != (src == "sim") {
				t.Errorf("source %s: SIMULATED shown = %v", src, sim)
			}
			if src == "sim" {
				lines := strings.Split(out, "\n")
				if !strings.Contains(lines[0], "SIMULATED (ring model only, no BPF)") {
					t.Errorf("title %q does not say SIMULATED", lines[0])
				}
				for _, l := range lines {
					if strings.Contains(l, " shared ") || strings.Contains(l, " split ") || strings.Contains(l, "recommendation") {
						if !strings.Contains(l, "SIMULATED") {
							t.Errorf("simulated line without SIMULATED: %q", l)
						}
					}
				}
			}
		})
	}
}

func TestRenderMarkdownTable(t *testing.T) {
	for _, src := range []string{"bpf", "sim"} {
		r := renderFixture(src)
		r.Rows[0].Layout = "sha|red"
		var b bytes.Buffer
		WriteMarkdownTable(&b, r)
		out := b.String()
		if src == "sim" {
			t.Logf("\n%s", out)
		}
		if strings.Contains(out, "SIMULATED") != (src == "sim") {
			t.Errorf("%s: SIMULATED mismatch", src)
		}
		if !strings.Contains(out, `sha\|red`) {
			t.Errorf("pipe not escaped")
		}
		var rows, seed int
		want := len(renderTableHeader()) + 1
		if src == "sim" {
			want++
		}
		for _, l := range strings.Split(out, "\n") {
			if !strings.HasPrefix(l, "| ") || !strings.Contains(l, " MiB |") {
				continue
			}
			switch n := strings.Count(strings.ReplaceAll(l, `\|`, ""), "|"); n {
			case want:
				rows++
			case 4:
				seed++
			default:
				t.Errorf("row %q has %d pipes", l, n)
			}
		}
		if rows != len(r.Rows) || seed != len(r.Seed) {
			t.Errorf("%s: %d+%d markdown rows, want %d+%d", src, rows, seed, len(r.Rows), len(r.Seed))
		}
		if !strings.Contains(out, "|---:|") && !strings.Contains(out, "| ---: |") {
			t.Errorf("no markdown separator")
		}
	}
}

// renderSVGSeries parses an SVG and counts the polylines per series/layout.
func renderSVGSeries(t *testing.T, svg []byte) (map[string]int, string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	series := map[string]int{}
	var text strings.Builder
	var root string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("svg does not parse: %v\n%s", err, svg)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = e.Name.Local
				var vb bool
				for _, a := range e.Attr {
					if a.Name.Local == "viewBox" && a.Value == "0 0 800 480" {
						vb = true
					}
				}
				if !vb || e.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root %v lacks viewBox or svg namespace", e.Name)
				}
			}
			if e.Name.Local == "polyline" || e.Name.Local == "path" {
				var s, l string
				for _, a := range e.Attr {
					switch a.Name.Local {
					case "data-series":
						s = a.Value
					case "data-layout":
						l = a.Value
					}
				}
				if s != "" && l != "" {
					series[l+"/"+s]++
				}
			}
		case xml.CharData:
			text.Write(e)
			text.WriteByte(' ')
		}
	}
	if root != "svg" {
		t.Errorf("root element %q", root)
	}
	return series, text.String()
}

func TestRenderSVG(t *testing.T) {
	for _, src := range []string{"bpf", "sim"} {
		r := renderFixture(src)
		svg := RenderSVG(r)
		series, text := renderSVGSeries(t, svg)
		want := map[string]int{"shared/measured": 1, "shared/predicted": 1, "split/measured": 1, "split/predicted": 1}
		if !reflect.DeepEqual(series, want) {
			t.Errorf("%s: series %v, want %v", src, series, want)
		}
		for _, w := range []string{"1 MiB", "2 MiB", "4 MiB", "16 MiB", "seed article (Falco)", "ring size", "events missing metadata", "shared", "split"} {
			if !strings.Contains(text, w) {
				t.Errorf("%s: svg text lacks %q", src, w)
			}
		}
		if strings.Contains(text, "SIMULATED") != (src == "sim") {
			t.Errorf("%s: SIMULATED in svg = %v", src, strings.Contains(text, "SIMULATED"))
		}
		if strings.Contains(string(svg), "<script") || strings.Contains(string(svg), "@import") || strings.Contains(string(svg), "href") {
			t.Errorf("%s: svg is not self-contained", src)
		}
		if strings.Count(string(svg), `class="errorbar"`) != len(r.Rows) {
			t.Errorf("%s: %d error bars, want %d", src, strings.Count(string(svg), `class="errorbar"`), len(r.Rows))
		}
	}
}

func TestRenderSVGEscapesAndOddInput(t *testing.T) {
	r := renderFixture("bpf")
	r.Rows[0].Layout = `<b>&"x"`
	r.Params.Layouts = nil
	r.Rows[1].MissingPct = math.NaN()
	svg := RenderSVG(r)
	series, _ := renderSVGSeries(t, svg)
	if series[`<b>&"x"/measured`] != 1 {
		t.Errorf("odd layout series: %v", series)
	}
	// Empty results still give a valid chart.
	renderSVGSeries(t, RenderSVG(&Results{}))
	renderSVGSeries(t, RenderSVG(nil))
	var b bytes.Buffer
	if err := WriteReport(&b, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<b>&") {
		t.Errorf("html not escaped")
	}
}

func TestReportHTML(t *testing.T) {
	for _, src := range []string{"bpf", "sim"} {
		r := renderFixture(src)
		var b bytes.Buffer
		if err := WriteReport(&b, r); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, w := range []string{"<!DOCTYPE html>", "<style>", "<svg", "</svg>", `<table id="results">`, `<table id="candidates">`, `<table id="seed">`} {
			if !strings.Contains(out, w) {
				t.Errorf("%s: report lacks markup %q", src, w)
			}
		}
		for _, w := range []string{"How to read this", "peak rate", "burst length", "consumer capacity over the run", "headroom", "consumer too slow", "calibration", "decided by",
			"2.40 M/s", "42.5ms", "400.0 k/s", "1.29×", "from 6 sample(s)", "bufSizePreset 5", "seed article",
			"Falco default in the article", "preset", "predicted missing %", r.Recommendation.Evidence.Verdict} {
			if !strings.Contains(out, renderTestEscape(w)) {
				t.Errorf("%s: report lacks %q", src, w)
			}
		}
		for _, row := range r.Rows {
			cells := renderRowCells(row)
			tr := "<tr>"
			for i, c := range cells {
				if i == 1 {
					tr += `<td class="l">` + c + "</td>"
				} else {
					tr += "<td>" + c + "</td>"
				}
			}
			if !strings.Contains(out, tr+"</tr>") {
				t.Errorf("%s: report lacks row %s", src, tr)
			}
		}
		if n := strings.Count(out, `<tr class="chosen">`); n != 1 {
			t.Errorf("%s: %d chosen candidates, want 1", src, n)
		}
		noNS := strings.ReplaceAll(out, `xmlns="http://www.w3.org/2000/svg"`, "")
		if strings.Contains(noNS, "http://") || strings.Contains(noNS, "https://") || strings.Contains(out, "<script") || strings.Contains(out, "<link") {
			t.Errorf("%s: report is not self-contained", src)
		}
		if strings.Contains(out, "&lt;svg") {
			t.Errorf("%s: svg was escaped instead of inlined", src)
		}
		if strings.Contains(out, "SIMULATED") != (src == "sim") || strings.Contains(out, `class="banner"`) != (src == "sim") {
			t.Errorf("%s: SIMULATED banner mismatch", src)
		}
		if strings.Count(out, "<table") != strings.Count(out, "</table>") || strings.Count(out, "<tr") != strings.Count(out, "</tr>") {
			t.Errorf("%s: unbalanced tables", src)
		}
	}
}

// renderTestEscape escapes what html/template escapes in text.
func renderTestEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

func TestOutputsWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out", "lab")
	r := renderFixture("bpf")
	if err := WriteOutputs(dir, r); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !reflect.DeepEqual(names, []string{"loss.svg", "report.html", "results.json"}) {
		t.Fatalf("files %v", names)
	}
	js, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(js, []byte("\n  \"params\": {")) {
		t.Errorf("results.json is not indented")
	}
	var back Results
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, r) {
		t.Errorf("results.json does not round-trip:\n got %+v\nwant %+v", back, *r)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	get := func(path ...any) any {
		var v any = m
		for _, p := range path {
			switch k := p.(type) {
			case string:
				mm, ok := v.(map[string]any)
				if !ok {
					return nil
				}
				v = mm[k]
			case int:
				a, ok := v.([]any)
				if !ok || k >= len(a) {
					return nil
				}
				v = a[k]
			}
		}
		return v
	}
	for _, p := range [][]any{
		{"params", "consumer_cost_ns"}, {"params", "procs"}, {"params", "source"}, {"params", "lifecycle_size_bytes"},
		{"rows", 0, "size_bytes"}, {"rows", 0, "layout"}, {"rows", 0, "missing_pct"}, {"rows", 0, "missing_pct_spread"},
		{"rows", 0, "predicted_missing_pct"}, {"rows", 0, "lifecycle_dropped_pct"}, {"rows", 0, "wrong_pct"},
		{"recommendation", "buf_size_preset"}, {"recommendation", "size_bytes"}, {"recommendation", "line"},
		{"recommendation", "evidence", "evidence", "peak_rate_eps"}, {"recommendation", "evidence", "candidates", 0, "preset"},
		{"seed", 0, "missing_pct"},
	} {
		if get(p...) == nil {
			t.Errorf("results.json lacks %v", p)
		}
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "loss.svg"))
	renderSVGSeries(t, svg)
	page, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	if !bytes.Contains(page, []byte("<svg")) {
		t.Errorf("report.html lacks the chart")
	}
	// Rewriting over existing outputs works and leaves no temporary files.
	if err := WriteOutputs(dir, renderFixture("sim")); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Errorf("%d files after rewrite", len(ents))
	}
}

func TestProgressPlain(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, 2, false)
	p.Start("1 MiB shared #1")
	p.Update(0.5)
	p.Done("1 MiB shared #1: 17.9 % missing")
	p.Start("2 MiB shared #1")
	p.Done("2 MiB shared #1: 11.0 % missing")
	p.Finish()
	want := "[1/2] 1 MiB shared #1 ...\n[1/2] 1 MiB shared #1: 17.9 % missing\n[2/2] 2 MiB shared #1 ...\n[2/2] 2 MiB shared #1: 11.0 % missing\n"
	if b.String() != want {
		t.Errorf("plain progress:\n%q\nwant\n%q", b.String(), want)
	}
}

func TestProgressTerminal(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, 4, true)
	clock := time.Unix(1000, 0)
	p.now = func() time.Time { return clock }
	p.Start("16 MiB shared #2")
	n0 := strings.Count(b.String(), "\r")
	for i := 1; i <= 10; i++ { // 10 updates within 50 ms: throttled away
		clock = clock.Add(5 * time.Millisecond)
		p.Update(float64(i) / 20)
	}
	if n := strings.Count(b.String(), "\r"); n != n0 {
		t.Errorf("updates not throttled: %d redraws", n-n0)
	}
	clock = clock.Add(2 * time.Second)
	p.Update(0.5)
	if !strings.Contains(b.String(), " 50%") || !strings.Contains(b.String(), "16 MiB shared #2") {
		t.Errorf("bar lacks label or percent: %q", b.String())
	}
	p.Done("16 MiB shared #2: 0.01 % missing")
	p.Finish()
	out := b.String()
	if !strings.HasSuffix(out, "\r\033[K[1/4] 16 MiB shared #2: 0.01 % missing\n") {
		t.Errorf("done line: %q", out)
	}
	for _, l := range strings.Split(out, "\r") {
		if l = strings.ReplaceAll(l, "\033[K", ""); len([]rune(l)) > 80 {
			t.Errorf("bar line longer than 80: %q", l)
		}
	}
}

func TestIsTerminalNotForFiles(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Errorf("/dev/null is a terminal")
	}
	if IsTerminal(nil) {
		t.Errorf("nil is a terminal")
	}
}

func TestRenderByField(t *testing.T) {
	row := Row{MissingByFieldPct: map[string]float64{"proc.ppid": 0.5, "proc.exepath": 10.25, "proc.name": 0}}
	if got, want := renderByField(row), "exepath 10.25, ppid 0.50"; got != want {
		t.Errorf("renderByField = %q, want %q", got, want)
	}
	if got := renderByField(Row{}); got != "—" {
		t.Errorf("no fields missing: %q", got)
	}
	cells := renderRowCells(row)
	if len(cells) != len(renderTableHeader()) || cells[len(cells)-1] != "exepath 10.25, ppid 0.50" {
		t.Errorf("row cells %q do not end with the by-field column", cells)
	}
}

// TestRenderArgsAndWhatIf: the args trade-off table and the what-if lines
// appear in the text, markdown and HTML outputs.
func TestRenderArgsAndWhatIf(t *testing.T) {
	r := renderFixture("bpf")
	r.Recommendation.WhatIf = []string{"SIMULATED what-if: without read (40% of the syscall events seen), bufSizePreset 1 would do"}
	r.Args = &ArgsTable{SizeBytes: 1 << 20, Layout: ringspec.LayoutShared, Argv: ArgvSource{Procs: 36, Median: 15, Mean: 231, Max: 1396},
		Rows: []ArgsRow{{ArgsMax: 256, ExecRecords: 3216, BytesPerExec: 207, ExecSharePct: 3.02, DroppedPct: 64.8, MissingPct: 6.23, TruncatedPct: 7.32},
			{ArgsMax: 4096, ExecRecords: 2988, BytesPerExec: 255, ExecSharePct: 4.01, DroppedPct: 67.32, MissingPct: 8.34}}}
	var txt, md, html strings.Builder
	WriteTable(&txt, r)
	WriteMarkdownTable(&md, r)
	if err := WriteReport(&html, r); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": txt.String(), "markdown": md.String(), "html": html.String()} {
		for _, want := range []string{"args bound trade-off (1 MiB shared ring", "36 processes", "without read (40% of the syscall events seen)", "7.32", "255"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s lacks %q:\n%s", name, want, out)
			}
		}
	}
	if !strings.Contains(md.String(), "| 256 | 3216 | 207 | 3.02 |") {
		t.Errorf("markdown row:\n%s", md.String())
	}
}
