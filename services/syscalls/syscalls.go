// Package syscalls names Linux syscall numbers per ABI. The tables are
// generated from golang.org/x/sys/unix (see internal/mksyscalls) and are
// free of build tags, so a node of any architecture can name the syscalls
// of a sensor of another, and the ia32 (i386 compat) table maps onto
// x86_64's numbers. Syscall numbers are meaningless without their ABI: 113
// is setreuid on x86_64 but clock_gettime on arm64.
package syscalls

//go:generate go run ./internal/mksyscalls

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// ABI is a syscall numbering.
type ABI uint8

const (
	// Unknown is the zero ABI: no table, every lookup fails.
	Unknown ABI = iota
	// X86_64 is the x86-64 numbering (GOARCH amd64).
	X86_64
	// IA32 is the i386 numbering, also used by 32-bit programs on x86-64
	// through the compat entry (GOARCH 386).
	IA32
	// ARM64 is the arm64 (asm-generic) numbering.
	ARM64
)

// ABIs are the known ABIs.
func ABIs() []ABI { return []ABI{X86_64, IA32, ARM64} }

// String is the ABI's conventional name: x86_64, ia32 or arm64.
func (a ABI) String() string {
	switch a {
	case X86_64:
		return "x86_64"
	case IA32:
		return "ia32"
	case ARM64:
		return "arm64"
	}
	return "unknown"
}

// ABIOf is the native ABI of a Go GOARCH (amd64, 386, arm64).
func ABIOf(goarch string) (ABI, bool) {
	switch goarch {
	case "amd64":
		return X86_64, true
	case "386":
		return IA32, true
	case "arm64":
		return ARM64, true
	}
	return Unknown, false
}

// Native is the ABI of the architecture this program was built for. BPF
// records carry no ABI yet, so readers of records assume the sensor's ABI is
// this one (see event.Event.ABI); Unknown on other architectures.
func Native() ABI {
	a, _ := ABIOf(runtime.GOARCH)
	return a
}

func table(a ABI) []string {
	switch a {
	case X86_64:
		return x86_64Names[:]
	case IA32:
		return ia32Names[:]
	case ARM64:
		return arm64Names[:]
	}
	return nil
}

// Name is the name of syscall nr in ABI a ("setuid"), or "" when a has no
// such syscall.
func Name(a ABI, nr uint32) string {
	t := table(a)
	if uint64(nr) >= uint64(len(t)) {
		return ""
	}
	return t[nr]
}

// Number is the number of the syscall called name in ABI a.
func Number(a ABI, name string) (uint32, bool) {
	if name == "" {
		return 0, false
	}
	for nr, n := range table(a) {
		if n == name {
			return uint32(nr), true
		}
	}
	return 0, false
}

// Normalize maps a syscall of ABI a to the numbering readers compare
// against: ia32 calls become the x86_64 number of the same call (setuid32 →
// setuid, _llseek → lseek, clock_gettime64 → clock_gettime); x86_64 and
// arm64 numbers stay native. It reports false for a number a does not
// define and for ia32 calls x86_64 has no equivalent of (socketcall, ipc).
func Normalize(a ABI, nr uint32) (uint32, bool) {
	if Name(a, nr) == "" {
		return 0, false
	}
	if a != IA32 {
		return nr, true
	}
	eq := ia32ToX86_64[nr]
	if eq < 0 {
		return 0, false
	}
	return uint32(eq), true
}

// NormalABI is the ABI whose numbers Normalize returns for a: x86_64 for
// ia32, otherwise a itself.
func NormalABI(a ABI) ABI {
	if a == IA32 {
		return X86_64
	}
	return a
}

// ParseList reads a comma-separated list of syscalls, each a name or a
// number, in ABI a. Names that a does not define but another ABI does (such
// as access on arm64, which only has faccessat) are returned in absent
// rather than failing, so one default list serves every architecture; a name
// no ABI defines, or a number a does not define, is an error.
func ParseList(a ABI, s string) (nrs []uint32, absent []string, err error) {
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if n, perr := strconv.ParseUint(f, 10, 32); perr == nil {
			if Name(a, uint32(n)) == "" {
				return nil, nil, fmt.Errorf("syscall %d: not a %s syscall number", n, a)
			}
			nrs = append(nrs, uint32(n))
			continue
		}
		if nr, ok := Number(a, f); ok {
			nrs = append(nrs, nr)
			continue
		}
		known := false
		for _, other := range ABIs() {
			if _, ok := Number(other, f); ok {
				known = true
			}
		}
		if !known {
			return nil, nil, fmt.Errorf("syscall %q: no such syscall (give a name such as read, or a number from the %s table)", f, a)
		}
		absent = append(absent, f)
	}
	return nrs, absent, nil
}
