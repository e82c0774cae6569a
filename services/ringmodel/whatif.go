package ringmodel

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/ringspec"
)

// DefaultWhatIfTop is how many of the dominant syscalls the fewer-syscalls
// what-if leaves out, one more at a time.
const DefaultWhatIfTop = 3

// DefaultWhatIfKeep returns the syscalls the what-if never leaves out: the
// ones Falco's documentation says its state engine needs (process lineage,
// file descriptors, sockets, credentials, working directory). A function,
// so nobody can change the list under the model.
func DefaultWhatIfKeep() []string {
	return []string{"clone", "clone3", "fork", "vfork", "execve", "execveat", "exit", "exit_group", "close", "socket", "bind", "getsockopt",
		"setuid", "setgid", "setresuid", "setresgid", "setreuid", "setregid", "setsid", "setpgid", "capset", "chdir", "fchdir", "chroot", "prctl"}
}

// SyscallCount is one syscall's part of a load: its arrivals (ringwise
// measure counts them in the kernel) or the events of it seen (the lab and
// the analyzer count delivered events).
type SyscallCount struct {
	Name  string  `json:"name"`
	Count uint64  `json:"count"`
	Pct   float64 `json:"pct"` // of the total of the list (RankSyscalls)
}

// RankSyscalls returns counts sorted by count, most first (then by name),
// with Pct set to each one's share of their total.
func RankSyscalls(counts []SyscallCount) []SyscallCount {
	out := slices.Clone(counts)
	var total uint64
	for _, c := range out {
		total += c.Count
	}
	for i := range out {
		out[i].Pct = 0
		if total > 0 {
			out[i].Pct = 100 * float64(out[i].Count) / float64(total)
		}
	}
	slices.SortFunc(out, func(a, b SyscallCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out
}

// Fewer is one step of the fewer-syscalls what-if: the dominant syscalls
// left out, their share of the syscall load, and the same in Falco's terms.
type Fewer struct {
	Without  []string `json:"without"`
	SharePct float64  `json:"share_pct"`
	// CustomSet is Falco's base_syscalls.custom_set that leaves them out.
	CustomSet string `json:"base_syscalls_custom_set"`
}

// FewerSyscalls walks ranked (RankSyscalls order) and leaves out the top
// syscalls one more at a time, up to top of them, skipping those keep says
// must stay (Falco's state engine needs them, or they are no syscall name).
func FewerSyscalls(ranked []SyscallCount, top int, keep func(name string) bool) []Fewer {
	var out []Fewer
	var names, neg []string
	var share float64
	for _, s := range ranked {
		if len(names) >= top {
			break
		}
		if s.Count == 0 || (keep != nil && keep(s.Name)) {
			continue
		}
		names = append(names, s.Name)
		neg = append(neg, "!"+s.Name)
		share += s.Pct
		out = append(out, Fewer{Without: slices.Clone(names), SharePct: share, CustomSet: "[" + strings.Join(neg, ", ") + "]"})
	}
	return out
}

// WhatIf is Recommend's answer without some of the dominant syscalls.
// SIMULATED: the load's syscall arrivals are scaled down by the share of
// the events seen that the left-out syscalls had, which assumes the mix of
// syscalls seen holds at every moment of the load.
type WhatIf struct {
	Fewer
	// BufSizePreset, Layout and MeetsTarget are the recommendation's answer
	// for the reduced load; Falco the answer in Falco's layout.
	BufSizePreset       int             `json:"buf_size_preset"`
	Layout              ringspec.Layout `json:"layout"`
	MeetsTarget         bool            `json:"meets_target"`
	PredictedMissingPct float64         `json:"predicted_missing_pct"`
	FalcoPreset         int             `json:"falco_buf_size_preset"`
	FalcoMeetsTarget    bool            `json:"falco_meets_target"`
	FalcoMissingPct     float64         `json:"falco_predicted_missing_pct"`
	Sentence            string          `json:"sentence"`
}

// whatIfs answers, for each step of FewerSyscalls over opt.Syscalls, what
// Recommend would say of the load without those syscalls. Measurements of
// the full load (Options.Measured, the measured fill) do not apply to the
// reduced one and are left out.
func whatIfs(load Load, cal Calibration, opt Options) []WhatIf {
	if len(opt.Syscalls) == 0 || opt.WhatIfTop < 0 {
		return nil
	}
	keep := map[string]bool{}
	for _, n := range opt.WhatIfKeep {
		keep[n] = true
	}
	steps := FewerSyscalls(RankSyscalls(opt.Syscalls), opt.WhatIfTop, func(n string) bool { return keep[n] })
	sub := opt
	sub.Syscalls, sub.Measured = nil, nil
	var out []WhatIf
	for _, f := range steps {
		r := Recommend(load.scaleSyscalls(1-f.SharePct/100), cal, sub)
		w := WhatIf{Fewer: f, BufSizePreset: r.BufSizePreset, Layout: r.Layout, MeetsTarget: r.MeetsTarget,
			PredictedMissingPct: r.PredictedMissingPct, FalcoPreset: r.Falco.Candidate.Preset,
			FalcoMeetsTarget: r.Falco.MeetsTarget, FalcoMissingPct: r.Falco.Candidate.PredictedMissingPct}
		what := fmt.Sprintf("no bufSizePreset meets the target (best %d, %s, predicted %s%% missing)", r.BufSizePreset, r.Layout, fmtPct(r.PredictedMissingPct))
		if r.MeetsTarget {
			what = fmt.Sprintf("bufSizePreset %d (%s) would do (predicted %s%% missing)", r.BufSizePreset, ringDesc(r.ring()), fmtPct(r.PredictedMissingPct))
		}
		falco := fmt.Sprintf("in Falco's layout none would (best %d, predicted %s%% missing)", w.FalcoPreset, fmtPct(w.FalcoMissingPct))
		if w.FalcoMeetsTarget {
			falco = fmt.Sprintf("in Falco's layout bufSizePreset %d (predicted %s%% missing)", w.FalcoPreset, fmtPct(w.FalcoMissingPct))
		}
		w.Sentence = fmt.Sprintf("SIMULATED what-if: without %s (%s%% of the syscall events seen), %s; %s — in Falco: base_syscalls.custom_set: %s (check that your rules do not need them)",
			strings.Join(f.Without, "/"), fmtNum(f.SharePct), what, falco, f.CustomSet)
		out = append(out, w)
	}
	return out
}

// scaleSyscalls returns l with every bin's syscall arrivals (and per-CPU
// ones) multiplied by keep, and no measured fill (it was the full load's).
func (l Load) scaleSyscalls(keep float64) Load {
	keep = min(max(keep, 0), 1)
	out := l
	out.Backlog = Backlog{}
	out.Bins = make([]Bin, len(l.Bins))
	for i, b := range l.Bins {
		b.Arrivals[event.CategorySyscall] *= keep
		if b.CPU != nil {
			cpu := slices.Clone(b.CPU)
			for j := range cpu {
				cpu[j][event.CategorySyscall] *= keep
			}
			b.CPU = cpu
		}
		out.Bins[i] = b
	}
	return out
}
