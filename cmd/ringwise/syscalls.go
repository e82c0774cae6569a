package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ringwise/ringwise/analyzer/report"
	"github.com/ringwise/ringwise/bpf"
)

// syscallLabel names syscall nr (x86_64 table), or "syscall_N".
func syscallLabel(nr uint32) string {
	if nr >= bpf.MeasureMaxNr {
		return fmt.Sprintf("syscall_%d+", bpf.MeasureMaxNr)
	}
	if n := report.SyscallName(nr); n != "" {
		return n
	}
	return "syscall_" + strconv.FormatUint(uint64(nr), 10)
}

// parseSyscallNames turns comma-separated syscall names (as Falco's
// base_syscalls.custom_set writes them: read, openat, …; "syscall_N" for a
// number without a name) into numbers. Numbers are refused: flags take
// names.
func parseSyscallNames(flagName, s string) ([]uint32, error) {
	byName := map[string]uint32{}
	for nr := range uint32(bpf.MeasureMaxNr) {
		if n := report.SyscallName(nr); n != "" {
			byName[n] = nr
		}
	}
	var out []uint32
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if nr, ok := byName[f]; ok {
			out = append(out, nr)
			continue
		}
		if rest, ok := strings.CutPrefix(f, "syscall_"); ok {
			if nr, err := strconv.ParseUint(rest, 10, 32); err == nil && nr < bpf.MeasureMaxNr {
				out = append(out, uint32(nr))
				continue
			}
		}
		if _, err := strconv.Atoi(f); err == nil {
			return nil, fmt.Errorf("--%s: %q is a number: give syscall names (read, openat, …)", flagName, f)
		}
		return nil, fmt.Errorf("--%s: unknown syscall name %q", flagName, f)
	}
	return out, nil
}

// syscallNames joins the names of nrs.
func syscallNames(nrs []uint32) string {
	names := make([]string, len(nrs))
	for i, nr := range nrs {
		names[i] = syscallLabel(nr)
	}
	return strings.Join(names, ",")
}
