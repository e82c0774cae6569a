package lab

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/ringwise/ringwise/services/ringspec"
)

// Chart geometry: the plot on the left, the legend in its own column on the
// right so that it never covers data.
const (
	svgW       = 800
	svgH       = 480
	svgLeft    = 72.0
	svgRight   = 596.0
	svgTop     = 70.0
	svgBottom  = 420.0
	svgLegendX = 612.0
)

var svgColors = []string{"#1f77b4", "#e67e00", "#2ca02c", "#9467bd", "#8c564b", "#17becf"}

// svgEsc escapes s for XML text and attribute values.
func svgEsc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func svgNum(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func svgFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// svgLayouts returns the layouts in the parameters' order, then any others
// the rows have, in order of appearance.
func svgLayouts(r *Results) []ringspec.Layout {
	var out []ringspec.Layout
	seen := map[ringspec.Layout]bool{}
	for _, l := range r.Params.Layouts {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	var extra []ringspec.Layout
	for _, row := range r.Rows {
		if !seen[row.Layout] {
			seen[row.Layout] = true
			extra = append(extra, row.Layout)
		}
	}
	// Drop parameter layouts without rows: an empty legend entry misleads.
	var res []ringspec.Layout
	for _, l := range append(out, extra...) {
		for _, row := range r.Rows {
			if row.Layout == l {
				res = append(res, l)
				break
			}
		}
	}
	return res
}

// svgNiceStep returns a 1/2/2.5/5×10^k step giving about n ticks up to max.
func svgNiceStep(max float64, n int) float64 {
	raw := max / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// RenderSVG returns loss.svg: missing % against ring size (log2 axis), one
// solid line per layout for the measurement (with ± spread error bars), one
// dashed line per layout for the ring model's prediction, and the seed
// article's points for comparison.
func RenderSVG(r *Results) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.Write(svgBody(r))
	return b.Bytes()
}

// svgBody is the <svg> element alone, for inlining into HTML.
func svgBody(r *Results) []byte {
	if r == nil {
		r = &Results{}
	}
	sim := renderIsSim(r)
	seed := renderSeed(r)
	layouts := svgLayouts(r)

	// Ranges.
	minS, maxS := math.Inf(1), math.Inf(-1)
	maxY := 0.0
	addX := func(s int) {
		if s > 0 {
			minS = math.Min(minS, float64(s))
			maxS = math.Max(maxS, float64(s))
		}
	}
	addY := func(v float64) {
		if svgFinite(v) {
			maxY = math.Max(maxY, v)
		}
	}
	for _, row := range r.Rows {
		addX(row.SizeBytes)
		if svgFinite(row.MissingPctSpread) {
			addY(row.MissingPct + row.MissingPctSpread)
		}
		addY(row.MissingPct)
		addY(row.PredictedMissingPct)
	}
	for _, s := range seed {
		addX(s.SizeBytes)
		addY(s.MissingPct)
	}
	if math.IsInf(minS, 1) {
		minS, maxS = 1<<20, 16<<20
	}
	lo, hi := math.Log2(minS)-0.4, math.Log2(maxS)+0.4
	if hi-lo < 2 {
		lo, hi = lo-1, hi+1
	}
	if maxY <= 0 {
		maxY = 1
	}
	step := svgNiceStep(maxY*1.05, 5)
	yTop := math.Ceil(maxY*1.05/step) * step

	xOf := func(size int) float64 {
		return svgLeft + (math.Log2(float64(size))-lo)/(hi-lo)*(svgRight-svgLeft)
	}
	yOf := func(pct float64) float64 {
		pct = math.Max(0, math.Min(pct, yTop))
		return svgBottom - pct/yTop*(svgBottom-svgTop)
	}

	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }

	title := "Events missing metadata vs ring size"
	if sim {
		title = "SIMULATED — " + title
	}
	w(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12" role="img" aria-label="%s">`+"\n",
		svgW, svgH, svgW, svgH, svgEsc(title))
	w("<title>%s</title>\n", svgEsc(title))
	w(`<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", svgW, svgH)

	// Title and subtitle.
	if sim {
		w(`<text x="%s" y="26" font-size="17" font-weight="bold"><tspan fill="#c0392b">SIMULATED</tspan><tspan fill="#222"> — events missing metadata vs ring size</tspan></text>`+"\n", svgNum(svgLeft))
	} else {
		w(`<text x="%s" y="26" font-size="17" font-weight="bold" fill="#222">%s</text>`+"\n", svgNum(svgLeft), svgEsc(title))
	}
	w(`<text x="%s" y="46" font-size="12" fill="#555">%s</text>`+"\n", svgNum(svgLeft), svgEsc(svgSubtitle(r)))

	// Grid and y axis.
	w(`<g class="y-axis" font-size="11" fill="#444" text-anchor="end">` + "\n")
	for v := 0.0; v <= yTop+step/1e6; v += step {
		y := yOf(v)
		w(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e3e3e3" stroke-width="1"/>`+"\n", svgNum(svgLeft), svgNum(y), svgNum(svgRight), svgNum(y))
		w(`<text x="%s" y="%s">%s</text>`+"\n", svgNum(svgLeft-6), svgNum(y+4), svgEsc(strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)))
	}
	w("</g>\n")
	// X axis: a tick per power of two.
	w(`<g class="x-axis" font-size="11" fill="#444" text-anchor="middle">` + "\n")
	k0, k1 := int(math.Ceil(lo)), int(math.Floor(hi))
	// Label every octave while labels ("512 MiB") fit, else every other one.
	every := max(1, int(math.Ceil(54/((svgRight-svgLeft)/(hi-lo)))))
	for k := k0; k <= k1; k++ {
		if k < 0 || k > 62 {
			continue
		}
		x := xOf(1 << k)
		w(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#eeeeee" stroke-width="1"/>`+"\n", svgNum(x), svgNum(svgTop), svgNum(x), svgNum(svgBottom))
		w(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#444" stroke-width="1"/>`+"\n", svgNum(x), svgNum(svgBottom), svgNum(x), svgNum(svgBottom+5))
		if (k-k0)%every == 0 {
			w(`<text x="%s" y="%s">%s</text>`+"\n", svgNum(x), svgNum(svgBottom+18), svgEsc(ringspec.ProseSize(1<<k)))
		}
	}
	w("</g>\n")
	// Axes and their titles.
	w(`<path d="M%s %s V%s H%s" fill="none" stroke="#444" stroke-width="1"/>`+"\n", svgNum(svgLeft), svgNum(svgTop), svgNum(svgBottom), svgNum(svgRight))
	w(`<text x="%s" y="%s" text-anchor="middle" font-size="13" fill="#222">ring size (log₂ scale)</text>`+"\n", svgNum((svgLeft+svgRight)/2), svgNum(svgBottom+40))
	w(`<text transform="translate(20 %s) rotate(-90)" text-anchor="middle" font-size="13" fill="#222">events missing metadata (%%)</text>`+"\n", svgNum((svgTop+svgBottom)/2))

	// Recommended size, if any, as a vertical marker.
	if rs := r.Recommendation.SizeBytes; rs > 0 {
		if l2 := math.Log2(float64(rs)); l2 >= lo && l2 <= hi {
			x := xOf(rs)
			w(`<g class="recommended"><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#27ae60" stroke-width="1.5" stroke-dasharray="2 3"/>`, svgNum(x), svgNum(svgTop), svgNum(x), svgNum(svgBottom))
			anchor, dx := "start", 4.0
			if x > svgRight-90 {
				anchor, dx = "end", -4
			}
			lbl := "recommended " + ringspec.ProseSize(rs)
			if r.Recommendation.Layout != "" {
				lbl += " " + string(r.Recommendation.Layout)
			}
			w(`<text x="%s" y="%s" font-size="11" fill="#1e8449" text-anchor="%s">%s</text></g>`+"\n", svgNum(x+dx), svgNum(svgTop+12), anchor, svgEsc(lbl))
		}
	}

	// Seed article: grey dotted line, black diamonds.
	var seedPts []string
	var seedMarks strings.Builder
	for _, s := range seed {
		if s.SizeBytes <= 0 || !svgFinite(s.MissingPct) {
			continue
		}
		x, y := xOf(s.SizeBytes), yOf(s.MissingPct)
		seedPts = append(seedPts, svgNum(x)+","+svgNum(y))
		fmt.Fprintf(&seedMarks, `<path d="%s" fill="#222" stroke="#fff" stroke-width="1"><title>%s</title></path>`+"\n",
			svgDiamond(x, y, 6), svgEsc(fmt.Sprintf("seed article (Falco): %s → %s %% missing", ringspec.ProseSize(s.SizeBytes), renderPct(s.MissingPct))))
	}
	w(`<g class="seed" data-series="seed">` + "\n")
	if len(seedPts) > 1 {
		w(`<polyline points="%s" fill="none" stroke="#777" stroke-width="1.2" stroke-dasharray="1 3"/>`+"\n", strings.Join(seedPts, " "))
	}
	b.WriteString(seedMarks.String())
	w("</g>\n")

	// Layouts: predicted (dashed) under measured (solid, markers, error bars).
	for i, l := range layouts {
		color := svgColors[i%len(svgColors)]
		var rows []Row
		for _, row := range r.Rows {
			if row.Layout == l && row.SizeBytes > 0 {
				rows = append(rows, row)
			}
		}
		sort.SliceStable(rows, func(a, c int) bool { return rows[a].SizeBytes < rows[c].SizeBytes })
		var pred, meas []string
		for _, row := range rows {
			if svgFinite(row.PredictedMissingPct) {
				pred = append(pred, svgNum(xOf(row.SizeBytes))+","+svgNum(yOf(row.PredictedMissingPct)))
			}
			if svgFinite(row.MissingPct) {
				meas = append(meas, svgNum(xOf(row.SizeBytes))+","+svgNum(yOf(row.MissingPct)))
			}
		}
		w(`<g class="layout" data-layout="%s">`+"\n", svgEsc(string(l)))
		w(`<polyline data-series="predicted" data-layout="%s" points="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="7 5" opacity="0.85"/>`+"\n",
			svgEsc(string(l)), strings.Join(pred, " "), color)
		for _, row := range rows {
			if svgFinite(row.PredictedMissingPct) {
				x, y := xOf(row.SizeBytes), yOf(row.PredictedMissingPct)
				w(`<rect x="%s" y="%s" width="6" height="6" fill="#fff" stroke="%s" stroke-width="1.5"><title>%s</title></rect>`+"\n",
					svgNum(x-3), svgNum(y-3), color, svgEsc(fmt.Sprintf("%s %s predicted: %s %% missing", ringspec.ProseSize(row.SizeBytes), l, renderPct(row.PredictedMissingPct))))
			}
		}
		w(`<polyline data-series="measured" data-layout="%s" points="%s" fill="none" stroke="%s" stroke-width="2.2"/>`+"\n",
			svgEsc(string(l)), strings.Join(meas, " "), color)
		for _, row := range rows {
			if !svgFinite(row.MissingPct) {
				continue
			}
			x, y := xOf(row.SizeBytes), yOf(row.MissingPct)
			if sd := row.MissingPctSpread; sd > 0 && svgFinite(sd) {
				y0, y1 := yOf(row.MissingPct-sd), yOf(row.MissingPct+sd)
				w(`<path class="errorbar" d="M%s %s V%s M%s %s h8 M%s %s h8" stroke="%s" stroke-width="1.3" fill="none"/>`+"\n",
					svgNum(x), svgNum(y0), svgNum(y1), svgNum(x-4), svgNum(y0), svgNum(x-4), svgNum(y1), color)
			}
			tip := fmt.Sprintf("%s %s measured: %s %% missing", ringspec.ProseSize(row.SizeBytes), l, renderMissing(row))
			if sim {
				tip = "SIMULATED " + tip
			}
			w(`<circle cx="%s" cy="%s" r="4.5" fill="%s" stroke="#fff" stroke-width="1.2"><title>%s</title></circle>`+"\n",
				svgNum(x), svgNum(y), color, svgEsc(tip))
		}
		w("</g>\n")
	}

	// Legend, in its own column.
	measName := "measured"
	if sim {
		measName = "simulated"
	}
	w(`<g class="legend" font-size="12" fill="#222">` + "\n")
	y := svgTop + 4
	w(`<rect x="%s" y="%s" width="%s" height="%s" fill="#fafafa" stroke="#ddd"/>`+"\n",
		svgNum(svgLegendX-8), svgNum(y-14), svgNum(float64(svgW)-svgLegendX), svgNum(float64(len(layouts)*2*20+20+8)))
	for i, l := range layouts {
		color := svgColors[i%len(svgColors)]
		w(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2.2"/>`, svgNum(svgLegendX), svgNum(y), svgNum(svgLegendX+28), svgNum(y), color)
		w(`<circle cx="%s" cy="%s" r="4.5" fill="%s" stroke="#fff" stroke-width="1.2"/>`, svgNum(svgLegendX+14), svgNum(y), color)
		w(`<text x="%s" y="%s">%s</text>`+"\n", svgNum(svgLegendX+36), svgNum(y+4), svgEsc(string(l)+" — "+measName))
		y += 20
		w(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2" stroke-dasharray="7 5"/>`, svgNum(svgLegendX), svgNum(y), svgNum(svgLegendX+28), svgNum(y), color)
		w(`<rect x="%s" y="%s" width="6" height="6" fill="#fff" stroke="%s" stroke-width="1.5"/>`, svgNum(svgLegendX+11), svgNum(y-3), color)
		w(`<text x="%s" y="%s">%s</text>`+"\n", svgNum(svgLegendX+36), svgNum(y+4), svgEsc(string(l)+" — predicted"))
		y += 20
	}
	w(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#777" stroke-width="1.2" stroke-dasharray="1 3"/>`, svgNum(svgLegendX), svgNum(y), svgNum(svgLegendX+28), svgNum(y))
	w(`<path d="%s" fill="#222"/>`, svgDiamond(svgLegendX+14, y, 6))
	w(`<text x="%s" y="%s">seed article (Falco)</text>`+"\n", svgNum(svgLegendX+36), svgNum(y+4))
	y += 30
	notes := []string{"error bars: ±1 s.d.", fmt.Sprintf("over %d repeat(s)", r.Params.Repeat), "predicted: ring model, out of sample"}
	if r.Params.LifecycleSize > 0 {
		notes = append(notes, "lifecycle ring: "+ringspec.ProseSize(r.Params.LifecycleSize))
	}
	if sim {
		notes = append(notes, "", "SIMULATED: ring model", "only, no BPF")
	}
	for _, n := range notes {
		fill := "#555"
		if strings.HasPrefix(n, "SIMULATED") || n == "only, no BPF" {
			fill = "#c0392b"
		}
		if n != "" {
			w(`<text x="%s" y="%s" font-size="11" fill="%s">%s</text>`+"\n", svgNum(svgLegendX-4), svgNum(y), fill, svgEsc(n))
		}
		y += 15
	}
	w("</g>\n")
	w("</svg>\n")
	return b.Bytes()
}

// svgDiamond is a diamond path of half-diagonal h centred at x, y.
func svgDiamond(x, y, h float64) string {
	return fmt.Sprintf("M%s %s L%s %s L%s %s L%s %s Z", svgNum(x), svgNum(y-h), svgNum(x+h), svgNum(y), svgNum(x), svgNum(y+h), svgNum(x-h), svgNum(y))
}

// svgSubtitle is the load in one line.
func svgSubtitle(r *Results) string {
	p := r.Params
	parts := []string{
		fmt.Sprintf("process flood: %d procs, burst %d, pause %s, %d parallel", p.Procs, p.Burst, renderMs(p.PauseMs), p.Parallel),
		"consumer " + renderDuration(p.ConsumerCostNs) + "/record",
	}
	if renderIsSim(r) {
		parts = append(parts, "ring model only, no BPF")
	} else if p.Source != "" {
		parts = append(parts, "source "+p.Source)
	}
	return strings.Join(parts, " · ")
}
