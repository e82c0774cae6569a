package bpf

import (
	"os"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	page := os.Getpagesize()
	for _, tc := range []struct {
		in   string
		want int
		err  string // substring of the error; "" means success
	}{
		{"64KiB", 64 << 10, ""},
		{"16MiB", 16 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"2GiB", 1 << 31, ""},
		{"4096", 4096, ""},
		{"8M", 8 << 20, ""},
		{"8m", 8 << 20, ""},
		{"8MB", 8 << 20, ""},
		{" 32 KiB ", 32 << 10, ""},
		{"1G", 1 << 30, ""},
		{"128k", 128 << 10, ""},
		{"65536B", 65536, ""},
		{"", 0, "empty"},
		{"  ", 0, "empty"},
		{"MiB", 0, "positive integer"},
		{"-4096", 0, "positive integer"},
		{"1.5MiB", 0, "unknown unit"},
		{"16XB", 0, "unknown unit"},
		{"12KiB", 0, "not a power of two"},
		{"3000", 0, "below the page size"},
		{"0", 0, "must be positive"},
		{"1024", 0, "below the page size"},
		{"4GiB", 0, "too large"},
		{"99999999999999999999999", 0, "too large"},
		{"16777216GiB", 0, "too large"},
	} {
		got, err := ParseSize(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseSize(%q) = %d, %v; want error containing %q", tc.in, got, err, tc.err)
		}
	}
	if page > 4096 {
		if _, err := ParseSize("4096"); err == nil {
			t.Errorf("4096 accepted with page size %d", page)
		}
	}
}

func TestPresetSize(t *testing.T) {
	want := map[int]int{1: 1 << 20, 2: 2 << 20, 3: 4 << 20, 4: 8 << 20, 5: 16 << 20,
		6: 32 << 20, 7: 64 << 20, 8: 128 << 20, 9: 256 << 20, 10: 512 << 20}
	for n := -1; n <= 12; n++ {
		got, err := PresetSize(n)
		w, ok := want[n]
		if ok != (err == nil) || got != w {
			t.Errorf("PresetSize(%d) = %d, %v; want %d (ok=%v)", n, got, err, w, ok)
		}
		if ok {
			if err := ValidateRingSize(got); err != nil {
				t.Errorf("preset %d: %v", n, err)
			}
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, s := range map[int]string{4096: "4KiB", 16 << 20: "16MiB", 1 << 30: "1GiB", 100: "100"} {
		if got := FormatSize(n); got != s {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, s)
		}
		if n >= 4096 {
			if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
				t.Errorf("round trip %d: %d %v", n, back, err)
			}
		}
	}
}
