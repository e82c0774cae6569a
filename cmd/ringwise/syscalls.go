package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ringwise/ringwise/bpf"
	"github.com/ringwise/ringwise/services/syscalls"
)

// syscallLabel names syscall nr of this machine's ABI, or "syscall_N".
func syscallLabel(nr uint32) string {
	if nr >= bpf.MeasureMaxNr {
		return fmt.Sprintf("syscall_%d+", bpf.MeasureMaxNr)
	}
	if n := syscalls.Name(syscalls.Native(), nr); n != "" {
		return n
	}
	return "syscall_" + strconv.FormatUint(uint64(nr), 10)
}

// parseSyscallNames turns comma-separated syscall names, as Falco's
// base_syscalls.custom_set writes them (read, openat, …), into this
// machine's numbers. Numbers are refused: these flags take names. Names this
// architecture lacks (access on arm64) are returned in absent.
func parseSyscallNames(flagName, s string) (nrs []uint32, absent []string, err error) {
	for _, f := range strings.Split(s, ",") {
		if _, perr := strconv.ParseUint(strings.TrimSpace(f), 10, 32); perr == nil {
			return nil, nil, fmt.Errorf("--%s: %q is a number: give syscall names (read, openat, …)", flagName, strings.TrimSpace(f))
		}
	}
	nrs, absent, err = syscalls.ParseList(syscalls.Native(), s)
	if err != nil {
		return nil, nil, fmt.Errorf("--%s: %w", flagName, err)
	}
	return nrs, absent, nil
}
