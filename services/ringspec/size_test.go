package ringspec

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
		if !ok {
			continue
		}
		if err := ValidateRingSize(got); err != nil {
			t.Errorf("preset %d: %v", n, err)
		}
		if p, found := PresetOf(got); !found || p != n {
			t.Errorf("PresetOf(%d) = %d, %v; want %d", got, p, found, n)
		}
	}
	if p, found := PresetOf(3 << 20); found {
		t.Errorf("PresetOf(3MiB) = %d, want none", p)
	}
	if s, _ := PresetSize(DefaultPreset); s != DefaultRingSize || DefaultRingSize != 8<<20 {
		t.Errorf("default preset %d is %d bytes, DefaultRingSize %d; want Falco's 8MiB", DefaultPreset, s, DefaultRingSize)
	}
	if h := PresetHelp(); !strings.HasPrefix(h, "1=1MiB 2=2MiB 3=4MiB 4=8MiB") || !strings.HasSuffix(h, "10=512MiB") {
		t.Errorf("PresetHelp() = %q", h)
	}
}

func TestFlagAndProseSize(t *testing.T) {
	for _, tc := range []struct {
		n           int
		flag, prose string
	}{
		{4096, "4KiB", "4 KiB"},
		{16 << 20, "16MiB", "16 MiB"},
		{8 << 20, "8MiB", "8 MiB"},
		{1 << 30, "1GiB", "1 GiB"},
		{1 << 31, "2GiB", "2 GiB"},
		{100, "100", "100 B"},
		{0, "0", "0 B"},
		{3 << 19, "1536KiB", "1.5 MiB"},
		{1<<20 + 1, "1048577", "1 MiB"},
		{5<<20 + 1<<18, "5376KiB", "5.25 MiB"},
	} {
		if got := FlagSize(tc.n); got != tc.flag {
			t.Errorf("FlagSize(%d) = %q, want %q", tc.n, got, tc.flag)
		}
		if got := ProseSize(tc.n); got != tc.prose {
			t.Errorf("ProseSize(%d) = %q, want %q", tc.n, got, tc.prose)
		}
	}
	// Every valid ring size survives FlagSize → ParseSize.
	for n := os.Getpagesize(); n <= MaxRingSize; n *= 2 {
		if back, err := ParseSize(FlagSize(n)); err != nil || back != n {
			t.Errorf("round trip %d via %q: %d %v", n, FlagSize(n), back, err)
		}
	}
}

func TestParseSizes(t *testing.T) {
	got, err := ParseSizes(" 1MiB, 2MiB,,16MiB ")
	if err != nil || len(got) != 3 || got[0] != 1<<20 || got[1] != 2<<20 || got[2] != 16<<20 {
		t.Fatalf("ParseSizes = %v, %v", got, err)
	}
	for _, in := range []string{"", " , ", "1MiB,3MiB", "1MiB,x"} {
		if got, err := ParseSizes(in); err == nil {
			t.Errorf("ParseSizes(%q) = %v, want an error", in, got)
		}
	}
}

// FuzzParseSize: any input is either rejected or gives a valid ring size that
// FlagSize renders back to the same number.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"64KiB", "16MiB", "1GiB", "4096", "8M", " 32 KiB ", "12KiB", "", "-1", "99999999999999999999", "2GiB", "1.5MiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if n != 0 {
				t.Fatalf("ParseSize(%q) = %d with error %v", s, n, err)
			}
			if !strings.Contains(err.Error(), "ring size") {
				t.Fatalf("ParseSize(%q): error %q does not say what it parsed", s, err)
			}
			return
		}
		if verr := ValidateRingSize(n); verr != nil {
			t.Fatalf("ParseSize(%q) = %d, which is invalid: %v", s, n, verr)
		}
		if back, err := ParseSize(FlagSize(n)); err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d, but FlagSize gives %q which parses to %d, %v", s, n, FlagSize(n), back, err)
		}
	})
}
