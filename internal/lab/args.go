package lab

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/internal/flood"
	"github.com/ringwise/ringwise/services/ringspec"
)

// ArgsTable is the args-bound trade-off (Config.ArgsMax): the same flood,
// whose children carry command lines of this node's real lengths, run once
// per bound on exec records' argv. A bigger bound keeps more of each
// command line but costs ring space, so records drop sooner.
type ArgsTable struct {
	// SizeBytes and Layout are the ring every row ran with (the lab's
	// first size and layout).
	SizeBytes int             `json:"size_bytes"`
	Layout    ringspec.Layout `json:"layout"`
	// Argv describes the children's argv lengths: drawn, in order, from
	// the /proc/*/cmdline lengths of this node's processes at the start.
	Argv ArgvSource `json:"argv"`
	Rows []ArgsRow  `json:"rows"`
}

// ArgvSource is the distribution the flood's command lines came from.
type ArgvSource struct {
	Procs  int `json:"procs"`
	Median int `json:"median_bytes"`
	Mean   int `json:"mean_bytes"`
	Max    int `json:"max_bytes"`
}

// ArgsRow is one bound, averaged over the repeats. Every figure is measured.
type ArgsRow struct {
	ArgsMax     int     `json:"args_max"`
	ExecRecords float64 `json:"exec_records"`
	// BytesPerExec is the mean ring footprint of an exec record read.
	BytesPerExec float64 `json:"bytes_per_exec"`
	// ExecSharePct is the exec records' share of all ring bytes read.
	ExecSharePct        float64 `json:"exec_share_pct"`
	DroppedPct          float64 `json:"dropped_pct"`
	LifecycleDroppedPct float64 `json:"lifecycle_dropped_pct"`
	MissingPct          float64 `json:"missing_pct"`
	// TruncatedPct is the exec records whose argv (or exe) hit its bound.
	TruncatedPct float64 `json:"truncated_pct"`
}

// argvLengths is the flood's argv lengths: this node's command-line
// lengths, in a fixed shuffled order so that every bound sees the same
// sequence and no burst gets only the long ones.
func argvLengths() ([]int, ArgvSource, error) {
	ls, err := flood.CmdlineLengths("/proc")
	if err != nil {
		return nil, ArgvSource{}, err
	}
	if len(ls) == 0 {
		return nil, ArgvSource{}, fmt.Errorf("lab: --args-max: no process with a command line under /proc")
	}
	src := ArgvSource{Procs: len(ls), Median: ls[len(ls)/2], Max: ls[len(ls)-1]}
	sum := 0
	for _, n := range ls {
		sum += n
	}
	src.Mean = sum / len(ls)
	out := slices.Clone(ls)
	// A fixed permutation (stride coprime to the length) instead of a
	// random one: the same order on every run of this lab.
	stride := 7
	for len(out)%stride == 0 {
		stride += 2
	}
	for i := range out {
		out[i] = ls[(i*stride)%len(ls)]
	}
	return out, src, nil
}

