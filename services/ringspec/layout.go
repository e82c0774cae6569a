package ringspec

import (
	"fmt"
	"strings"
)

// Layout is how the sensor arranges its rings.
type Layout string

const (
	// LayoutShared puts every record in one ring for all CPUs: under a
	// syscall flood lifecycle records compete for space and drop like any
	// other. This is Falco's layout only on a node of at most
	// cpus_for_each_buffer (2) CPUs; LayoutFalco is Falco's on any node.
	LayoutShared Layout = "shared"
	// LayoutSplit gives fork/exec/exit their own ring (of
	// DefaultLifecycleRingSize unless configured), so a syscall flood
	// cannot starve the records that build process state.
	LayoutSplit Layout = "split"
	// LayoutSharedHints is the shared ring where a fork or exec record the
	// ring dropped is written again at the process's next syscall exit with
	// room (bpf Config.Hints): the bytes a loss takes away, paid only after
	// a loss. A lab variant of shared.
	LayoutSharedHints Layout = "shared+hints"
	// LayoutSharedShed is the shared ring with adaptive shedding of
	// low-value syscalls between DefaultShedHighWater and
	// DefaultShedLowWater. A lab variant of shared.
	LayoutSharedShed Layout = "shared+shed"
	// LayoutFalco is Falco's arrangement: an array of rings, one per group
	// of CPUsPerRing CPUs (Falco's cpus_for_each_buffer, DefaultCPUsPerRing),
	// each of the full ring size, a CPU writing only to its group's ring.
	// On a node of at most CPUsPerRing CPUs it is LayoutShared.
	LayoutFalco Layout = "falco"
	// LayoutMixed is not a ring arrangement: reports use it for an
	// aggregate over nodes whose layouts differ.
	LayoutMixed Layout = "mixed"
)

// DefaultLayout is the layout when none is given: shared, like Falco.
const DefaultLayout = LayoutShared

// ProbeLayouts are the layouts the BPF probe can load.
func ProbeLayouts() []Layout { return []Layout{LayoutShared, LayoutSplit, LayoutFalco} }

// LabLayouts are the layouts the lab can run: the probe's plus the shared
// variants with hints and with shedding.
func LabLayouts() []Layout {
	return []Layout{LayoutShared, LayoutSplit, LayoutSharedHints, LayoutSharedShed, LayoutFalco}
}

// Base is the kernel arrangement of l: shared for the shared variants,
// otherwise l itself.
func (l Layout) Base() Layout {
	switch l {
	case LayoutSharedHints, LayoutSharedShed:
		return LayoutShared
	}
	return l
}

// HasLifecycleRing reports whether lifecycle records have a ring of their own.
func (l Layout) HasLifecycleRing() bool { return l == LayoutSplit }

// Hints reports whether the layout has syscall records carry kernel hints.
func (l Layout) Hints() bool { return l == LayoutSharedHints }

// Sheds reports whether the layout sheds low-value syscalls under pressure.
func (l Layout) Sheds() bool { return l == LayoutSharedShed }

// ParseLayout reads one layout name and checks it is among allowed (all
// layouts except LayoutMixed when allowed is empty). The error lists the
// accepted names.
func ParseLayout(s string, allowed ...Layout) (Layout, error) {
	if len(allowed) == 0 {
		allowed = []Layout{LayoutShared, LayoutSplit, LayoutSharedHints, LayoutSharedShed, LayoutFalco}
	}
	l := Layout(strings.TrimSpace(s))
	for _, a := range allowed {
		if l == a {
			return l, nil
		}
	}
	return "", fmt.Errorf("unknown layout %q (want one of %s)", s, JoinLayouts(allowed, ", "))
}

// ParseLayouts reads a comma-separated list of layouts, each among allowed
// (see ParseLayout). Empty items are skipped; an empty list is an error.
func ParseLayouts(s string, allowed ...Layout) ([]Layout, error) {
	var out []Layout
	for _, p := range strings.Split(s, ",") {
		if strings.TrimSpace(p) == "" {
			continue
		}
		l, err := ParseLayout(p, allowed...)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no layout given")
	}
	return out, nil
}

// JoinLayouts joins layout names with sep, for help texts, flag defaults
// and errors.
func JoinLayouts(ls []Layout, sep string) string {
	ss := make([]string, len(ls))
	for i, l := range ls {
		ss[i] = string(l)
	}
	return strings.Join(ss, sep)
}
