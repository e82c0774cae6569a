package bpf

import (
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/syscalls"
)

func TestPlanHook(t *testing.T) {
	have := map[string]bool{"__x64_sys_openat": true, "__ia32_compat_sys_openat": true, "__ia32_sys_openat": true,
		"__x64_sys_close": true, "__ia32_sys_close": true, "__x64_sys_newuname": true, "__arm64_sys_openat": true}
	has := func(fn string) bool { return have[fn] }
	nr := func(a syscalls.ABI, name string) uint32 {
		n, ok := syscalls.Number(a, name)
		if !ok {
			t.Fatalf("no %s on %s", name, a)
		}
		return n
	}
	openat, closeNr, uname, getpid := nr(syscalls.X86_64, "openat"), nr(syscalls.X86_64, "close"), nr(syscalls.X86_64, "uname"), nr(syscalls.X86_64, "getpid")

	p, err := planHook(HookAuto, []uint32{openat, closeNr, uname, closeNr}, syscalls.X86_64, "amd64", has)
	want := []string{"__ia32_compat_sys_openat", "__ia32_sys_close", "__ia32_sys_openat", "__x64_sys_close", "__x64_sys_newuname", "__x64_sys_openat"}
	if err != nil || p.Hook != HookFexit || !reflect.DeepEqual(p.Funcs, want) || p.Missing != nil {
		t.Errorf("openat,close,uname: %+v, %v; want fexit on %v", p, err, want)
	}
	// getpid has no function here: auto falls back and says why; fexit refuses.
	p, err = planHook(HookAuto, []uint32{openat, getpid}, syscalls.X86_64, "amd64", has)
	if err != nil || p.Hook != HookSysExit || p.Funcs != nil || !strings.Contains(p.Reason, "getpid (no __x64_sys_getpid or __do_sys_getpid)") {
		t.Errorf("auto with getpid missing: %+v, %v", p, err)
	}
	if _, err = planHook(HookFexit, []uint32{openat, getpid}, syscalls.X86_64, "amd64", has); err == nil || !strings.Contains(err.Error(), "getpid") {
		t.Errorf("fexit with getpid missing: %v, want an error naming getpid", err)
	}
	if _, err = planHook(HookFexit, nil, syscalls.X86_64, "amd64", has); err == nil {
		t.Error("fexit without a capture set: no error")
	}
	if p, _ = planHook(HookAuto, nil, syscalls.X86_64, "amd64", has); p.Hook != HookSysExit {
		t.Errorf("no capture set: %+v, want sys_exit", p)
	}
	if p, _ = planHook(HookSysExit, []uint32{openat}, syscalls.X86_64, "amd64", has); p.Hook != HookSysExit || p.Funcs != nil {
		t.Errorf("sys_exit asked for: %+v", p)
	}
	have["__do_sys_getpid"] = true // SYSCALL_DEFINE0: the wrappers are its aliases
	if p, _ = planHook(HookAuto, []uint32{getpid}, syscalls.X86_64, "amd64", has); p.Hook != HookFexit || !reflect.DeepEqual(p.Funcs, []string{"__do_sys_getpid"}) {
		t.Errorf("getpid: %+v, want fexit on __do_sys_getpid", p)
	}
	// An empty set hooks nothing at all.
	if p, _ = planHook(HookAuto, []uint32{}, syscalls.X86_64, "amd64", has); p.Hook != HookFexit || len(p.Funcs) != 0 {
		t.Errorf("empty set: %+v", p)
	}
	if p, _ = planHook(HookAuto, []uint32{nr(syscalls.ARM64, "openat")}, syscalls.ARM64, "arm64", has); p.Hook != HookFexit || !reflect.DeepEqual(p.Funcs, []string{"__arm64_sys_openat"}) {
		t.Errorf("arm64 openat: %+v", p)
	}
	if p, _ = planHook(HookAuto, []uint32{1000}, syscalls.X86_64, "amd64", has); p.Hook != HookSysExit || !strings.Contains(p.Reason, "syscall 1000") {
		t.Errorf("unnamed number: %+v", p)
	}
	for _, s := range []string{"", "auto", "fexit", "sys_exit"} {
		if _, err := ParseSyscallHook(s); err != nil {
			t.Errorf("ParseSyscallHook(%q): %v", s, err)
		}
	}
	if _, err := ParseSyscallHook("kprobe"); err == nil {
		t.Error("ParseSyscallHook(kprobe): no error")
	}
}