func runArgs(ctx context.Context, cfg Config, res *Results) error {
	argv, src, err := argvLengths()
	if err != nil {
		return err
	}
	size, layout := cfg.Sizes[0], cfg.Layouts[0]
	t := &ArgsTable{SizeBytes: size, Layout: layout, Argv: src}
	byBound := map[int][]measured{}
	for rep := 0; rep < cfg.Repeat; rep++ {
		for _, bound := range cfg.ArgsMax {
			if err := ctx.Err(); err != nil {
				return err
			}
			label := fmt.Sprintf("args-max %d (%s %s) #%d", bound, ringspec.ProseSize(size), layout, rep+1)
			if cfg.Progress != nil {
				cfg.Progress.Start(label)
			}
			m, err := runOne(ctx, cfg, size, layout, runOpts{argsMax: bound, argv: argv})
			if err != nil {
				return fmt.Errorf("lab run %s: %w", label, err)
			}
			byBound[bound] = append(byBound[bound], m)
			if cfg.Progress != nil {
				cfg.Progress.Done(fmt.Sprintf("%-30s exec %5.0f B  dropped %6.2f%%  missing %6.2f%%  truncated %6.2f%%",
					label, safeDiv(float64(m.execs.Bytes), float64(m.execs.Records)), pct(m.run.Dropped, m.run.Attempted), m.run.MissingPct,
					pct(m.execs.Truncated, m.execs.Records)))
			}
		}
	}
	for _, bound := range cfg.ArgsMax {
		var recs, bpe, share, drop, lcDrop, miss, cut []float64
		for _, m := range byBound[bound] {
			e := m.execs
			recs = append(recs, float64(e.Records))
			bpe = append(bpe, safeDiv(float64(e.Bytes), float64(e.Records)))
			var all float64
			for c := range m.recordBytes {
				all += m.recordBytes[c] * float64(m.delivered[c])
			}
			share = append(share, 100*safeDiv(float64(e.Bytes), all))
			drop = append(drop, pct(m.run.Dropped, m.run.Attempted))
			lcDrop = append(lcDrop, pct(m.run.DroppedLifecycle, m.run.attemptedLC))
			miss = append(miss, m.run.MissingPct)
			cut = append(cut, pct(e.Truncated, e.Records))
		}
		r := ArgsRow{ArgsMax: bound}
		r.ExecRecords, _ = meanStd(recs)
		r.BytesPerExec, _ = meanStd(bpe)
		r.ExecSharePct, _ = meanStd(share)
		r.DroppedPct, _ = meanStd(drop)
		r.LifecycleDroppedPct, _ = meanStd(lcDrop)
		r.MissingPct, _ = meanStd(miss)
		r.TruncatedPct, _ = meanStd(cut)
		t.Rows = append(t.Rows, r)
	}
	res.Args = t
	return nil
}

// validateArgsMax checks the bounds of Config.ArgsMax.
func validateArgsMax(bounds []int) error {
	for _, b := range bounds {
		if b < 1 || b > bpf.ArgsMax {
			return fmt.Errorf("lab: --args-max %d: want 1..%d bytes", b, bpf.ArgsMax)
		}
	}
	return nil
}

// ParseArgsMax reads a comma-separated list of argv bounds in bytes.
func ParseArgsMax(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("--args-max: %q is not a number of bytes", f)
		}
		out = append(out, n)
	}
	return out, validateArgsMax(out)
}

// argsTitle, argsHeader and argsCells render the trade-off table for the
// text, markdown and HTML outputs alike.
func argsTitle(t *ArgsTable) string {
	return fmt.Sprintf("args bound trade-off (%s %s ring; the flood's argv lengths drawn from %d processes' /proc/*/cmdline on this node: median %d, mean %d, max %d bytes)",
		ringspec.ProseSize(t.SizeBytes), t.Layout, t.Argv.Procs, t.Argv.Median, t.Argv.Mean, t.Argv.Max)
}

func argsHeader() []string {
	return []string{"args max", "exec records", "bytes per exec record", "exec share of ring bytes %", "dropped %", "lifecycle dropped %", "missing %", "args truncated %"}
}

func argsCells(r ArgsRow) []string {
	return []string{strconv.Itoa(r.ArgsMax), strconv.FormatFloat(r.ExecRecords, 'f', 0, 64), strconv.FormatFloat(r.BytesPerExec, 'f', 0, 64),
		renderPct(r.ExecSharePct), renderPct(r.DroppedPct), renderPct(r.LifecycleDroppedPct), renderPct(r.MissingPct), renderPct(r.TruncatedPct)}
}

// writeArgsTable prints the args trade-off under the main table (text, or
// markdown when md).
func writeArgsTable(w io.Writer, t *ArgsTable, md bool) {
	if t == nil || len(t.Rows) == 0 {
		return
	}
	title, hdr := argsTitle(t), argsHeader()
	if md {
		fmt.Fprintln(w, "**"+title+"**")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| "+strings.Join(hdr, " | ")+" |")
		fmt.Fprintln(w, "|"+strings.Repeat("---:|", len(hdr)))
		for _, r := range t.Rows {
			renderMDRow(w, argsCells(r))
		}
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintln(w, title+":")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(hdr, "\t")+"\t")
	for _, r := range t.Rows {
		fmt.Fprintln(tw, strings.Join(argsCells(r), "\t")+"\t")
	}
	tw.Flush()
	fmt.Fprintln(w)
}
