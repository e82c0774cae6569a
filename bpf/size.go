package bpf

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// MaxRingSize is the largest ring ParseSize accepts: the largest power of two
// that fits the kernel's u32 max_entries.
const MaxRingSize = 1 << 31

// ParseSize parses a ring size such as "64KiB", "16MiB", "1GiB", "4096" or
// "8M". Units are binary and case-insensitive: K, KB, KiB = 1024; M, MB, MiB
// = 1024²; G, GB, GiB = 1024³ ("MB" is read as MiB because a decimal size could
// never be a power of two). The kernel requires BPF ring buffers to be a power
// of two and a multiple of the page size, so anything else is rejected here,
// with the reason, rather than by an opaque EINVAL at load time.
func ParseSize(s string) (int, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("ring size: empty")
	}
	i := 0
	for i < len(in) && in[i] >= '0' && in[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("ring size %q: want a positive integer with an optional unit (KiB, MiB, GiB)", s)
	}
	n, err := strconv.ParseUint(in[:i], 10, 64)
	if err != nil || n > MaxRingSize {
		return 0, fmt.Errorf("ring size %q: too large (max %d bytes = 2GiB)", s, MaxRingSize)
	}
	var mult uint64
	switch strings.ToLower(strings.TrimSpace(in[i:])) {
	case "", "b":
		mult = 1
	case "k", "kb", "kib":
		mult = 1 << 10
	case "m", "mb", "mib":
		mult = 1 << 20
	case "g", "gb", "gib":
		mult = 1 << 30
	default:
		return 0, fmt.Errorf("ring size %q: unknown unit %q (use KiB, MiB or GiB)", s, strings.TrimSpace(in[i:]))
	}
	if n > MaxRingSize/mult {
		return 0, fmt.Errorf("ring size %q: too large (max %d bytes = 2GiB)", s, MaxRingSize)
	}
	size := int(n * mult)
	if err := ValidateRingSize(size); err != nil {
		return 0, fmt.Errorf("ring size %q: %w", s, err)
	}
	return size, nil
}

// ValidateRingSize checks the kernel's constraints on a ring buffer size:
// a power of two, at least one page, at most MaxRingSize.
func ValidateRingSize(n int) error {
	page := os.Getpagesize()
	switch {
	case n <= 0:
		return fmt.Errorf("%d bytes: must be positive", n)
	case n < page:
		return fmt.Errorf("%d bytes: below the page size (%d); a BPF ring is at least one page", n, page)
	case n&(n-1) != 0:
		return fmt.Errorf("%d bytes: not a power of two (the kernel requires one; e.g. %d or %d)", n, prevPow2(n), prevPow2(n)*2)
	case n > MaxRingSize:
		return fmt.Errorf("%d bytes: above the maximum %d (2GiB)", n, MaxRingSize)
	}
	return nil
}

func prevPow2(n int) int {
	p := 1
	for p*2 <= n {
		p *= 2
	}
	return p
}

// PresetSize maps Falco's --buf-size-preset (bufSizePreset) to bytes, so that
// ringwise runs can be compared with Falco at the same setting: 1→1MiB, 2→2MiB,
// 3→4MiB, 4→8MiB (Falco's default), 5→16MiB … 10→512MiB. Falco's preset 0
// (driver-specific custom size) and anything above 10 are rejected.
func PresetSize(n int) (int, error) {
	if n < 1 || n > 10 {
		return 0, fmt.Errorf("buffer size preset %d: want 1..10 (1→1MiB … 4→8MiB default … 10→512MiB)", n)
	}
	return 1 << (20 + n - 1), nil
}

// FormatSize renders a ring size with the largest exact binary unit ("16MiB").
func FormatSize(n int) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.Itoa(n>>30) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n)
}
