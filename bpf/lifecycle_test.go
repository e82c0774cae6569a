package bpf

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ringwise/ringwise/bpf/internal/ia32"
	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/procfs"
	"github.com/ringwise/ringwise/services/ringspec"
	"github.com/ringwise/ringwise/services/syscalls"
)

// TestHelperLifecycle is not a test: it is the child of the lifecycle tests,
// re-executed with RINGWISE_LIFECYCLE=<mode>.
func TestHelperLifecycle(t *testing.T) {
	mode := os.Getenv("RINGWISE_LIFECYCLE")
	switch {
	case mode == "":
		t.Skip("helper process for the lifecycle tests")
	case mode == "memfd":
		// fexecve: execveat(memfd, "", AT_EMPTY_PATH) of a copy of /bin/true.
		b, err := os.ReadFile("/bin/true")
		if err != nil {
			os.Exit(10)
		}
		fd, err := unix.MemfdCreate("rw-true", 0)
		if err != nil {
			os.Exit(11)
		}
		if _, err := unix.Write(fd, b); err != nil {
			os.Exit(12)
		}
		argv0, _ := syscall.BytePtrFromString("rw-true")
		empty, _ := syscall.BytePtrFromString("")
		argv := []*byte{argv0, nil}
		envp := []*byte{nil}
		_, _, e := syscall.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
			uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
		os.Exit(int(13 + e))
	case mode == "thread-exec":
		// exec /bin/true from a thread that is not the leader.
		// A goroutine that lands on the main thread keeps it locked, so
		// that the next one runs on another.
		for range 8 {
			onMain := make(chan bool)
			go func() {
				runtime.LockOSThread()
				if syscall.Gettid() == syscall.Getpid() {
					onMain <- true
					select {}
				}
				_ = syscall.Exec("/bin/true", []string{"true", "from-thread"}, nil)
				os.Exit(21)
			}()
			<-onMain
		}
		os.Exit(20)
	case strings.HasPrefix(mode, "threads:"):
		// n threads alive, then exit_group.
		n, _ := strconv.Atoi(strings.TrimPrefix(mode, "threads:"))
		ready := make(chan struct{}, n)
		for range n {
			go func() {
				runtime.LockOSThread()
				ready <- struct{}{}
				select {}
			}()
		}
		for range n {
			<-ready
		}
		os.Exit(0) // exit_group with n+ threads
	case mode == "int80":
		pid := ia32.Getpid32()
		if int(pid) != os.Getpid() {
			os.Exit(30)
		}
		os.Exit(0)
	}
	os.Exit(2)
}

func runLifecycleHelper(t *testing.T, mode string) (pid uint32, err error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLifecycle$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RINGWISE_LIFECYCLE="+mode)
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("helper %s: %w: %s", mode, err, out)
	}
	return uint32(cmd.Process.Pid), err
}

func lifecycleProbe(t *testing.T, legacy bool) *Probe {
	return load(t, Config{RingSize: 4 << 20, Layout: ringspec.LayoutSplit, LifecycleRingSize: 4 << 20,
		ExcludeTGIDs: []uint32{uint32(os.Getpid())}, LegacyGroupDeath: legacy})
}

// TestExecMemfd: an exec through fexecve of a memfd carries the memfd's
// path as /proc/<pid>/exe shows it (without " (deleted)"), not
// bprm->filename's "/dev/fd/N", and the process's one group-dead exit.
func TestExecMemfd(t *testing.T) {
	needRoot(t)
	p := lifecycleProbe(t, false)
	c := collect(p)
	pid, err := runLifecycleHelper(t, "memfd")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	recs, cnt := c.finish(t)
	if cnt.Dropped[event.CategoryLifecycle] != 0 {
		t.Fatalf("lifecycle drops: %v", cnt.Dropped)
	}
	var execs, deaths []rec
	for _, r := range recs {
		if r.Pid != pid {
			continue
		}
		switch {
		case r.Type == event.TypeExec:
			execs = append(execs, r)
		case r.Type == event.TypeExit && r.Flags&event.FlagGroupDead != 0:
			deaths = append(deaths, r)
		}
	}
	// The helper is itself exec'ed by the test (its own image first).
	if len(execs) == 0 {
		t.Fatal("no exec record of the helper")
	}
	last := execs[len(execs)-1]
	if string(last.Exe) != "/memfd:rw-true" || string(last.Args) != "rw-true" || last.OldPid != pid {
		t.Errorf("fexecve'd memfd: exe %q args %q old_pid %d (pid %d)", last.Exe, last.Args, last.OldPid, pid)
	}
	if len(deaths) != 1 || deaths[0].ExecID != last.ExecID {
		t.Errorf("group-dead exits of pid %d: %d (want 1, after the exec)", pid, len(deaths))
	}
}

