package bpf

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ringwise/ringwise/services/event"
)

// recordPayloads are the payload sizes of every record the probe writes.
func recordPayloads() []uint64 {
	return []uint64{ForkRecordSize, ExecRecordSize, ExitRecordSize, SyscallRecordSize}
}

// wakeThresholds are ring/16 of small and default rings, and thresholds that
// are not multiples of 8 (WakeupBytes is configurable).
var wakeThresholds = []uint64{256, 4096, 65536, 1 << 19, 4100, 4093}

// crossings enumerates, for one record size and threshold, every fill the
// ring can have before the record (multiples of 8 around the threshold) and
// reports the fills at which the record crossed the threshold but wake said
// no, and those at which wake said yes without a crossing.
func crossings(sz, thr uint64, wake func(avail, thr, sz uint64) bool) (crossed, missed, spurious int) {
	fp := ringFootprint(sz)
	lo := uint64(0)
	if thr > fp+64 {
		lo = (thr - fp - 64) &^ 7
	}
	for before := lo; before <= thr+64; before += 8 {
		after := before + fp
		cross := before < thr && after >= thr
		w := wake(after, thr, sz)
		if cross {
			crossed++
			if !w {
				missed++
			}
		} else if w {
			spurious++
		}
	}
	return crossed, missed, spurious
}

// TestWakeCrossingsNoneMissed enumerates the threshold crossings of every
// record size and finds each one woken, exactly once.
func TestWakeCrossingsNoneMissed(t *testing.T) {
	for _, tc := range []struct {
		t  event.Type
		sz uint64
	}{{event.TypeFork, ForkRecordSize}, {event.TypeExec, ExecRecordSize}, {event.TypeExit, ExitRecordSize},
		{event.TypeSyscall, SyscallRecordSize}} {
		if got, want := int(ringFootprint(tc.sz)), RecordSize(tc.t); got != want {
			t.Errorf("%s footprint of %d bytes = %d, RecordSize says %d", tc.t, tc.sz, got, want)
		}
	}
	for _, sz := range recordPayloads() {
		for _, thr := range wakeThresholds {
			crossed, missed, spurious := crossings(sz, thr, wakeCrossed)
			if crossed == 0 || missed != 0 || spurious != 0 {
				t.Errorf("record %d B, threshold %d: %d crossings, %d missed, %d woken without crossing", sz, thr, crossed, missed, spurious)
			}
		}
	}
}

// TestWakeOldWindowMissed keeps the test honest: the window the probe used
// before (avail < thr + payload, ignoring the 8-byte header and padding)
// misses crossings, and the enumeration finds them.
func TestWakeOldWindowMissed(t *testing.T) {
	old := func(avail, thr, sz uint64) bool { return avail >= thr && avail < thr+sz }
	total, miss := 0, 0
	for _, sz := range recordPayloads() {
		for _, thr := range wakeThresholds {
			c, m, _ := crossings(sz, thr, old)
			total += c
			miss += m
		}
	}
	if miss == 0 {
		t.Fatal("the old 8-byte-short window missed no crossing: the enumeration cannot catch the defect")
	}
	t.Logf("old window: %d of %d crossings missed", miss, total)
}

// TestWakeArithmeticC compiles headers/ringwise_wake.h, the arithmetic the
// BPF program runs, as plain C and checks its every decision over the same
// enumeration against the Go mirror, plus its footprint of every size up
// to 600 bytes. It fails if ringwise.bpf.c stops deciding with that header.
func TestWakeArithmeticC(t *testing.T) {
	// The program must use this header's function, not a copy of it.
	src0, err := os.ReadFile("ringwise.bpf.c")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(src0, []byte(`#include "ringwise_wake.h"`)) || !bytes.Contains(src0, []byte("rw_crossed(avail, thr, sz)")) {
		t.Fatal("ringwise.bpf.c does not decide wake-ups with rw_crossed from ringwise_wake.h")
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (cc) to build headers/ringwise_wake.h")
	}
	dir := t.TempDir()
	var prog strings.Builder
	prog.WriteString("#include <stdio.h>\n#define RW_INLINE static inline\n#include \"ringwise_wake.h\"\nint main(void){\n")
	prog.WriteString("unsigned long long szs[] = {")
	szs := recordPayloads()
	for s := uint64(1); s <= 600; s += 7 {
		szs = append(szs, s)
	}
	for i, s := range szs {
		if i > 0 {
			prog.WriteString(",")
		}
		fmt.Fprintf(&prog, "%d", s)
	}
	prog.WriteString("};\nunsigned long long thrs[] = {")
	for i, th := range wakeThresholds {
		if i > 0 {
			prog.WriteString(",")
		}
		fmt.Fprintf(&prog, "%d", th)
	}
	prog.WriteString(`};
for (unsigned i = 0; i < sizeof(szs)/sizeof(szs[0]); i++) {
  printf("F %llu %llu\n", szs[i], rw_footprint(szs[i]));
  for (unsigned j = 0; j < sizeof(thrs)/sizeof(thrs[0]); j++) {
    unsigned long long thr = thrs[j];
    for (unsigned long long a = thr > 700 ? thr - 700 : 0; a <= thr + 700; a++)
      if (rw_crossed(a, thr, szs[i])) printf("W %llu %llu %llu\n", szs[i], thr, a);
  }
}
return 0; }
`)
	src := filepath.Join(dir, "wake.c")
	if err := os.WriteFile(src, []byte(prog.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "wake")
	if out, err := exec.Command(cc, "-O1", "-Wall", "-Werror", "-I", "headers", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	cWakes := map[[3]uint64]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		var v [3]uint64
		for i := range f[1:] {
			v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
		}
		switch f[0] {
		case "F":
			if want := ringFootprint(v[0]); v[1] != want {
				t.Errorf("C footprint(%d) = %d, Go %d", v[0], v[1], want)
			}
		case "W":
			cWakes[v] = true
		}
	}
	checked := 0
	for _, sz := range szs {
		for _, thr := range wakeThresholds {
			lo := uint64(0)
			if thr > 700 {
				lo = thr - 700
			}
			for a := lo; a <= thr+700; a++ {
				checked++
				if g, c := wakeCrossed(a, thr, sz), cWakes[[3]uint64{sz, thr, a}]; g != c {
					t.Fatalf("size %d threshold %d avail %d: Go wakes %v, C %v", sz, thr, a, g, c)
				}
			}
		}
	}
	if len(cWakes) == 0 {
		t.Fatal("the C program woke for nothing")
	}
	t.Logf("%d decisions agree (%d wake-ups)", checked, len(cWakes))
}
