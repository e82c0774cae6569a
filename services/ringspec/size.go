package ringspec

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
// with the reason, rather than by an opaque EINVAL at load time. FlagSize
// writes what ParseSize reads back.
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

// ParseSizes reads a comma-separated list of ring sizes ("1MiB,2MiB").
// Empty items are skipped; an empty list is an error.
func ParseSizes(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		if strings.TrimSpace(p) == "" {
			continue
		}
		n, err := ParseSize(p)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no size given")
	}
	return out, nil
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

// units are the binary units both formatters use, largest first.
var units = [...]struct {
	n    int
	name string
}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}}

// FlagSize renders a size the way flags take it, with the largest exact
// binary unit and no space: "16MiB", "64KiB", "4097". ParseSize reads it
// back. Use it in flag defaults and command lines, ProseSize in sentences
// and tables.
func FlagSize(n int) string {
	for _, u := range units {
		if n >= u.n && n%u.n == 0 {
			return strconv.Itoa(n/u.n) + u.name
		}
	}
	return strconv.Itoa(n)
}

// ProseSize renders a size for people: "16 MiB", "512 KiB", "1.5 MiB"
// (at most two decimals), "100 B".
func ProseSize(n int) string {
	for _, u := range units {
		if n >= u.n {
			if n%u.n == 0 {
				return strconv.Itoa(n/u.n) + " " + u.name
			}
			v := strconv.FormatFloat(float64(n)/float64(u.n), 'f', 2, 64)
			v = strings.TrimRight(strings.TrimRight(v, "0"), ".")
			return v + " " + u.name
		}
	}
	return strconv.Itoa(n) + " B"
}

// FlagSizes renders sizes as a comma-separated list ParseSizes reads back
// ("1MiB,2MiB,16MiB").
func FlagSizes(sizes []int) string {
	ss := make([]string, len(sizes))
	for i, n := range sizes {
		ss[i] = FlagSize(n)
	}
	return strings.Join(ss, ",")
}
