// Package procfs reads process metadata from /proc for the sensor's startup
// snapshot and its on-demand lookups. It reports start times in ns since
// boot, like the kernel's task start time, at /proc's clock-tick granularity.
package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ringwise/ringwise/services/event"
)

// MaxString bounds the exe path and command line read from /proc (as
// Falco bounds them): longer ones are cut, so every downstream decoder's
// limit holds.
const MaxString = 4096

// ErrNotFound means /proc has no such process (it exited, or never was).
var ErrNotFound = errors.New("process not found in /proc")

// userHZ is the clock-tick rate of /proc/<pid>/stat start times. Linux
// exports USER_HZ=100 on every architecture ringwise supports.
const userHZ = 100

// HostRootEnv is the environment variable that says where the host's root
// filesystem is mounted when ringwise runs in a container, as in Falco
// (HOST_ROOT=/host, the host's /proc at /host/proc). Unset, the host's root
// is /.
const HostRootEnv = "HOST_ROOT"

// HostProc is the host's /proc given the environment (os.Getenv, or a
// test's): $HOST_ROOT/proc, or /proc when HOST_ROOT is unset or empty. Every
// read of the host's processes (snapshot, lookups, cgroups) goes under it,
// so that a sensor in a container without the host's pid namespace still
// sees the host's processes and not its own namespace's.
func HostProc(getenv func(string) string) string {
	return filepath.Join(HostRoot(getenv), "proc")
}

// HostRoot is $HOST_ROOT, or / when unset or empty.
func HostRoot(getenv func(string) string) string {
	if r := getenv(HostRootEnv); r != "" {
		return filepath.Clean(r)
	}
	return "/"
}

// FS reads a proc filesystem mounted at Root (default /proc). Use
// FS{Root: HostProc(os.Getenv)} for the host's processes.
type FS struct{ Root string }

func (f FS) root() string {
	if f.Root == "" {
		return "/proc"
	}
	return f.Root
}

// Snapshot returns every process currently in /proc. Processes that vanish
// while being read are skipped.
func (f FS) Snapshot() ([]event.ProcInfo, error) {
	ents, err := os.ReadDir(f.root())
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	out := make([]event.ProcInfo, 0, len(ents))
	for _, de := range ents {
		pid, err := strconv.ParseUint(de.Name(), 10, 32)
		if err != nil {
			continue
		}
		p, err := f.Lookup(uint32(pid))
		if err != nil {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// Lookup reads one process (thread-group id).
func (f FS) Lookup(pid uint32) (event.ProcInfo, error) {
	dir := filepath.Join(f.root(), strconv.FormatUint(uint64(pid), 10))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return event.ProcInfo{}, fmt.Errorf("pid %d: %w", pid, ErrNotFound)
		}
		return event.ProcInfo{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	p, err := ParseStat(stat)
	if err != nil {
		return event.ProcInfo{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	if p.Pid != pid {
		// /proc/<tid> of a thread resolves too; we want processes.
		return event.ProcInfo{}, fmt.Errorf("pid %d is a thread of %d: %w", pid, p.Pid, ErrNotFound)
	}
	if st, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		p.UID, p.GID = parseStatusIDs(st)
	}
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		p.ExePath = cut(strings.TrimSuffix(exe, " (deleted)"))
	}
	if cmd, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		p.Cmdline = cut(JoinArgs(cmd))
	}
	if cg, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil {
		p.ContainerID = ContainerID(ParseCgroup(cg))
	}
	return p, nil
}

// ParseStat parses /proc/<pid>/stat: pid, comm, ppid and start time.
func ParseStat(b []byte) (event.ProcInfo, error) {
	var p event.ProcInfo
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 1 || closing < open {
		return p, fmt.Errorf("malformed stat line %q", truncate(b))
	}
	pid, err := strconv.ParseUint(string(bytes.TrimSpace(b[:open])), 10, 32)
	if err != nil {
		return p, fmt.Errorf("malformed stat pid: %w", err)
	}
	p.Pid = uint32(pid)
	p.Comm = string(b[open+1 : closing])
	fields := strings.Fields(string(b[closing+1:]))
	// fields[0] is state (field 3); ppid is field 4, starttime field 22.
	if len(fields) < 20 {
		return p, fmt.Errorf("stat has %d fields after comm, want >= 20", len(fields))
	}
	ppid, err := strconv.ParseUint(fields[1], 10, 32)
	if err != nil {
		return p, fmt.Errorf("malformed stat ppid %q: %w", fields[1], err)
	}
	p.PPid = uint32(ppid)
	ticks, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return p, fmt.Errorf("malformed stat starttime %q: %w", fields[19], err)
	}
	p.StartNs = ticks * (1e9 / userHZ)
	return p, nil
}

func parseStatusIDs(b []byte) (uid, gid uint32) {
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		var dst *uint32
		switch {
		case bytes.HasPrefix(line, []byte("Uid:")):
			dst = &uid
		case bytes.HasPrefix(line, []byte("Gid:")):
			dst = &gid
		default:
			continue
		}
		// "Uid: real effective saved fs": take the effective id, as the
		// sensor's records do (and Falco's user.uid).
		f := strings.Fields(string(line[4:]))
		if len(f) > 1 {
			if v, err := strconv.ParseUint(f[1], 10, 32); err == nil {
				*dst = uint32(v)
			}
		}
	}
	return uid, gid
}

// JoinArgs turns NUL-separated argv into one space-separated command line,
// as Falco's proc.cmdline shows it.
func JoinArgs(b []byte) string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return ""
	}
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
}

func cut(s string) string {
	if len(s) > MaxString {
		return s[:MaxString]
	}
	return s
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
