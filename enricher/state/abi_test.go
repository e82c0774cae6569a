package state

import (
	"context"
	"errors"
	"testing"

	"github.com/ringwise/ringwise/services/event"
	"github.com/ringwise/ringwise/services/syscalls"
)

// TestSetuidByABI feeds records flagged ia32, arm64 and x86_64: the
// setuid family is recognised by the record's ABI, not by this machine's
// numbers. On arm64 113 is clock_gettime (its pointer argument must not
// become a uid); on x86_64 113 is setreuid; on ia32 213 is setuid32 and 23
// the 16-bit setuid.
func TestSetuidByABI(t *testing.T) {
	const start = sensorStart + 100
	num := func(a syscalls.ABI, name string) uint32 {
		nr, ok := syscalls.Number(a, name)
		if !ok {
			t.Fatalf("no %s on %s", name, a)
		}
		return nr
	}
	sys := func(pid uint32, a syscalls.ABI, nr uint32, args ...uint64) event.Event {
		e := sysEv(pid, start, 1)
		e.ABI, e.Syscall = a, nr
		copy(e.SysArgs[:], args)
		return e
	}
	for _, tc := range []struct {
		name    string
		ev      event.Event
		wantUID uint32
	}{
		{"arm64 clock_gettime (113) is no setreuid", sys(2001, syscalls.ARM64, 113, 1, 0x7ffc_1234_0040), 1000},
		{"arm64 setuid", sys(2002, syscalls.ARM64, num(syscalls.ARM64, "setuid"), 33), 33},
		{"arm64 setresuid", sys(2003, syscalls.ARM64, num(syscalls.ARM64, "setresuid"), 5, 44, 6), 44},
		{"x86_64 setreuid (113)", sys(2004, syscalls.X86_64, 113, ^uint64(0), 55), 55},
		{"ia32 setuid32", sys(2005, syscalls.IA32, num(syscalls.IA32, "setuid32"), 66), 66},
		{"ia32 16-bit setuid", sys(2006, syscalls.IA32, num(syscalls.IA32, "setuid"), 0x1_0077), 0x77},
		{"ia32 16-bit setuid -1 leaves it", sys(2007, syscalls.IA32, num(syscalls.IA32, "setuid"), 0xffff), 1000},
		{"ia32 213 (setuid32) is not x86_64's 213", sys(2008, syscalls.X86_64, 213, 88), 1000},
		{"unknown ABI (AArch32) is never a setuid", sys(2009, event.ABIOther, 23, 99), 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := NewEngine(Config{})
			pid := tc.ev.Pid
			after := sysEv(pid, start, 1)
			out := eng.Enrich(context.Background(), batch(0, forkEv(pid, 1, start, 1, "w"), tc.ev, after), nil)
			if got := out[2].ProcUID; got != tc.wantUID {
				t.Errorf("uid after %s = %d, want %d", tc.name, got, tc.wantUID)
			}
		})
	}
}

// TestCompatSyscallsCountedApart: ia32 calls are counted, and those with
// no 64-bit equivalent (socketcall) or of an ABI no table covers are
// counted apart as unnamed.
func TestCompatSyscallsCountedApart(t *testing.T) {
	const start = sensorStart + 100
	eng := NewEngine(Config{})
	socketcall, _ := syscalls.Number(syscalls.IA32, "socketcall")
	getpid32, _ := syscalls.Number(syscalls.IA32, "getpid")
	evs := []event.Event{forkEv(3000, 1, start, 1, "w")}
	for _, c := range []struct {
		abi syscalls.ABI
		nr  uint32
	}{{syscalls.IA32, getpid32}, {syscalls.IA32, socketcall}, {event.ABIOther, 1}, {syscalls.Native(), 0}} {
		e := sysEv(3000, start, 1)
		e.ABI, e.Syscall = c.abi, c.nr
		evs = append(evs, e)
	}
	eng.Enrich(context.Background(), batch(0, evs...), nil)
	st := eng.Stats()
	if st.CompatSyscalls != 3 || st.UnnamedSyscalls != 2 {
		t.Errorf("compat %d (want 3: two ia32, one AArch32), unnamed %d (want 2: socketcall, AArch32)", st.CompatSyscalls, st.UnnamedSyscalls)
	}
}

type fakeContainers map[uint64]string

func (f fakeContainers) ContainerID(_ context.Context, id uint64) (string, error) {
	c, ok := f[id]
	if !ok {
		return "", errors.New("no such cgroup")
	}
	return c, nil
}

