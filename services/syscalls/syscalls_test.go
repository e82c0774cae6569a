package syscalls

import (
	"runtime"
	"strings"
	"testing"
)

// TestHostTableMatchesXSys compares the generated, tag-free table of this
// host's ABI with x/sys's own constants compiled for the host: every
// constant is in the table with its number, and the table has nothing else.
func TestHostTableMatchesXSys(t *testing.T) {
	if got, ok := ABIOf(runtime.GOARCH); !ok || got != hostABI || Native() != hostABI {
		t.Fatalf("ABIOf(%s) = %v, %v; Native() = %v; want %v", runtime.GOARCH, got, ok, Native(), hostABI)
	}
	n := 0
	for _, name := range table(hostABI) {
		if name != "" {
			n++
		}
	}
	if n != len(hostConstants) {
		t.Errorf("%s table has %d syscalls, x/sys has %d: run go generate ./syscalls", hostABI, n, len(hostConstants))
	}
	for name, want := range hostConstants {
		if got, ok := Number(hostABI, name); !ok || got != want {
			t.Errorf("Number(%s, %q) = %d, %v; x/sys says %d", hostABI, name, got, ok, want)
		}
		if got := Name(hostABI, want); got != name {
			t.Errorf("Name(%s, %d) = %q; x/sys says %q", hostABI, want, got, name)
		}
	}
}

func TestKnownNumbers(t *testing.T) {
	for _, tc := range []struct {
		abi  ABI
		nr   uint32
		name string
	}{
		{X86_64, 0, "read"}, {X86_64, 39, "getpid"}, {X86_64, 105, "setuid"}, {X86_64, 113, "setreuid"},
		{X86_64, 228, "clock_gettime"}, {X86_64, 262, "newfstatat"},
		{ARM64, 63, "read"}, {ARM64, 113, "clock_gettime"}, {ARM64, 146, "setuid"}, {ARM64, 172, "getpid"},
		{ARM64, 79, "newfstatat"},
		{IA32, 3, "read"}, {IA32, 23, "setuid"}, {IA32, 213, "setuid32"}, {IA32, 102, "socketcall"},
		{IA32, 140, "_llseek"},
	} {
		if got := Name(tc.abi, tc.nr); got != tc.name {
			t.Errorf("Name(%s, %d) = %q, want %q", tc.abi, tc.nr, got, tc.name)
		}
		if got, ok := Number(tc.abi, tc.name); !ok || got != tc.nr {
			t.Errorf("Number(%s, %q) = %d, %v, want %d", tc.abi, tc.name, got, ok, tc.nr)
		}
	}
	for _, tc := range []struct {
		abi ABI
		nr  uint32
	}{{X86_64, 100000}, {ARM64, 1 << 31}, {Unknown, 0}, {ABI(99), 1}, {ARM64, 2}} {
		// arm64 2 is io_submit: known; everything else is not.
		if got := Name(tc.abi, tc.nr); (got != "") != (tc.abi == ARM64 && tc.nr == 2) {
			t.Errorf("Name(%s, %d) = %q", tc.abi, tc.nr, got)
		}
	}
	if _, ok := Number(ARM64, "access"); ok {
		t.Error("arm64 has no access syscall (only faccessat)")
	}
	if _, ok := Number(X86_64, ""); ok {
		t.Error("empty name found")
	}
}

func TestCred(t *testing.T) {
	if c, ok := Cred(ARM64, 113); ok {
		t.Fatalf("arm64 113 (clock_gettime) taken for a setuid-family call: %+v", c)
	}
	if c, ok := Cred(X86_64, 113); !ok || c.Kind != UID || c.Arg != 1 {
		t.Errorf("x86_64 113 (setreuid): %+v, %v", c, ok)
	}
	for _, a := range []ABI{X86_64, ARM64} {
		for name, want := range map[string]CredChange{
			"setuid": {UID, 0, 32}, "setgid": {GID, 0, 32}, "setreuid": {UID, 1, 32},
			"setregid": {GID, 1, 32}, "setresuid": {UID, 1, 32}, "setresgid": {GID, 1, 32},
		} {
			nr, ok := Number(a, name)
			if !ok {
				t.Fatalf("%s has no %s", a, name)
			}
			if got, ok := Cred(a, nr); !ok || got != want {
				t.Errorf("Cred(%s, %s=%d) = %+v, %v; want %+v", a, name, nr, got, ok, want)
			}
		}
		// Nothing else in the table is a credential change.
		n := 0
		for nr := range table(a) {
			if _, ok := Cred(a, uint32(nr)); ok {
				n++
			}
		}
		if n != 6 {
			t.Errorf("%s: %d setuid-family calls, want 6", a, n)
		}
	}
	// ia32: the legacy 16-bit calls and the 32-bit ones.
	c16, ok16 := Cred(IA32, 23)
	c32, ok32 := Cred(IA32, 213)
	if !ok16 || !ok32 || c16 != (CredChange{UID, 0, 16}) || c32 != (CredChange{UID, 0, 32}) {
		t.Errorf("ia32 setuid %+v %v, setuid32 %+v %v", c16, ok16, c32, ok32)
	}
	if id, ok := c16.NewID([3]uint64{0xffffffffffffffff}); ok {
		t.Errorf("16-bit -1 read as id %d", id)
	}
	if id, ok := c16.NewID([3]uint64{1000}); !ok || id != 1000 {
		t.Errorf("16-bit 1000 = %d, %v", id, ok)
	}
	if id, ok := c32.NewID([3]uint64{0xffffffff}); ok {
		t.Errorf("32-bit -1 read as id %d", id)
	}
	if id, ok := (CredChange{UID, 1, 32}).NewID([3]uint64{5, 70000, 6}); !ok || id != 70000 {
		t.Errorf("setresuid effective id = %d, %v", id, ok)
	}
}

