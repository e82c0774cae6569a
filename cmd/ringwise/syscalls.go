package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/services/syscalls"
)

// The measure mode counts this machine's syscalls: numbers are in the
// native ABI (syscalls.Native).

// syscallLabel names syscall nr from the native table, or "syscall_N".
func syscallLabel(nr uint32) string {
	if nr >= bpf.MeasureMaxNr {
		return fmt.Sprintf("syscall_%d+", bpf.MeasureMaxNr)
	}
	if n := syscalls.Name(syscalls.Native(), nr); n != "" {
		return n
	}
	return "syscall_" + strconv.FormatUint(uint64(nr), 10)
}

// parseSyscallNames turns comma-separated syscall names (as Falco's
// base_syscalls.custom_set writes them: read, openat, …; "syscall_N" for a
// number without a name) into numbers. Numbers are refused: flags take
// names.
func parseSyscallNames(flagName, s string) ([]uint32, error) {
	abi := syscalls.Native()
	var out []uint32
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if nr, ok := syscalls.Number(abi, f); ok && nr < bpf.MeasureMaxNr {
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
		return nil, fmt.Errorf("--%s: unknown %s syscall name %q", flagName, abi, f)
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