// The workload of TestCaptureHooks: n rounds of openat(AT_FDCWD, path,
// fileFlags) and close of the fd it returned, close of a bad fd (EBADF),
// getpid and read (both outside the capture set).
const (
	fileFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK // a mark: the Go runtime opens nothing so
	badFD     = 9999
)

// TestHelperFiles is not a test: it is the child of TestCaptureHooks,
// re-executed with RINGWISE_FILES=N.
func TestHelperFiles(t *testing.T) {
	v := os.Getenv("RINGWISE_FILES")
	if v == "" {
		t.Skip("helper process for TestCaptureHooks")
	}
	n, _ := strconv.Atoi(v)
	path, _ := syscall.BytePtrFromString("/etc/hostname")
	buf := make([]byte, 16)
	at := int64(unix.AT_FDCWD)
	atFDCWD := uintptr(at)
	for range n {
		fd, _, e := syscall.Syscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(path)), fileFlags, 0, 0, 0)
		if e != 0 {
			os.Exit(40)
		}
		syscall.Read(int(fd), buf)
		syscall.Getpid()
		if _, _, e := syscall.Syscall(unix.SYS_CLOSE, fd, 0, 0); e != 0 {
			os.Exit(41)
		}
		if _, _, e := syscall.Syscall(unix.SYS_CLOSE, badFD, 0, 0); e != unix.EBADF {
			os.Exit(42)
		}
	}
	os.Exit(0)
}

// hookRec is what both hooks must agree on for one syscall of the workload.
type hookRec struct {
	nr   uint32
	abi  syscalls.ABI
	args [3]uint64
	ret  int64
}