// TestContainerIDFromCgroup: container.id comes from the cgroup id of the
// process's fork or exec record; a host process has none; vpid is the
// record's own.
func TestContainerIDFromCgroup(t *testing.T) {
	const start = sensorStart + 100
	eng := NewEngine(Config{Containers: fakeContainers{7: "3f4e5d6c7b8a", 1: ""}})
	child := forkEv(4000, 1, start, 1, "sh")
	child.CgroupID = 7
	in := sysEv(4000, start, 1)
	in.VPid = 1
	host := forkEv(4001, 1, start, 1, "cron")
	host.CgroupID = 1
	hostSys := sysEv(4001, start, 1)
	execd := execEv(4000, 1, start, 2, "nginx", "/usr/sbin/nginx", "nginx")
	execd.CgroupID = 7
	after := sysEv(4000, start, 2)
	out := eng.Enrich(context.Background(), batch(0, child, in, host, hostSys, execd, after), nil)
	if out[1].ContainerID != "3f4e5d6c7b8a" || out[1].VPid != 1 {
		t.Errorf("container process: container.id %q vpid %d", out[1].ContainerID, out[1].VPid)
	}
	if out[3].ContainerID != "" {
		t.Errorf("host process: container.id %q", out[3].ContainerID)
	}
	if out[5].ContainerID != "3f4e5d6c7b8a" {
		t.Errorf("after exec: container.id %q", out[5].ContainerID)
	}
	if st := eng.Stats(); st.ContainerLookups != 2 || st.ContainerLookupErrors != 0 {
		t.Errorf("container lookups %d (want 2: cached per cgroup), errors %d", st.ContainerLookups, st.ContainerLookupErrors)
	}
}

// TestCgroupMoveFollowsContainer: a process moved to another cgroup after
// its exec (a cgroup_attach_task record) carries the new container.id from
// then on, and the events before the move keep the old one; a move of an
// unknown process or of another holder of the pid changes nothing.
func TestCgroupMoveFollowsContainer(t *testing.T) {
	const start = sensorStart + 100
	eng := NewEngine(Config{Containers: fakeContainers{1: "", 7: "3f4e5d6c7b8a"}})
	execd := execEv(4000, 1, start, 1, "sleep", "/usr/bin/sleep", "sleep")
	execd.CgroupID = 1
	before := sysEv(4000, start, 1)
	move := execEv(4000, 1, start, 1, "sleep", "", "")
	move.Type, move.Exe, move.Args, move.CgroupID = event.TypeCgroup, nil, nil, 7
	after := sysEv(4000, start, 1)
	stale := move
	stale.StartNs = start - 50 // an older holder of pid 4000
	stale.CgroupID = 1
	unknown := move
	unknown.Pid, unknown.Tid = 4999, 4999
	last := sysEv(4000, start, 1)
	out := eng.Enrich(context.Background(), batch(0, execd, before, move, after, stale, unknown, last), nil)
	if out[1].ContainerID != "" {
		t.Errorf("before the move: container.id %q", out[1].ContainerID)
	}
	if out[3].ContainerID != "3f4e5d6c7b8a" || out[6].ContainerID != "3f4e5d6c7b8a" {
		t.Errorf("after the move: container.id %q, %q", out[3].ContainerID, out[6].ContainerID)
	}
	if out[3].Missing != 0 || out[3].ProcName != "sleep" || out[3].ProcExePath != "/usr/bin/sleep" {
		t.Errorf("after the move: missing %v, name %q exe %q", out[3].Missing, out[3].ProcName, out[3].ProcExePath)
	}
	if st := eng.Stats(); st.CgroupMoves != 1 {
		t.Errorf("cgroup moves applied %d, want 1", st.CgroupMoves)
	}
}

// TestNonLeaderExecEndsOldThread: an exec record whose old_pid is another
// thread's id ends that thread (it has no exit record of its own).
func TestNonLeaderExecEndsOldThread(t *testing.T) {
	const start = sensorStart + 100
	eng := NewEngine(Config{})
	ex := execEv(5000, 1, start, 2, "true", "/usr/bin/true", "true")
	ex.OldPid = 5003
	leaderExec := execEv(5001, 1, start, 2, "true", "/usr/bin/true", "true")
	leaderExec.OldPid = 5001
	eng.Enrich(context.Background(), batch(0, forkEv(5000, 1, start, 1, "w"), ex, forkEv(5001, 1, start, 1, "w"), leaderExec), nil)
	if st := eng.Stats(); st.NonLeaderExecs != 1 || st.ThreadExits != 1 {
		t.Errorf("non-leader execs %d (want 1), thread exits %d (want 1)", st.NonLeaderExecs, st.ThreadExits)
	}
}