func TestNormalize(t *testing.T) {
	setuid, _ := Number(X86_64, "setuid")
	for _, tc := range []struct {
		ia32, x86 string
	}{
		{"setuid32", "setuid"}, {"setuid", "setuid"}, {"setresgid32", "setresgid"}, {"read", "read"},
		{"_llseek", "lseek"}, {"mmap2", "mmap"}, {"fstat64", "fstat"}, {"fstatat64", "newfstatat"},
		{"clock_gettime64", "clock_gettime"}, {"futex_time64", "futex"}, {"fadvise64_64", "fadvise64"},
		{"getdents64", "getdents64"}, {"ugetrlimit", "getrlimit"}, {"execve", "execve"},
	} {
		nr, ok := Number(IA32, tc.ia32)
		if !ok {
			t.Fatalf("ia32 has no %s", tc.ia32)
		}
		want, _ := Number(X86_64, tc.x86)
		if got, ok := Normalize(IA32, nr); !ok || got != want {
			t.Errorf("Normalize(ia32, %s=%d) = %d (%s), %v; want %d (%s)", tc.ia32, nr, got, Name(X86_64, got), ok, want, tc.x86)
		}
	}
	if got, ok := Normalize(IA32, 213); !ok || got != setuid {
		t.Errorf("ia32 setuid32 → %d, %v; want x86_64 setuid %d", got, ok, setuid)
	}
	for _, name := range []string{"socketcall", "ipc", "waitpid"} {
		nr, _ := Number(IA32, name)
		if got, ok := Normalize(IA32, nr); ok {
			t.Errorf("ia32 %s normalized to %d (%s); x86_64 has no equivalent", name, got, Name(X86_64, got))
		}
	}
	// Every ia32 mapping names an x86_64 call whose name is the ia32 name or
	// a stem of it (or a listed alias): no number lands on an unrelated call.
	for nr, name := range ia32Names {
		got, ok := Normalize(IA32, uint32(nr))
		if name == "" || !ok {
			continue
		}
		x := Name(X86_64, got)
		aliases := map[string]string{"_llseek": "lseek", "_newselect": "select", "mmap2": "mmap", "fstatat64": "newfstatat", "ugetrlimit": "getrlimit"}
		if !strings.HasPrefix(name, x) && aliases[name] != x {
			t.Errorf("ia32 %s → x86_64 %s", name, x)
		}
	}
	// Native ABIs stay as they are; unknown numbers do not normalize.
	if got, ok := Normalize(ARM64, 113); !ok || got != 113 || NormalABI(ARM64) != ARM64 || NormalABI(IA32) != X86_64 {
		t.Errorf("Normalize(arm64, 113) = %d, %v", got, ok)
	}
	if _, ok := Normalize(X86_64, 5000); ok {
		t.Error("unknown x86_64 number normalized")
	}
}

func TestParseList(t *testing.T) {
	nrs, absent, err := ParseList(ARM64, "read, access,113,,newfstatat")
	if err != nil || len(nrs) != 3 || nrs[0] != 63 || nrs[1] != 113 || nrs[2] != 79 || len(absent) != 1 || absent[0] != "access" {
		t.Errorf("arm64 list = %v absent %v, %v", nrs, absent, err)
	}
	nrs, absent, err = ParseList(X86_64, "read,access")
	if err != nil || len(nrs) != 2 || nrs[1] != 21 || len(absent) != 0 {
		t.Errorf("x86_64 list = %v absent %v, %v", nrs, absent, err)
	}
	for _, bad := range []string{"nosuchcall", "99999", "-1", "read;write"} {
		if nrs, _, err := ParseList(X86_64, bad); err == nil {
			t.Errorf("ParseList(%q) = %v, want an error", bad, nrs)
		}
	}
}

func TestABIString(t *testing.T) {
	for a, s := range map[ABI]string{X86_64: "x86_64", IA32: "ia32", ARM64: "arm64", Unknown: "unknown"} {
		if a.String() != s {
			t.Errorf("%d.String() = %q, want %q", a, a.String(), s)
		}
	}
	if _, ok := ABIOf("riscv64"); ok {
		t.Error("riscv64 has no table yet")
	}
}

func BenchmarkCredMiss(b *testing.B) {
	nr, _ := Number(X86_64, "read")
	for b.Loop() {
		if _, ok := Cred(X86_64, nr); ok {
			b.Fatal("read is not a credential call")
		}
	}
	// The enricher asks once per syscall event.
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
