package syscalls

import (
	"slices"
	"testing"
)

// TestDefaultCapture checks the default capture set on each ABI: every name
// is a syscall of x86_64, the names arm64 lacks are exactly the legacy forms
// it replaced with *at calls, the setuid family the enricher follows is in
// it, and the high-volume syscalls it is meant to leave out are not.
func TestDefaultCapture(t *testing.T) {
	nrs, absent, err := ParseList(X86_64, DefaultCapture())
	if err != nil || len(absent) != 0 {
		t.Fatalf("x86_64: ParseList(default) = %v, absent %v, %v; want every name known", nrs, absent, err)
	}
	if len(nrs) != len(defaultCapture) {
		t.Errorf("x86_64: %d numbers for %d names", len(nrs), len(defaultCapture))
	}
	_, absent, err = ParseList(ARM64, DefaultCapture())
	if err != nil {
		t.Fatalf("arm64: %v", err)
	}
	wantAbsent := []string{"open", "creat", "fork", "vfork", "unlink", "rmdir", "rename", "link", "symlink", "mkdir", "chmod", "chown", "lchown"}
	slices.Sort(absent)
	slices.Sort(wantAbsent)
	if !slices.Equal(absent, wantAbsent) {
		t.Errorf("arm64 lacks %v; want %v", absent, wantAbsent)
	}
	for _, abi := range []ABI{X86_64, ARM64} {
		nrs, _, _ := ParseList(abi, DefaultCapture())
		for _, name := range []string{"setuid", "setresgid", "execve", "openat", "connect"} {
			nr, _ := Number(abi, name)
			if !slices.Contains(nrs, nr) {
				t.Errorf("%s: %s (%d) not in the default set", abi, name, nr)
			}
		}
		for _, name := range []string{"read", "write", "mmap", "rt_sigaction", "futex", "close", "fcntl", "clock_gettime", "nanosleep"} {
			if nr, ok := Number(abi, name); ok && slices.Contains(nrs, nr) {
				t.Errorf("%s: high-volume %s (%d) in the default set", abi, name, nr)
			}
		}
	}
}