// TestExecFromThread: a non-leader thread's exec carries old_pid (its tid
// before taking over the leader's id), the real exe path, and every other
// thread of the old image (the old leader included) has its exit, none
// group-dead; the new image then dies once.
func TestExecFromThread(t *testing.T) {
	needRoot(t)
	p := lifecycleProbe(t, false)
	c := collect(p)
	pid, err := runLifecycleHelper(t, "thread-exec")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	recs, cnt := c.finish(t)
	if cnt.Dropped[event.CategoryLifecycle] != 0 {
		t.Fatalf("lifecycle drops: %v", cnt.Dropped)
	}
	threads := map[uint32]bool{pid: true} // tids of the old image
	exited := map[uint32]bool{}
	var ex *rec
	deathsBefore, deathsAfter := 0, 0
	for i := range recs {
		r := &recs[i]
		if r.Pid != pid {
			continue
		}
		switch r.Type {
		case event.TypeFork:
			if r.Flags&event.FlagThread != 0 {
				threads[r.Tid] = true
			}
		case event.TypeExec:
			if string(r.Args) == "true\x00from-thread" {
				ex = r
			}
		case event.TypeExit:
			dead := r.Flags&event.FlagGroupDead != 0
			if ex == nil {
				exited[r.Tid] = true
				if dead {
					deathsBefore++
				}
			} else if dead {
				deathsAfter++
			}
		}
	}
	if ex == nil {
		t.Fatal("no exec record from the thread")
	}
	if ex.OldPid == pid || !threads[ex.OldPid] || ex.Tid != pid || string(ex.Exe) != trueExe {
		t.Errorf("exec from a thread: old_pid %d (pid %d, a thread: %v) tid %d exe %q", ex.OldPid, pid, threads[ex.OldPid], ex.Tid, ex.Exe)
	}
	for tid := range threads {
		if tid != ex.OldPid && !exited[tid] {
			t.Errorf("thread %d of the old image has no exit record", tid)
		}
	}
	if exited[ex.OldPid] {
		t.Errorf("the exec'ing thread %d has an exit record of its own (it lives on as %d)", ex.OldPid, pid)
	}
	if deathsBefore != 0 || deathsAfter != 1 {
		t.Errorf("group deaths: %d before the exec (want 0), %d after (want 1)", deathsBefore, deathsAfter)
	}
	t.Logf("old image: %d threads, exec by tid %d", len(threads), ex.OldPid)
}

// TestGroupDeathOnce: exit_group of a process with 50 threads yields exactly
// one group-dead exit, with the kernel's group_dead argument and with the
// legacy path that older kernels use (signal->live, deduplicated on the
// group leader), five processes each.
func TestGroupDeathOnce(t *testing.T) {
	needRoot(t)
	if !ExitHasGroupDead() {
		t.Log("this kernel passes no group_dead to sched_process_exit: both runs use the legacy path")
	}
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			p := lifecycleProbe(t, legacy)
			c := collect(p)
			var pids []uint32
			for range 5 {
				pid, err := runLifecycleHelper(t, "threads:50")
				if err != nil {
					t.Fatal(err)
				}
				pids = append(pids, pid)
			}
			time.Sleep(50 * time.Millisecond)
			recs, cnt := c.finish(t)
			if cnt.Dropped[event.CategoryLifecycle] != 0 {
				t.Fatalf("lifecycle drops: %v", cnt.Dropped)
			}
			for _, pid := range pids {
				exits, deaths, threadForks := 0, 0, 0
				for _, r := range recs {
					if r.Pid != pid {
						continue
					}
					switch {
					case r.Type == event.TypeFork && r.Flags&event.FlagThread != 0:
						threadForks++
					case r.Type == event.TypeExit:
						exits++
						if r.Flags&event.FlagGroupDead != 0 {
							deaths++
						}
					}
				}
				if deaths != 1 || threadForks < 50 || exits != threadForks+1 {
					t.Errorf("pid %d: %d group deaths (want 1), %d thread forks (want >= 50), %d exits (want every thread: %d)",
						pid, deaths, threadForks, exits, threadForks+1)
				}
			}
		})
	}
}

// TestIA32Syscall: a 32-bit syscall (int 0x80) from a 64-bit process is
// recorded with the ia32 ABI, its i386 number and its result. Where the
// kernel has no ia32 emulation int 0x80 is a general-protection fault; the
// test then skips, saying so.
func TestIA32Syscall(t *testing.T) {
	needRoot(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("ia32 calls exist only on x86_64")
	}
	// First without the probe: does the kernel take int 0x80 at all?
	if _, err := runLifecycleHelper(t, "int80"); err != nil {
		t.Skipf("this kernel refuses int 0x80 from a 64-bit process (no ia32 emulation: the helper died: %v); the ia32 path is covered by the enricher and analyzer unit tests only", err)
	}
	p := load(t, Config{RingSize: 4 << 20, ExcludeTGIDs: []uint32{uint32(os.Getpid())}})
	expectOneIA32Getpid(t, p)
}