// runHooked loads a probe with the capture set openat,close and hook h,
// runs the workload of n rounds, and returns the workload's marked syscall
// records in order, after checking that nothing outside the set was
// recorded or counted.
func runHooked(t *testing.T, h SyscallHook, n int) []hookRec {
	t.Helper()
	if h == HookFexit {
		needFexit(t)
	}
	openat, _ := syscalls.Number(syscalls.Native(), "openat")
	closeNr, _ := syscalls.Number(syscalls.Native(), "close")
	p := load(t, Config{RingSize: 16 << 20, CaptureSyscalls: []uint32{openat, closeNr}, SyscallHook: h,
		ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	if got := p.Hook(); got.Hook != h {
		t.Fatalf("asked for hook %q, got %+v", h, got)
	}
	t.Logf("hook %+v", p.Hook())
	c := collect(p)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFiles$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("RINGWISE_FILES=%d", n))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	child := uint32(cmd.Process.Pid)
	recs, cnt := c.finish(t)
	if d := cnt.Dropped[event.CategorySyscall]; d != 0 {
		t.Fatalf("%d syscall records dropped: the comparison needs them all", d)
	}
	var got []hookRec
	syscallRecs := uint64(0)
	for _, r := range recs {
		if r.Type != event.TypeSyscall {
			continue
		}
		syscallRecs++
		if r.ABI == syscalls.Native() && r.Syscall != openat && r.Syscall != closeNr {
			t.Errorf("hook %s: record of syscall %d (%s) outside the set, pid %d", h, r.Syscall, syscalls.Name(r.ABI, r.Syscall), r.Pid)
		}
		if r.Pid != child {
			continue
		}
		hr := hookRec{nr: r.Syscall, abi: r.ABI, args: r.SysArgs, ret: r.Ret}
		switch {
		case r.Syscall == openat && r.SysArgs[2] == fileFlags:
			hr.args[1] = 0 // the path's address: the child's, not comparable
			got = append(got, hr)
		case r.Syscall == closeNr:
			got = append(got, hr)
		}
	}
	// Nothing outside the set is counted: every attempt is a record here.
	if a := cnt.Attempted[event.CategorySyscall]; a != syscallRecs {
		t.Errorf("hook %s: attempted %d, %d syscall records delivered", h, a, syscallRecs)
	}
	return got
}

// TestCaptureHooks: with the capture set openat,close, both hooks record
// exactly the workload's openat and close calls with their numbers,
// arguments and results, nothing of the getpid and read calls around them,
// and the same records as each other.
func TestCaptureHooks(t *testing.T) {
	needRoot(t)
	const n = 500
	openat, _ := syscalls.Number(syscalls.Native(), "openat")
	closeNr, _ := syscalls.Number(syscalls.Native(), "close")
	byHook := map[SyscallHook][]hookRec{}
	for _, h := range []SyscallHook{HookSysExit, HookFexit} {
		got := runHooked(t, h, n)
		byHook[h] = got
		// The marked opens, each followed by the close of its fd (the
		// runtime's own closes at exit come after and are ignored).
		opens := 0
		for i := 0; i+2 < len(got) && opens < n; i++ {
			o := got[i]
			if o.nr != openat {
				continue
			}
			opens++
			c, bad := got[i+1], got[i+2]
			fdcwd := int64(unix.AT_FDCWD)
			at := uint64(fdcwd) & 0xffffffff
			if o.abi != syscalls.Native() || o.args[0]&0xffffffff != at || o.ret < 0 {
				t.Fatalf("hook %s: open %d: %+v", h, opens, o)
			}
			if c.nr != closeNr || c.args[0] != uint64(o.ret) || c.ret != 0 {
				t.Fatalf("hook %s: close after open %d: %+v, want close(%d) = 0", h, opens, c, o.ret)
			}
			if bad.nr != closeNr || bad.args[0] != badFD || bad.ret != -int64(unix.EBADF) {
				t.Fatalf("hook %s: bad close after open %d: %+v, want close(%d) = -EBADF", h, opens, bad, badFD)
			}
		}
		if opens != n {
			t.Errorf("hook %s: %d marked opens recorded, want %d", h, opens, n)
		}
	}
	// The same workload, the same records (the marked opens and every close
	// of the child: fds are allocated the same way in both runs).
	a, b := byHook[HookSysExit], byHook[HookFexit]
	trim := func(r []hookRec) []hookRec {
		// up to the last bad close: what follows is the runtime's exit
		for i := len(r) - 1; i >= 0; i-- {
			if r[i].nr == closeNr && r[i].args[0] == badFD {
				return r[:i+1]
			}
		}
		return r
	}
	a, b = trim(a), trim(b)
	if len(a) != len(b) {
		t.Fatalf("sys_exit recorded %d of the workload's calls, fexit %d", len(a), len(b))
	}
	diff := 0
	for i := range a {
		if a[i] != b[i] {
			if diff++; diff <= 5 {
				t.Errorf("call %d: sys_exit %+v, fexit %+v", i, a[i], b[i])
			}
		}
	}
}

// TestFexitIA32: a 32-bit getpid (int 0x80) is recorded through the ia32
// wrapper with the ia32 ABI and number, as the sys_exit hook records it.
func TestFexitIA32(t *testing.T) {
	needRoot(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("ia32 calls exist only on x86_64")
	}
	if _, err := runLifecycleHelper(t, "int80"); err != nil {
		t.Skipf("no ia32 emulation: %v", err)
	}
	needFexit(t)
	getpid := sysGetpid(t)
	p := load(t, Config{RingSize: 4 << 20, CaptureSyscalls: []uint32{getpid}, SyscallHook: HookFexit,
		ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	if fns := p.Hook().Funcs; !sort.StringsAreSorted(fns) || !(contains(fns, "__do_sys_getpid") || contains(fns, "__ia32_sys_getpid")) {
		t.Fatalf("getpid hooked on %v, want __do_sys_getpid (or __x64_sys_getpid and __ia32_sys_getpid)", fns)
	}
	expectOneIA32Getpid(t, p)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// needFexit skips a test of the fexit hook on a kernel that refuses fexit
// programs, saying why (the sys_exit hook's half of a comparison still ran).
func needFexit(t *testing.T) {
	t.Helper()
	fn := "__x64_sys_close"
	if runtime.GOARCH == "arm64" {
		fn = "__arm64_sys_close"
	}
	if err := fexitLoadable(fn); err != nil {
		t.Skipf("this kernel refuses fexit programs, so the fexit hook is untested here (HookAuto keeps sys_exit): %v", err)
	}
}