// expectOneIA32Getpid runs the helper's int 0x80 getpid under p and wants
// exactly one ia32 syscall record of it: the i386 number, the pid returned.
func expectOneIA32Getpid(t *testing.T, p *Probe) {
	t.Helper()
	c := collect(p)
	pid, err := runLifecycleHelper(t, "int80")
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := c.finish(t)
	getpid32, _ := syscalls.Number(syscalls.IA32, "getpid")
	found := 0
	for _, r := range recs {
		if r.Pid == pid && r.Type == event.TypeSyscall && r.ABI == syscalls.IA32 {
			found++
			if r.Syscall != getpid32 || r.Ret != int64(pid) {
				t.Errorf("ia32 record: nr %d ret %d, want getpid (%d) returning %d", r.Syscall, r.Ret, getpid32, pid)
			}
		}
	}
	if found != 1 {
		t.Errorf("%d ia32 records from the helper, want 1", found)
	}
}

// TestCgroupAndNamespacePid: a process started in a cgroup of its own (a
// container runtime's name) and a pid namespace of its own carries that
// cgroup's id, which resolves through the host's cgroup hierarchy to the
// container id, and its namespace pid and tid (1) beside the global ones.
func TestCgroupAndNamespacePid(t *testing.T) {
	needRoot(t)
	root := procfs.CgroupV2Root("/sys/fs/cgroup")
	const id = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899"
	dir := filepath.Join(root, "docker-"+id+".scope")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup v2 directory under %s: %v", root, err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	cgid, err := procfs.CgroupID(root, filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	p := lifecycleProbe(t, false)
	c := collect(p)
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd, Cloneflags: syscall.CLONE_NEWPID}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	time.Sleep(50 * time.Millisecond)
	recs, _ := c.finish(t)
	seen := 0
	for _, r := range recs {
		if r.Pid != pid || r.Type == event.TypeSyscall {
			continue
		}
		seen++
		if r.CgroupID != cgid || r.VPid != 1 || r.VTid != 1 {
			t.Errorf("%s of pid %d: cgroup %d (want %d), vpid %d vtid %d (want 1, 1)", r.Type, pid, r.CgroupID, cgid, r.VPid, r.VTid)
		}
	}
	if seen < 3 {
		t.Fatalf("%d lifecycle records of the namespaced child, want fork, exec and exit", seen)
	}
	cg := &procfs.Cgroups{Root: root}
	path, err := cg.Path(cgid)
	if err != nil || path != "/docker-"+id+".scope" || procfs.ContainerID(path) != id[:12] {
		t.Errorf("cgroup %d: path %q (%v), container id %q", cgid, path, err, procfs.ContainerID(path))
	}
}

// TestCgroupMoveRecord: a running process written into another cgroup v2
// directory's cgroup.procs gets one cgroup_attach record with the new
// cgroup's id and its own pid, start and exec counter, between its exec and
// its exit; its exec record had the old cgroup.
func TestCgroupMoveRecord(t *testing.T) {
	needRoot(t)
	root := procfs.CgroupV2Root("/sys/fs/cgroup")
	dir := filepath.Join(root, "ringwise-move-test")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup v2 directory under %s: %v", root, err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	cgid, err := procfs.CgroupID(root, filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	p := lifecycleProbe(t, false)
	c := collect(p)
	cmd := exec.Command("/bin/sleep", "0.3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	time.Sleep(100 * time.Millisecond) // exec'ed by now
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(pid)), 0o644); err != nil {
		cmd.Wait()
		t.Fatalf("move %d into %s: %v", pid, dir, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	recs, _ := c.finish(t)
	var order []event.Type
	var moves []rec
	var execCg uint64
	for _, r := range recs {
		if r.Pid != pid || r.Type == event.TypeSyscall {
			continue
		}
		order = append(order, r.Type)
		switch r.Type {
		case event.TypeCgroup:
			moves = append(moves, r)
		case event.TypeExec:
			execCg = r.CgroupID
		}
	}
	if len(moves) != 1 {
		t.Fatalf("%d cgroup records of pid %d (lifecycle %v), want 1", len(moves), pid, order)
	}
	m := moves[0]
	if m.CgroupID != cgid || m.Tid != pid || m.Flags&event.FlagThread != 0 || m.ExecID == 0 {
		t.Errorf("cgroup record: cgroup %d (want %d), tid %d, flags %#x, exec id %d", m.CgroupID, cgid, m.Tid, m.Flags, m.ExecID)
	}
	if execCg == cgid || execCg == 0 {
		t.Errorf("exec record's cgroup %d: want the old one, not %d", execCg, cgid)
	}
	if n := len(order); n < 3 || order[n-2] != event.TypeCgroup || order[n-1] != event.TypeExit {
		t.Errorf("lifecycle of pid %d: %v, want ... exec, cgroup_attach, procexit", pid, order)
	}
}
